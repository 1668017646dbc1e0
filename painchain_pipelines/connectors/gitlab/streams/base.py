"""What every GitLab stream (one kind of event) shares: the project it reads, the sync's clock,
and a small Stream base class. A stream holds its requests, its probe, its state and its
transform; the connector only decides which streams run for which project."""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from painchain_pipelines.connectors.base import Event, TimeWindow, iso, parse_time
from painchain_pipelines.connectors.gitlab.client import GitLabClient

CONNECTOR = "gitlab"
PER_PAGE = 100


@dataclass
class Project:
    """One project as this sync sees it."""

    id: int
    path: str  # path_with_namespace, e.g. acme/platform/api
    default_branch: str | None
    web_url: str
    branches: tuple[str, ...]  # the branches followed (default first), () with all_branches
    all_branches: bool = False

    @property
    def api(self) -> str:
        return f"/projects/{self.id}"

    def external_id(self, *parts: Any) -> str:
        return ":".join(["gitlab", str(self.id), *(str(p) for p in parts)])

    def event(self, title: str, timestamp: dt.datetime, external_id: str, data: dict) -> Event:
        return Event(title=title, connector=CONNECTOR, project=self.path, timestamp=timestamp,
                     external_id=external_id, data={"projectId": self.id, "project": self.path, **data})


@dataclass
class Tuning:
    # Re-read this much before the previous live sync's GitLab time (clock skew, transactions
    # committed late, updated_at rounded): changes inside it are deduplicated by the state.
    overlap: dt.timedelta = dt.timedelta(minutes=10)
    # The events feed (GET /events?scope=all) is read newest first until past the cursor; more
    # pages than this (or a cursor older than `events_horizon`) and the sync reads every
    # project's activity streams instead (what the feed would have said is not known).
    events_max_pages: int = 20
    events_horizon: dt.timedelta = dt.timedelta(days=365)
    # The projects listing (paths -> ids, default branches) is read again this often (1 request);
    # in between the state's copy is used (a rename or a new default branch is seen that late).
    projects_refresh: dt.timedelta = dt.timedelta(days=7)
    # A compare answer with this many commits may be capped (GitLab caps anonymous callers to the
    # newest 100): it is completed by comparing up to each parent not in it, at most this many rounds.
    compare_cap: int = 100
    compare_rounds: int = 20
    # Releases make no event. Each poll reads the newest releases of each top-level group (one
    # request) by released_at; a release created on an existing tag with a released_at older
    # than the cursor (backdated) does not show there, so each project's releases are also read
    # by creation once per `release_sweep` (one request per project): at most
    # `release_sweep_per_sync` due projects per live sync, every project overdue by twice the
    # period (the change check asks for a live sync then). 0: no sweep.
    release_sweep: dt.timedelta = dt.timedelta(days=1)
    release_sweep_per_sync: int = 2
    # Merge requests of projects sharing a top-level group come from one group list when at least
    # this many of them are read in a sync (0 or a huge number: always project by project).
    group_merge_requests_min: int = 3
    # How long after its committed date a commit may still reach a branch and be found by a
    # window sync or a first sync (later ones are found by live syncs, which follow the heads).
    late_push_slack: dt.timedelta = dt.timedelta(days=7)
    # Keys of already emitted changes kept in the state, to not emit them twice in the overlap.
    max_seen: int = 500


@dataclass
class Context:
    """The sync a stream runs in."""

    client: GitLabClient
    project: Project
    tuning: Tuning
    now: dt.datetime  # GitLab's clock when this sync began
    # What one stream learnt that saves another a request (e.g. the tags list shows releases).
    shared: dict[str, Any] = field(default_factory=dict)


@dataclass
class Live:
    """A live read of one stream: the lower bound of changes to report (GitLab's clock), the
    stream's saved state (mutated in place), and whether it runs first for this project."""

    lower: dt.datetime
    state: dict[str, Any] = field(default_factory=dict)
    first: bool = False


def seen_keys(state: dict) -> dict[str, str]:
    return state.setdefault("seen", {})


def remember(state: dict, key: str, at: dt.datetime | str | None, tuning: Tuning) -> bool:
    """Record `key` (a change already emitted) with its time; False if it was already known."""
    seen = seen_keys(state)
    if key in seen:
        return False
    seen[key] = at if isinstance(at, str) or at is None else iso(at)
    return True


def prune_seen(state: dict, oldest: dt.datetime, tuning: Tuning) -> None:
    """Forget emitted keys older than `oldest` (they can no longer be re-read), keep the newest."""
    seen = seen_keys(state)
    kept = {k: v for k, v in seen.items() if (parse_time(v) if v else oldest) >= oldest}
    if len(kept) > tuning.max_seen:
        kept = dict(sorted(kept.items(), key=lambda kv: kv[1] or "")[-tuning.max_seen:])
    state["seen"] = kept


class Stream(ABC):
    """One kind of event of a project."""

    name: ClassVar[str]
    # Whether changes of this stream are activity, read when the events feed (or the release
    # checks) says so: pushes, MRs, tags, releases. Pipeline and deployment status changes make no
    # event, so those streams are probed for every project every poll.
    is_activity: ClassVar[bool] = True

    @abstractmethod
    def window(self, ctx: Context, window: TimeWindow) -> Iterator[Event]:
        ...

    @abstractmethod
    def live(self, ctx: Context, live: Live) -> Iterator[Event]:
        ...

    def probe(self, ctx: Context, state: dict, lower: dt.datetime) -> str | None:
        """Why a live sync of this stream would find something (None: it would not). Only for
        streams that are not activity; the others are probed by the events feed."""
        return None


class StatusStream(Stream):
    """A stream of status changes (pipelines, deployments): GET /projects/:id/<name> by
    `updated_after`, ordered by updated_at (a status change moves updated_at). Status changes make
    no event in the events feed, so every live sync and change check asks every project: one
    request when nothing changed. Each listed version (`id@updated_at`) is remembered, final or
    not, so that the probe knows it and a status reached later (a retry) is news again."""

    is_activity = False
    noun: ClassVar[str]  # "pipeline"
    probe_size: ClassVar[int] = 20

    @abstractmethod
    def to_event(self, project: Project, item: dict) -> Event | None:
        """The event of one listed version (None: not a status worth an event)."""
        ...

    def _items(self, ctx: Context, updated_after: dt.datetime, updated_before: dt.datetime | None = None):
        params = {"order_by": "updated_at", "sort": "asc", "per_page": PER_PAGE, "updated_after": iso(updated_after),
                  "updated_before": iso(updated_before) if updated_before else None}
        return ctx.client.items(f"{ctx.project.api}/{self.name}", params, f"{ctx.project.path} {self.name}")

    @staticmethod
    def _key(item: dict) -> str:
        return f"{item['id']}@{item.get('updated_at')}"

    def window(self, ctx: Context, window: TimeWindow) -> Iterator[Event]:
        # Statuses reached inside the window: updated_at inside it (a later change replaces it).
        for item in self._items(ctx, window.start, window.end):
            event = self.to_event(ctx.project, item)
            if event is not None and event.timestamp in window:
                yield event

    def live(self, ctx: Context, live: Live) -> Iterator[Event]:
        for item in self._items(ctx, live.lower):
            new = remember(live.state, self._key(item), item.get("updated_at"), ctx.tuning)
            event = self.to_event(ctx.project, item)
            if new and event is not None:
                yield event
        prune_seen(live.state, ctx.now - 2 * ctx.tuning.overlap, ctx.tuning)

    def probe(self, ctx: Context, state: dict, lower: dt.datetime) -> str | None:
        """The most recently updated items since the cursor: any version not yet seen is news."""
        params = {"order_by": "updated_at", "sort": "desc", "per_page": self.probe_size, "updated_after": iso(lower)}
        page = ctx.client.get(f"{ctx.project.api}/{self.name}", params, f"{ctx.project.path} {self.name}")
        seen = seen_keys(state)
        for item in page.data:
            if self._key(item) not in seen:
                return f"{self.noun} {item['id']} is now {item.get('status')}"
        return None


def short(sha: str | None) -> str:
    return (sha or "")[:8]


def subject(message: str | None) -> str:
    text = (message or "").strip()
    return text.splitlines()[0][:200] if text else "(no message)"


def user_name(user: Any) -> str | None:
    if isinstance(user, dict):
        return user.get("username") or user.get("name")
    return None
