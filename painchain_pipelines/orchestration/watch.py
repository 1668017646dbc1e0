"""Watch runs: one run watches every integration of a streaming connector (Kubernetes) for a
bounded segment, then ends; the watch sensor starts the next segment so that one is always
running. The session below is what the connector sees (connectors/base.py WatchSession): it
keeps the integration list fresh, posts events within a second, and saves each integration's
resume state only after its events are stored."""

from __future__ import annotations

import datetime as dt
import logging
import statistics
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from painchain_pipelines.connectors.backend_client import (
    BackendClient,
    BackendError,
    BackendUnavailable,
    EventBuffer,
)
from painchain_pipelines.connectors.base import Event, Integration, SyncStats, Watches, utcnow
from painchain_pipelines.connectors.sync import SyncOutcome, report_error
from painchain_pipelines.orchestration.partitions import valid_partition_name
from painchain_pipelines.orchestration.tags import WATCH_UNTIL_TAG

log = logging.getLogger(__name__)

INTEGRATIONS_REFRESH_S = 15.0  # edits in the backend reach a running watch within this
FLUSH_INTERVAL_S = 0.5  # events wait at most this long before they are posted
MAX_LAG_SAMPLES = 20_000


@dataclass
class _Watched:
    integration: Integration
    buffer: EventBuffer
    stats: SyncStats = field(default_factory=SyncStats)
    lock: threading.Lock = field(default_factory=threading.Lock)
    pending_since: float | None = None
    state: dict[str, Any] | None = None
    state_loaded: bool = False
    problems: dict[str, str] = field(default_factory=dict)
    checkpoints: int = 0
    error: str | None = None


class BackendWatchSession:
    """A WatchSession backed by the PainChain backend, for one segment."""

    def __init__(self, client: BackendClient, connector_id: str, segment: dt.timedelta,
                 stop: threading.Event | None = None, clock=time.monotonic):
        self.client = client
        self.connector_id = connector_id
        self.stop = stop or threading.Event()
        self._clock = clock
        self.started = clock()
        self.ends = self.started + segment.total_seconds()
        self._watched: dict[str, _Watched] = {}
        self._lock = threading.Lock()
        self._listed: list[Integration] = []
        self._listed_at: float | None = None
        self.lags: deque[float] = deque(maxlen=MAX_LAG_SAMPLES)
        self._flusher = threading.Thread(target=self._flush_loop, name="watch-flush", daemon=True)
        self._flusher.start()

    # ---------------------------------------------------------------- WatchSession

    def integrations(self) -> list[Integration]:
        now = self._clock()
        if self._listed_at is None or now - self._listed_at >= INTEGRATIONS_REFRESH_S:
            try:
                listed = self.client.list_integrations(self.connector_id)
                self._listed = [i for i in listed if valid_partition_name(i.id)]
            except (BackendUnavailable, BackendError) as exc:
                log.warning("keeping the last integration list: the backend did not answer (%s)", exc)
            self._listed_at = now
            with self._lock:
                for integration in self._listed:  # an edit: the connector sees the new config
                    watched = self._watched.get(integration.id)
                    if watched is not None:
                        watched.integration = integration
        return list(self._listed)

    def saved_state(self, integration: Integration) -> dict[str, Any] | None:
        watched = self._entry(integration)
        with watched.lock:
            if not watched.state_loaded:
                watched.state = self.client.get_sync(integration).get("state") or None
                watched.state_loaded = True
            return watched.state

    def emit(self, integration: Integration, event: Event, stream: str = "events") -> None:
        watched = self._entry(integration)
        with watched.lock:
            watched.stats.count(stream)
            watched.buffer(event)
            if watched.pending_since is None:
                watched.pending_since = self._clock()

    def checkpoint(self, integration: Integration, state: dict[str, Any]) -> None:
        watched = self._entry(integration)
        with watched.lock:
            self._flush(watched)
            self.client.put_sync(watched.integration, status="success", state=state,
                                 stats=self.outcome(watched).report())
            watched.state, watched.state_loaded = state, True
            watched.checkpoints += 1

    def stats(self, integration: Integration) -> SyncStats:
        return self._entry(integration).stats

    def report_problem(self, integration: Integration, source: str, problem: str | None) -> None:
        watched = self._entry(integration)
        with watched.lock:
            before = dict(watched.problems)
            if problem is None:
                watched.problems.pop(source, None)
            else:
                watched.problems[source] = problem
            watched.stats.failed_sources = dict(watched.problems)
            if watched.problems != before and watched.problems:
                text = "; ".join(f"{s}: {p}" for s, p in sorted(watched.problems.items()))
                report_error(self.client, watched.integration, f"integration {integration.name!r} "
                             f"({integration.id}): {text}", stats=self.outcome(watched).report())

    def stopping(self) -> bool:
        return self.stop.is_set() or self._clock() >= self.ends

    def wait(self, seconds: float) -> bool:
        remaining = self.ends - self._clock()
        self.stop.wait(max(0.0, min(seconds, remaining)))
        return self.stopping()

    # ---------------------------------------------------------------- the run's side

    def close(self) -> list[SyncOutcome]:
        """End the segment: post what is pending; the outcome of every integration watched."""
        self.stop.set()
        self._flusher.join(timeout=5)
        outcomes = []
        for watched in list(self._watched.values()):
            with watched.lock:
                try:
                    self._flush(watched)
                except (BackendUnavailable, BackendError) as exc:
                    watched.error = f"integration {watched.integration.name!r} ({watched.integration.id}): " \
                                    f"events could not be stored: {exc}"
                outcomes.append(self.outcome(watched))
        return outcomes

    def outcome(self, watched: _Watched) -> SyncOutcome:
        integration = watched.integration
        return SyncOutcome(
            integration_id=integration.id, mode="watch", integration_name=integration.name,
            tenant_id=integration.tenant_id, stats=watched.stats, posted=watched.buffer.stats,
            duration_s=self._clock() - self.started, error=watched.error,
            error_kind="transient" if watched.error else None)

    def lag_summary(self) -> dict[str, float]:
        """Seconds from a change (the event's time) to its storage, over this segment."""
        if not self.lags:
            return {}
        ordered = sorted(self.lags)
        return {"lag_p50_seconds": round(statistics.median(ordered), 3),
                "lag_p95_seconds": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 3),
                "lag_max_seconds": round(ordered[-1], 3)}

    # ---------------------------------------------------------------- internals

    def _entry(self, integration: Integration) -> _Watched:
        with self._lock:
            watched = self._watched.get(integration.id)
            if watched is None:
                watched = self._watched[integration.id] = _Watched(integration, EventBuffer(self.client, integration))
            return watched

    def _flush(self, watched: _Watched) -> None:
        posted = watched.buffer.flush_with_events()
        watched.pending_since = None
        stored_at = utcnow()
        self.lags.extend(max(0.0, (stored_at - e.timestamp).total_seconds()) for e in posted)

    def _flush_loop(self) -> None:
        while not self.stop.wait(FLUSH_INTERVAL_S):
            for watched in list(self._watched.values()):
                if watched.pending_since is None:
                    continue
                with watched.lock:
                    try:
                        self._flush(watched)
                    except (BackendUnavailable, BackendError) as exc:
                        log.warning("posting events of %s failed, retried: %s", watched.integration.id, exc)


def watch_segment(connector: Watches, client: BackendClient, connector_id: str, segment: dt.timedelta,
                  stop: threading.Event, interrupts: tuple[type[BaseException], ...] = (),
                  ) -> tuple[list[SyncOutcome], dict[str, float]]:
    """One segment of watching; the outcome of each integration watched and the lag figures.
    One of `interrupts` (the run asked to stop) ends the segment early, like its end would."""
    session = BackendWatchSession(client, connector_id, segment, stop)
    try:
        connector.watch(session)
    except interrupts:
        log.info("asked to stop: the segment ends early")
    finally:
        outcomes = session.close()
    return outcomes, session.lag_summary()


MAX_HANDOFF_WAIT_S = 120  # a previous segment still running this long after its end is not waited for


def wait_for_previous_segment(instance, run_id: str | None, clock=time.monotonic) -> str | None:
    """Block until the segment this run takes over from has ended (its resume states are saved);
    what happened, for the log."""
    if not run_id:
        return None
    deadline = clock() + MAX_HANDOFF_WAIT_S
    while clock() < deadline:
        run = instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return f"took over from segment {run_id}"
        until = run.tags.get(WATCH_UNTIL_TAG)
        if until and dt.datetime.fromisoformat(until) + dt.timedelta(seconds=MAX_HANDOFF_WAIT_S) < utcnow():
            break
        time.sleep(0.2)
    return f"segment {run_id} has not ended in time; watching anyway (duplicates are dropped by the backend)"
