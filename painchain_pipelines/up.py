"""`painchain up`: the backend and Dagster (webserver + daemon) for a local user, together.

Children run in their own process groups, so Ctrl-C / SIGTERM here stops each of them (and
their own children) cleanly, once, in reverse order of start: the Dagster daemon, webserver and
code server, then the backend.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from painchain_pipelines.connectors.backend_client import BackendClient, BackendError, BackendUnavailable
from painchain_pipelines.connectors.registration import RegistrationFailed, available_connectors, register
from painchain_pipelines.paths import PROJECT_ROOT, data_dir, private_dir

log = logging.getLogger("painchain.up")
LOCATION_NAME = "painchain"  # as in workspace.yaml


class Child:
    def __init__(self, name: str, args: list[str], env: dict[str, str], stop_signal=signal.SIGTERM):
        self.name = name
        self.stop_signal = stop_signal
        # A new session: our terminal's Ctrl-C reaches us, and we pass it on deliberately.
        self.process = subprocess.Popen(args, env=env, start_new_session=True)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 30.0) -> int:
        if self.alive():
            os.killpg(self.process.pid, self.stop_signal)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s; killing it", self.name, timeout)
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode


def wait_for_health(api_url: str, child: Child, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"the backend exited with status {child.process.returncode}")
        try:
            if requests.get(api_url + "/health", timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the backend did not answer on {api_url}/health within {timeout:.0f} s")


def upgrade_database(env: dict[str, str], stopping) -> bool:
    """`painchain db upgrade` as a child (Ctrl-C stops it; the migration's transaction is then
    rolled back and runs again at the next start). False when it failed or was stopped."""
    migration = Child("database upgrade", [sys.executable, "-m", "painchain_pipelines", "db", "upgrade"], env)
    while migration.alive():
        if stopping():
            migration.stop()
            log.info("stopped during the database upgrade; it runs again at the next start")
            return False
        time.sleep(0.2)
    if migration.process.returncode != 0:
        log.error("the database upgrade failed (status %s): see its output above", migration.process.returncode)
        return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_taken(host: str, port: int) -> bool:
    """Whether something already listens on host:port (checked as the servers will bind it)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return False  # the server will report the unusable address itself
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no conflict
        try:
            s.bind(address)
        except OSError:
            return True
    return False


def start_dagster(host: str, dagster_port: int, env: dict[str, str]) -> list[Child]:
    """What `dagster dev` does, without its deprecation notice: one code server shared by the
    webserver and the daemon (one copy of the definitions to load and to reload)."""
    grpc_port = str(free_port())
    dagster = [sys.executable, "-m", "dagster"]
    # Dagster's processes shut down (and stop their runs' subprocesses) cleanly on SIGINT.
    code_server = Child("code server", [*dagster, "code-server", "start", "-m", "painchain_pipelines.definitions",
                                        "--location-name", LOCATION_NAME, "-h", "127.0.0.1", "-p", grpc_port],
                        env, stop_signal=signal.SIGINT)
    deadline = time.monotonic() + 120
    while subprocess.run([*dagster, "api", "grpc-health-check", "-p", grpc_port], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0:
        if not code_server.alive() or time.monotonic() > deadline:
            code_server.stop()
            raise RuntimeError("the Dagster code server did not start (see its output above)")
        time.sleep(0.5)
    # The location keeps its name (sensor states and run history are filed under it).
    workspace = Path(env["DAGSTER_HOME"]) / "workspace.yaml"
    workspace.write_text("load_from:\n  - grpc_server:\n      host: 127.0.0.1\n"
                         f"      port: {grpc_port}\n      location_name: {LOCATION_NAME}\n")
    grpc = ["-w", str(workspace)]
    # Dagster's webserver behind our Host allow-list and Origin check (it has no authentication).
    webserver = Child("Dagster webserver", [sys.executable, "-m", "painchain_pipelines.dagster_ui", *grpc,
                                            "-h", host, "-p", str(dagster_port)], env, stop_signal=signal.SIGINT)
    daemon = Child("Dagster daemon", [_script("dagster-daemon"), "run", *grpc], env,
                   stop_signal=signal.SIGINT)
    return [code_server, webserver, daemon]


def _script(name: str) -> str:
    """A console script installed with this interpreter's packages (the venv's bin/)."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else (shutil.which(name) or name)


def run(host: str, port: int, dagster_port: int) -> int:
    for name, option, number in (("PainChain UI and API", "--port", port), ("Dagster UI", "--dagster-port", dagster_port)):
        if port_taken(host, number):
            log.error("port %s on %s (for the %s) is already in use, by another PainChain or another program; "
                      "stop it or choose another port with %s", number, host, name, option)
            return 1
    directory = private_dir(data_dir())
    dagster_home = directory / "dagster"
    dagster_home.mkdir(exist_ok=True)
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    api_url = f"http://{host}:{port}/api"
    env = dict(os.environ)
    env.update({
        "PAINCHAIN_DATA_DIR": str(directory),
        "BACKEND_API_URL": env.get("BACKEND_API_URL") or api_url,
        "DAGSTER_HOME": str(dagster_home),
        "PYTHONUNBUFFERED": "1",
    })
    stopping = False

    def request_stop(signum, _frame):
        nonlocal stopping
        if not stopping:
            log.info("received %s: stopping", signal.Signals(signum).name)
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGHUP, request_stop)  # the terminal closed: stop the children too

    # Migrations first, with no deadline: on millions of events, building a new index takes
    # minutes, and the backend answers /health only once its schema is current.
    if not upgrade_database(env, lambda: stopping):
        return 0 if stopping else 1
    backend = Child("backend", [sys.executable, "-m", "painchain_pipelines", "backend",
                                "--host", host, "--port", str(port)], env)
    children = [backend]
    try:
        wait_for_health(api_url, backend)
        client = BackendClient(env["BACKEND_API_URL"], env.get("PAINCHAIN_API_TOKEN"), retries=0)
        connectors = available_connectors()
        try:
            register(client, connectors)
        except RegistrationFailed as exc:
            log.error("%s", exc)
            return 1
        children.extend(start_dagster(host, dagster_port, env))
        # Until the daemon's first tick, integration cards say "waiting for Dagster", not "not running".
        for connector_id in connectors:
            try:
                client.report_orchestrator(connector_id, problem=None)
            except (BackendError, BackendUnavailable) as exc:
                log.warning("could not tell the backend that Dagster is starting: %s", exc)
        print(f"\n  PainChain UI and API: http://{host}:{port}/  (API docs: http://{host}:{port}/api/docs)\n"
              f"  Dagster UI:           http://{host}:{dagster_port}/\n\n  Ctrl-C stops both.\n", flush=True)
        while not stopping:
            for child in children:
                if not child.alive():
                    log.error("%s exited unexpectedly with status %s; stopping", child.name, child.process.returncode)
                    return 1
            time.sleep(0.5)
        return 0
    except RuntimeError as exc:
        log.error("%s", exc)
        return 1
    finally:
        if len(children) > 1:
            children[-1].stop()  # the daemon first: it would start a new watch run in place of an ended one
            end_watch_runs(dagster_home)
        for child in reversed(children):
            child.stop()
        log.info("stopped")


WATCH_STOP_TIMEOUT_S = 20.0


def end_watch_runs(dagster_home: Path) -> None:
    """Ask the watch runs in progress to end now (they post what they hold and save their resume
    state), rather than waiting for their segment to end or being killed with the code server.
    The next start resumes from that state."""
    import dagster as dg

    from painchain_pipelines.orchestration.runs import ACTIVE_STATUSES
    from painchain_pipelines.orchestration.tags import WATCH_TAG

    try:
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            runs = [r.dagster_run for r in instance.get_run_records(
                filters=dg.RunsFilter(statuses=ACTIVE_STATUSES, tags={WATCH_TAG: "true"}))]
            for run in runs:
                log.info("ending watch run %s", run.run_id)
                instance.run_launcher.terminate(run.run_id)
            deadline = time.monotonic() + WATCH_STOP_TIMEOUT_S
            while runs and time.monotonic() < deadline:
                runs = [r for r in runs if not instance.get_run_by_id(r.run_id).is_finished]
                time.sleep(0.5)
    except Exception as exc:  # stopping goes on whatever Dagster's state: the watch resumes anyway
        log.warning("could not end the watch runs before stopping: %s", exc)


