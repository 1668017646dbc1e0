"""Commits that reached the followed branches.

GitLab's `since` works like `git log --since`: the walk ends at the first commit dated before
it, so a commit pushed days after its committed date (or brought in by a merge) can hide the
commits behind it. So `since` is never used. Live syncs follow each branch head: the branch is
listed from its head back to the head saved in the state (1 request per 100 new commits), which
finds exactly what reached the branch, whatever the dates. First syncs and window syncs walk back
from the head (window: `until` the window's end) while a page still holds a commit dated within
`late_push_slack` of the lower bound.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from urllib.parse import quote

from painchain_pipelines.connectors.base import Event, TimeWindow, iso
from painchain_pipelines.connectors.gitlab.client import SourceUnavailable, parse_ts
from painchain_pipelines.connectors.gitlab.streams.base import (
    PER_PAGE,
    Context,
    Live,
    Project,
    Stream,
    short,
    subject,
)

log = logging.getLogger(__name__)
# Above this many followed branches (or with "all branches") the heads come from one
# GET /repository/branches instead of one commits list per branch.
HEADS_FROM_BRANCHES_LIST = 3


def commit_event(project: Project, branch: str, item: dict) -> Event:
    sha = item["id"]
    when = parse_ts(item.get("committed_date")) or parse_ts(item.get("created_at")) or parse_ts(item.get("authored_date"))
    return project.event(
        title=f"Commit to {branch}: {subject(item.get('title') or item.get('message'))}",
        timestamp=when,
        external_id=project.external_id("commit", sha),
        data={
            "type": "commit",
            "url": item.get("web_url") or f"{project.web_url}/-/commit/{sha}",
            "sha": sha,
            "shortSha": item.get("short_id") or short(sha),
            "branch": branch,
            "ref": branch,
            "message": (item.get("message") or item.get("title") or "")[:4000],
            "author": item.get("author_name"),
            "authorEmail": item.get("author_email"),
            "committer": item.get("committer_name"),
            "authoredAt": item.get("authored_date"),
            "committedAt": item.get("committed_date"),
            "parents": list(item.get("parent_ids") or []),
        },
    )


class Commits(Stream):
    name = "commits"

    # ------------------------------------------------------------------ heads

    def heads(self, ctx: Context) -> dict[str, str | None]:
        """The followed branches and their head SHA (None: ask the commits list itself)."""
        project = ctx.project
        if project.all_branches or len(project.branches) >= HEADS_FROM_BRANCHES_LIST:
            heads: dict[str, str | None] = {}
            for item in ctx.client.items(f"{project.api}/repository/branches", {"per_page": PER_PAGE},
                                         f"{project.path} branches"):
                name = item.get("name")
                if project.all_branches or name in project.branches:
                    heads[name] = (item.get("commit") or {}).get("id")
            # the default branch first: a commit on several branches is reported on it
            ordered = [b for b in (project.default_branch, *project.branches) if b in heads]
            return {b: heads[b] for b in dict.fromkeys([*ordered, *sorted(heads)])}
        return dict.fromkeys(project.branches)

    def _list(self, ctx: Context, branch: str, extra: dict | None = None):
        params = {"ref_name": branch, "per_page": PER_PAGE, **(extra or {})}
        return ctx.client.pages(f"{ctx.project.api}/repository/commits", params,
                                f"{ctx.project.path} commits of {branch}")

    # ------------------------------------------------------------------ window

    def window(self, ctx: Context, window: TimeWindow) -> Iterator[Event]:
        emitted: set[str] = set()
        for branch in self.heads(ctx):
            yield from self._walk_back(ctx, branch, window.start, window.end, emitted)

    def _walk_back(self, ctx: Context, branch: str, lower: dt.datetime, upper: dt.datetime | None,
                   emitted: set[str]) -> Iterator[Event]:
        """Commits of `branch` dated in [lower, upper), walking back from the head (or `upper`)
        while a page still holds one dated after `lower - late_push_slack`."""
        horizon = lower - ctx.tuning.late_push_slack
        extra = {"until": iso(upper)} if upper is not None else None
        head = None
        try:
            for page in self._list(ctx, branch, extra):
                recent = False
                for item in page.data:
                    head = head or item["id"]
                    event = commit_event(ctx.project, branch, item)
                    if event.timestamp >= horizon:
                        recent = True
                    if lower <= event.timestamp and (upper is None or event.timestamp < upper) \
                            and item["id"] not in emitted:
                        emitted.add(item["id"])
                        yield event
                if not recent:
                    break
        except SourceUnavailable as exc:
            if exc.status == 404:  # the branch does not exist (any more) in this project
                log.info("%s: branch %s not found; skipped", ctx.project.path, branch)
                return None
            raise
        return head

    # ------------------------------------------------------------------ live

    def live(self, ctx: Context, live: Live) -> Iterator[Event]:
        saved: dict[str, str] = live.state.setdefault("heads", {})
        emitted: set[str] = set()
        heads = self.heads(ctx)
        for branch, head in heads.items():
            previous = saved.get(branch)
            if head is not None and head == previous:
                continue
            if previous is None:
                # A branch seen for the first time: its recent history, by date.
                new_head = yield from self._walk_back(ctx, branch, live.lower, None, emitted)
                if new_head:
                    saved[branch] = new_head
                continue
            new_head = yield from self._since_head(ctx, branch, previous, live.lower, emitted)
            if new_head:
                saved[branch] = new_head
        if ctx.project.all_branches:  # forget deleted branches
            for branch in [b for b in saved if b not in heads]:
                del saved[branch]

    def _since_head(self, ctx: Context, branch: str, previous: str, lower: dt.datetime, emitted: set[str]):
        """Every commit listed before `previous` (the head we saw last time): exactly what reached
        the branch since, however old its date. If `previous` is no longer in the branch (history
        rewritten), falls back to the date walk. Returns the new head."""
        head = None
        horizon = lower - ctx.tuning.late_push_slack
        try:
            for page in self._list(ctx, branch):
                recent = False
                for item in page.data:
                    sha = item["id"]
                    if head is None:
                        head = sha
                    if sha == previous:
                        return head
                    event = commit_event(ctx.project, branch, item)
                    if event.timestamp >= horizon:
                        recent = True
                    if sha not in emitted:
                        emitted.add(sha)
                        yield event
                if not recent:
                    break
        except SourceUnavailable as exc:
            if exc.status == 404:
                log.info("%s: branch %s not found; skipped", ctx.project.path, branch)
                return previous
            raise
        log.info("%s: %s no longer contains %s (history rewritten?); read back by date",
                 ctx.project.path, branch, short(previous))
        return head


def branch_path(branch: str) -> str:
    return quote(branch, safe="")
