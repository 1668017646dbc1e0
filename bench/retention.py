"""Retention while ingesting: how long each prune batch holds the database, and what a client
posting single events sees before and during the prune.

    python -m bench.retention [--events 300000] [--days 180] [--before 10] [--postgres]

Events are loaded as bench.backend_query loads them (spread over the last 365 days, 30
integrations), then the backend runs as its own process with PAINCHAIN_RETENTION_DAYS=--days. One
client posts single events (`POST /api/events`) back to back for --before seconds, and goes on
while the orchestrator's call, `POST /api/retention/run`, is repeated until it answers done.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import requests
from sqlalchemy import text

from bench._support import backend_process, machine, percentile, scratch_databases
from bench.backend_query import load_direct
from painchain_pipelines.backend.database import Database
from painchain_pipelines.backend.migrate import upgrade
from painchain_pipelines.backend.services.events import HOUR_MS


class Poster(threading.Thread):
    """Posts one new event after another; latencies (ms) are kept per phase."""

    def __init__(self, api: str):
        super().__init__(daemon=True)
        self.api = api
        self.phase = "before"
        self.latencies: dict[str, list[float]] = {"before": [], "during": [], "after": []}
        self.stop = threading.Event()

    def run(self) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            body = {"title": "bench event", "connector": "github", "project": "org/bench", "externalId": uuid.uuid4().hex,
                    "integrationId": "int-00", "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            phase = self.phase
            started = time.perf_counter()
            response = session.post(self.api + "/events", json=body, timeout=60)
            elapsed = (time.perf_counter() - started) * 1000
            response.raise_for_status()
            self.latencies[phase].append(elapsed)


def rollups_are_exact(db: Database) -> bool:
    """event_counts and event_tag_counts equal a recount of the events."""
    with db.engine.connect() as conn:
        rollup = {(h, i): n for h, i, n in conn.execute(text(
            "SELECT hour_ts, integration_id, count FROM event_counts"))}
        rollup.update({(t, h, i): n for t, h, i, n in conn.execute(text(
            "SELECT tag, hour_ts, integration_id, count FROM event_tag_counts"))})
        recount = Counter((ts // HOUR_MS * HOUR_MS, i) for ts, i in conn.execute(text(
            "SELECT ts, integration_id FROM events")))
        recount.update((t, ts // HOUR_MS * HOUR_MS, i) for t, ts, i in conn.execute(text(
            "SELECT t.tag, e.ts, e.integration_id FROM event_tags AS t JOIN events AS e ON e.id = t.event_id")))
    return rollup == dict(recount)


def latency_line(label: str, samples: list[float]) -> str:
    return (f"{label:28s} p50 {percentile(samples, 50):6.1f} ms  p99 {percentile(samples, 99):6.1f} ms  "
            f"max {max(samples):6.1f} ms  ({len(samples)} posts)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--days", type=int, default=180, help="PAINCHAIN_RETENTION_DAYS (of 365 days loaded)")
    parser.add_argument("--before", type=float, default=10.0, help="seconds of posting before the prune")
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="painchain-retention-"))
    with scratch_databases(args.postgres, tmp) as fresh:
        measure(args, tmp, fresh("painchain"))


def measure(args: argparse.Namespace, tmp: Path, url: str) -> None:
    print(f"# retention benchmark — {machine()}, {'PostgreSQL' if args.postgres else 'SQLite'}, "
          f"{args.events:,} events over 365 days, keeping {args.days} days")
    db = Database(url, read_timeout=0, write_timeout=0)
    upgrade(db)
    load_direct(db, args.events)

    answers = []
    with backend_process(tmp / "data", url, PAINCHAIN_RETENTION_DAYS=str(args.days)) as api:
        poster = Poster(api)
        poster.start()
        time.sleep(args.before)
        poster.phase = "during"
        started = time.perf_counter()
        while True:
            response = requests.post(api + "/retention/run", timeout=120)
            response.raise_for_status()
            answers.append(response.json())
            if answers[-1]["done"]:
                break
        prune_s = time.perf_counter() - started
        poster.phase = "after"
        time.sleep(2)
        poster.stop.set()
        poster.join(60)

    removed = sum(a["removed"] for a in answers)
    batches = sum(a["batches"] for a in answers)
    worked = [a for a in answers if a["batches"]]
    print(f"removed {removed:,} events in {batches:,} batches over {len(answers)} calls, {prune_s:.1f} s "
          f"({removed / prune_s:,.0f} events/s)")
    print(f"batch (write lock held)      p50 {statistics.median(a['p50BatchMs'] for a in worked):6.1f} ms  "
          f"p95 {max(a['p95BatchMs'] for a in worked):6.1f} ms  max {max(a['maxBatchMs'] for a in worked):6.1f} ms  "
          f"(p50: median of the calls', p95: the worst call's)")
    print(latency_line("single POST before the prune", poster.latencies["before"]))
    print(latency_line("single POST during the prune", poster.latencies["during"]))
    print(f"hourly counts (and per tag) equal a recount of the events: {rollups_are_exact(db)}")
    db.dispose()


if __name__ == "__main__":
    main()
