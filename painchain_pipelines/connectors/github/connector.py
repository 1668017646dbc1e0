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

STATE_VERSION = 1
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

    @property
    def path(self) -> str:
        return f"/repos/{self.name}"


@dataclass
class Tuning:
    # How far before a window a workflow run may have started and still finish inside it.
    run_lookback: dt.timedelta = dt.timedelta(days=3)
    # Same for deployments (created before the window, final status inside it).
    deployment_lookback: dt.timedelta = dt.timedelta(days=2)
    # Re-read this much before the last live sync, for clock skew between GitHub and us.
    overlap: dt.timedelta = dt.timedelta(minutes=10)
    max_release_pages: int = 10


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
        try:
            for name in config.repositories:
                try:
                    repo = self._repo_from(reader.get(f"/repos/{name}").data, config)
                except SourceUnavailable as exc:
                    stats.failed_sources[name] = str(exc)
                    continue
                for stream, events in self._window_streams(reader, repo, config, window):
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
        return SyncResult(stats=stats, state=None, window=window)

    def live_sync(
        self,
        integration: Integration,
        state: dict[str, Any] | None,
        sink: EventSink,
        lookback: dt.timedelta = dt.timedelta(days=7),
    ) -> SyncResult:
        config = self.validate(integration)
        started = utcnow()
        stats = SyncStats(sources=list(config.repositories))
        previous = (state or {}).get("repos", {}) if (state or {}).get("version") == STATE_VERSION else {}
        new_state: dict[str, Any] = {"version": STATE_VERSION, "repos": {}}
        earliest = started
        gh = make_github(config, stats)
        reader = GitHubReader(gh)
        try:
            for name in config.repositories:
                repo_state = previous.get(name) or {}
                lower = (
                    parse_ts(repo_state["since"]) - self.tuning.overlap
                    if repo_state.get("since")
                    else started - lookback
                )
                earliest = min(earliest, lower)
                try:
                    new_state["repos"][name] = self._live_repo(
                        reader, name, config, repo_state, lower, started, sink, stats
                    )
                except SourceUnavailable as exc:
                    stats.failed_sources[name] = str(exc)
                    if repo_state:  # keep what we knew; the next sync retries
                        new_state["repos"][name] = repo_state
        finally:
            gh.close()
        self._fail_if_nothing_accessible(config, stats)
        return SyncResult(stats=stats, state=new_state, window=TimeWindow(earliest, started))

    def detect_changes(self, integration: Integration, state: dict[str, Any] | None) -> ChangeCheck:
        """Conditional requests only: a 304 costs no rate limit; stops at the first change."""
        config = self.validate(integration)
        stats = SyncStats(sources=list(config.repositories))
        repos = (state or {}).get("repos", {}) if (state or {}).get("version") == STATE_VERSION else {}
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
                info = repo_state["info"]
                repo = Repo(info["full_name"], info["default_branch"],
                            self._branches(info["default_branch"], config))
                for key, path, params, etag in self._probes(repo, repo_state):
                    try:
                        page = reader.get(path, params, etag)
                    except SourceUnavailable as exc:
                        if etag:  # it answered before: that it no longer does is news
                            return ChangeCheck(True, f"{name} {key}: {exc}", stats)
                        continue
                    if page.status != 304:
                        return ChangeCheck(True, f"{name} {key} changed", stats)
        finally:
            gh.close()
        return ChangeCheck(False, "no change", stats)

    # ------------------------------------------------------------------ helpers

    def _branches(self, default_branch: str, config: GitHubConfig) -> tuple[str, ...]:
        return tuple(dict.fromkeys((default_branch, *config.branches)))

    def _repo_from(self, data: dict, config: GitHubConfig) -> Repo:
        return Repo(data["full_name"], data.get("default_branch") or "main",
                    self._branches(data.get("default_branch") or "main", config))

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

    @staticmethod
    def _fail_if_nothing_accessible(config: GitHubConfig, stats: SyncStats) -> None:
        if config.repositories and all(name in stats.failed_sources for name in config.repositories):
            details = "; ".join(f"{k}: {v}" for k, v in stats.failed_sources.items())
            raise ConfigError("repositories", f"none of the repositories can be read with this token ({details})")

    # ------------------------------------------------------------------ window sync

    def _window_streams(self, reader: GitHubReader, repo: Repo, config: GitHubConfig, window: TimeWindow):
        for branch in repo.branches:
            yield f"commits:{branch}", self._window_commits(reader, repo, branch, window)
        yield "pulls", self._pull_changes(reader, repo, None, window.start)
        yield "releases", self._releases(reader, repo, None)
        yield "runs", self._window_runs(reader, repo, window)
        yield "deployments", self._deployments(reader, repo, config, None, window.start, {})

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

    def _deployments(self, reader: GitHubReader, repo: Repo, config: GitHubConfig, first: Page | None,
                     lower: dt.datetime, pending: dict[str, str | None], handled: set[str] | None = None):
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
                yield transform.deployment_created_event(repo.name, config.html_base, deployment)
            if (updated and updated >= lower) or str(deployment["id"]) in pending:
                pending.pop(str(deployment["id"]), None)
                if handled is not None:
                    handled.add(str(deployment["id"]))
                yield from self._deployment_statuses(reader, repo, config, deployment, None, lower, pending)

    def _deployment_statuses(self, reader: GitHubReader, repo: Repo, config: GitHubConfig, deployment: dict,
                             first: Page | None, lower: dt.datetime, pending: dict[str, str | None]):
        path = f"{repo.path}/deployments/{deployment['id']}/statuses"
        if first is None:
            first = reader.get(path, LIST_PARAMS)
        statuses = list(reader.items(path, LIST_PARAMS, first=first))
        for status in statuses:
            at = parse_ts(status.get("created_at"))
            event = transform.deployment_status_event(repo.name, config.html_base, deployment, status)
            if event is not None and at is not None and at >= lower:
                yield event
        latest = statuses[0].get("state") if statuses else None  # newest first
        if latest not in (*transform.FINAL_DEPLOYMENT_STATES, "inactive"):
            pending[str(deployment["id"])] = first.etag

    # ------------------------------------------------------------------ live sync

    def _live_repo(self, reader: GitHubReader, name: str, config: GitHubConfig, repo_state: dict,
                   lower: dt.datetime, started: dt.datetime, sink: EventSink, stats: SyncStats) -> dict:
        etags: dict[str, str] = dict(repo_state.get("etags", {}))
        info_page = reader.get(f"/repos/{name}", etag=etags.get("repo"))
        if info_page.status == 304 and "info" in repo_state:
            info = repo_state["info"]
        else:
            data = info_page.data
            info = {"full_name": data["full_name"], "default_branch": data.get("default_branch") or "main"}
            etags["repo"] = info_page.etag
        repo = Repo(info["full_name"], info["default_branch"], self._branches(info["default_branch"], config))
        heads: dict[str, str] = dict(repo_state.get("heads", {}))
        pending_runs: dict[str, str | None] = dict(repo_state.get("pending_runs", {}))
        pending_deployments: dict[str, str | None] = dict(repo_state.get("pending_deployments", {}))

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
            ("runs", lambda: self._live_runs(reader, repo, lower, pending_runs, conditional)),
            ("deployments", lambda: self._live_deployments(reader, repo, config, lower, pending_deployments,
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
        return {
            "since": iso(started),
            "info": info,
            "etags": etags,
            "heads": heads,
            "pending_runs": dict(list(pending_runs.items())[-MAX_PENDING:]),
            "pending_deployments": dict(list(pending_deployments.items())[-MAX_PENDING:]),
        }

    @staticmethod
    def _live_list(conditional, key: str, path: str, params: dict, events_from):
        page = conditional(key, path, params)
        if page is not None:
            yield from events_from(page)

    def _live_commits(self, reader: GitHubReader, repo: Repo, branch: str, heads: dict, lower: dt.datetime,
                      conditional) -> Iterator[Event]:
        path = f"{repo.path}/commits"
        page = conditional(f"commits:{branch}", path, {"sha": branch, **LIST_PARAMS})
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
                log.info("%s: cannot compare %s...%s on %s (history rewritten?); listing by date",
                         repo.name, previous[:7], head[:7], branch)
            for item in reader.items(path, {"sha": branch, "since": iso(lower)}):
                yield transform.commit_event(repo.name, branch, item)
        else:
            # First sync of this branch: the page we already have, and on until the look-back.
            for item in reader.items(path, {"sha": branch, **LIST_PARAMS}, first=page):
                event = transform.commit_event(repo.name, branch, item)
                if event.timestamp < lower:
                    break
                yield event
        heads[branch] = head

    def _live_runs(self, reader: GitHubReader, repo: Repo, lower: dt.datetime, pending: dict,
                   conditional) -> Iterator[Event]:
        page = conditional("runs", f"{repo.path}/actions/runs", RUNS_PARAMS)
        seen: set[str] = set()
        if page is not None:
            oldest = lower - self.tuning.run_lookback
            for run in reader.items(f"{repo.path}/actions/runs", RUNS_PARAMS, first=page,
                                    list_item="workflow_runs"):
                created = parse_ts(run.get("created_at"))
                if created is not None and created < oldest:
                    break
                run_id = str(run["id"])
                seen.add(run_id)
                if run.get("status") == "completed":
                    was_pending = pending.pop(run_id, "absent") != "absent"
                    if was_pending or (parse_ts(run.get("updated_at")) or lower) >= lower:
                        yield transform.workflow_run_event(repo.name, run)
                else:
                    pending.setdefault(run_id, None)
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

    def _live_deployments(self, reader: GitHubReader, repo: Repo, config: GitHubConfig, lower: dt.datetime,
                          pending: dict, conditional) -> Iterator[Event]:
        known_pending = set(pending)
        handled: set[str] = set()
        page = conditional("deployments", f"{repo.path}/deployments", LIST_PARAMS)
        if page is not None:
            yield from self._deployments(reader, repo, config, page, lower, pending, handled)
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
            yield from self._deployment_statuses(reader, repo, config, deployment, statuses_page,
                                                 dt.datetime.min.replace(tzinfo=dt.timezone.utc), pending)


class _StreamFailed(Exception):
    pass
