import os
import signal
import socket
import subprocess
import sys
import time

import requests


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAINCHAIN_")}
    env.update(extra)
    return env


def test_backend_command_serves_on_default_sqlite_in_the_working_directory(tmp_path):
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "painchain_pipelines", "backend", "--port", str(port)],
        cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = requests.get(f"http://127.0.0.1:{port}/api/health", timeout=2)
                break
            except requests.ConnectionError:
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline, "backend did not come up"
                time.sleep(0.2)
        assert health.status_code == 200
        assert health.json()["database"]["dialect"] == "sqlite"
        assert (tmp_path / ".painchain" / "painchain.db").exists()
        assert requests.get(f"http://127.0.0.1:{port}/api/openapi.json", timeout=5).json()["info"]["title"] == "PainChain API"
        assert requests.get(f"http://127.0.0.1:{port}/api/docs", timeout=5).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert "PainChain API on http://127.0.0.1" in output


def test_db_upgrade_command(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    out = subprocess.run([sys.executable, "-m", "painchain_pipelines", "db", "upgrade"],
                         env=_env(PAINCHAIN_DATABASE_URL=url), capture_output=True, text=True, check=True)
    assert "is at revision" in out.stdout


def test_backend_command_explains_an_unreachable_database(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "painchain_pipelines", "backend", "--port", str(_free_port())],
        env=_env(PAINCHAIN_DATABASE_URL="postgresql+psycopg://u:hunter2@127.0.0.1:1/x"),
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert out.returncode == 1
    assert "cannot start the backend on postgresql+psycopg://u:***@127.0.0.1:1/x" in out.stderr
    assert "hunter2" not in out.stderr + out.stdout
