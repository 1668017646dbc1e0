"""Query latency with 1,000,000 events: timeline first pages (filtered), a deep cursor page,
free-text search and 30-day histograms, measured over HTTP against the running backend.

    python -m bench.backend_query [--events 1000000] [--repeat 50] [--postgres]

Events are spread over the last 365 days (about 2,700 a day: a team with a few hundred repos
and clusters), 3 connectors, 30 integrations, 300 projects. They are loaded with bulk inserts
straight into the migrated schema (rows identical to what the API stores), then the backend is
started as its own process on that database.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import tempfile
import time
import uuid
from pathlib import Path

import orjson
import requests
from sqlalchemy import text

from bench._support import backend_process, machine, summarize
from painchain_pipelines.backend.database import Database
from painchain_pipelines.backend.migrate import upgrade
from painchain_pipelines.backend.services.events import build_search_text, encode_cursor

CONNECTORS = [("github", 0.5), ("gitlab", 0.25), ("kubernetes", 0.25)]
EVENT_TAGS = ["deploy", "ci", "hotfix", "release"]


def generate(count: int, seed: int = 1):
    rng = random.Random(seed)
    now_ms = int(time.time() * 1000)
    span_ms = 365 * 24 * 3600 * 1000
    integrations = []
    for i in range(30):
        connector = CONNECTORS[0][0] if i < 15 else CONNECTORS[1][0] if i < 22 else CONNECTORS[2][0]
        integrations.append((f"int-{i:02d}", connector, "prod" if i % 3 else "staging"))
    for n in range(count):
        integration_id, connector, env_tag = integrations[rng.randrange(30)]
        project = f"org/service-{rng.randrange(300):03d}"
        sha = uuid.UUID(int=rng.getrandbits(128)).hex + f"{n:08x}"
        kind = rng.choice(["Commit to main", "PR merged", "Workflow run succeeded", "Deployment to production"])
        title = f"{kind}: change {n} in {project}"
        data = {"sha": sha, "author": f"dev{rng.randrange(200)}", "message": f"change {n}",
                "url": f"https://example.com/{project}/{sha}"}
        tags = [env_tag] + ([rng.choice(EVENT_TAGS)] if rng.random() < 0.3 else [])
        yield {
            "tenant_id": None, "integration_id": integration_id, "connector": connector, "project": project,
            "title": title, "external_id": f"{connector}-{sha}", "ts": now_ms - rng.randrange(span_ms),
            "received_at": now_ms, "data": data, "tags": tags,
            "search_text": build_search_text(title, project, data),
        }


def load(db: Database, count: int) -> None:
    with db.engine.begin() as conn:
        for connector, _ in CONNECTORS:
            conn.execute(text("INSERT INTO connector_types VALUES (:c,:c,'','','','{}',CURRENT_TIMESTAMP,"
                              "CURRENT_TIMESTAMP)"), {"c": connector})
        for i in range(30):
            connector = "github" if i < 15 else "gitlab" if i < 22 else "kubernetes"
            conn.execute(text("INSERT INTO integrations VALUES (:i,NULL,:c,:i,'{}',CURRENT_TIMESTAMP,"
                              "CURRENT_TIMESTAMP)"), {"i": f"int-{i:02d}", "c": connector})
    raw = db.engine.raw_connection()
    cur = raw.cursor()
    placeholder = "?" if db.is_sqlite else "%s"
    insert_event = (f"INSERT INTO events (id, tenant_id, integration_id, connector, project, title, external_id, ts, "
                    f"received_at, data, tags, search_text) VALUES ({', '.join([placeholder] * 12)})")
    insert_tag = f"INSERT INTO event_tags (event_id, tag) VALUES ({placeholder}, {placeholder})"
    insert_count = (f"INSERT INTO event_counts (hour_ts, integration_id, tenant_id, connector, count) "
                    f"VALUES ({', '.join([placeholder] * 5)})")
    started = time.perf_counter()
    # In time order, as a live system receives them: the (.., ts, id) indexes then grow at the end.
    rows = sorted(generate(count), key=lambda r: r["ts"])
    hourly: dict[tuple[int, str], list] = {}
    for start in range(0, len(rows), 50_000):
        batch, tags = [], []
        for event_id, row in enumerate(rows[start:start + 50_000], start=start + 1):
            batch.append((event_id, None, row["integration_id"], row["connector"], row["project"], row["title"],
                          row["external_id"], row["ts"], row["received_at"], orjson.dumps(row["data"]).decode(),
                          orjson.dumps(row["tags"]).decode(), row["search_text"]))
            tags.extend((event_id, t) for t in row["tags"])
            key = (row["ts"] // 3_600_000 * 3_600_000, row["integration_id"])
            hourly.setdefault(key, [key[0], key[1], None, row["connector"], 0])[4] += 1
        cur.executemany(insert_event, batch)
        cur.executemany(insert_tag, tags)
        raw.commit()
    cur.executemany(insert_count, [tuple(v) for v in hourly.values()])
    if not db.is_sqlite:
        cur.execute("SELECT setval(pg_get_serial_sequence('events', 'id'), %s)", (len(rows) + 1,))
    raw.commit()
    cur.execute("ANALYZE")
    raw.commit()
    raw.close()
    print(f"loaded {count:,} events in {time.perf_counter() - started:.0f} s")


def timed(session: requests.Session, url: str, params: dict, repeat: int) -> tuple[list[float], dict]:
    session.get(url, params=params, timeout=120).raise_for_status()  # warm-up
    samples, body = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        response = session.get(url, params=params, timeout=120)
        samples.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        body = response.json()
    return samples, body


def deep_cursor(db: Database, offset: int, where: str = "", params: dict | None = None) -> str:
    with db.engine.connect() as conn:
        row = conn.execute(text(f"SELECT ts, id FROM events {where} ORDER BY ts DESC, id DESC "
                                f"LIMIT 1 OFFSET :o"), {"o": offset, **(params or {})}).one()
    return encode_cursor(row.ts, row.id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="painchain-query-"))
    if args.postgres:
        from tests.support.databases import PostgresDatabases

        databases = PostgresDatabases()
        url = databases.create()
    else:
        url = f"sqlite:///{tmp / 'painchain.db'}"
    print(f"# query benchmark — {machine()}, {'PostgreSQL' if args.postgres else 'SQLite'}, "
          f"{args.events:,} events over 365 days")
    db = Database(url, read_timeout=0, write_timeout=0)  # loading 1M rows and ANALYZE: no query budget
    upgrade(db)
    load(db, args.events)
    now = dt.datetime.now(dt.timezone.utc)
    iso = lambda d: d.isoformat().replace("+00:00", "Z")  # noqa: E731
    cases = [
        ("first page, no filter", "/events", {"limit": 50}),
        ("first page, connector+project", "/events", {"connector": "github", "project": "org/service-007", "limit": 50}),
        ("first page, integration, 24 h", "/events", {"integrationId": "int-03", "since": iso(now - dt.timedelta(days=1)), "limit": 50}),
        ("first page, tag 'hotfix'", "/events", {"tags": "hotfix", "limit": 50}),
        ("deep page (offset 500k), no filter", "/events", {"limit": 50, "cursor": deep_cursor(db, 500_000 * args.events // 1_000_000)}),
        ("deep page (offset 1k), project", "/events", {"project": "org/service-007", "limit": 50,
            "cursor": deep_cursor(db, 1000, "WHERE project = :p", {"p": "org/service-007"})}),
        ("search 'change 4242' (rare), 7 d", "/events", {"q": "change 4242", "since": iso(now - dt.timedelta(days=7)), "limit": 50}),
        ("search 'deployment' (common)", "/events", {"q": "deployment", "limit": 50}),
        ("histogram 30 d, all", "/events/histogram", {"since": iso(now - dt.timedelta(days=30)), "until": iso(now)}),
        ("histogram 30 d, connector", "/events/histogram", {"connector": "gitlab", "since": iso(now - dt.timedelta(days=30)), "until": iso(now)}),
        ("histogram 24 h, all", "/events/histogram", {"since": iso(now - dt.timedelta(days=1)), "until": iso(now)}),
    ]
    db.dispose()
    with backend_process(tmp / "data", url) as api:
        session = requests.Session()
        for label, path, params in cases:
            samples, body = timed(session, api + path, params, args.repeat)
            size = len(body["events"]) if "events" in body else f"{body['total']:,} in {len(body['buckets'])} buckets"
            print(f"{label:38s} {summarize(samples)}  -> {size}")
    if args.postgres:
        databases.drop_all()


if __name__ == "__main__":
    main()
