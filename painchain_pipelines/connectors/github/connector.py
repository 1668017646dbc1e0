"""The GitHub connector: window syncs (backfills) and live syncs (incremental, conditional).

It runs the streams of `streams/` (commits, pull requests, releases, workflow runs, deployments)
for each repository and keeps what is common to them: the repository's info and clock, the live
state's version and `since`, the span read completely, and the sources that failed.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
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
    parse_time,
    utcnow,
)
from painchain_pipelines.connectors.github.client import (
    GitHubReader,
    Page,
    SourceUnavailable,
    make_github,
)
from painchain_pipelines.connectors.github.config import GitHubConfig, parse_config
from painchain_pipelines.connectors.github.streams import STREAMS
from painchain_pipelines.connectors.github.streams.base import LiveRead, Probe, Repo
from painchain_pipelines.connectors.windows import Parts, read_window, window_result

log = logging.getLogger(__name__)

# Version 2 keeps each repository's `since` on GitHub's clock (its Date header); version 1 kept it
# on this host's clock and is still read (translated by the clock difference measured now).
STATE_VERSION = 2
HOST_CLOCK_STATE_VERSION = 1
# The keys of a repository's live state in the order they have always been saved (the streams'
# own keys among them), so that an unchanged state is saved byte for byte as before.
REPO_STATE_KEYS = ("since", "info", "etags", "heads", "pending_runs", "pending_deployments", "rerun_sweep")


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
    description = (
        "GitHub changes as PainChain events: commits on the default and configured branches, pull "
        "requests opened/merged/closed, releases, completed workflow runs (each attempt), "
        "deployments and their final status. One partition per integration and UTC day; backfill "
        "any range from the UI or CLI. Live syncs are started by `github_live_sensor`."
    )

    def __init__(self, tuning: Tuning | None = None):
        self.tuning = tuning or Tuning()
        self.streams = [stream(self.tuning) for stream in STREAMS]

    # ------------------------------------------------------------------ public API

    def validate(self, integration: Integration) -> GitHubConfig:
        return parse_config(integration.config)

    def window_sync(self, integration: Integration, window: TimeWindow, sink: EventSink) -> SyncResult:
        config = self.validate(integration)
        stats = SyncStats(sources=list(config.repositories))
        gh = make_github(config, stats)
        reader = GitHubReader(gh)
        read_until = window.end

        def parts_of(name: str) -> Parts:
            nonlocal read_until
            page = reader.get(f"/repos/{name}")
            # A window reaching past GitHub's clock is read only up to GitHub's now.
            read_until = min(read_until, _source_clock(page, name))
            repo = self._repo(_repo_info(page.data), config)
            return chain.from_iterable(stream.read_window(reader, repo, window) for stream in self.streams)

        try:
            read_window(window, config.repositories, parts_of, SourceUnavailable, stats, sink)
        finally:
            gh.close()
        self._fail_if_nothing_accessible(config, stats)
        return window_result(window, stats, read_until)

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
        read that a stream says is due (the re-run sweep) counts as a change: the live sync makes it."""
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
                due_checked = False
                for probe in self._probes(repo, repo_state):
                    try:
                        page = reader.get(probe.path, dict(probe.params), probe.etag)
                    except SourceUnavailable as exc:
                        if probe.etag:  # it answered before: that it no longer does is news
                            return ChangeCheck(True, f"{name} {probe.label}: {exc}", stats)
                        continue
                    if page.status != 304:
                        return ChangeCheck(True, f"{name} {probe.label} changed", stats)
                    if not due_checked:
                        due_checked = True
                        now = _source_clock(page, name)
                        for stream in self.streams:
                            reason = stream.due(repo_state, now)
                            if reason:
                                return ChangeCheck(True, f"{name}: {reason}", stats)
        finally:
            gh.close()
        return ChangeCheck(False, "no change", stats)

    # ------------------------------------------------------------------ helpers

    def _repo(self, info: dict, config: GitHubConfig) -> Repo:
        default_branch = info["default_branch"]
        branches = tuple(dict.fromkeys((default_branch, *config.branches)))
        return Repo(info["full_name"], default_branch, branches, info.get("html_url") or "")

    def _probes(self, repo: Repo, repo_state: dict) -> Iterator[Probe]:
        """Every stream's first pages (the same requests as a live sync's, so that an unchanged
        answer is a 304), then every stream's items seen in progress. The check stops at the first
        change, so this order is what a check costs: keep it."""
        return chain(*(stream.probes(repo, repo_state) for stream in self.streams),
                     *(stream.pending_probes(repo, repo_state) for stream in self.streams))

    @staticmethod
    def _fail_if_nothing_accessible(config: GitHubConfig, stats: SyncStats) -> None:
        if config.repositories and all(name in stats.failed_sources for name in config.repositories):
            details = "; ".join(f"{k}: {v}" for k, v in stats.failed_sources.items())
            raise ConfigError("repositories", f"none of the repositories can be read with this token ({details})")

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
        since = parse_time(repo_state.get("since"))
        # A cursor ahead of GitHub's clock (saved by a host whose clock ran ahead) must not skip.
        lower = min(since, now) - self.tuning.overlap if since else now - lookback
        live = LiveRead(reader, self._repo(info, config), lower, now, etags)

        state: dict[str, Any] = {"since": iso(now), "info": info, "etags": etags}
        complete_until = now
        for stream in self.streams:
            stream_state = stream.live_state(repo_state)
            for part, events in stream.read_live(live, stream_state):
                before = dict(etags)
                try:
                    _emit(name, part, events, sink, stats)
                except SourceUnavailable:
                    # Keep this part's previous ETags so that the next sync reads it again.
                    etags.clear()
                    etags.update(before)
            # What a stream read before failing is kept too: its state was updated as it read.
            state.update(stream.saved_state(stream_state))
            complete_until = min(complete_until, stream.complete_until(live, stream_state))
        return _RepoRead(
            state={key: state[key] for key in sorted(state, key=_saved_key_order)},
            lower=lower,
            now=now,
            complete_until=complete_until,
            host_ahead=host_ahead,
        )


def _emit(name: str, part: str, events: Iterable[Event], sink: EventSink, stats: SyncStats) -> None:
    """Counts and sinks the events of a part of repository `name`; a failure is recorded as its
    failed source and re-raised."""
    try:
        for event in events:
            stats.count(part)
            sink(event)
    except SourceUnavailable as exc:
        stats.failed_sources[f"{name} {part}"] = str(exc)
        raise


def _saved_key_order(key: str) -> int:
    return REPO_STATE_KEYS.index(key) if key in REPO_STATE_KEYS else len(REPO_STATE_KEYS)


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
    since = parse_time(repo_state.get("since"))
    if since is None or host_ahead is None:
        return repo_state
    return {**repo_state, "since": iso(since - host_ahead)}
