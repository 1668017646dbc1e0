"""The orchestrator's reports: a heartbeat per connector type, change checks and queued first syncs."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.orm import Session

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
    Ids that are not integrations of this type are ignored (deleted meanwhile)."""
    row = session.get(OrchestratorStatus, connector_type)
    if row is None:
        row = OrchestratorStatus(connector_type=connector_type, seen_at=now)
        session.add(row)
    row.seen_at = now
    if "problem" in report.model_fields_set:
        row.problem = report.problem
    checked = _touch(session, connector_type, report.checked, IntegrationSync.last_checked_at, now)
    queued = _touch(session, connector_type, report.queued, IntegrationSync.first_sync_queued_at, now)
    return row, checked, queued


def _touch(session: Session, connector_type: str, ids: list[str], column, now: dt.datetime) -> int:
    """Set `column` to now on the sync records of these integrations, creating missing records."""
    touched = 0
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), _CHUNK):
        chunk = unique[start:start + _CHUNK]
        valid = set(session.scalars(
            select(Integration.id).where(Integration.id.in_(chunk), Integration.type == connector_type)))
        if not valid:
            continue
        existing = set(session.scalars(
            select(IntegrationSync.integration_id).where(IntegrationSync.integration_id.in_(valid))))
        for integration_id in valid - existing:
            session.add(IntegrationSync(integration_id=integration_id, state={}, updated_at=now))
        session.flush()
        session.execute(
            update(IntegrationSync).where(IntegrationSync.integration_id.in_(valid))
            .values({column: now, IntegrationSync.updated_at: now}),
            execution_options={"synchronize_session": False},
        )
        touched += len(valid)
    return touched
