"""An in-memory connector for the orchestration tests: the framework is tested against the
contract, not only through GitHub. Its sources are lists of timestamped items; a test makes a
source fail, rate-limit or go quiet."""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from painchain_pipelines.connectors.base import (
    ChangeCheck,
    ConfigError,
    ConnectorError,
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

METADATA_DIR = Path(__file__).resolve().parent / "memory_metadata"


@dataclass
class MemorySource:
    items: list[tuple[dt.datetime, str]] = field(default_factory=list)  # (when, external id)
    fail_with: ConnectorError | None = None  # raised by every sync and probe until cleared
    syncs: int = 0
    probes: int = 0

    def add(self, when: dt.datetime, external_id: str) -> None:
        self.items.append((when, external_id))


class _Base:
    id = "memory"
    description = "In-memory test events."
    metadata_dir = METADATA_DIR

    def __init__(self) -> None:
        self.sources: dict[str, MemorySource] = {}
        self._lock = threading.Lock()

    def source(self, name: str) -> MemorySource:
        with self._lock:
            return self.sources.setdefault(name, MemorySource())

    def validate(self, integration: Integration) -> MemorySource:
        name = integration.config.get("source")
        if not isinstance(name, str) or not name:
            raise ConfigError("source", "name an in-memory source")
        return self.source(name)

    def _emit(self, source: MemorySource, window: TimeWindow, sink: EventSink, stats: SyncStats,
              integration: Integration) -> None:
        source.syncs += 1
        if source.fail_with is not None:
            raise source.fail_with
        stats.api_requests += 1
        stats.add("memory_reads")
        stats.sources = [integration.config["source"]]
        for when, external_id in sorted(source.items):
            if when in window:
                stats.count("items")
                sink(Event(title=external_id, connector=self.id, project=integration.config["source"],
                           timestamp=when, external_id=external_id))


class WindowsOnly(_Base):
    def window_sync(self, integration: Integration, window: TimeWindow, sink: EventSink) -> SyncResult:
        source, stats = self.validate(integration), SyncStats()
        self._emit(source, window, sink, stats, integration)
        return SyncResult(stats=stats, state=None, window=window, covered=window)


class LiveOnly(_Base):
    def live_sync(self, integration: Integration, state: dict[str, Any] | None, sink: EventSink,
                  lookback: dt.timedelta) -> SyncResult:
        source, stats, now = self.validate(integration), SyncStats(), utcnow()
        since = parse_time(state["until"]) if state else now - lookback
        window = TimeWindow(since, now)
        self._emit(source, window, sink, stats, integration)
        return SyncResult(stats=stats, state={"until": iso(now)}, window=window, covered=window)


class MemoryConnector(WindowsOnly, LiveOnly):
    """Every capability: windows, live, and a change probe."""

    def detect_changes(self, integration: Integration, state: dict[str, Any] | None) -> ChangeCheck:
        source = self.validate(integration)
        source.probes += 1
        if source.fail_with is not None:
            raise source.fail_with
        if not state:
            return ChangeCheck(True, "never synced")
        since = parse_time(state["until"])
        newer = sum(1 for when, _ in source.items if when >= since)
        return ChangeCheck(bool(newer), f"{newer} new items" if newer else "no change")


class NothingToOrchestrate(_Base):
    pass


class Watcher(_Base):
    """Streams each source's items as they are added, resuming from the count already stored."""

    poll_s = 0.05

    def watch(self, session) -> None:
        while not session.stopping():
            for integration in session.integrations():
                name = integration.config.get("source", "")
                source = self.source(name)
                if source.fail_with is not None:
                    session.report_problem(integration, name, str(source.fail_with))
                    continue
                session.report_problem(integration, name, None)
                seen = (session.saved_state(integration) or {}).get("seen", 0)
                new = source.items[seen:]
                for when, external_id in new:
                    session.emit(integration, Event(title=external_id, connector=self.id, project=name,
                                                    timestamp=when, external_id=external_id), stream="items")
                if new:
                    session.stats(integration).add("memory_watch_reads")
                    session.checkpoint(integration, {"seen": seen + len(new)})
            session.wait(self.poll_s)
