"""Retention, run by the orchestrator's daily schedule (Dagster never opens the database)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from painchain_pipelines.backend.auth import require_admin
from painchain_pipelines.backend.routers.base import ApiRoute, add_method_answers
from painchain_pipelines.backend.schemas.retention import RetentionRun
from painchain_pipelines.backend.services.retention import PruneStats, cutoff_for, prune_events

router = APIRouter(prefix="/retention", tags=["retention"], route_class=ApiRoute)

# One call prunes this long at most, well inside the clients' 30 s timeout; callers repeat it
# until `done`.
RUN_SECONDS = 10.0


@router.post(
    "/run",
    response_model=RetentionRun,
    dependencies=[Depends(require_admin)],
    summary="Delete events older than PAINCHAIN_RETENTION_DAYS, for about 10 s at most",
    description="Deletes the oldest events in small transactions (ingestion waits one batch at most) and "
    "keeps the histogram counts and the search index exact. Call again while `done` is false. Without "
    "PAINCHAIN_RETENTION_DAYS it deletes nothing and answers `enabled: false`. Admin only.",
)
def run_retention(request: Request) -> dict:
    ctx = request.app.state.ctx
    days = ctx.settings.retention_days
    if days is None:
        return {**PruneStats(cutoff_ms=0, done=True).to_api(), "enabled": False, "retentionDays": None, "cutoff": None}
    stats = prune_events(ctx.db, cutoff_for(days), max_seconds=RUN_SECONDS, api=True)
    return {"enabled": True, "retentionDays": days, **stats.to_api()}


add_method_answers(router)
