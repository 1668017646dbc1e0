"""The GitHub connector: window syncs (backfills) and live syncs (incremental, conditional)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from painchain_pipelines.connectors.base import (
    ChangeCheck,
    ConfigError,
    Event,
    EventSink,
    Integration,
    SyncResult,
    SyncStats,
    TimeWindow,
    iso,
    utcnow,
)
from painchain_pipelines.connectors.github import transform
from painchain_pipelines.connectors.github.client import (
    GitHubReader,
    Page,
    SourceUnavailable,
    make_github,
    parse_ts,
)
from painchain_pipelines.connectors.github.config import GitHubConfig, parse_config

log = logging.getLogger(__name__)

# Version 2 keeps each repository's `since` on GitHub's clock (its Date header); version 1 kept it
# on this host's clock and is still read (translated by the clock difference measured now).
STATE_VERSION = 2
HOST_CLOCK_STATE_VERSION = 1
RUNS_PARAMS = {"per_page": 100}
PULLS_PARAMS = {"state": "all", "sort": "updated", "direction": "desc", "per_page": 100}
LIST_PARAMS = {"per_page": 100}
FILTERED_RUNS_CAP = 1000  # GitHub stops filtered workflow-run lists at 1,000 results
MAX_PENDING = 200


@dataclass
class Repo:
    """One repository as this sync sees it."""

    name: str  # owner/repo as GitHub spells it
    default_branch: str
    branches: tuple[str, ...]
    html_url: str  # its web page, on github.com or the Enterprise host

    @property
    def path(self) -> str:
        return f"/repos/{self.name}"


@dataclass
class _RepoRead:
    """What a live sync learnt about one repository, in GitHub's clock."""

    state: dict[str, Any]
    lower: dt.datetime  # changes were read from here (since - overlap, or now - lookback)
    now: dt.datetime  # GitHub's clock when the repository's reads began
    complete_until: dt.datetime  # everything, re-runs included, is read up to here
    host_ahead: dt.timedelta  # this host's clock minus GitHub's, measured on the first answer


@dataclass
class Tuning:
    # How far before a window a workflow run may have started and still finish inside it.
    run_lookback: dt.timedelta = dt.timedelta(days=3)
    # Same for deployments (created before the window, final status inside it).
    deployment_lookback: dt.timedelta = dt.timedelta(days=2)
    # Re-read this much before the last live sync, for clock skew between GitHub and us.
    overlap: dt.timedelta = dt.timedelta(minutes=10)
    max_release_pages: int = 10
    # Runs can be re-run for 30 days after creation, and the runs lists are by creation: live syncs
    # sweep the runs created between rerun_window ago and run_lookback for new attempts, once per
    # rerun_sweep_interval slot of the clock (conditionally: an idle sweep costs no rate limit).
    rerun_window: dt.timedelta = dt.timedelta(days=30)
    rerun_sweep_interval: dt.timedelta = dt.timedelta(minutes=30)
    # First sync of a branch: at most this many listings from commits found behind older ones.
    max_commit_resolve_listings: int = 50


class GitHubConnector:
    id = "github"

    def __init__(self, tuning: Tuning | None = None):
        self.tuning = tuning or Tuning()

    # ------------------------------------------------------------------ public API

    def validate(self, integration: Integration) -> GitHubConfig:
        return parse_config(integration.config)

    def window_sync(self, integration: Integration, window: TimeWindow, sink: EventSink) -> SyncResult:
        config = self.validate(integration)
        stats = SyncStats(sources=list(config.repositories))
        gh = make_github(config, stats)
        reader = GitHubReader(gh)
        read_until = window.end
        try:
            for name in config.repositories:
                try:
                    page = reader.get(f"/repos/{name}")
                except SourceUnavailable as exc:
                    stats.failed_sources[name] = str(exc)
                    continue
                # A window reaching past GitHub's clock is read only up to GitHub's now.
                read_until = min(read_until, _source_clock(page, name))
                repo = self._repo(_repo_info(page.data), config)
                for stream, events in self._window_streams(reader, repo, window):
                    try:
                        for event in events:
                            if event.timestamp in window:
                                stats.count(stream)
                                sink(event)
                    except SourceUnavailable as exc:
                        stats.failed_sources[f"{name} {stream}"] = str(exc)
        finally:
            gh.close()
        self._fail_if_nothing_accessible(config, stats)
        covered = None if stats.failed_sources else TimeWindow(window.start, max(window.start, read_until))
        return SyncResult(stats=stats, state=None, window=window, covered=covered)

    def live_sync(
        self,
        integration: Integration,
        state: dict[str, Any] | None,
        sink: EventSink,
        lookback: dt.timedelta = dt.timedelta(days=7),
    ) -> SyncResult:
        config = self.validate(integration)
        stats = SyncStats(sources=list(config.repositories))
        version, previous = _saved_repos(state)
        new_state: dict[str, Any] = {"version": STATE_VERSION, "repos": {}}
        reads: list[_RepoRead] = []
        host_ahead: dt.timedelta | None = None  # this host's clock minus GitHub's, as last measured
        kept_on_host_clock: list[str] = []
        gh = make_github(config, stats)
        reader = GitHubReader(gh)
        try:
            for name in config.repositories:
                repo_state = previous.get(name) or {}
                try:
                    read = self._live_repo(reader, name, config, repo_state, version, lookback, sink, stats)
                except SourceUnavailable as exc:
                    stats.failed_sources[name] = str(exc)
                    if repo_state:  # keep what we knew; the next sync retries
                        new_state["repos"][name] = repo_state
                        if version == HOST_CLOCK_STATE_VERSION:
                            kept_on_host_clock.append(name)
                    continue
                reads.append(read)
                host_ahead = read.host_ahead
                new_state["repos"][name] = read.state
        finally:
            gh.close()
        self._fail_if_nothing_accessible(config, stats)
        for name in kept_on_host_clock:
            new_state["repos"][name] = _since_on_source_clock(new_state["repos"][name], host_ahead)
        window = TimeWindow(min(r.lower for r in reads), max(r.now for r in reads))
        covered = None
        if not stats.failed_sources:
            start = max(r.lower for r in reads)
            covered = TimeWindow(start, max(start, min(r.complete_until for r in reads)))
        return SyncResult(stats=stats, state=new_state, window=window, covered=covered)

    def detect_changes(self, integration: Integration, state: dict[str, Any] | None) -> ChangeCheck:
        """Conditional requests only: a 304 costs no rate limit; stops at the first change. A
        re-run sweep that is due counts as a change (the live sync makes it)."""
        config = self.validate(integration)
        stats = SyncStats(sources=list(config.repositories))
        _, repos = _saved_repos(state)
        gh = make_github(config, stats)
        reader = GitHubReader(gh)
        try:
            for name in config.repositories:
                repo_state = repos.get(name)
                if not repo_state or "info" not in repo_state:
                    # Never synced: one request, so that a wrong token shows here (AuthError)
                    # instead of as a failing run every poll.
                    try:
                        reader.get(f"/repos/{name}")
                    except SourceUnavailable:
                        continue
                    return ChangeCheck(True, f"{name}: never synced", stats)
                repo = self._repo(repo_state["info"], config)
                sweep_checked = False
                for key, path, params, etag in self._probes(repo, repo_state):
                    try:
                        page = reader.get(path, params, etag)
                    except SourceUnavailable as exc:
                        if etag:  # it answered before: that it no longer does is news
                            return ChangeCheck(True, f"{name} {key}: {exc}", stats)
                        continue
                    if page.status != 304:
                        return ChangeCheck(True, f"{name} {key} changed", stats)
                    if not sweep_checked:
                        sweep_checked = True
                        if self._sweep_due(_last_sweep(repo_state), _source_clock(page, name)):
                            return ChangeCheck(True, f"{name}: re-run sweep due", stats)
        finally:
            gh.close()
        return ChangeCheck(False, "no change", stats)

    # ------------------------------------------------------------------ helpers

    def _repo(self, info: dict, config: GitHubConfig) -> Repo:
        default_branch = info["default_branch"]
        branches = tuple(dict.fromkeys((default_branch, *config.branches)))
        return Repo(info["full_name"], default_branch, branches, info.get("html_url") or "")

    def _probes(self, repo: Repo, repo_state: dict) -> Iterator[tuple[str, str, dict, str | None]]:
        """(name, path, params, ETag) of the first pages a live sync reads: the same requests,
        so that an unchanged answer is a 304."""
        etags = repo_state.get("etags", {})
        for branch in repo.branches:
            key = f"commits:{branch}"
            yield key, f"{repo.path}/commits", {"sha": branch, **LIST_PARAMS}, etags.get(key)
        yield "pulls", f"{repo.path}/pulls", PULLS_PARAMS, etags.get("pulls")
        yield "releases", f"{repo.path}/releases", LIST_PARAMS, etags.get("releases")
        yield "runs", f"{repo.path}/actions/runs", RUNS_PARAMS, etags.get("runs")
        yield "deployments", f"{repo.path}/deployments", LIST_PARAMS, etags.get("deployments")
        for run_id, etag in repo_state.get("pending_runs", {}).items():
            # Runs without an ETag were seen in the runs list, whose probe above covers them.
            if etag:
                yield f"run {run_id}", f"{repo.path}/actions/runs/{run_id}", {}, etag
        for deployment_id, etag in repo_state.get("pending_deployments", {}).items():
            path = f"{repo.path}/deployments/{deployment_id}/statuses"
            yield f"deployment {deployment_id}", path, LIST_PARAMS, etag

    def _sweep_due(self, last: dt.datetime | None, now: dt.datetime) -> bool:
        """Once per slot of the clock (:00 and :30 by default), not per interval since the last
        sweep: every repository of every integration falls due at the same moment, so sweeps
        come as one live sync per interval (one batch run), not as a trickle of runs. Never
        within half an interval of the last sweep (a first sync at 10:29 waits until 10:45)."""
        interval = self.tuning.rerun_sweep_interval.total_seconds()
        if last is None or interval <= 0:
            return True
        elapsed = (now - last).total_seconds()
        return now.timestamp() // interval > last.timestamp() // interval and elapsed >= interval / 2

    @staticmethod
    def _fail_if_nothing_accessible(config: GitHubConfig, stats: SyncStats) -> None:
        if config.repositories and all(name in stats.failed_sources for name in config.repositories):
            details = "; ".join(f"{k}: {v}" for k, v in stats.failed_sources.items())
            raise ConfigError("repositories", f"none of the repositories can be read with this token ({details})")

    # ------------------------------------------------------------------ window sync

    def _window_streams(self, reader: GitHubReader, repo: Repo, window: TimeWindow):
        for branch in repo.branches:
            yield f"commits:{branch}", self._window_commits(reader, repo, branch, window)
        yield "pulls", self._pull_changes(reader, repo, None, window.start)
        yield "releases", self._releases(reader, repo, None)
        yield "runs", self._window_runs(reader, repo, window)
        yield "deployments", self._deployments(reader, repo, None, window.start, {})

    def _window_commits(self, reader: GitHubReader, repo: Repo, branch: str, window: TimeWindow):
        params = {"sha": branch, "since": iso(window.start), "until": iso(window.end)}
        for item in reader.items(f"{repo.path}/commits", params):
            yield transform.commit_event(repo.name, branch, item)

    def _window_runs(self, reader: GitHubReader, repo: Repo, window: TimeWindow):
        # Runs that finished inside the window may have started before it.
        start = window.start - self.tuning.run_lookback
        for run in self._runs_created_between(reader, repo, start, window.end):
            event = transform.workflow_run_event(repo.name, run)
            if event is not None:
                yield event

    def _runs_created_between(self, reader: GitHubReader, repo: Repo, start: dt.datetime, end: dt.datetime):
        params = {"created": f"{iso(start)}..{iso(end)}", "status": "completed", **RUNS_PARAMS}
        first = reader.get(f"{repo.path}/actions/runs", params)
        if first.data.get("total_count", 0) >= FILTERED_RUNS_CAP and end - start > dt.timedelta(minutes=2):
            middle = start + (end - start) / 2
            yield from self._runs_created_between(reader, repo, middle, end)
            yield from self._runs_created_between(reader, repo, start, middle)
            return
        yield from reader.items(f"{repo.path}/actions/runs", params, first=first, list_item="workflow_runs")

    # ------------------------------------------------------------------ streams shared by both modes

    def _pull_changes(self, reader: GitHubReader, repo: Repo, first: Page | None, lower: dt.datetime):
        """Every PR change at or after `lower`: PRs sorted by last update, stop below `lower`."""
        for pr in reader.items(f"{repo.path}/pulls", PULLS_PARAMS, first=first):
            if (parse_ts(pr.get("updated_at")) or lower) < lower:
                break
            for at, event in transform.pull_request_events(repo.name, pr):
                if at >= lower:
                    yield event

    def _releases(self, reader: GitHubReader, repo: Repo, first: Page | None):
        # Listed by creation; a draft made long ago may be published now, so read several pages.
        for index, release in enumerate(reader.items(f"{repo.path}/releases", LIST_PARAMS, first=first)):
            if index >= self.tuning.max_release_pages * 100:
                break
            event = transform.release_event(repo.name, release)
            if event is not None:
                yield event

    def _deployments(self, reader: GitHubReader, repo: Repo, first: Page | None, lower: dt.datetime,
                     pending: dict[str, str | None], handled: set[str] | None = None):
        """Deployment created events and final statuses at or after `lower`. `pending` (live
        syncs) collects deployments still without a final status, with their statuses' ETag;
        `handled` the ids whose statuses were read."""
        oldest = lower - self.tuning.deployment_lookback
        for deployment in reader.items(f"{repo.path}/deployments", LIST_PARAMS, first=first):
            created = parse_ts(deployment.get("created_at"))
            if created is not None and created < oldest:
                break
            updated = parse_ts(deployment.get("updated_at")) or created
            if created is not None and created >= lower:
                yield transform.deployment_created_event(repo.name, repo.html_url, deployment)
            if (updated and updated >= lower) or str(deployment["id"]) in pending:
                pending.pop(str(deployment["id"]), None)
                if handled is not None:
                    handled.add(str(deployment["id"]))
                yield from self._deployment_statuses(reader, repo, deployment, None, lower, pending)

    def _deployment_statuses(self, reader: GitHubReader, repo: Repo, deployment: dict, first: Page | None,
                             lower: dt.datetime, pending: dict[str, str | None]):
        path = f"{repo.path}/deployments/{deployment['id']}/statuses"
        if first is None:
            first = reader.get(path, LIST_PARAMS)
        statuses = list(reader.items(path, LIST_PARAMS, first=first))
        for status in statuses:
            at = parse_ts(status.get("created_at"))
            event = transform.deployment_status_event(repo.name, repo.html_url, deployment, status)
            if event is not None and at is not None and at >= lower:
                yield event
        latest = statuses[0].get("state") if statuses else None  # newest first
        if latest not in (*transform.FINAL_DEPLOYMENT_STATES, "inactive"):
            pending[str(deployment["id"])] = first.etag

    # ------------------------------------------------------------------ live sync

    def _live_repo(self, reader: GitHubReader, name: str, config: GitHubConfig, repo_state: dict, version: int,
                   lookback: dt.timedelta, sink: EventSink, stats: SyncStats) -> _RepoRead:
        etags: dict[str, str] = dict(repo_state.get("etags", {}))
        saved_info = repo_state.get("info") or {}
        # States saved before html_url was kept lack it: ask unconditionally to get it.
        info_etag = etags.get("repo") if "html_url" in saved_info else None
        info_page = reader.get(f"/repos/{name}", etag=info_etag)
        # Every cursor is on GitHub's clock: a host clock ahead of it by more than the overlap
        # would skip changes, one behind it would re-read.
        now = _source_clock(info_page, name)
        host_ahead = utcnow() - now
        if version == HOST_CLOCK_STATE_VERSION:
            repo_state = _since_on_source_clock(repo_state, host_ahead)
        if info_page.status == 304:
            info = saved_info
        else:
            info = _repo_info(info_page.data)
            etags["repo"] = info_page.etag
        since = parse_ts(repo_state.get("since"))
        # A cursor ahead of GitHub's clock (saved by a host whose clock ran ahead) must not skip.
        lower = min(since, now) - self.tuning.overlap if since else now - lookback
        repo = self._repo(info, config)
        heads: dict[str, str] = dict(repo_state.get("heads", {}))
        pending_runs: dict[str, str | None] = dict(repo_state.get("pending_runs", {}))
        pending_deployments: dict[str, str | None] = dict(repo_state.get("pending_deployments", {}))
        sweep: dict[str, Any] = dict(repo_state.get("rerun_sweep") or {})
        sweep_due = self._sweep_due(_last_sweep(repo_state), now)

        def emit(stream: str, events) -> None:
            try:
                for event in events:
                    stats.count(stream)
                    sink(event)
            except SourceUnavailable as exc:
                stats.failed_sources[f"{name} {stream}"] = str(exc)
                raise _StreamFailed from exc

        def conditional(key: str, path: str, params: dict) -> Page | None:
            page = reader.get(path, params, etags.get(key))
            if page.status == 304:
                return None
            etags[key] = page.etag
            return page

        streams = [
            *[(f"commits:{b}", lambda b=b: self._live_commits(reader, repo, b, heads, lower, conditional))
              for b in repo.branches],
            ("pulls", lambda: self._live_list(conditional, "pulls", f"{repo.path}/pulls", PULLS_PARAMS,
                                              lambda page: self._pull_changes(reader, repo, page, lower))),
            ("releases", lambda: self._live_list(
                conditional, "releases", f"{repo.path}/releases", LIST_PARAMS,
                lambda page: (e for e in self._releases(reader, repo, page) if e.timestamp >= lower))),
            ("runs", lambda: self._live_runs(reader, repo, lower, now, pending_runs,
                                             sweep if sweep_due else None, conditional)),
            ("deployments", lambda: self._live_deployments(reader, repo, lower, pending_deployments,
                                                           conditional)),
        ]
        for stream, make_events in streams:
            before = dict(etags)
            try:
                emit(stream, make_events())
            except _StreamFailed:
                # Keep this stream's previous ETags so that the next sync reads it again.
                etags.clear()
                etags.update(before)
        swept_until = parse_ts(sweep.get("at"))
        return _RepoRead(
            state={
                "since": iso(now),
                "info": info,
                "etags": etags,
                "heads": heads,
                "pending_runs": dict(list(pending_runs.items())[-MAX_PENDING:]),
                "pending_deployments": dict(list(pending_deployments.items())[-MAX_PENDING:]),
                "rerun_sweep": sweep,
            },
            lower=lower,
            now=now,
            # Re-runs of older runs are read by the sweep only: complete up to the last one.
            complete_until=min(now, swept_until) if swept_until else lower,
            host_ahead=host_ahead,
        )

    @staticmethod
    def _live_list(conditional, key: str, path: str, params: dict, events_from):
        page = conditional(key, path, params)
        if page is not None:
            yield from events_from(page)

    def _live_commits(self, reader: GitHubReader, repo: Repo, branch: str, heads: dict, lower: dt.datetime,
                      conditional) -> Iterator[Event]:
        page = conditional(f"commits:{branch}", f"{repo.path}/commits", {"sha": branch, **LIST_PARAMS})
        if page is None or not page.data:
            return
        head, previous = page.data[0]["sha"], heads.get(branch)
        if head == previous:
            return
        if previous:
            # Exactly the commits that reached the branch since we last looked, whatever their
            # dates: a commit authored hours before it was pushed is still new here.
            try:
                for item in reader.items(f"{repo.path}/compare/{previous}...{head}", list_item="commits"):
                    yield transform.commit_event(repo.name, branch, item)
                heads[branch] = head
                return
            except SourceUnavailable:
                log.info("%s: cannot compare %s...%s on %s (history rewritten?); walking back from the head",
                         repo.name, previous[:7], head[:7], branch)
        yield from self._branch_commits_since(reader, repo, branch, page, lower)
        heads[branch] = head

    def _branch_commits_since(self, reader: GitHubReader, repo: Repo, branch: str, first: Page,
                              lower: dt.datetime) -> Iterator[Event]:
        """Every commit reachable from the branch head dated at or after `lower` (first sync of a
        branch, or after its history was rewritten).

        The list is in `git log` order, not date order: a merged branch's old commits can come
        before newer ones. So it is walked as a graph: the parents of in-window commits are
        wanted until seen. A listing ends after a page without an in-window commit; wanted
        commits it did not reach are listed from themselves (one request brings a commit and
        up to 99 of its ancestors). Exact whenever no commit is dated before its parents."""
        path = f"{repo.path}/commits"
        seen: set[str] = set()
        wanted: dict[str, None] = {}  # an ordered set: resolved in the order they were found
        listings = 0  # started from wanted commits
        start, number, page = branch, 1, first
        while True:
            if page is None:
                if start != branch and number == 1:
                    if listings >= self.tuning.max_commit_resolve_listings:
                        log.warning("%s: walking back %s stopped after %d listings with %d commits behind older "
                                    "ones unresolved: some commits of the look-back may be missing (raise "
                                    "Tuning.max_commit_resolve_listings)", repo.name, branch, listings,
                                    len(wanted) + 1)
                        return
                    listings += 1
                try:
                    page = reader.get(path, {"sha": start, **LIST_PARAMS, "page": number})
                except SourceUnavailable:
                    if start == branch:
                        raise
                    log.info("%s: commit %s cannot be listed; skipped", repo.name, start[:7])
                    page = Page(200, [], {})
            in_window = False
            for item in page.data:
                sha = item["sha"]
                if sha in seen:
                    continue
                seen.add(sha)
                wanted.pop(sha, None)
                event = transform.commit_event(repo.name, branch, item)
                if event.timestamp >= lower:
                    in_window = True
                    wanted.update((p["sha"], None) for p in item.get("parents") or [] if p["sha"] not in seen)
                    yield event
            if in_window and page.has_next:
                number, page = number + 1, None
                continue
            if not wanted:
                return
            start, number, page = next(iter(wanted)), 1, None
            del wanted[start]  # listed from now on: seen, or dropped if the listing cannot show it

    def _live_runs(self, reader: GitHubReader, repo: Repo, lower: dt.datetime, now: dt.datetime, pending: dict,
                   sweep: dict | None, conditional) -> Iterator[Event]:
        oldest = lower - self.tuning.run_lookback
        if sweep is not None:
            yield from self._rerun_sweep(reader, repo, sweep, lower, now, oldest, pending)
        page = conditional("runs", f"{repo.path}/actions/runs", RUNS_PARAMS)
        seen: set[str] = set()
        if page is not None:
            for run in reader.items(f"{repo.path}/actions/runs", RUNS_PARAMS, first=page,
                                    list_item="workflow_runs"):
                created = parse_ts(run.get("created_at"))
                if created is not None and created < oldest:
                    break
                seen.add(str(run["id"]))
                event = self._run_change(repo, run, lower, pending)
                if event is not None:
                    yield event
        # Runs we saw in progress that the list no longer shows near the top: ask for each.
        for run_id in [r for r in pending if r not in seen]:
            try:
                run_page = reader.get(f"{repo.path}/actions/runs/{run_id}", etag=pending[run_id])
            except SourceUnavailable:
                pending.pop(run_id, None)  # deleted run
                continue
            if run_page.status == 304:
                continue
            if run_page.data.get("status") == "completed":
                pending.pop(run_id, None)
                yield transform.workflow_run_event(repo.name, run_page.data)
            else:
                pending[run_id] = run_page.etag

    @staticmethod
    def _run_change(repo: Repo, run: dict, since: dt.datetime, pending: dict) -> Event | None:
        """The event of a listed run that completed at or after `since` (or was awaited); a run
        in progress is remembered in `pending` until it completes."""
        run_id = str(run["id"])
        if run.get("status") != "completed":
            pending.setdefault(run_id, None)
            return None
        was_pending = pending.pop(run_id, "absent") != "absent"
        if was_pending or (parse_ts(run.get("updated_at")) or since) >= since:
            return transform.workflow_run_event(repo.name, run)
        return None

    def _rerun_sweep(self, reader: GitHubReader, repo: Repo, sweep: dict, lower: dt.datetime, now: dt.datetime,
                     listed_from: dt.datetime, pending: dict) -> Iterator[Event]:
        """New attempts of the runs created between `rerun_window` ago and `listed_from` (where
        this sync's runs list stops), read by created-day slice, every page with its ETag. A past
        day's list changes only when one of its runs does (a re-run): the other days answer 304,
        which costs no rate limit, and days without runs are never asked again."""
        last = parse_ts(sweep.get("at"))
        since = last - self.tuning.overlap if last else lower
        slices: dict[str, list[str]] = sweep.get("slices") or {}
        kept: dict[str, list[str]] = {}
        day = (now - self.tuning.rerun_window).date()
        while day <= listed_from.date():
            hours = [f"{day.isoformat()}T{hour:02d}" for hour in range(24)]
            for key in hours if hours[0] in slices else [day.isoformat()]:
                yield from self._sweep_slice(reader, repo, key, slices.get(key), since, now, listed_from,
                                             pending, kept)
            day += dt.timedelta(days=1)
        # Only now (the sweep went through): a failure above keeps the previous sweep state.
        sweep.clear()
        sweep.update({"at": iso(now), "slices": kept})

    def _sweep_slice(self, reader: GitHubReader, repo: Repo, key: str, etags: list[str] | None,
                     since: dt.datetime, now: dt.datetime, listed_from: dt.datetime, pending: dict,
                     kept: dict[str, list[str]]) -> Iterator[Event]:
        """One slice (`YYYY-MM-DD`, or `YYYY-MM-DDTHH` for days over GitHub's 1,000-result cap)."""
        start = dt.datetime.fromisoformat(key + ("" if "T" in key else "T00")).replace(tzinfo=dt.timezone.utc)
        end = start + (dt.timedelta(hours=1) if "T" in key else dt.timedelta(days=1))
        if etags == [] and end <= now:  # a past slice without runs stays without
            kept[key] = []
            return
        path = f"{repo.path}/actions/runs"
        params = {"created": f"{iso(start)}..{iso(end - dt.timedelta(seconds=1))}", **RUNS_PARAMS}
        etags = etags or []
        new_etags: list[str] = []
        number = 1
        while True:
            known = etags[number - 1] if number <= len(etags) else None
            page = reader.get(path, {**params, "page": number}, known)
            if page.status == 304:
                new_etags.append(known)
                if number >= len(etags):
                    break
            else:
                total = page.data.get("total_count", 0)
                if total >= FILTERED_RUNS_CAP:
                    if "T" not in key:
                        for hour in range(24):
                            yield from self._sweep_slice(reader, repo, f"{key}T{hour:02d}", None, since, now,
                                                         listed_from, pending, kept)
                        return
                    log.warning("%s: over %d runs created in the hour %s; re-runs of the others are not seen",
                                repo.name, FILTERED_RUNS_CAP, key)
                if total == 0 and number == 1 and end <= now:
                    break
                new_etags.append(page.etag)
                for run in page.data.get("workflow_runs") or []:
                    created = parse_ts(run.get("created_at"))
                    if created is not None and created >= listed_from:
                        continue  # this sync's runs list reads it
                    event = self._run_change(repo, run, since, pending)
                    if event is not None:
                        yield event
                if not page.has_next:
                    break
            number += 1
        kept[key] = new_etags

    def _live_deployments(self, reader: GitHubReader, repo: Repo, lower: dt.datetime, pending: dict,
                          conditional) -> Iterator[Event]:
        known_pending = set(pending)
        handled: set[str] = set()
        page = conditional("deployments", f"{repo.path}/deployments", LIST_PARAMS)
        if page is not None:
            yield from self._deployments(reader, repo, page, lower, pending, handled)
        # Deployments still in progress: their statuses, conditionally (a 304 is free).
        for deployment_id, etag in list(pending.items()):
            if deployment_id not in known_pending or deployment_id in handled:
                continue  # already read in this sync
            path = f"{repo.path}/deployments/{deployment_id}/statuses"
            try:
                statuses_page = reader.get(path, LIST_PARAMS, etag=etag)
                if statuses_page.status == 304:
                    continue
                deployment = reader.get(f"{repo.path}/deployments/{deployment_id}").data
            except SourceUnavailable:
                pending.pop(deployment_id, None)
                continue
            pending.pop(deployment_id, None)
            yield from self._deployment_statuses(reader, repo, deployment, statuses_page,
                                                 dt.datetime.min.replace(tzinfo=dt.timezone.utc), pending)


class _StreamFailed(Exception):
    pass


def _repo_info(data: dict) -> dict:
    """What a live sync keeps of `GET /repos/{owner}/{repo}`."""
    return {"full_name": data["full_name"], "default_branch": data.get("default_branch") or "main",
            "html_url": data.get("html_url")}


def _source_clock(page: Page, name: str) -> dt.datetime:
    """GitHub's clock when it answered `page`: the clock every cursor and window is kept on."""
    if page.server_time is not None:
        return page.server_time
    log.warning("%s: GitHub's answer has no Date header; using this host's clock", name)
    return utcnow()


def _saved_repos(state: dict[str, Any] | None) -> tuple[int, dict[str, Any]]:
    """(version, per-repository states) of a saved live state; unknown versions start afresh."""
    version = (state or {}).get("version")
    if version in (HOST_CLOCK_STATE_VERSION, STATE_VERSION):
        return version, state.get("repos") or {}
    return STATE_VERSION, {}


def _since_on_source_clock(repo_state: dict, host_ahead: dt.timedelta | None) -> dict:
    """A version-1 repository state, its `since` (this host's clock then) moved onto GitHub's
    clock by the difference between the two clocks measured now."""
    since = parse_ts(repo_state.get("since"))
    if since is None or host_ahead is None:
        return repo_state
    return {**repo_state, "since": iso(since - host_ahead)}


def _last_sweep(repo_state: dict | None) -> dt.datetime | None:
    return parse_ts(((repo_state or {}).get("rerun_sweep") or {}).get("at"))
