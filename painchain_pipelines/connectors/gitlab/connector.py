"""The GitLab connector: window syncs (backfills) and live syncs (incremental, events-driven).

A live sync (or change check) of an integration starts with ONE request to GitLab's events feed
(`GET /events?scope=all&after=<date>&sort=desc`, every project the token is a member of), read
newest first until past the cursor: it authenticates, gives GitLab's clock (Date header) and
says *what* moved: which branch got pushes, which project got tag pushes or merge request
events. Only those are read: commits of the pushed branches (one compare each), the tags list
of projects with tag pushes, merge requests where MR events appeared (one group list when
several projects share a top-level group). Releases make no event: each poll reads the newest
releases of each top-level group (one request) and a slow sweep reads each project's releases by
creation once a day. Pipeline and deployment status changes are not events either, so every
project is asked for the pipelines and deployments updated after its cursor (one request each
when nothing changed). The projects listing resolves paths to ids on the first sync (then the
state's copy is used; re-read weekly). The feed is not throttled like `last_activity_at`, so
activity is reported at the next poll. A followed project the token is not a member of (public or
internal) is not in that feed: its own events are read (`GET /projects/:id/events`, one request
per poll).
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
    parse_time,
    utcnow,
)
from painchain_pipelines.connectors.gitlab.client import (
    ClientTuning,
    GitLabClient,
    SourceUnavailable,
    auth_error,
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
from painchain_pipelines.connectors.gitlab.streams.releases import release_project_path
from painchain_pipelines.connectors.windows import Parts, read_window, window_result

log = logging.getLogger(__name__)

STATE_VERSION = 1
MAX_MEMBERSHIP_PAGES = 10


@dataclass
class _Listing:
    """What the projects listing said: GitLab's clock and the projects it showed."""

    now: dt.datetime
    by_key: dict[str, dict] = field(default_factory=dict)  # path (lowercase) and str(id) -> simple project
    complete: bool = False  # unfiltered and every page read: a member project not in it is not a member


@dataclass
class _Changes:
    """What the events feed says moved in one project since the cursor."""

    branches: set[str] = field(default_factory=set)
    tags: bool = False
    merge_requests: bool = False


@dataclass
class _Plan:
    """What a live sync (or change check) reads, decided before reading the streams."""

    now: dt.datetime  # GitLab's clock at the start of the read: the next cursor
    listed_at: str | None = None
    infos: dict[str, dict] = field(default_factory=dict)  # configured name -> project (simple)
    failures: dict[str, str] = field(default_factory=dict)  # configured name -> why it cannot be read
    feed_used: bool = False
    stale: set[int] = field(default_factory=set)  # project ids whose last activity read failed
    feed_now: dt.datetime | None = None
    complete: bool = True  # False: the feed could not tell what moved; read every activity stream
    changes: dict[int, _Changes] = field(default_factory=dict)  # project id -> what moved
    seen_now: dict[str, str] = field(default_factory=dict)  # feed event ids read -> created_at
    releases: dict[int, list[dict]] = field(default_factory=dict)  # project id -> unknown new releases
    releases_by_project: set[int] = field(default_factory=set)  # group list unreadable: list per project
    sweep: dict[int, dt.datetime] = field(default_factory=dict)  # project id -> releases read since (sweep)
    reason: str | None = None  # (change check) why a live sync would read something


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
        try:
            listing = self._list_projects(client, config, since=None)

            def parts_of(name: str) -> Parts:
                ctx = Context(client, self._project(self._resolve(client, name, listing, {}), config), self.tuning,
                              listing.now)
                return ((stream.name, stream.window(ctx, window)) for stream in STREAMS)

            read_window(window, config.projects, parts_of, SourceUnavailable, stats, sink)
        finally:
            client.close()
        self._fail_if_nothing_accessible(config, stats)
        # A window reaching past GitLab's clock is read only up to GitLab's now.
        return window_result(window, stats, min(window.end, listing.now))

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
        client = GitLabClient(config, stats, self.client_tuning)
        lowers: list[dt.datetime] = []
        complete_from: list[dt.datetime] = []
        try:
            plan = self._plan(client, config, state, stats)
            now = plan.now
            new_state: dict[str, Any] = {"version": STATE_VERSION, "projects": {}, "listed_at": plan.listed_at}
            prefetched = self._group_merge_requests(client, config, plan, stats, saved)
            for name in config.projects:
                project_state = saved.get(name) or {}
                info = plan.infos.get(name)
                if info is None:
                    stats.failed_sources[name] = plan.failures.get(name, "not found")
                    if project_state:
                        new_state["projects"][name] = project_state
                    continue
                read = self._live_project(client, config, name, info, plan, project_state, lookback, sink, stats,
                                          prefetched.get(int(info["id"])))
                new_state["projects"][name] = read["state"]
                lowers.append(read["lower"])
                complete_from.append(read["complete_from"])
            # A project whose activity read failed keeps its read_at: older than the feed's cursor,
            # it is read in full (from its read_at) by the next sync.
            new_state["events"] = {"cursor": iso(now), "seen": plan.seen_now}
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
        """The events feed (one request when fewer than 100 events since the cursor), the newest
        releases of each top-level group (one request each), then per project one pipelines and
        one deployments request; stops at the first change. Says "changed" exactly when a live
        sync would read something new."""
        config = self.validate(integration)
        stats = SyncStats(sources=list(config.projects))
        saved = _saved_projects(state)
        client = GitLabClient(config, stats, self.client_tuning)
        try:
            missing = next((name for name in config.projects
                            if not (saved.get(name) or {}).get("info") or not (saved.get(name) or {}).get("read_at")),
                           None)
            if missing is not None or not (state or {}).get("events"):
                # Never synced: one request, so that a wrong token shows here (AuthError).
                self._list_projects(client, config, since=utcnow(), max_pages=1)
                return ChangeCheck(True, f"{missing or 'events feed'}: never synced", stats)
            plan = self._plan(client, config, state, stats, probe=True)
            if plan.reason:
                return ChangeCheck(True, plan.reason, stats)
            for name in config.projects:
                project_state = saved[name]
                project = self._project(project_state["info"], config)
                ctx = Context(client, project, self.tuning, plan.now)
                streams = project_state.get("streams") or {}
                cursor = parse_time(project_state.get("cursor")) or plan.now
                lower = min(cursor, plan.now) - self.tuning.overlap
                try:
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

    # ------------------------------------------------------------------ what changed

    def _plan(self, client: GitLabClient, config: GitLabConfig, state: dict[str, Any] | None, stats: SyncStats,
              probe: bool = False) -> _Plan:
        """Which projects and streams a live sync reads: the projects (from the state, the listing
        when due), then the events feed since the cursor (what moved: branches, tags, MRs), the
        newest releases of each group, and whether the periodic release check is due. With
        `probe`, stops at the first reason to sync (`plan.reason`)."""
        saved = _saved_projects(state)
        events_state = (state or {}).get("events") if (state or {}).get("version") == STATE_VERSION else None
        plan = _Plan(now=utcnow())
        listed_at = parse_time((state or {}).get("listed_at"))
        first = (any(not (saved.get(name) or {}).get("info") for name in config.projects)
                 or listed_at is None or events_state is None)
        listing = None
        if first and not probe:
            listing = self._list_projects(client, config, since=None)
            plan.now, plan.listed_at = listing.now, iso(listing.now)
        self._resolve_all(client, config, plan, listing, saved)
        # The events feed: what moved since the cursor.
        cursor = parse_time((events_state or {}).get("cursor"))
        if cursor is not None:
            plan.feed_used = True
            for name, info in plan.infos.items():
                read_at = parse_time((saved.get(name) or {}).get("read_at"))
                if read_at is not None and read_at < cursor:  # its last activity read failed
                    plan.stale.add(int(info["id"]))
                    if probe:
                        plan.reason = f"{name}: activity not read since {iso(read_at)} (a read failed)"
                        return plan
            self._read_feed(client, config, plan, saved, cursor, (events_state or {}).get("seen") or {}, probe)
            if probe and plan.reason:
                return plan
        elif listing is not None:
            # First sync: every project is read in full; the feed is read only to know which of
            # its events (within the overlap) that read already covers.
            self._read_feed(client, config, plan, saved, listing.now, {}, False)
            plan.changes.clear()
        if listing is None:
            plan.now = plan.feed_now or client.server_time or plan.now
            plan.listed_at = iso(listed_at) if listed_at else None
            if not probe and listed_at is not None and plan.now - listed_at >= self.tuning.projects_refresh:
                # Paths, ids and default branches again (renames, new default branch): 1 request.
                refreshed = self._list_projects(client, config, since=None)
                plan.listed_at = iso(refreshed.now)
                self._resolve_all(client, config, plan, refreshed, saved)
        # Releases make no event: the newest of each group, and the periodic check.
        self._release_news(client, config, plan, saved, probe)
        return plan

    def _resolve_all(self, client: GitLabClient, config: GitLabConfig, plan: _Plan, listing: _Listing | None,
                     saved: dict) -> None:
        """Each project's simple representation: from the listing, else the state's copy, else
        one GET (a project the token is not a member of: first seen, and again at each listing
        refresh, so that a new default branch or path is seen as for member projects). A member
        project no longer listed by a complete listing is asked too: when the token lost its
        membership its events left the feed, so its activity is read in full (`plan.stale`)."""
        for name in config.projects:
            project_state = saved.get(name) or {}
            kept = project_state.get("info")
            info = listing.by_key.get(name.lower()) if listing else None
            if info is not None:
                plan.infos[name] = {**info, "_member": True}
                plan.failures.pop(name, None)
                continue
            if kept and (listing is None or (project_state.get("member") and not listing.complete)):
                plan.infos[name] = {**kept, "_member": bool(project_state.get("member"))}
                continue
            try:
                info = {**self._get_project(client, str(kept["id"]) if kept else name), "_member": False}
            except SourceUnavailable as exc:
                if exc.status == 401:
                    raise auth_error(config.url) from None
                if name not in plan.infos:  # (at a refresh the state's copy is kept: its reads will tell)
                    plan.failures[name] = str(exc)
                continue
            plan.infos[name] = info
            plan.failures.pop(name, None)
            if project_state.get("member") and project_state.get("read_at"):
                plan.stale.add(int(info["id"]))

    def _read_feed(self, client: GitLabClient, config: GitLabConfig, plan: _Plan, saved: dict,
                   cursor: dt.datetime, seen: dict, probe: bool) -> None:
        """Reads `GET /events?scope=all` newest first down to `cursor - overlap` (every project the
        token is a member of; a followed project it is not a member of is asked for its own
        events). Fills plan.changes {project id: _Changes}; plan.complete False when the feed
        could not tell (too many pages, cursor too old)."""
        lower = cursor - self.tuning.overlap
        by_id = {int(info["id"]): (name, info) for name, info in plan.infos.items()}
        after = (lower - dt.timedelta(days=1)).date().isoformat()  # a date, exclusive, in UTC
        params = {"after": after, "sort": "desc", "per_page": PER_PAGE}
        sources = [("/events", "events feed", None)]
        sources += [(f"/projects/{info['id']}/events", f"{name} events", int(info["id"]))
                    for name, info in plan.infos.items() if not info.get("_member")]
        for path, what, only in sources:
            pages = 0
            try:
                for page in client.pages(path, {"scope": "all", **params} if only is None else params, what):
                    pages += 1
                    if plan.feed_now is None and page.server_time is not None:
                        plan.feed_now = page.server_time
                    if plan.feed_now is not None and plan.feed_now - cursor > self.tuning.events_horizon:
                        # GitLab may have pruned events since: the feed cannot tell
                        plan.complete = False
                        plan.reason = plan.reason or f"events feed: cursor {iso(cursor)} older than its horizon"
                        break
                    past = False
                    for event in page.data:
                        created = parse_time(event.get("created_at"))
                        if created is not None and created < lower:
                            past = True
                            break
                        if created is not None:
                            plan.seen_now[str(event.get("id"))] = event.get("created_at")
                        pid = event.get("project_id")
                        if (only is not None and pid != only) or pid not in by_id:
                            continue
                        if str(event.get("id")) in seen:
                            continue
                        name, info = by_id[pid]
                        reason = self._note_event(plan, name, info, config, event)
                        if reason and probe:
                            plan.reason = f"{name}: {reason}"
                            return
                    if past:
                        break
                    if pages >= self.tuning.events_max_pages and page.next_params is not None:
                        plan.complete = False
                        plan.reason = plan.reason or f"{what}: more than {pages} pages since the cursor"
                        break
            except SourceUnavailable as exc:
                if exc.status == 401:
                    raise auth_error(config.url) from None
                plan.complete = False
                plan.reason = plan.reason or f"{what} unreadable ({exc})"
                log.info("%s unreadable (%s): reading every project's activity", what, exc)
        if not plan.complete:
            plan.seen_now = {}
        # keep only what the next read (from now - overlap) can list again
        if plan.feed_now is not None:
            keep_from = plan.feed_now - 2 * self.tuning.overlap
            plan.seen_now = {k: v for k, v in plan.seen_now.items() if (parse_time(v) or keep_from) >= keep_from}

    def _note_event(self, plan: _Plan, name: str, info: dict, config: GitLabConfig, event: dict) -> str | None:
        """Records what a feed event says moved; returns why it matters (None: nothing followed)."""
        pid = int(info["id"])
        push = event.get("push_data") or {}
        changes = plan.changes.setdefault(pid, _Changes())
        if push:
            ref = push.get("ref")
            if push.get("ref_type") == "tag":
                changes.tags = True
                return f"tag {ref} pushed"
            followed = self._project(info, config).branches
            if config.all_branches or ref in followed:
                changes.branches.add(ref)
                return f"push to {ref}"
            return None
        if event.get("target_type") == "MergeRequest":
            changes.merge_requests = True
            return f"MR !{event.get('target_iid')} {event.get('action_name')}"
        return None

    def _release_news(self, client: GitLabClient, config: GitLabConfig, plan: _Plan, saved: dict,
                      probe: bool) -> None:
        """Releases make no event. Each poll: the newest releases (by released_at, down to the
        cursor) of each top-level group with followed projects (a project outside a group: its
        own list), plan.releases {project id: unknown releases}; then the release sweep."""
        cursor = min((parse_time((saved.get(name) or {}).get("read_at")) or plan.now for name in plan.infos),
                     default=plan.now)
        lower = min(cursor, plan.now) - self.tuning.overlap
        known = {int(info["id"]): set(((saved.get(name) or {}).get("streams") or {}).get("releases", {}).get("known", []))
                 for name, info in plan.infos.items() if (saved.get(name) or {}).get("read_at")}
        by_path = {(info.get("path_with_namespace") or "").lower(): int(info["id"]) for info in plan.infos.values()}
        roots: dict[str, list[int]] = {}
        for name, info in plan.infos.items():
            pid = int(info["id"])
            if pid not in known:
                continue  # never read: its first read lists its releases
            namespace = info.get("namespace") or {}
            root = (info.get("path_with_namespace") or "").split("/")[0]
            if namespace.get("kind") == "user" or not root:
                roots[f"project:{pid}"] = [pid]
            else:
                roots.setdefault(root, []).append(pid)
        for root, pids in roots.items():
            if root.startswith("project:"):
                path, what = f"/projects/{pids[0]}/releases", f"project {pids[0]} releases"
            else:
                path, what = f"/groups/{quote(root, safe='')}/releases", f"group {root} releases"
            params = {"sort": "desc", "per_page": PER_PAGE} if not root.startswith("project:") else \
                {"order_by": "released_at", "sort": "desc", "per_page": PER_PAGE}
            try:
                for release in client.items(path, params, what):
                    released = parse_time(release.get("released_at"))
                    if released is not None and released < lower:
                        break
                    pid = pids[0] if root.startswith("project:") else _project_of(release, root, by_path)
                    if pid not in known or release.get("tag_name") in known[pid]:
                        continue
                    plan.releases.setdefault(pid, []).append(release)
                    if probe:
                        plan.reason = f"project {pid}: release {release.get('tag_name')}"
                        return
            except SourceUnavailable as exc:
                if exc.status == 401:
                    raise auth_error(config.url) from None
                # e.g. a project access token cannot read the group: those projects one by one
                log.info("%s unreadable (%s); releases of its projects read one by one", what, exc)
                for pid in pids:
                    plan.releases_by_project.add(pid)
                if probe:
                    plan.reason = f"{what} unreadable"
                    return
        self._release_sweep(config, plan, saved, probe)

    def _release_sweep(self, config: GitLabConfig, plan: _Plan, saved: dict, probe: bool) -> None:
        """A release created on an existing tag with a released_at older than the cursor shows in
        no event and not at the top of the group's list: each project's releases are also read by
        creation once per `release_sweep`. A live sync sweeps at most `release_sweep_per_sync`
        due projects (stalest first) and every project overdue by twice the period; the change
        check says "changed" only for an overdue one (so an idle integration is swept too)."""
        period = self.tuning.release_sweep
        if not period:
            return
        due: list[tuple[dt.datetime, int]] = []
        for name, info in plan.infos.items():
            project_state = saved.get(name) or {}
            if not project_state.get("read_at"):
                continue  # its first read lists its releases
            checked = parse_time(project_state.get("releases_checked_at")) or plan.now - 2 * period
            if plan.now - checked >= period:
                due.append((checked, int(info["id"])))
        due.sort()
        for rank, (checked, pid) in enumerate(due):
            overdue = plan.now - checked >= 2 * period
            if probe:
                if overdue:
                    plan.reason = f"project {pid}: release sweep overdue"
                    return
                continue
            if overdue or rank < self.tuning.release_sweep_per_sync:
                plan.sweep[pid] = checked - self.tuning.overlap

    # ------------------------------------------------------------------ projects

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

    # ------------------------------------------------------------------ live sync

    def _live_project(self, client: GitLabClient, config: GitLabConfig, name: str, info: dict, plan: _Plan,
                      project_state: dict, lookback: dt.timedelta, sink: EventSink, stats: SyncStats,
                      merge_requests: list[dict] | None = None) -> dict:
        now = plan.now
        project = self._project(info, config)
        ctx = Context(client, project, self.tuning, now)
        streams_state: dict[str, dict] = {k: dict(v) for k, v in (project_state.get("streams") or {}).items()}
        read_at = parse_time(project_state.get("read_at"))
        cursor = parse_time(project_state.get("cursor"))
        first_read = read_at is None
        activity_lower = min(read_at, now) - self.tuning.overlap if read_at else now - lookback
        status_lower = min(cursor, now) - self.tuning.overlap if cursor else now - lookback
        kept_info = {k: info.get(k) for k in ("id", "path_with_namespace", "default_branch", "web_url")}
        kept_info["namespace"] = {"kind": (info.get("namespace") or {}).get("kind")}
        new_state: dict[str, Any] = {
            "info": kept_info,
            "member": bool(info.get("_member")),
            "read_at": project_state.get("read_at"),
            "cursor": project_state.get("cursor"),
            "releases_checked_at": project_state.get("releases_checked_at"),
            "streams": streams_state,
        }
        pid = int(info["id"])
        wanted = self._activity_to_read(project, plan, pid, first_read,
                                        (streams_state.get("commits") or {}).get("heads") or {})
        if merge_requests is not None:
            ctx.shared["merge_requests"] = merge_requests
        full = first_read or not plan.complete or not plan.feed_used or pid in plan.stale
        if not full:
            changes = plan.changes.get(pid) or _Changes()
            ctx.shared["moved_branches"] = set(changes.branches)
        if plan.releases.get(pid):
            ctx.shared["new_releases"] = plan.releases[pid]
        since = [plan.sweep[pid]] if pid in plan.sweep else []
        if pid in plan.releases_by_project or full:
            since.append(activity_lower)
        if since:
            ctx.shared["releases_since"] = min(since)
        if wanted:
            log.debug("%s: reading %s", name, ", ".join(sorted(wanted)))
        activity_ok = True
        for stream in STREAMS:
            if stream.is_activity and stream.name in wanted:
                ok = self._run_stream(stream, ctx, name, streams_state, activity_lower, first_read, sink, stats)
                activity_ok = activity_ok and ok
        if activity_ok:
            new_state["read_at"] = iso(now)
            if "releases_list" in wanted:  # every release created since the last check was listed
                new_state["releases_checked_at"] = iso(now)
        status_ok = True
        status_failed = 0
        for stream in STREAMS:
            if not stream.is_activity:
                ok = self._run_stream(stream, ctx, name, streams_state, status_lower, cursor is None, sink, stats)
                status_ok = status_ok and ok
                status_failed += not ok
        if status_ok:
            new_state["cursor"] = iso(now)
        elif status_failed == sum(1 for stream in STREAMS if not stream.is_activity) and activity_ok:
            # Every request failed: is the project itself gone for this token (its events then
            # leave the feed)? If so its activity is read in full once it is back.
            try:
                self._get_project(client, str(pid))
            except SourceUnavailable as exc:
                if exc.status == 401:
                    raise auth_error(config.url) from None
                new_state["read_at"] = project_state.get("read_at")
                activity_ok = False
                stats.failed_sources[name] = str(exc)
        complete_from = max(activity_lower, status_lower) if activity_ok and status_ok else now
        return {"state": new_state, "lower": min(activity_lower, status_lower), "complete_from": complete_from,
                "activity_ok": activity_ok}

    def _activity_to_read(self, project: Project, plan: _Plan, pid: int, first_read: bool,
                          heads: dict[str, str]) -> set[str]:
        """The activity streams a live sync reads for a project: all of them on its first read or
        when the feed could not tell; otherwise only what the feed (and the release checks) say."""
        if first_read or not plan.complete or not plan.feed_used or pid in plan.stale:
            return {"commits", "merge_requests", "tags", "releases", "releases_list"}
        changes = plan.changes.get(pid) or _Changes()
        wanted: set[str] = set()
        if changes.branches or (not project.all_branches and any(b not in heads for b in project.branches)):
            wanted.add("commits")
        if changes.merge_requests:
            wanted.add("merge_requests")
        if changes.tags:
            wanted |= {"tags", "releases"}
        if plan.releases.get(pid):
            wanted.add("releases")
        if pid in plan.sweep or pid in plan.releases_by_project:
            wanted |= {"releases", "releases_list"}
        return wanted

    def _group_merge_requests(self, client: GitLabClient, config: GitLabConfig, plan: _Plan,
                              stats: SyncStats, saved: dict) -> dict[int, list[dict]]:
        """Merge requests of the projects about to be read for them, one list per top-level group
        shared by at least `group_merge_requests_min` of them (GET /groups/:id/merge_requests
        covers its subgroups): {project id: its MRs updated after the earliest last read}.
        Projects of other groups, or of a group the token cannot list, are asked one by one."""
        by_root: dict[str, list[tuple[int, dt.datetime]]] = {}
        for name, info in plan.infos.items():
            project_state = saved.get(name) or {}
            read_at = parse_time(project_state.get("read_at"))
            if read_at is None or (info.get("namespace") or {}).get("kind") == "user":
                continue
            pid = int(info["id"])
            heads = ((project_state.get("streams") or {}).get("commits") or {}).get("heads") or {}
            if "merge_requests" in self._activity_to_read(self._project(info, config), plan, pid, False, heads):
                root = (info.get("path_with_namespace") or "").split("/")[0]
                by_root.setdefault(root, []).append((pid, min(read_at, plan.now) - self.tuning.overlap))
        out: dict[int, list[dict]] = {}
        for root, members in by_root.items():
            if len(members) < self.tuning.group_merge_requests_min:
                continue
            lower = min(lower for _, lower in members)
            params = {"state": "all", "scope": "all", "order_by": "updated_at", "sort": "asc", "per_page": PER_PAGE,
                      "updated_after": iso(lower)}
            wanted: dict[int, list[dict]] = {pid: [] for pid, _ in members}
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


def _project_of(release: dict, root: str, by_path: dict[str, int]) -> int | None:
    """The followed project of a release from a group list (its `tag_path` may start with the
    instance's relative URL, e.g. `/gitlab/acme/app/-/tags/v1`)."""
    path = (release_project_path(release) or "").lower()
    segments = path.split("/")
    for i in range(len(segments)):
        candidate = "/".join(segments[i:])
        if candidate.startswith(root.lower() + "/") and candidate in by_path:
            return by_path[candidate]
    return None


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
