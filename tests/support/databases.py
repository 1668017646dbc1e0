"""Fresh databases for tests: a SQLite file, or a new PostgreSQL database per use."""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

POSTGRES_URL = os.environ.get(
    "PAINCHAIN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REQUIRE_POSTGRES = os.environ.get("PAINCHAIN_REQUIRE_POSTGRES") == "1"

_pg_checked: tuple[bool, str] | None = None


def postgres_available() -> tuple[bool, str]:
    global _pg_checked
    if _pg_checked is None:
        try:
            engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            engine.dispose()
            _pg_checked = (True, "")
        except Exception as exc:
            _pg_checked = (False, f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
    return _pg_checked


def require_postgres() -> None:
    ok, why = postgres_available()
    if ok:
        return
    message = (
        f"PostgreSQL not reachable at {make_url(POSTGRES_URL).render_as_string(hide_password=True)} ({why})"
    )
    if REQUIRE_POSTGRES:
        pytest.fail(message + "; PAINCHAIN_REQUIRE_POSTGRES=1 makes this an error")
    pytest.skip(message + "; set PAINCHAIN_REQUIRE_POSTGRES=1 to make this an error")


class PostgresDatabases:
    """Creates databases named pct_<random> on the test server and drops them at the end."""

    def __init__(self) -> None:
        self._admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        self._created: list[str] = []

    def create(self) -> str:
        name = "pct_" + uuid.uuid4().hex[:16]
        with self._admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self._created.append(name)
        return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        with self._admin.connect() as conn:
            for name in self._created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self._created.clear()
        self._admin.dispose()


def insert_github_integration(conn, integration_id: str, tenant_id: str | None, at: str) -> None:
    """The rows an older schema's database holds before an upgrade, written with plain SQL
    (the current models may not match that schema)."""
    conn.execute(text("INSERT INTO connector_types (id, display_name, description, color, logo, config_schema,"
                      " created_at, updated_at) VALUES ('github', 'GitHub', '', '', '', '{}', :t, :t)"), {"t": at})
    conn.execute(text("INSERT INTO integrations (id, tenant_id, type, name, config, created_at, updated_at)"
                      " VALUES (:id, :tenant, 'github', 'old', '{}', :t, :t)"),
                 {"id": integration_id, "tenant": tenant_id, "t": at})
