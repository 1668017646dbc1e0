"""Pipelines that finished (success, failed, canceled), with ref, sha and finish time.

The list has no finished_at or duration; a finished pipeline's updated_at is the moment it
reached its final status, so that is the event's time and no per-pipeline GET is made (that
would cost one request per pipeline). A pipeline retried in place keeps its id and goes
failed → running → success: each outcome is its own event (the externalId holds the status
and the time it was reached), so the retry's success does not hide the failure.

Pipeline status changes make no event (not in the events feed), so every live sync (and every change check)
asks each project for the pipelines updated after its cursor — one request when nothing changed.
"""

from __future__ import annotations

from painchain_pipelines.connectors.base import Event, iso, parse_time
from painchain_pipelines.connectors.gitlab.streams.base import (
    Project,
    StatusStream,
    short,
    user_name,
)

FINAL = {"success": "succeeded", "failed": "failed", "canceled": "was canceled"}


def pipeline_event(project: Project, pipeline: dict) -> Event | None:
    status = pipeline.get("status")
    if status not in FINAL:
        return None
    finished = parse_time(pipeline.get("finished_at")) or parse_time(pipeline.get("updated_at"))
    pipeline_id = pipeline["id"]
    ref, sha = pipeline.get("ref"), pipeline.get("sha")
    started = parse_time(pipeline.get("started_at"))
    return project.event(
        title=f"Pipeline #{pipeline_id} {FINAL[status]} on {ref}",
        timestamp=finished,
        external_id=project.external_id("pipeline", pipeline_id, status, int(finished.timestamp())),
        data={
            "type": "pipeline",
            "url": pipeline.get("web_url") or f"{project.web_url}/-/pipelines/{pipeline_id}",
            "id": pipeline_id,
            "iid": pipeline.get("iid"),
            "status": status,
            "ref": ref,
            "sha": sha,
            "shortSha": short(sha),
            "source": pipeline.get("source"),
            "createdAt": pipeline.get("created_at"),
            "finishedAt": iso(finished),
            "durationSeconds": pipeline.get("duration")
            or (round((finished - started).total_seconds()) if started else None),
            "author": user_name(pipeline.get("user")),
        },
    )


class Pipelines(StatusStream):
    name = "pipelines"
    noun = "pipeline"

    def to_event(self, project: Project, item: dict) -> Event | None:
        return pipeline_event(project, item)
