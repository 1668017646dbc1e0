"""Free-text search index over events.search_text: a substring (trigram) index, so that a SHA
prefix or a rare word is found among millions of events without reading them all.

SQLite: an FTS5 table with the trigram tokenizer whose content is the events table itself
(nothing stored twice), kept in step by triggers. `detail=none` keeps only which events hold each
trigram (no positions): about a third of the size, and the query rechecks the substring anyway;
`columnsize=0` drops the per-event token counts that only ranking uses (a third faster to fill).
PostgreSQL: a pg_trgm GIN index, which the planner uses for `LIKE '%term%'`.

Existing databases are indexed in place (one pass over the events; see docs/operations.md for
how long that takes on millions of events).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_UPGRADE = (
    "CREATE VIRTUAL TABLE events_search USING fts5(search_text, content='events', content_rowid='id', "
    "tokenize='trigram', detail=none, columnsize=0)",
    # A deletion must name the indexed text it removes: the trigger passes the old row's.
    "CREATE TRIGGER events_search_insert AFTER INSERT ON events BEGIN "
    "INSERT INTO events_search(rowid, search_text) VALUES (new.id, new.search_text); END",
    "CREATE TRIGGER events_search_delete AFTER DELETE ON events BEGIN "
    "INSERT INTO events_search(events_search, rowid, search_text) VALUES ('delete', old.id, old.search_text); END",
    "CREATE TRIGGER events_search_update AFTER UPDATE OF search_text ON events BEGIN "
    "INSERT INTO events_search(events_search, rowid, search_text) VALUES ('delete', old.id, old.search_text); "
    "INSERT INTO events_search(rowid, search_text) VALUES (new.id, new.search_text); END",
    "INSERT INTO events_search(events_search) VALUES ('rebuild')",
)
SQLITE_DOWNGRADE = (
    "DROP TRIGGER IF EXISTS events_search_update",
    "DROP TRIGGER IF EXISTS events_search_delete",
    "DROP TRIGGER IF EXISTS events_search_insert",
    "DROP TABLE IF EXISTS events_search",
)
POSTGRESQL_UPGRADE = (
    # Trusted since PostgreSQL 13: the database owner may create it without superuser rights.
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX ix_events_search_trgm ON events USING gin (search_text gin_trgm_ops)",
)
POSTGRESQL_DOWNGRADE = ("DROP INDEX IF EXISTS ix_events_search_trgm",)


def upgrade() -> None:
    for statement in SQLITE_UPGRADE if op.get_bind().dialect.name == "sqlite" else POSTGRESQL_UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in SQLITE_DOWNGRADE if op.get_bind().dialect.name == "sqlite" else POSTGRESQL_DOWNGRADE:
        op.execute(statement)
