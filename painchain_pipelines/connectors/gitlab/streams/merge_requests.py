"""Merge requests: one event per transition (opened, merged, closed without merging).

Listed by `updated_after` (a transition moves updated_at), ordered by updated_at ascending, 100 a
page. Live syncs read them only for projects where the events feed shows MR events (opened,
merged, closed, reopened...).
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
    user_name,
)


def merge_request_events(project: Project, mr: dict) -> list[Event]:
    """The MR's opened / merged / closed changes, each at the moment it happened."""
    iid = mr["iid"]
    title = mr.get("title") or ""
    source, target = mr.get("source_branch"), mr.get("target_branch")
    merge_sha = mr.get("merge_commit_sha") or mr.get("squash_commit_sha")
    common = {
        "type": "merge_request",
        "url": mr.get("web_url") or f"{project.web_url}/-/merge_requests/{iid}",
        "id": mr.get("id"),
        "iid": iid,
        "mrTitle": title,
        "author": user_name(mr.get("author")),
        "sourceBranch": source,
        "targetBranch": target,
        "headSha": mr.get("sha"),
        "draft": bool(mr.get("draft") or mr.get("work_in_progress")),
        "createdAt": mr.get("created_at"),
        "state": mr.get("state"),
    }
    events = []
    created = parse_time(mr.get("created_at"))
    if created:
        events.append(project.event(
            f"MR !{iid} opened: {title}", created, project.external_id("mr", iid, "opened"),
            {**common, "action": "opened", "sha": mr.get("sha"), "ref": source}))
    merged = parse_time(mr.get("merged_at"))
    if mr.get("state") == "merged" or merged:
        at = merged or parse_time(mr.get("updated_at"))
        events.append(project.event(
            f"MR !{iid} merged into {target}: {title}", at, project.external_id("mr", iid, "merged"),
            {**common, "action": "merged", "sha": merge_sha or mr.get("sha"), "ref": target,
             "mergeCommitSha": mr.get("merge_commit_sha"), "squashCommitSha": mr.get("squash_commit_sha"),
             "mergedAt": mr.get("merged_at"), "mergedBy": user_name(mr.get("merged_by") or mr.get("merge_user"))}))
    elif mr.get("state") == "closed":
        at = parse_time(mr.get("closed_at")) or parse_time(mr.get("updated_at"))
        # An MR can be closed, reopened and closed again: each closing is its own change.
        events.append(project.event(
            f"MR !{iid} closed without merging: {title}", at,
            project.external_id("mr", iid, "closed", int(at.timestamp())),
            {**common, "action": "closed", "sha": mr.get("sha"), "ref": source, "closedAt": mr.get("closed_at"),
             "closedBy": user_name(mr.get("closed_by"))}))
    return events


class MergeRequests(Stream):
    name = "merge_requests"

    def _list(self, ctx: Context, updated_after: dt.datetime, updated_before: dt.datetime | None = None):
        params = {"state": "all", "scope": "all", "order_by": "updated_at", "sort": "asc", "per_page": PER_PAGE,
                  "updated_after": iso(updated_after),
                  "updated_before": iso(updated_before) if updated_before else None}
        return ctx.client.items(f"{ctx.project.api}/merge_requests", params, f"{ctx.project.path} merge requests")

    def window(self, ctx: Context, window: TimeWindow) -> Iterator[Event]:
        # A transition inside the window left updated_at at or after the window's start.
        for mr in self._list(ctx, window.start):
            for event in merge_request_events(ctx.project, mr):
                if event.timestamp in window:
                    yield event

    def live(self, ctx: Context, live: Live) -> Iterator[Event]:
        # The connector may have read them for several projects at once (the group's list).
        listed = ctx.shared.get("merge_requests")
        for mr in listed if listed is not None else self._list(ctx, live.lower):
            for event in merge_request_events(ctx.project, mr):
                if event.timestamp >= live.lower and remember(live.state, event.external_id, event.timestamp,
                                                              ctx.tuning):
                    yield event
        prune_seen(live.state, ctx.now - 2 * ctx.tuning.overlap, ctx.tuning)
