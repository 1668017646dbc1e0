"""The contract every connector implements, and the pieces they share."""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def parse_time(value: str | dt.datetime | None) -> dt.datetime | None:
    """An ISO 8601 time from an API or a saved state (`Z` or an offset) as an aware UTC datetime;
    None for None, "" and text that is not a time (a hand-edited state must not stop a sync)."""
    if not value:
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if value.tzinfo is None:  # sources send offsets; a naive value is taken as UTC
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


def parse_http_date(value: str | None) -> dt.datetime | None:
    """An HTTP `Date` header (the source's clock) as an aware UTC datetime; None if absent or odd."""
    if not value:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:  # "-0000": UTC, as far as HTTP is concerned
        return moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc)


@dataclass(frozen=True)
class Event:
    """A PainChain event, as POST /api/events takes it (minus integrationId, added when posting)."""

    title: str
    connector: str
    project: str
    timestamp: dt.datetime
    external_id: str
    data: Mapping[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()

    def to_api(self, integration_id: str) -> dict[str, Any]:
        return {
            "title": self.title[:500],
            "connector": self.connector,
            "project": self.project,
            "timestamp": iso(self.timestamp),
            "externalId": self.external_id,
            "integrationId": integration_id,
            "data": dict(self.data),
            "tags": list(self.tags),
        }


@dataclass(frozen=True)
class TimeWindow:
    """Half-open [start, end) in UTC."""

    start: dt.datetime
    end: dt.datetime

    def __contains__(self, moment: dt.datetime | None) -> bool:
        return moment is not None and self.start <= moment < self.end

    def __str__(self) -> str:
        return f"{iso(self.start)} → {iso(self.end)}"


@dataclass(frozen=True)
class Integration:
    """An integration as the backend's connector read returns it (config with secrets)."""

    id: str
    name: str
    type: str
    config: Mapping[str, Any]
    tenant_id: str | None
    updated_at: str | None = None

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> "Integration":
        return cls(
            id=body["id"],
            name=body.get("name") or body["id"],
            type=body["type"],
            config=body.get("config") or {},
            tenant_id=body.get("tenantId"),
            updated_at=body.get("updatedAt"),
        )

    def __repr__(self) -> str:  # never print the config: it holds secrets
        return f"Integration(id={self.id!r}, name={self.name!r}, type={self.type!r})"


# ---------------------------------------------------------------- errors


class ConnectorError(Exception):
    """Base of the errors a connector raises on purpose; messages never contain secrets."""


class ConfigError(ConnectorError):
    """The integration's configuration is wrong: fail fast, do not retry."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"config field {field_name!r}: {message}")
        self.field = field_name


class AuthError(ConnectorError):
    """The source refused the credentials: fail fast, do not retry."""

    def __init__(self, message: str, field_name: str = "token"):
        super().__init__(message)
        self.field = field_name


class RateLimited(ConnectorError):
    """The source asks us to come back later; retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = max(1.0, retry_after)


class TransientError(ConnectorError):
    """Timeouts, 5xx, dropped connections that survived the inline retries: retry with backoff."""


# ---------------------------------------------------------------- results


@dataclass
class SyncStats:
    """What one sync (or change check) did. The common counts are fields; what only one kind of
    source has (304s, rate-limit headroom, relists) goes in `counters` (added up across syncs)
    and `gauges` (a level: the lowest across syncs is reported), named as the Dagster metadata
    shows them, e.g. counters["api_not_modified_304"], gauges["rate_limit_remaining"]."""

    events_fetched: int = 0
    api_requests: int = 0
    retries: int = 0
    per_stream: dict[str, int] = field(default_factory=dict)
    failed_sources: dict[str, str] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    gauges: dict[str, int] = field(default_factory=dict)

    def count(self, stream: str, n: int = 1) -> None:
        self.per_stream[stream] = self.per_stream.get(stream, 0) + n
        self.events_fetched += n

    def add(self, counter: str, n: int = 1) -> None:
        self.counters[counter] = self.counters.get(counter, 0) + n

    def merge(self, other: "SyncStats") -> None:
        """Add another part of the same sync (another window, another source)."""
        self.sources = list(dict.fromkeys([*self.sources, *other.sources]))
        self.events_fetched += other.events_fetched
        self.api_requests += other.api_requests
        self.retries += other.retries
        for key, value in other.per_stream.items():
            self.per_stream[key] = self.per_stream.get(key, 0) + value
        self.failed_sources.update(other.failed_sources)
        for key, value in other.counters.items():
            self.add(key, value)
        self.gauges.update(other.gauges)  # the latest level


EventSink = Callable[[Event], None]


@dataclass
class SyncResult:
    stats: SyncStats
    # The state to save once every emitted event is stored (None for window syncs: unchanged).
    state: dict[str, Any] | None
    # The span read (for reports): from the earliest lower bound of any source to the end.
    window: TimeWindow
    # The span in which every source was read completely, in the source's own clock; None when
    # a source could not be read. The orchestration marks the days inside it as synced.
    covered: TimeWindow | None = None


@dataclass
class ChangeCheck:
    changed: bool
    reason: str
    stats: SyncStats = field(default_factory=SyncStats)


class Connector(Protocol):
    """What every connector is: an id (as in metadata/<id>.json) and a configuration check that
    raises ConfigError naming the field. What else it can do it declares by implementing the
    capability protocols below; the orchestration wires only what a connector supports.

    Optional attributes: `description` (the Dagster asset's description) and `metadata_dir` (where
    `<id>.json` lives, for connectors not shipped in metadata/)."""

    id: str

    def validate(self, integration: Integration) -> Any: ...


@runtime_checkable
class SyncsWindows(Protocol):
    """Fetches everything that happened in a time window: backfills, reruns, reconciles."""

    def window_sync(self, integration: Integration, window: TimeWindow, sink: EventSink) -> SyncResult: ...


@runtime_checkable
class SyncsLive(Protocol):
    """Continues from the saved `state` (None on the first sync: then it reads `lookback`) and
    returns the new state; events go to `sink` as they are found."""

    def live_sync(
        self, integration: Integration, state: dict[str, Any] | None, sink: EventSink, lookback: dt.timedelta
    ) -> SyncResult: ...


@runtime_checkable
class ProbesChanges(Protocol):
    """Answers cheaply whether a live sync would find anything (conditional requests, versions)."""

    def detect_changes(self, integration: Integration, state: dict[str, Any] | None) -> ChangeCheck: ...


class WatchSession(Protocol):
    """What the orchestration gives a watching connector for one bounded segment of watching.

    The connector watches every integration `integrations()` returns (it changes while the segment
    runs: added, edited and removed integrations take effect within a minute), emits events as
    they happen, and calls `checkpoint` every few seconds with the state to resume from (e.g. the
    last resourceVersion per cluster × kind); the session stores the integration's events first and
    only then saves that state, so a resume never skips an event. It returns when `stopping()`."""

    def integrations(self) -> list[Integration]: ...

    def saved_state(self, integration: Integration) -> dict[str, Any] | None: ...

    def emit(self, integration: Integration, event: Event, stream: str = "events") -> None:
        """Store `event` (within a second); `stream` names its kind in the run's counts."""

    def checkpoint(self, integration: Integration, state: dict[str, Any]) -> None: ...

    def stats(self, integration: Integration) -> SyncStats: ...

    def report_problem(self, integration: Integration, source: str, problem: str | None) -> None:
        """A source (a cluster) that cannot be watched now, shown on the integration's card and in
        the run; None when it recovered."""

    def stopping(self) -> bool: ...

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True if the segment is ending (return soon)."""


@runtime_checkable
class Watches(Protocol):
    """Streams changes as they happen (Kubernetes watches) instead of polling: one segment of
    watching every integration, resumed from each one's saved state."""

    def watch(self, session: WatchSession) -> None: ...
