"""The GitLab connector: window syncs (backfills) and live syncs (incremental, activity-driven).

One live sync (or change check) of an integration starts with ONE request listing the token's
projects active since the last read (`GET /projects?membership=true&simple=true&
last_activity_after=...`): it authenticates, gives GitLab's clock (Date header), resolves the
configured paths to ids, and says which projects had pushes, merge requests, tags or releases.
Only those are read for commits, merge requests, tags and releases. Pipeline and deployment
status changes are not activity, so every project is asked for the pipelines and deployments
updated after its cursor (one request each when nothing changed).

GitLab moves `last_activity_at` at most once an hour, so a project read within that hour may
have had activity since that did not move it: it is read once more after the hour (at no cost
per poll in between; with `Tuning.events_in_throttle_hour` each poll asks for its newest project
event instead, one request, so that such pushes, merge requests and tags come at once).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from painchain_pipelines.connectors.base import (
    ChangeCheck,
    ConfigError,
    ConnectorError,
    EventSink,
    Integration,
    SyncResult,
    SyncStats,
    TimeWindow,
    iso,
    utcnow,
)
from painchain_pipelines.connectors.gitlab.client import (
    ClientTuning,
    GitLabClient,
    SourceUnavailable,
    auth_error,
    parse_ts,
)
from painchain_pipelines.connectors.gitlab.config import GitLabConfig, parse_config
from painchain_pipelines.connectors.gitlab.streams import STREAMS
from painchain_pipelines.connectors.gitlab.streams.base import (
    PER_PAGE,
    Context,
    Live,
    Project,
    Stream,
    Tuning,
)

log = logging.getLogger(__name__)

STATE_VERSION = 1
MAX_MEMBERSHIP_PAGES = 10


@dataclass
class _Listing:
    """What the projects listing said: GitLab's clock and the projects it showed."""

    now: dt.datetime
    by_key: dict[str, dict] = field(default_factory=dict)  # path (lowercase) and str(id) -> simple project
    complete: bool = False  # unfiltered and every page read: a member project not in it is not a member


class GitLabConnector:
    id = "gitlab"
    description = (
        "GitLab changes as PainChain events: commits on the default and configured branches (late "
        "pushes included), merge requests opened/merged/closed, finished pipelines (each retry "
        "outcome), deployments and their final status, releases and tags. One partition per "
        "integration and UTC day; backfill any range from the UI or CLI. Live syncs are started by "
        "`gitlab_live_sensor`."
    )

    def __init__(self, tuning: Tuning | None = None, client_tuning: ClientTuning | None = None):
        self.tuning = tuning or Tuning()
        self.client_tuning = client_tuning or ClientTuning()

    # ------------------------------------------------------------------ public API

    def validate(self, integration: Integration) -> GitLabConfig:
        return parse_config(integration.config)

    def window_sync(self, integration: Integration, window: TimeWindow, sink: EventSink) -> SyncResult:
        config = self.validate(integration)
        stats = SyncStats(sources=list(config.projects))
        client = GitLabClient(config, stats, self.client_tuning)
        read_until = window.end
        try:
            listing = self._list_projects(client, config, since=None)
            read_until = min(read_until, listing.now)
            for name in config.projects:
                try:
                    info = self._resolve(client, name, listing, {})
                except SourceUnavailable as exc:
                    stats.failed_sources[name] = str(exc)
                    continue
                ctx = Context(client, self._project(info, config), self.tuning, listing.now)
                for stream in STREAMS:
                    try:
                        for event in stream.window(ctx, window):
                            stats.count(stream.name)
                            sink(event)
                    except SourceUnavailable as exc:
                        stats.failed_sources[f"{name} {stream.name}"] = str(exc)
        finally:
            client.close()
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
        stats = SyncStats(sources=list(config.projects))
        saved = _saved_projects(state)
        new_state: dict[str, Any] = {"version": STATE_VERSION, "projects": {}}
        client = GitLabClient(config, stats, self.client_tuning)
        lowers: list[dt.datetime] = []
        complete_from: list[dt.datetime] = []
        try:
            listing = self._list_projects(client, config, since=self._activity_since(config, saved, lookback))
            now = listing.now
            prefetched = self._group_merge_requests(client, config, listing, saved, stats)
            for name in config.projects:
                project_state = saved.get(name) or {}
                try:
                    info = self._resolve(client, name, listing, project_state)
                except SourceUnavailable as exc:
                    stats.failed_sources[name] = str(exc)
                    if project_state:
                        new_state["projects"][name] = project_state
                    continue
                read = self._live_project(client, config, name, info, listing, project_state, now, lookback,
                                          sink, stats, prefetched.get(int(info["id"])))
                new_state["projects"][name] = read["state"]
                lowers.append(read["lower"])
                complete_from.append(read["complete_from"])
        finally:
            client.close()
        self._fail_if_nothing_accessible(config, stats)
        start = min(lowers) if lowers else now - lookback
        window = TimeWindow(start, max(start, now))
        covered = None
        if not stats.failed_sources and complete_from:
            begin = max(complete_from)
            covered = TimeWindow(begin, max(begin, now))
        return SyncResult(stats=stats, state=new_state, window=window, covered=covered)

    def detect_changes(self, integration: Integration, state: dict[str, Any] | None) -> ChangeCheck:
        """One projects listing, then per project one pipelines and one deployments request
        (and one events request for a project inside GitLab's hour of activity throttling);
        stops at the first change."""
        config = self.validate(integration)
        stats = SyncStats(sources=list(config.projects))
        saved = _saved_projects(state)
        client = GitLabClient(config, stats, self.client_tuning)
        try:
            if any(name not in saved for name in config.projects):
                missing = next(name for name in config.projects if name not in saved)
                # Never synced: one request, so that a wrong token shows here (AuthError).
                self._list_projects(client, config, since=utcnow(), max_pages=1)
                return ChangeCheck(True, f"{missing}: never synced", stats)
            listing = self._list_projects(client, config, since=self._activity_since(config, saved, None))
            inaccessible = 0
            for name in config.projects:
                project_state = saved[name]
                info = listing.by_key.get(name.lower())
                if info is None and not project_state.get("member"):
                    try:
                        info = self._get_project(client, name)
                    except SourceUnavailable:
                        inaccessible += 1
                        continue
                project = self._project(info or project_state["info"], config)
                ctx = Context(client, project, self.tuning, listing.now)
                streams = project_state.get("streams") or {}
                read_at = parse_ts(project_state.get("read_at"))
                try:
                    reason, _ = self._activity_change(ctx, info, project_state, read_at)
                    if reason:
                        return ChangeCheck(True, f"{name}: {reason}", stats)
                    cursor = parse_ts(project_state.get("cursor")) or listing.now
                    lower = min(cursor, listing.now) - self.tuning.overlap
                    for stream in STREAMS:
                        if not stream.is_activity:
                            reason = stream.probe(ctx, streams.get(stream.name) or {}, lower)
                            if reason:
                                return ChangeCheck(True, f"{name}: {reason}", stats)
                except SourceUnavailable as exc:
                    if exc.status == 401:
                        raise auth_error(config.url) from None
                    return ChangeCheck(True, f"{name}: {exc}", stats)
        finally:
            client.close()
        return ChangeCheck(False, "no change", stats)

    # ------------------------------------------------------------------ projects

    def _activity_since(self, config: GitLabConfig, saved: dict, lookback: dt.timedelta | None) -> dt.datetime | None:
        """The last_activity_after of the listing: before the oldest last read, by `activity_lag`
        (None: list every project, for the first sync of a project)."""
        reads = [parse_ts((saved.get(name) or {}).get("read_at")) for name in config.projects]
        if any(r is None for r in reads):
            return None
        return min(reads) - self.tuning.activity_lag

    def _list_projects(self, client: GitLabClient, config: GitLabConfig, since: dt.datetime | None,
                       max_pages: int = MAX_MEMBERSHIP_PAGES) -> _Listing:
        params: dict[str, Any] = {"membership": "true", "simple": "true", "per_page": PER_PAGE,
                                  "order_by": "last_activity_at", "sort": "desc"}
        if since is not None:
            params["last_activity_after"] = iso(since)
        listing = _Listing(now=utcnow())
        wanted = {name.lower() for name in config.projects}
        found: set[str] = set()
        try:
            pages = 0
            for page in client.pages("/projects", params, "projects"):
                pages += 1
                if page.server_time is not None and pages == 1:
                    listing.now = page.server_time
                for item in page.data:
                    keys = {str(item.get("id")), (item.get("path_with_namespace") or "").lower()}
                    for key in keys:
                        listing.by_key[key] = item
                    found |= keys & wanted
                if page.next_params is None:
                    listing.complete = since is None
                    break
                if pages >= max_pages or found == wanted:
                    break
        except SourceUnavailable as exc:
            if exc.status == 401:
                raise auth_error(config.url) from None
            raise ConnectorError(f"GitLab projects list: {exc}") from None
        if client.server_time is None:
            log.warning("GitLab's answer has no Date header; using this host's clock")
        return listing

    def _get_project(self, client: GitLabClient, name: str) -> dict:
        return client.get(GitLabClient.project_path(name), None, name).data

    def _resolve(self, client: GitLabClient, name: str, listing: _Listing, project_state: dict) -> dict:
        """The project's simple representation: from the listing, else from the state when the
        project is a member one (the listing then says it had no activity), else one GET."""
        info = listing.by_key.get(name.lower())
        if info is not None:
            return {**info, "_member": True}
        if project_state.get("member") and project_state.get("info"):
            return {**project_state["info"], "_listed": False, "_member": True}
        info = self._get_project(client, name)
        return {**info, "_member": False}

    def _project(self, info: dict, config: GitLabConfig) -> Project:
        default = info.get("default_branch") or "main"
        branches = () if config.all_branches else tuple(dict.fromkeys((default, *config.branches)))
        return Project(id=int(info["id"]), path=info.get("path_with_namespace") or str(info["id"]),
                       default_branch=default, web_url=(info.get("web_url") or "").rstrip("/"),
                       branches=branches, all_branches=config.all_branches)

    @staticmethod
    def _fail_if_nothing_accessible(config: GitLabConfig, stats: SyncStats) -> None:
        if config.projects and all(name in stats.failed_sources for name in config.projects):
            reasons = [stats.failed_sources[name] for name in config.projects]
            if all("HTTP 401" in r for r in reasons):
                raise auth_error(config.url)
            details = "; ".join(f"{k}: {v}" for k, v in stats.failed_sources.items())
            raise ConfigError("projects", f"none of the projects can be read with this token ({details})")

    # ------------------------------------------------------------------ activity

    def _activity_change(self, ctx: Context, info: dict | None, project_state: dict,
                         read_at: dt.datetime | None, ask: bool = True) -> tuple[str | None, int | None]:
        """(why the activity streams of a project must be read, or None; the newest event id if
        it was asked for).

        `info` is the project as listed (None or `_listed` False: not listed, so no activity
        since the listing's lower bound). last_activity_at moved since our last read: activity.
        Otherwise, while it is within GitLab's hour of throttling before our read, activity may
        have left it unmoved: the newest project event (pushes, merge requests, tags) and the
        newest release (releases make no event) tell.
        """
        if read_at is None:
            return "never read", None
        if info is None or info.get("_listed") is False:
            return None, None
        last_activity = parse_ts(info.get("last_activity_at"))
        if last_activity is None:
            return "no last_activity_at", None
        saved_activity = parse_ts(project_state.get("last_activity_at"))
        if saved_activity is None or last_activity > saved_activity:
            return f"activity at {iso(last_activity)}", None
        if read_at >= last_activity + self.tuning.activity_lag:
            return None, None  # read after its throttling hour: activity since would have moved it
        # Read inside the throttling hour: activity after our read may have left it unmoved.
        if ctx.now >= last_activity + self.tuning.activity_lag:
            return "catch-up after GitLab's activity throttling hour", None
        if self.tuning.events_in_throttle_hour and ask:
            newest = self._newest_event_id(ctx, read_at)
            if newest is not None and newest != project_state.get("last_event_id"):
                return "new project events", newest
        return None, None

    def _newest_event_id(self, ctx: Context, since: dt.datetime) -> int | None:
        after = (since - dt.timedelta(days=1)).date().isoformat()  # `after` is a date, exclusive
        page = ctx.client.get(f"{ctx.project.api}/events", {"after": after, "sort": "desc", "per_page": 1},
                              f"{ctx.project.path} events")
        return page.data[0].get("id") if page.data else None

    # ------------------------------------------------------------------ live sync

    def _live_project(self, client: GitLabClient, config: GitLabConfig, name: str, info: dict, listing: _Listing,
                      project_state: dict, now: dt.datetime, lookback: dt.timedelta, sink: EventSink,
                      stats: SyncStats, merge_requests: list[dict] | None = None) -> dict:
        project = self._project(info, config)
        ctx = Context(client, project, self.tuning, now)
        if merge_requests is not None:
            ctx.shared["merge_requests"] = merge_requests
        streams_state: dict[str, dict] = {k: dict(v) for k, v in (project_state.get("streams") or {}).items()}
        read_at = parse_ts(project_state.get("read_at"))
        cursor = parse_ts(project_state.get("cursor"))
        first_read = read_at is None
        activity_lower = min(read_at, now) - self.tuning.overlap if read_at else now - lookback
        status_lower = min(cursor, now) - self.tuning.overlap if cursor else now - lookback
        kept_info = {k: info.get(k) for k in ("id", "path_with_namespace", "default_branch", "web_url")}
        new_state: dict[str, Any] = {
            "info": kept_info,
            "member": bool(info.get("_member")),
            "read_at": project_state.get("read_at"),
            "cursor": project_state.get("cursor"),
            "last_activity_at": project_state.get("last_activity_at"),
            "last_event_id": project_state.get("last_event_id"),
            "streams": streams_state,
        }

        try:
            reason, newest_event = self._activity_change(ctx, info, project_state, read_at)
        except SourceUnavailable as exc:
            if exc.status == 401:
                raise auth_error(config.url) from None
            reason, newest_event = f"events unreadable ({exc})", None
        activity_ok = True
        if reason:
            log.debug("%s: reading activity streams: %s", name, reason)
            # The newest event before reading (events made during the read count as new next
            # time); only worth a request while the project is inside the throttling hour.
            if newest_event is None and self.tuning.events_in_throttle_hour and _in_throttle_hour(info, now, self.tuning):
                try:
                    newest_event = self._newest_event_id(ctx, now)
                except SourceUnavailable:
                    newest_event = None
            for stream in STREAMS:
                if stream.is_activity:
                    ok = self._run_stream(stream, ctx, name, streams_state, activity_lower, first_read, sink, stats)
                    activity_ok = activity_ok and ok
            if activity_ok:
                new_state["read_at"] = iso(now)
                new_state["last_activity_at"] = info.get("last_activity_at") or new_state["last_activity_at"]
                new_state["last_event_id"] = newest_event
        elif read_at is not None and not _in_throttle_hour(info, read_at, self.tuning):
            # Nothing new in the activity streams up to now: the listing says so.
            new_state["read_at"] = iso(max(read_at, now))
        status_ok = True
        for stream in STREAMS:
            if not stream.is_activity:
                ok = self._run_stream(stream, ctx, name, streams_state, status_lower, cursor is None, sink, stats)
                status_ok = status_ok and ok
        if status_ok:
            new_state["cursor"] = iso(now)
        complete_from = max(activity_lower, status_lower) if activity_ok and status_ok else now
        return {"state": new_state, "lower": min(activity_lower, status_lower), "complete_from": complete_from}

    def _group_merge_requests(self, client: GitLabClient, config: GitLabConfig, listing: _Listing, saved: dict,
                              stats: SyncStats) -> dict[int, list[dict]]:
        """Merge requests of the projects about to be read, one list per top-level group shared by
        at least `group_merge_requests_min` of them (GET /groups/:id/merge_requests covers its
        subgroups): {project id: its MRs updated after the earliest cursor}. Projects of other
        groups, or of a group the token cannot list, are asked one by one."""
        by_root: dict[str, list[tuple[int, dt.datetime]]] = {}
        for name in config.projects:
            project_state = saved.get(name) or {}
            info = listing.by_key.get(name.lower())
            read_at = parse_ts(project_state.get("read_at"))
            if info is None or read_at is None or not project_state.get("member"):
                continue
            ctx = Context(client, self._project(info, config), self.tuning, listing.now)
            reason, _ = self._activity_change(ctx, info, project_state, read_at, ask=False)
            if reason:
                root = (info.get("path_with_namespace") or "").split("/")[0]
                by_root.setdefault(root, []).append((int(info["id"]), min(read_at, listing.now) - self.tuning.overlap))
        out: dict[int, list[dict]] = {}
        for root, members in by_root.items():
            if len(members) < self.tuning.group_merge_requests_min:
                continue
            lower = min(lower for _, lower in members)
            params = {"state": "all", "scope": "all", "order_by": "updated_at", "sort": "asc", "per_page": PER_PAGE,
                      "updated_after": iso(lower)}
            wanted = {pid: [] for pid, _ in members}
            try:
                for mr in client.items(f"/groups/{quote(root, safe='')}/merge_requests", params,
                                       f"group {root} merge requests"):
                    if mr.get("project_id") in wanted:
                        wanted[mr["project_id"]].append(mr)
            except SourceUnavailable as exc:
                if exc.status == 401:
                    raise auth_error(config.url) from None
                log.info("group %s merge requests cannot be listed (%s); asking project by project", root, exc)
                continue
            stats.add("group_merge_request_lists")
            out.update(wanted)
        return out

    def _run_stream(self, stream: Stream, ctx: Context, name: str, streams_state: dict, lower: dt.datetime,
                    first: bool, sink: EventSink, stats: SyncStats) -> bool:
        before = streams_state.get(stream.name) or {}
        working = _deep_copy(before)
        live = Live(lower=lower, state=working, first=first)
        try:
            for event in stream.live(ctx, live):
                stats.count(stream.name)
                sink(event)
        except SourceUnavailable as exc:
            if exc.status == 401:
                raise auth_error(ctx.client.config.url) from None
            stats.failed_sources[f"{name} {stream.name}"] = str(exc)
            return False  # keep the stream's previous state: the next sync reads it again
        streams_state[stream.name] = working
        return True


def _in_throttle_hour(info: dict, now: dt.datetime, tuning: Tuning) -> bool:
    """Whether activity after `now` could leave the project's last_activity_at unmoved."""
    last_activity = parse_ts(info.get("last_activity_at"))
    return last_activity is None or last_activity > now - tuning.activity_lag


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def _saved_projects(state: dict[str, Any] | None) -> dict[str, Any]:
    if (state or {}).get("version") == STATE_VERSION:
        return state.get("projects") or {}
    return {}


__all__ = ["ClientTuning", "GitLabConnector", "Tuning"]
