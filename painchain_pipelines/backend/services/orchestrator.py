"""The orchestrator's reports: a heartbeat per connector type, change checks and queued first syncs."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from painchain_pipelines.backend.database import dialect_insert
from painchain_pipelines.backend.models import Integration, IntegrationSync, OrchestratorStatus
from painchain_pipelines.backend.schemas.sync import OrchestratorReport

# The integrations sensor reports every ~30 s; this much silence means the daemon is not running.
ORCHESTRATOR_SILENT_AFTER = dt.timedelta(minutes=3)
_CHUNK = 500  # ids per statement (SQLite's bound-parameter limit)


def orchestrator_state(row: OrchestratorStatus | None, now: dt.datetime) -> dict:
    if row is None:
        return {"running": False, "seenAt": None, "problem": None}
    return {"running": now - row.seen_at <= ORCHESTRATOR_SILENT_AFTER, "seenAt": row.seen_at,
            "problem": row.problem}


def record_report(session: Session, connector_type: str, report: OrchestratorReport,
                  now: dt.datetime) -> tuple[OrchestratorStatus, int, int]:
    """Apply one report; returns (heartbeat row, integrations marked checked, marked queued).
    Ids that are not integrations of this type are ignored (deleted meanwhile).

    Safe against concurrent reports and deletions (PostgreSQL): the heartbeat is an upsert, the
    integrations are share-locked before their sync records are created (insert-or-ignore), so a
    deletion either waits for this report or happened before it and its ids are ignored."""
    values = {"connector_type": connector_type, "seen_at": now}
    changes = {"seen_at": now}
    if "problem" in report.model_fields_set:
        values["problem"] = changes["problem"] = report.problem
    upsert = dialect_insert(session, OrchestratorStatus).values(values)
    session.execute(upsert.on_conflict_do_update(index_elements=["connector_type"], set_=changes))
    row = session.get(OrchestratorStatus, connector_type, populate_existing=True)
    checked = _touch(session, connector_type, report.checked, IntegrationSync.last_checked_at, now)
    queued = _touch(session, connector_type, report.queued, IntegrationSync.first_sync_queued_at, now)
    return row, checked, queued


def _touch(session: Session, connector_type: str, ids: list[str], column, now: dt.datetime) -> int:
    """Set `column` to now on the sync records of these integrations, creating missing records."""
    touched = 0
    # Sorted: concurrent reports lock the same rows in the same order.
    unique = sorted(set(ids))
    for start in range(0, len(unique), _CHUNK):
        chunk = unique[start:start + _CHUNK]
        valid = list(session.scalars(
            select(Integration.id).where(Integration.id.in_(chunk), Integration.type == connector_type)
            .order_by(Integration.id).with_for_update(key_share=True)))
        if not valid:
            continue
        session.execute(
            dialect_insert(session, IntegrationSync)
            .values([{"integration_id": i, "state": {}, "updated_at": now} for i in valid])
            .on_conflict_do_nothing(index_elements=["integration_id"])
        )
        session.execute(
            update(IntegrationSync).where(IntegrationSync.integration_id.in_(valid))
            .values({column: now, IntegrationSync.updated_at: now}),
            execution_options={"synchronize_session": False},
        )
        touched += len(valid)
    return touched
