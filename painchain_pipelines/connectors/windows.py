"""What the window syncs (backfills) of the GitHub and GitLab connectors share: read every source
(repository, project) part by part (a stream, or one request kind of it), keep the events whose
timestamp is in the window, record what could not be read, and say what span was covered."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

from painchain_pipelines.connectors.base import Event, EventSink, SyncResult, SyncStats, TimeWindow

# A source's parts: (name counted in the stats, its events — read lazily, may raise).
Parts = Iterable[tuple[str, Iterable[Event]]]


def read_window(window: TimeWindow, sources: Iterable[str], parts_of: Callable[[str], Parts],
                unavailable: type[Exception], stats: SyncStats, sink: EventSink) -> None:
    """For each source, `parts_of(source)`: raising `unavailable` makes it a failed source (the
    others are read). Each part's events whose timestamp is in the window go to `sink`, counted
    per part; a part raising `unavailable` is a failed source `"<source> <part>"` (the source's
    other parts are read). Other errors (auth, rate limit, transient) propagate."""
    for source in sources:
        try:
            parts = parts_of(source)
        except unavailable as exc:
            stats.failed_sources[source] = str(exc)
            continue
        for part, events in parts:
            try:
                for event in events:
                    if event.timestamp in window:
                        stats.count(part)
                        sink(event)
            except unavailable as exc:
                stats.failed_sources[f"{source} {part}"] = str(exc)


def window_result(window: TimeWindow, stats: SyncStats, read_until: dt.datetime) -> SyncResult:
    """A window sync's result: it covered its window up to `read_until` (the service's clock,
    for a window reaching past it), or nothing when a source or part failed."""
    covered = None if stats.failed_sources else TimeWindow(window.start, max(window.start, read_until))
    return SyncResult(stats=stats, state=None, window=window, covered=covered)


__all__ = ["Parts", "read_window", "window_result"]
