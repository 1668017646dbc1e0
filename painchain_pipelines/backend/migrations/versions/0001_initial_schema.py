"""Initial schema: connector types, integrations, events (+ tags, hourly counts), API tokens.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "connector_types",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("color", sa.String(32), nullable=False),
        sa.Column("logo", sa.Text(), nullable=False),
        sa.Column("config_schema", JSON, nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
    )
    op.create_table(
        "integrations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(128), nullable=True),
        sa.Column("type", sa.String(64), sa.ForeignKey("connector_types.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
    )
    op.create_index("ix_integrations_tenant_id", "integrations", ["tenant_id"])
    op.create_index("ix_integrations_type", "integrations", ["type"])

    op.create_table(
        "events",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(128), nullable=True),
        sa.Column(
            "integration_id",
            sa.String(64),
            sa.ForeignKey("integrations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("connector", sa.String(64), nullable=False),
        sa.Column("project", sa.String(300), nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("external_id", sa.String(500), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("tags", JSON, nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.UniqueConstraint("integration_id", "external_id", name="uq_events_integration_external"),
    )
    op.create_index("ix_events_ts", "events", ["ts", "id", "connector"])
    op.create_index("ix_events_tenant_ts", "events", ["tenant_id", "ts", "id"])
    op.create_index("ix_events_connector_ts", "events", ["connector", "ts", "id"])
    op.create_index("ix_events_project_ts", "events", ["project", "ts", "id"])
    op.create_index("ix_events_integration_ts", "events", ["integration_id", "ts", "id"])

    op.create_table(
        "event_tags",
        sa.Column(
            "event_id",
            BIG_ID,
            sa.ForeignKey("events.id", ondelete="CASCADE"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("tag", sa.String(100), primary_key=True),
    )
    op.create_index("ix_event_tags_tag_event", "event_tags", ["tag", "event_id"])

    op.create_table(
        "event_counts",
        sa.Column("hour_ts", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column(
            "integration_id",
            sa.String(64),
            sa.ForeignKey("integrations.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("tenant_id", sa.String(128), nullable=True),
        sa.Column("connector", sa.String(64), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sqlite_with_rowid=False,
    )

    op.create_table(
        "api_tokens",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
    )
    op.create_index("ix_api_tokens_tenant_id", "api_tokens", ["tenant_id"])


def downgrade() -> None:
    op.drop_table("api_tokens")
    op.drop_table("event_counts")
    op.drop_table("event_tags")
    op.drop_table("events")
    op.drop_table("integrations")
    op.drop_table("connector_types")
