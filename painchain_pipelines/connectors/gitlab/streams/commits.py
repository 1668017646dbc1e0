"""Commits that reached the followed branches.

GitLab lists `GET /repository/commits?ref_name=X` like `git log X`: by committed date over the
whole graph, not in push order. A merge that brings commits dated before the previous head lists
them *after* that head, and `since` stops at the first older commit like `git log --since`. So a
walk "from the head back to the saved head" can miss commits, and `since` is never used for live
reads. Live syncs compare instead: `GET /repository/compare?from=<saved head>&to=<branch>` gives
exactly the commits reachable from the branch and not from the saved head (merged-in older ones
included, whatever their dates), oldest first, in one request (GitLab does not cap the commits of
a compare for authenticated callers; an answer of `Tuning.compare_cap` commits or more is treated
as possibly capped and completed by comparing again up to each parent that is not in it). After a
force-push the saved head is no longer an ancestor: the compare's merge base still gives only the
new commits. A saved head GitLab no longer knows (404) falls back to the listing walk.

First syncs (a branch seen for the first time) and window syncs walk back from the head (window:
`until` the window's end) while a page still holds a commit dated within `late_push_slack` of the
lower bound.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from urllib.parse import quote

from painchain_pipelines.connectors.base import Event, TimeWindow, iso, parse_time
from painchain_pipelines.connectors.gitlab.client import SourceUnavailable
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
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def commit_event(project: Project, branch: str, item: dict) -> Event:
    sha = item["id"]
    when = parse_time(item.get("committed_date")) or parse_time(item.get("created_at")) or parse_time(item.get("authored_date"))
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
        # The branches the events feed saw pushes to (None: every followed branch may have moved).
        moved: set[str] | None = ctx.shared.get("moved_branches")
        project = ctx.project
        if moved is not None and not project.all_branches and not (moved & set(project.branches)) \
                and all(b in saved for b in project.branches):
            return  # no push to a followed branch (and each was read before): nothing to ask
        heads = self.heads(ctx)
        for branch, head in heads.items():
            previous = saved.get(branch)
            if head is not None and head == previous:
                continue
            if head is None and previous is not None and moved is not None and branch not in moved:
                continue  # no push to it since the last read
            if previous is None:
                # A branch seen for the first time: its recent history, by date.
                new_head = yield from self._walk_back(ctx, branch, live.lower, None, emitted)
                if new_head:
                    saved[branch] = new_head
                continue
            new_head = yield from self._compare(ctx, branch, previous, live.lower, emitted)
            if new_head:
                saved[branch] = new_head
        if ctx.project.all_branches:  # forget deleted branches
            for branch in [b for b in saved if b not in heads]:
                del saved[branch]

    def _compare(self, ctx: Context, branch: str, previous: str, lower: dt.datetime, emitted: set[str]):
        """What reached `branch` since `previous` (the head saved last time), by compare: exactly
        the commits reachable from the branch and not from `previous`, whatever their dates.
        Returns the new head."""
        project = ctx.project
        what = f"{project.path} compare {short(previous)}...{branch}"
        try:
            answer = ctx.client.get(f"{project.api}/repository/compare", {"from": previous, "to": branch},
                                    what).data
        except SourceUnavailable as exc:
            if exc.status != 404:
                raise
            # `from` unknown (housekeeping removed a force-pushed head) or the branch is gone.
            log.info("%s: compare from %s failed (%s); listing %s instead", project.path, short(previous), exc,
                     branch)
            return (yield from self._since_head(ctx, branch, previous, lower, emitted))
        commits: list[dict] = list(answer.get("commits") or [])
        head = (answer.get("commit") or {}).get("id") or (commits[-1]["id"] if commits else previous)
        if len(commits) >= ctx.tuning.compare_cap:
            commits = self._complete(ctx, branch, previous, commits)
        for item in reversed(commits):  # newest first, like the listing
            if item["id"] not in emitted:
                emitted.add(item["id"])
                yield commit_event(project, branch, item)
        return head

    def _complete(self, ctx: Context, branch: str, previous: str, commits: list[dict]) -> list[dict]:
        """A compare answer that may be capped (GitLab caps anonymous callers to the newest 100):
        compare again up to every parent that is not in the answer, until each parent of each
        collected commit is collected or reachable from `previous` (its compare is empty). The
        stop rule does not depend on any order."""
        project = ctx.project
        collected = {c["id"]: c for c in commits}
        checked: set[str] = set()
        for _ in range(ctx.tuning.compare_rounds):
            frontier = [p for c in list(collected.values()) for p in (c.get("parent_ids") or [])
                        if p not in collected and p not in checked]
            if not frontier:
                break
            for parent in dict.fromkeys(frontier):
                checked.add(parent)
                more = ctx.client.get(f"{project.api}/repository/compare", {"from": previous, "to": parent},
                                      f"{project.path} compare {short(previous)}...{short(parent)}").data
                for item in more.get("commits") or []:
                    collected.setdefault(item["id"], item)
        else:
            log.warning("%s: %s: compare still incomplete after %d rounds", project.path, branch,
                        ctx.tuning.compare_rounds)
        return sorted(collected.values(), key=lambda c: parse_time(c.get("committed_date")) or EPOCH)

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
