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

import datetime as dt
from collections.abc import Iterator

from painchain_pipelines.connectors.base import Event, TimeWindow, iso, parse_time
from painchain_pipelines.connectors.gitlab.streams.base import (
    PER_PAGE,
    Context,
    Live,
    Project,
    Stream,
    prune_seen,
    remember,
    seen_keys,
    short,
    user_name,
)

FINAL = {"success": "succeeded", "failed": "failed", "canceled": "was canceled"}
PROBE_SIZE = 20


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


def _key(pipeline: dict) -> str:
    return f"{pipeline['id']}@{pipeline.get('updated_at')}"


class Pipelines(Stream):
    name = "pipelines"
    is_activity = False

    def _params(self, updated_after: dt.datetime, updated_before: dt.datetime | None = None, **extra) -> dict:
        return {"order_by": "updated_at", "sort": "asc", "per_page": PER_PAGE, "updated_after": iso(updated_after),
                "updated_before": iso(updated_before) if updated_before else None, **extra}

    def window(self, ctx: Context, window: TimeWindow) -> Iterator[Event]:
        # Outcomes reached inside the window: updated_at inside it (a later retry replaces it).
        params = self._params(window.start, window.end)
        for pipeline in ctx.client.items(f"{ctx.project.api}/pipelines", params, f"{ctx.project.path} pipelines"):
            event = pipeline_event(ctx.project, pipeline)
            if event is not None and event.timestamp in window:
                yield event

    def live(self, ctx: Context, live: Live) -> Iterator[Event]:
        params = self._params(live.lower)
        for pipeline in ctx.client.items(f"{ctx.project.api}/pipelines", params, f"{ctx.project.path} pipelines"):
            # Every listed version is remembered, final or not, so that the probe knows it.
            new = remember(live.state, _key(pipeline), pipeline.get("updated_at"), ctx.tuning)
            event = pipeline_event(ctx.project, pipeline)
            if new and event is not None:
                yield event
        prune_seen(live.state, ctx.now - 2 * ctx.tuning.overlap, ctx.tuning)

    def probe(self, ctx: Context, state: dict, lower: dt.datetime) -> str | None:
        """The most recently updated pipelines since the cursor: any version not yet seen is news."""
        params = self._params(lower, sort="desc", per_page=PROBE_SIZE)
        page = ctx.client.get(f"{ctx.project.api}/pipelines", params, f"{ctx.project.path} pipelines")
        seen = seen_keys(state)
        for pipeline in page.data:
            if _key(pipeline) not in seen:
                return f"pipeline {pipeline['id']} is now {pipeline.get('status')}"
        return None
