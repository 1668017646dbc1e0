"""Retention: delete the events older than a cutoff, a small transaction at a time.

Each batch takes the oldest events (through ix_events_ts), deletes their tags and them, and
subtracts exactly the rows it deleted from the hourly rollups (event_counts, and per tag
event_tag_counts), all in one transaction: the histogram's rollups and its count of the events
keep agreeing, and the free-text index follows the events by itself (the database keeps it in
step). Between batches the write
lock is free, so a concurrent ingestion waits for one batch at most. PostgreSQL locks rows, not
the database: a batch gives up any lock wait after LOCK_WAIT_MS and is tried again, so an
ingestion touching the same hourly counts (late events for pruned hours) goes first, never
deadlocked (ingestion writes its counts in one statement, in no order we could follow).

SQLite: deleting an event dirties 2-2.5 pages (each index holds it somewhere else; random
external ids scatter the unique index). A batch that pushes the WAL past SQLite's
autocheckpoint (1,000 pages) pays the checkpoint and its fsync inside its commit, 60-80 ms with
the write lock held. So batches stay under that, and the prune checkpoints the WAL itself
between batches, without the lock (ingestion goes on meanwhile).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import bindparam, delete, func, literal, select, tuple_, update
from sqlalchemy.exc import OperationalError

from painchain_pipelines.backend.database import Database
from painchain_pipelines.backend.models import Event, EventCount, EventTag, EventTagCount
from painchain_pipelines.backend.schemas.common import iso_from_ms
from painchain_pipelines.backend.services.events import HOUR_MS

DAY_MS = 24 * HOUR_MS
# Batch sizes adapt to what the last batch cost (its time, and on SQLite the WAL pages it wrote),
# so a slower disk or a heavier free-text index shrinks batches instead of making ingestion wait
# longer. See docs/benchmarks.md, "Retention", for the measurements behind these figures.
DEFAULT_BATCH_ROWS = 2000  # the most
FIRST_BATCH_ROWS = 100
MIN_BATCH_ROWS = 20
TARGET_BATCH_MS = 25.0
TARGET_WAL_PAGES = 600  # well under SQLite's autocheckpoint threshold of 1,000
LOCK_WAIT_MS = 100  # what ingestion may wait for a batch on PostgreSQL, as on SQLite
BATCH_ATTEMPTS = 20
# PostgreSQL SQLSTATEs: deadlock_detected, lock_not_available (lock_timeout).
_RETRYABLE = {"40P01", "55P03"}

_SUBTRACT = (
    update(EventCount)
    .where(EventCount.hour_ts == bindparam("h"), EventCount.integration_id == bindparam("i"))
    .values(count=EventCount.count - bindparam("n"))
)
_DROP_EMPTY = delete(EventCount).where(
    EventCount.hour_ts == bindparam("h"), EventCount.integration_id == bindparam("i"), EventCount.count <= 0
)
_TAG_KEY = (EventTagCount.tag == bindparam("t"), EventTagCount.hour_ts == bindparam("h"),
            EventTagCount.integration_id == bindparam("i"))
_SUBTRACT_TAGS = update(EventTagCount).where(*_TAG_KEY).values(count=EventTagCount.count - bindparam("n"))
_DROP_EMPTY_TAGS = delete(EventTagCount).where(*_TAG_KEY, EventTagCount.count <= 0)


@dataclass
class PruneStats:
    cutoff_ms: int
    removed: int = 0
    batch_ms: list[float] = field(default_factory=list)
    done: bool = False

    @property
    def batches(self) -> int:
        return len(self.batch_ms)

    @property
    def max_batch_ms(self) -> float:
        return max(self.batch_ms, default=0.0)

    def percentile_ms(self, pct: float) -> float:
        """Nearest-rank percentile of the batch durations (0 without batches)."""
        if not self.batch_ms:
            return 0.0
        ordered = sorted(self.batch_ms)
        return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]

    def to_api(self) -> dict:
        return {
            "cutoff": iso_from_ms(self.cutoff_ms),
            "removed": self.removed,
            "batches": self.batches,
            "maxBatchMs": round(self.max_batch_ms, 1),
            "p50BatchMs": round(self.percentile_ms(50), 1),
            "p95BatchMs": round(self.percentile_ms(95), 1),
            "done": self.done,
        }


def cutoff_for(days: int, now_ms: int | None = None) -> int:
    """Epoch ms before which events are older than `days` days."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    return now_ms - days * DAY_MS


def count_prunable(db: Database, cutoff_ms: int) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(Event).where(Event.ts < cutoff_ms))


def prune_events(
    db: Database,
    cutoff_ms: int,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    max_seconds: float | None = None,
    api: bool = False,
) -> PruneStats:
    """Delete every event with ts < cutoff_ms, in batches of at most `batch_rows`, until none is
    left (`done`) or `max_seconds` have passed. `api=True`: each batch runs under the API's write
    budget."""
    stats = PruneStats(cutoff_ms)
    rows = min(batch_rows, FIRST_BATCH_ROWS)
    started = time.monotonic()
    # (ts, id) of the last event deleted: the next batch starts after it, so that PostgreSQL's
    # index scan does not wade through every dead entry the earlier batches left (before vacuum).
    after: tuple[int, int] | None = None
    while True:
        selected, removed, elapsed_s, last = _prune_batch(db, cutoff_ms, rows, api, after)
        if selected == 0:
            if after is None:
                stats.done = True
                return stats
            after = None  # one more look from the oldest: events that arrived late, behind us
            continue
        after = last
        stats.removed += removed
        stats.batch_ms.append(elapsed_s * 1000)
        scale = TARGET_BATCH_MS / max(elapsed_s * 1000, 1.0)
        if db.is_sqlite:
            paused = time.perf_counter()
            wal_pages = _checkpoint(db)
            scale = min(scale, TARGET_WAL_PAGES / max(wal_pages, 1))
            # A released threading.Lock is usually taken back by the thread that released it:
            # staying out at least as long as the batch took lets waiting writers (other
            # processes too) in.
            time.sleep(max(0.0, elapsed_s - (time.perf_counter() - paused)))
        rows = min(batch_rows, max(MIN_BATCH_ROWS, int(rows * min(2.0, scale))))
        if max_seconds is not None and time.monotonic() - started >= max_seconds:
            return stats


def _checkpoint(db: Database) -> int:
    """A passive checkpoint of the SQLite WAL, taking no write lock; the pages the WAL held."""
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        _busy, wal_pages, _copied = cursor.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        cursor.close()
    finally:
        raw.close()
    return max(wal_pages, 0)


def _prune_batch(db: Database, cutoff_ms: int, rows: int, api: bool, after: tuple[int, int] | None):
    for attempt in range(1, BATCH_ATTEMPTS + 1):
        try:
            return _delete_oldest(db, cutoff_ms, rows, api, after)
        except OperationalError as exc:
            # PostgreSQL: we gave way to another writer (or were a deadlock victim, e.g. against an
            # integration being deleted): do the batch again against fresh state, a moment later.
            if attempt == BATCH_ATTEMPTS or getattr(exc.orig, "sqlstate", None) not in _RETRYABLE:
                raise
            time.sleep(random.uniform(0.01, 0.05) * attempt)
    raise AssertionError("unreachable")


def _delete_oldest(
    db: Database, cutoff_ms: int, rows: int, api: bool, after: tuple[int, int] | None
) -> tuple[int, int, float, tuple[int, int] | None]:
    """(events selected, events deleted, seconds the transaction held the write lock, (ts, id) of
    the last event selected) of one batch."""
    with db.write_connection(api=api) as conn:
        began = time.perf_counter()  # after waiting for the lock: what others wait for is what follows
        if not db.is_sqlite:
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = {LOCK_WAIT_MS}")
        oldest = select(Event.ts, Event.id).where(Event.ts < cutoff_ms)
        if after is not None:
            oldest = oldest.where(tuple_(Event.ts, Event.id) > tuple_(literal(after[0]), literal(after[1])))
        selected = conn.execute(oldest.order_by(Event.ts, Event.id).limit(rows)).all()
        if not selected:
            return 0, 0, time.perf_counter() - began, None
        ids = [event_id for _ts, event_id in selected]
        # Explicitly rather than by ON DELETE CASCADE, which SQLite runs row by row: 25-35 % less
        # CPU per batch at these sizes (measured).
        tags = conn.execute(
            delete(EventTag).where(EventTag.event_id.in_(ids)).returning(EventTag.event_id, EventTag.tag)
        ).all()
        # What was really deleted (a concurrent deletion may have taken some) is what the rollups
        # lose; events ingested meanwhile for the same hours added their own counts.
        deleted = conn.execute(
            delete(Event).where(Event.id.in_(ids)).returning(Event.id, Event.ts, Event.integration_id)
        ).all()
        hour_of = {event_id: (ts // HOUR_MS * HOUR_MS, integration_id) for event_id, ts, integration_id in deleted}
        per_hour = Counter(hour_of.values())
        per_tag_hour = Counter((tag, *hour_of[event_id]) for event_id, tag in tags if event_id in hour_of)
        # Tables and keys in the order ingestion writes them (PostgreSQL: LOCK_WAIT_MS settles the rest).
        changes = [{"h": h, "i": i, "n": n} for (h, i), n in sorted(per_hour.items())]
        if changes:
            conn.execute(_SUBTRACT, changes)
            conn.execute(_DROP_EMPTY, [{"h": c["h"], "i": c["i"]} for c in changes])
        tag_changes = [{"t": t, "h": h, "i": i, "n": n} for (t, h, i), n in sorted(per_tag_hour.items())]
        if tag_changes:
            conn.execute(_SUBTRACT_TAGS, tag_changes)
            conn.execute(_DROP_EMPTY_TAGS, [{"t": c["t"], "h": c["h"], "i": c["i"]} for c in tag_changes])
    return len(ids), len(deleted), time.perf_counter() - began, tuple(selected[-1])
