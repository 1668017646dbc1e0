"""`painchain up` migrates the database in its own step, before the backend's health deadline
starts: a long migration is waited for, a Ctrl-C stops it, a bad setting is reported."""

from __future__ import annotations

import sqlite3

from painchain_pipelines.backend.migrate import head_revision
from painchain_pipelines.up import upgrade_database
from tests.support.painchain_up import user_env


def _revision(path) -> str | None:
    if not path.exists():
        return None
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE name = 'alembic_version'").fetchall()
        return conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] if rows else None


def test_the_database_is_migrated_before_the_backend_starts(tmp_path):
    env = user_env(PAINCHAIN_DATA_DIR=str(tmp_path))
    assert upgrade_database(env, lambda: False)
    assert _revision(tmp_path / "painchain.db") == head_revision()


def test_a_stop_during_the_upgrade_ends_it_and_up_does_not_go_on(tmp_path):
    env = user_env(PAINCHAIN_DATA_DIR=str(tmp_path))
    assert not upgrade_database(env, lambda: True)
    assert _revision(tmp_path / "painchain.db") != head_revision()


def test_a_setting_the_backend_cannot_use_stops_up_with_its_name(tmp_path, capfd):
    env = user_env(PAINCHAIN_DATA_DIR=str(tmp_path), PAINCHAIN_RETENTION_DAYS="ninety")
    assert not upgrade_database(env, lambda: False)
    assert "PAINCHAIN_RETENTION_DAYS='ninety'" in capfd.readouterr().err
