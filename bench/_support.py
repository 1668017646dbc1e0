"""Shared by the benchmarks: run the real backend as its own process, print tables."""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def scratch_databases(postgres: bool, directory: Path) -> Iterator[Callable[[str], str]]:
    """fresh(name) -> the URL of a new, empty database: on PostgreSQL one of its own (all dropped
    at the end, whatever happened), else the SQLite file `directory/<name>.db`."""
    databases = None
    if postgres:
        from tests.support.databases import PostgresDatabases

        databases = PostgresDatabases()
    try:
        yield lambda name: databases.create() if databases else f"sqlite:///{directory / name}.db"
    finally:
        if databases:
            databases.drop_all()


@contextlib.contextmanager
def backend_process(data_dir: Path, database_url: str | None = None, *, pids: list[int] | None = None,
                    **env: str) -> Iterator[str]:
    """Start `painchain backend` like a user would; yield its /api URL (its pid into `pids`)."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PAINCHAIN_")}
    environment["PAINCHAIN_DATA_DIR"] = str(data_dir)
    if database_url:
        environment["PAINCHAIN_DATABASE_URL"] = database_url
    environment.update(env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "painchain_pipelines", "--log-level", "WARNING", "backend", "--port", str(port)],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    if pids is not None:
        pids.append(proc.pid)
    api = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 120
    while True:
        try:
            if requests.get(api + "/health", timeout=2).ok:
                break
        except requests.ConnectionError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("backend did not start: " + (proc.stderr.read() if proc.stderr else ""))
        time.sleep(0.2)
    try:
        yield api
    finally:
        proc.terminate()
        proc.wait(30)


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    k = (len(ordered) - 1) * pct / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summarize(samples_ms: list[float]) -> str:
    return (f"p50 {percentile(samples_ms, 50):7.2f} ms  p95 {percentile(samples_ms, 95):7.2f} ms  "
            f"max {max(samples_ms):7.2f} ms  mean {statistics.fmean(samples_ms):7.2f} ms  (n={len(samples_ms)})")


def machine() -> str:
    return f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}"


def rss_mib(pid: int) -> float:
    """Resident memory of a process now (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")
