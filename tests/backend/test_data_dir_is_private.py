"""The data directory holds the database, the secret key and Dagster's state: readable by its
owner only, from the first start, whichever command creates it."""

import os
import stat
import subprocess
import sys

import requests

from tests.support.painchain_up import PainchainBackend, user_env


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_painchain_backend_creates_a_private_data_directory(tmp_path):
    backend = PainchainBackend(tmp_path).wait_for_api()
    api = backend.api
    try:
        # a write, so that SQLite has its -wal and -shm files
        assert requests.post(api + "/integrations/types/register", timeout=10, json={
            "id": "perm", "displayName": "Perm", "configSchema": {"fields": []}}).status_code == 201
        data = tmp_path / ".painchain"
        assert mode(data) == 0o700
        files = {p.name: mode(p) for p in data.iterdir()}
        assert {"painchain.db", "secret.key", "painchain.db-wal", "painchain.db-shm"} <= set(files), files
        assert all(m & 0o077 == 0 for m in files.values()), files
    finally:
        assert backend.stop() == 0


def test_db_upgrade_and_an_existing_readable_database_are_made_private(tmp_path):
    data = tmp_path / "data"
    env = user_env(PAINCHAIN_DATA_DIR=str(data))
    out = subprocess.run([sys.executable, "-m", "painchain_pipelines", "db", "upgrade"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert mode(data) == 0o700 and mode(data / "painchain.db") == 0o600
    os.chmod(data / "painchain.db", 0o644)  # made by an earlier version
    out = subprocess.run([sys.executable, "-m", "painchain_pipelines", "db", "upgrade"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and mode(data / "painchain.db") == 0o600
    os.chmod(data, 0o755)  # an operator's choice is kept, with a warning
    out = subprocess.run([sys.executable, "-m", "painchain_pipelines", "db", "upgrade"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert mode(data) == 0o755 and "can be read by other users" in out.stderr
