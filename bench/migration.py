"""How long upgrading an existing database takes: the migrations that index the events already
stored (0005: the free-text search index; 0006: hourly counts per tag), timed one by one on a
database of N events at the schema before them.

    python -m bench.migration [--events 1000000] [--postgres]

The events are bulk-loaded at the current schema (bench/backend_query.py), the two migrations are
undone, then applied again as `painchain db upgrade` applies them.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from alembic import command

from bench._support import machine, scratch_databases
from bench.backend_query import load_direct
from painchain_pipelines.backend.database import Database
from painchain_pipelines.backend.migrate import alembic_config, upgrade

INDEXING_MIGRATIONS = (("0005", "free-text search index"), ("0006", "hourly counts per tag"))


def downgrade(db: Database, revision: str) -> None:
    cfg = alembic_config()
    with db.write_connection() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    with scratch_databases(args.postgres, Path(tempfile.mkdtemp(prefix="painchain-migration-"))) as fresh:
        print(f"# migration benchmark — {machine()}, {'PostgreSQL' if args.postgres else 'SQLite'}, "
              f"{args.events:,} events")
        db = Database(fresh("painchain"), read_timeout=0, write_timeout=0)
        try:
            upgrade(db)
            load_direct(db, args.events)
            downgrade(db, "0004")
            for revision, what in INDEXING_MIGRATIONS:
                began = time.perf_counter()
                upgrade(db, revision)
                seconds = time.perf_counter() - began
                print(f"{revision} ({what}): {seconds:7.1f} s = {seconds / args.events * 1e6:6.1f} µs per event "
                      f"-> {seconds / args.events * 1e7 / 60:5.1f} min per 10 million events", flush=True)
        finally:
            db.dispose()


if __name__ == "__main__":
    main()
