"""What the orchestrator reports besides sync outcomes: the last successful change check and
the first-sync queueing of each integration, and a heartbeat (with the problem, if any) per
connector type, so the UI can say "up to date", "waiting for Dagster" or "Dagster is not running".

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("integration_sync") as batch:
        batch.add_column(sa.Column("last_checked_at", UTC, nullable=True))
        batch.add_column(sa.Column("first_sync_queued_at", UTC, nullable=True))
    op.create_table(
        "orchestrator_status",
        sa.Column(
            "connector_type",
            sa.String(64),
            sa.ForeignKey("connector_types.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("seen_at", UTC, nullable=False),
        sa.Column("problem", sa.Text(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("orchestrator_status")
    with op.batch_alter_table("integration_sync") as batch:
        batch.drop_column("first_sync_queued_at")
        batch.drop_column("last_checked_at")
