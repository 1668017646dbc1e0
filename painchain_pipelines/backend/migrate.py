"""Apply the Alembic migrations (the only thing that creates or changes the schema)."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from painchain_pipelines.backend.database import Database

log = logging.getLogger(__name__)
ALEMBIC_INI = Path(__file__).with_name("alembic.ini")
# Any constant: serialises concurrent upgrades (two backends starting together) on PostgreSQL.
_PG_MIGRATION_LOCK = 0x50414E43


def alembic_config() -> Config:
    return Config(str(ALEMBIC_INI))


@functools.cache
def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(db: Database, revision: str = "head") -> str | None:
    """Upgrade the schema to `revision`; returns the revision now current."""
    cfg = alembic_config()
    with db.write_connection() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        before = MigrationContext.configure(conn).get_current_revision()
        if before is not None and before != head_revision():
            log.info("migrating the database schema %s -> %s (%s): on millions of events a new index "
                     "takes minutes (see 'Upgrading a large database' in docs/operations.md)",
                     before, head_revision() if revision == "head" else revision, db.safe_url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        after = MigrationContext.configure(conn).get_current_revision()
    if before != after:
        log.info("database schema migrated %s -> %s (%s)", before or "empty", after, db.safe_url)
    return after
