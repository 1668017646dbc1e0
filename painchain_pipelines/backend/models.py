"""SQLAlchemy models. The schema itself is owned by the Alembic migrations in `migrations/`;
a test checks that these models and the migrated schema never drift apart."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# JSONB on PostgreSQL (indexable, compact), JSON text elsewhere.
JsonValue = JSON().with_variant(JSONB(), "postgresql")

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias), never a BIGINT one.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every database (SQLite keeps them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JsonValue, list[Any]: JsonValue}


class ConnectorType(Base):
    __tablename__ = "connector_types"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    color: Mapped[str] = mapped_column(String(32), default="")
    logo: Mapped[str] = mapped_column(Text, default="")
    config_schema: Mapped[dict[str, Any]] = mapped_column(JsonValue)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Integration(Base):
    __tablename__ = "integrations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str | None] = mapped_column(String(128), index=True)
    type: Mapped[str] = mapped_column(String(64), ForeignKey("connector_types.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    # Secrets (password fields) are stored encrypted; see crypto.SecretBox.
    config: Mapped[dict[str, Any]] = mapped_column(JsonValue)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class IntegrationSync(Base):
    """What the connector reports about an integration: its resumable state (cursors, ETags,
    watermarks; never secrets) and the outcome of its last syncs."""

    __tablename__ = "integration_sync"

    integration_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[dict[str, Any]] = mapped_column(JsonValue, default=dict)
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_stats: Mapped[dict[str, Any] | None] = mapped_column(JsonValue)
    # The last time the source was looked at successfully: a sync, or a change check that
    # found nothing new (so a quiet, healthy integration does not look stale).
    last_checked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    first_sync_queued_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class OrchestratorStatus(Base):
    """The orchestrator's heartbeat per connector type: when its sensors last ran, and why they
    cannot do their job if they cannot (e.g. the type's registration was refused)."""

    __tablename__ = "orchestrator_status"

    connector_type: Mapped[str] = mapped_column(
        String(64), ForeignKey("connector_types.id", ondelete="CASCADE"), primary_key=True
    )
    seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    problem: Mapped[str | None] = mapped_column(Text)


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("integration_id", "external_id", name="uq_events_integration_external"),
        # Every timeline query orders by (ts, id) descending; each filter gets an index ending so.
        # connector rides along so the histogram (bucket by ts, group by connector) reads only this.
        Index("ix_events_ts", "ts", "id", "connector"),
        Index("ix_events_tenant_ts", "tenant_id", "ts", "id"),
        Index("ix_events_connector_ts", "connector", "ts", "id"),
        Index("ix_events_project_ts", "project", "ts", "id"),
        Index("ix_events_integration_ts", "integration_id", "ts", "id"),
        Index("ix_events_received", "received_at"),  # what arrived since (late events too)
        # Free-text search (migration 0005). SQLite's counterpart is the FTS5 table events_search.
        Index("ix_events_search_trgm", "search_text", postgresql_using="gin",
              postgresql_ops={"search_text": "gin_trgm_ops"}).ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str | None] = mapped_column(String(128))
    integration_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("integrations.id", ondelete="CASCADE")
    )
    connector: Mapped[str] = mapped_column(String(64))
    project: Mapped[str] = mapped_column(String(300))
    title: Mapped[str] = mapped_column(String(500))
    external_id: Mapped[str] = mapped_column(String(500))
    # Epoch milliseconds (UTC): portable, compact, and bucketed by integer division.
    ts: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[dict[str, Any]] = mapped_column(JsonValue)
    tags: Mapped[list[Any]] = mapped_column(JsonValue)
    # Lower-cased title, project and data values, for free-text search.
    search_text: Mapped[str] = mapped_column(Text)


# SQLite's free-text index: an FTS5 table (and its shadow tables) made by migration 0005 and
# kept in step by triggers; not a model, so schema comparisons leave these names alone.
SEARCH_INDEX_TABLE = "events_search"


POSTGRESQL_ONLY_INDEXES = frozenset({"ix_events_search_trgm"})


def modelled_objects(dialect_name: str):
    """Alembic's `include_object` for this database: leaves out the FTS5 tables and, elsewhere
    than on PostgreSQL, the indexes only PostgreSQL has."""

    def include(_object, name: str | None, type_: str, _reflected: bool, _compare_to) -> bool:
        if type_ == "table":
            return not (name and name.startswith(SEARCH_INDEX_TABLE))
        return not (type_ == "index" and dialect_name != "postgresql" and name in POSTGRESQL_ONLY_INDEXES)

    return include


class EventTag(Base):
    __tablename__ = "event_tags"
    __table_args__ = (Index("ix_event_tags_tag_event", "tag", "event_id"),)

    event_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("events.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    tag: Mapped[str] = mapped_column(String(100), primary_key=True)


class EventCount(Base):
    """Events per hour per integration, kept up to date at ingestion, so that histograms over
    weeks read a few thousand rows instead of every event."""

    __tablename__ = "event_counts"
    # Clustered on (hour_ts, integration_id) in SQLite: a range of hours is one contiguous read.
    __table_args__ = {"sqlite_with_rowid": False}

    hour_ts: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    integration_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True
    )
    tenant_id: Mapped[str | None] = mapped_column(String(128))
    connector: Mapped[str] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(BigInteger)


class EventTagCount(Base):
    """Events per hour per integration per tag, kept like EventCount: a histogram filtered by a
    tag reads these instead of every tagged event (7 % of a year is 700,000 of 10 million)."""

    __tablename__ = "event_tag_counts"
    # Clustered on (tag, hour_ts, ...) in SQLite: one tag's range of hours is one contiguous read.
    __table_args__ = {"sqlite_with_rowid": False}

    tag: Mapped[str] = mapped_column(String(100), primary_key=True)
    hour_ts: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    integration_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True
    )
    tenant_id: Mapped[str | None] = mapped_column(String(128))
    connector: Mapped[str] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(BigInteger)


class ApiToken(Base):
    """Tenant-scoped API tokens; only a SHA-256 of the token is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    tenant_id: Mapped[str] = mapped_column(String(128), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
