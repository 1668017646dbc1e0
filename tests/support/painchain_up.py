"""`painchain up` (and `painchain backend`) run as a user runs them: a subprocess in a working
directory, its output in a file, stopped with Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

from tests.support.dagster_ticks import tick_history


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def user_env(**extra: str) -> dict[str, str]:
    """The environment of a user who set nothing of ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAINCHAIN_", "DAGSTER_"))}
    env.pop("BACKEND_API_URL", None)
    env.update(extra)
    return env


class PainchainProcess:
    """One `painchain <command>` in `workdir`."""

    def __init__(self, workdir: Path, *args: str, env: dict[str, str] | None = None, name: str = "painchain"):
        self.workdir = workdir
        self.log_path = workdir / f"{name}-{time.monotonic_ns()}.log"
        # A file, not a pipe: nobody reads a pipe while Dagster logs, and a full pipe stalls it.
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen([sys.executable, "-m", "painchain_pipelines", *args], cwd=workdir,
                                        env=env or user_env(), stdout=self._log, stderr=subprocess.STDOUT, text=True)

    def output(self) -> str:
        return self.log_path.read_text()

    def wait_for(self, condition: Callable[[], bool], what: str, seconds: float = 240, every: float = 1.0) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert self.process.poll() is None, f"exited while waiting for {what}:\n{self.output()[-4000:]}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{self.output()[-4000:]}"
            time.sleep(every)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 90) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=timeout)
        self._log.close()
        return self.process.returncode


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.RequestException:
        return False


class PainchainBackend(PainchainProcess):
    """`painchain backend` alone on a free port."""

    def __init__(self, workdir: Path, env: dict[str, str] | None = None):
        self.port = free_port()
        super().__init__(workdir, "backend", "--port", str(self.port), env=env, name="backend")
        self.api = f"http://127.0.0.1:{self.port}/api"

    def wait_for_api(self, seconds: float = 60) -> "PainchainBackend":
        self.wait_for(lambda: answers(self.api + "/health"), "the PainChain API", seconds, every=0.1)
        return self


class PainchainUp(PainchainProcess):
    """`painchain up` on free ports, with helpers to wait for what a user would wait for."""

    def __init__(self, workdir: Path, env: dict[str, str] | None = None):
        self.port, self.dagster_port = free_port(), free_port()
        super().__init__(workdir, "up", "--port", str(self.port), "--dagster-port", str(self.dagster_port),
                         env=env, name="up")
        self.api = f"http://127.0.0.1:{self.port}/api"
        self.dagster_url = f"http://127.0.0.1:{self.dagster_port}"
        self.dagster_home = workdir / ".painchain" / "dagster"

    def wait_for_api(self, seconds: float = 120) -> None:
        self.wait_for(lambda: answers(self.api + "/health"), "the PainChain API", seconds, every=0.05)

    def wait_for_dagster(self, seconds: float = 180) -> None:
        self.wait_for(lambda: answers(self.dagster_url + "/server_info"), "the Dagster UI", seconds)

    def wait_for_ticks(self, name: str, count: int = 1, seconds: float = 180) -> None:
        # Only once Dagster answers: its storage is then created (by the code server). Opening a
        # storage another process is creating can break it (two Alembic heads, dagster#27390).
        self.wait_for_dagster(seconds)

        def ticked() -> bool:
            try:
                return sum(tick_history(self.dagster_home).get(name, {}).values()) >= count
            except Exception:  # the instance is still being created by the daemon
                return False

        self.wait_for(ticked, f"{count} tick(s) of {name}", seconds)

    def stored(self, **params) -> dict[str, dict]:
        """externalId -> event, as the API shows them (every page)."""
        out: dict[str, dict] = {}
        cursor = None
        while True:
            query = {"limit": 500, **params, **({"cursor": cursor} if cursor else {})}
            try:
                page = requests.get(self.api + "/events", params=query, timeout=10).json()
            except (requests.RequestException, ValueError):
                return out
            out.update({e["externalId"]: e for e in page.get("events", [])})
            cursor = page.get("nextCursor")
            if not cursor:
                return out
