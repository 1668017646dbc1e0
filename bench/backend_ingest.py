"""Ingest throughput: single-event POST, the batch endpoint, and raw executemany as the ceiling.

    python -m bench.backend_ingest [--single 2000] [--batches 30] [--rounds 3] [--postgres]

All three write the same rows into the same migrated schema (a fresh SQLite file each, or a fresh
PostgreSQL database with --postgres). The backend runs as its own process, as users run it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sqlite3
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import orjson
import requests
from sqlalchemy import insert, text

from bench._support import backend_process, machine
from painchain_pipelines.backend.database import Database
from painchain_pipelines.backend.migrate import upgrade
from painchain_pipelines.backend.models import Event, EventTag
from painchain_pipelines.backend.services.events import build_search_text

SCHEMA = {"fields": [
    {"key": "name", "label": "Name", "type": "text", "required": True},
    {"key": "tags", "label": "Tags", "type": "textarea", "required": True},
]}


def make_event(integration_id: str, n: int) -> dict:
    at = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=n * 7)
    sha = uuid.uuid5(uuid.NAMESPACE_OID, str(n)).hex + "00000000"
    return {
        "title": f"Commit to main: change number {n}",
        "connector": "bench",
        "project": f"org/repo-{n % 50}",
        "timestamp": at.isoformat().replace("+00:00", "Z"),
        "externalId": f"bench-commit-{sha}",
        "integrationId": integration_id,
        "data": {"sha": sha, "author": f"dev{n % 40}", "message": f"change number {n}", "branch": "main",
                 "url": f"https://github.com/org/repo-{n % 50}/commit/{sha}"},
        "tags": ["ci"] if n % 3 == 0 else [],
    }


def setup_integration(api: str) -> str:
    requests.post(api + "/integrations/types/register", json={
        "id": "bench", "displayName": "Bench", "configSchema": SCHEMA}, timeout=30).raise_for_status()
    response = requests.post(api + "/integrations", json={
        "type": "bench", "config": {"name": "bench", "tags": '["prod"]'}}, timeout=30)
    response.raise_for_status()
    return response.json()["id"]


def bench_single(api: str, integration_id: str, count: int) -> float:
    session = requests.Session()
    events = [make_event(integration_id, n) for n in range(count)]
    started = time.perf_counter()
    for body in events:
        assert session.post(api + "/events", json=body, timeout=30).status_code == 201
    return count / (time.perf_counter() - started)


def bench_batch(api: str, integration_id: str, batches: int, offset: int) -> float:
    session = requests.Session()
    payloads = [[make_event(integration_id, offset + b * 1000 + i) for i in range(1000)] for b in range(batches)]
    bodies = [orjson.dumps({"events": payload}) for payload in payloads]
    headers = {"content-type": "application/json"}
    started = time.perf_counter()
    for body in bodies:
        result = orjson.loads(session.post(api + "/events/batch", data=body, headers=headers, timeout=120).content)
        assert result["created"] == 1000, result
    return batches * 1000 / (time.perf_counter() - started)


def rows_for(integration_id: str, batches: int, offset: int) -> list[list[dict]]:
    out = []
    for b in range(batches):
        batch = []
        for i in range(1000):
            e = make_event(integration_id, offset + b * 1000 + i)
            ts = int(dt.datetime.fromisoformat(e["timestamp"]).timestamp() * 1000)
            batch.append({
                "tenant_id": None, "integration_id": integration_id, "connector": "bench",
                "project": e["project"], "title": e["title"], "external_id": e["externalId"], "ts": ts,
                "received_at": ts, "data": e["data"], "tags": ["prod", *e["tags"]],
                "search_text": build_search_text(e["title"], e["project"], e["data"]),
            })
        out.append(batch)
    return out


def prepare_raw_db(url: str, integration_id: str) -> Database:
    db = Database(url, read_timeout=0, write_timeout=0)  # the raw ceiling: no query budget
    upgrade(db)
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO connector_types VALUES ('bench','Bench','','','','{}',"
                          "CURRENT_TIMESTAMP,CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO integrations VALUES (:id,NULL,'bench','bench','{}',"
                          "CURRENT_TIMESTAMP,CURRENT_TIMESTAMP)"), {"id": integration_id})
    return db


def bench_raw_sqlalchemy(db: Database, batches: list[list[dict]]) -> float:
    """SQLAlchemy Core executemany, one transaction per 1,000 rows (no validation, no dedup answer)."""
    started = time.perf_counter()
    for batch in batches:
        with db.engine.begin() as conn:
            first = conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM events")).scalar() + 1
            conn.execute(insert(Event), batch)
            tag_rows = [{"event_id": first + i, "tag": t} for i, row in enumerate(batch) for t in row["tags"]]
            conn.execute(insert(EventTag), tag_rows)
    return sum(len(b) for b in batches) / (time.perf_counter() - started)


def bench_raw_sqlite3(path: Path, batches: list[list[dict]]) -> float:
    """The DB-API itself: sqlite3 executemany, one transaction per 1,000 rows."""
    import orjson

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    sql = ("INSERT INTO events (tenant_id, integration_id, connector, project, title, external_id, ts, "
           "received_at, data, tags, search_text) VALUES (?,?,?,?,?,?,?,?,?,?,?)")
    started = time.perf_counter()
    for batch in batches:
        conn.execute("BEGIN")
        cur = conn.execute("SELECT COALESCE(MAX(id), 0) FROM events")
        first = cur.fetchone()[0] + 1
        conn.executemany(sql, [
            (r["tenant_id"], r["integration_id"], r["connector"], r["project"], r["title"], r["external_id"],
             r["ts"], r["received_at"], orjson.dumps(r["data"]).decode(), orjson.dumps(r["tags"]).decode(),
             r["search_text"]) for r in batch])
        conn.executemany("INSERT INTO event_tags (event_id, tag) VALUES (?, ?)",
                         [(first + i, t) for i, r in enumerate(batch) for t in r["tags"]])
        conn.execute("COMMIT")
    conn.close()
    return sum(len(b) for b in batches) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--single", type=int, default=2000)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", action="store_true", help="use a fresh PostgreSQL database")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="painchain-bench-"))
    print(f"# ingest benchmark — {machine()}, {'PostgreSQL' if args.postgres else 'SQLite'}")

    def fresh_url(name: str) -> str:
        if not args.postgres:
            return f"sqlite:///{tmp / name}.db"
        from tests.support.databases import PostgresDatabases

        return PostgresDatabases().create()

    # Rounds alternate the endpoint and the raw ceiling, so that noise from the machine (a shared
    # VM) hits both alike; the ratio is of the medians.
    raw_id = str(uuid.uuid4())
    raw_db = prepare_raw_db(fresh_url("raw_sa"), raw_id)
    if not args.postgres:
        prepare_raw_db(fresh_url("raw_sqlite3"), raw_id).dispose()
    batch_rates, raw_sa_rates, raw_sqlite_rates = [], [], []
    with backend_process(tmp / "api", fresh_url("api")) as api:
        integration_id = setup_integration(api)
        single = bench_single(api, integration_id, args.single)
        for round_number in range(args.rounds):
            offset = args.single + round_number * args.batches * 1000
            batch_rates.append(bench_batch(api, integration_id, args.batches, offset=offset))
            rows = rows_for(raw_id, args.batches, offset=offset)
            raw_sa_rates.append(bench_raw_sqlalchemy(raw_db, rows))
            if not args.postgres:
                raw_sqlite_rates.append(bench_raw_sqlite3(tmp / "raw_sqlite3.db", rows))
    batch, raw_sa = statistics.median(batch_rates), statistics.median(raw_sa_rates)
    rounds = f"median of {args.rounds} rounds of {args.batches} batches"
    print(f"single POST /api/events      : {single:10,.0f} events/s  ({args.single} sequential requests)")
    print(f"POST /api/events/batch (1000): {batch:10,.0f} events/s  ({rounds}: {_rates(batch_rates)})")
    print(f"raw SQLAlchemy executemany   : {raw_sa:10,.0f} events/s  (same schema, 1000 rows/transaction: "
          f"{_rates(raw_sa_rates)})")
    print(f"batch / raw SQLAlchemy       : {batch / raw_sa:10.0%}   (target >= 50%)")
    if raw_sqlite_rates:
        raw_sqlite = statistics.median(raw_sqlite_rates)
        print(f"raw sqlite3 executemany      : {raw_sqlite:10,.0f} events/s  (DB-API alone, same rows: "
              f"{_rates(raw_sqlite_rates)})")
        print(f"batch / raw sqlite3          : {batch / raw_sqlite:10.0%}")


def _rates(rates: list[float]) -> str:
    return ", ".join(f"{rate:,.0f}" for rate in rates)

if __name__ == "__main__":
    main()
