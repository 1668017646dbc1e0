"""Query latency and backend memory at scale (default 10,000,000 events): timeline first pages,
deep cursor pages, free-text search (rare and common terms) and 30-day histograms, each alone and
with connector / project / tag filters, measured over HTTP against the running backend.

    python -m bench.backend_query [--events 10000000] [--repeat 50] [--postgres] [--page-all]
                                  [--via-api] [--keep FILE|DATABASE [--load-only]]

Events are spread over the last 365 days, 3 connectors, 30 integrations, 300 projects. By
default they are bulk-loaded straight into the migrated schema (rows identical to what the API
stores; secondary indexes and the search index are built after the load, as a restore would);
`--via-api` posts them through `POST /api/events/batch` instead and samples the backend's RSS
while it ingests. `--page-all` then walks the whole timeline page by page (500 a page) and
samples the RSS again.
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

from bench._support import backend_process, machine, rss_mib, summarize
from painchain_pipelines.backend.database import Database
from painchain_pipelines.backend.migrate import upgrade
from painchain_pipelines.backend.services.events import build_search_text, encode_cursor

CONNECTORS = ("github", "gitlab", "kubernetes")
EVENT_TAGS = ["deploy", "ci", "hotfix", "release"]
KINDS = ["Commit to main", "PR merged", "Workflow run succeeded", "Deployment to production"]
INTEGRATIONS = [(f"int-{i:02d}", "github" if i < 15 else "gitlab" if i < 22 else "kubernetes",
                 "prod" if i % 3 else "staging") for i in range(30)]
HOUR_MS = 3_600_000


def generate(count: int, seed: int = 1):
    """Events in timestamp order (as a live system receives them), with unique SHAs."""
    rng = random.Random(seed)
    now_ms = int(time.time() * 1000)
    span_ms = 365 * 24 * 3600 * 1000
    step = span_ms / count
    for n in range(count):
        integration_id, connector, env_tag = INTEGRATIONS[rng.randrange(30)]
        project = f"org/service-{rng.randrange(300):03d}"
        sha = uuid.UUID(int=rng.getrandbits(128)).hex + f"{n:08x}"
        title = f"{rng.choice(KINDS)}: change {n} in {project}"
        data = {"sha": sha, "author": f"dev{rng.randrange(200)}", "message": f"change {n}",
                "url": f"https://example.com/{project}/{sha}"}
        tags = [env_tag] + ([rng.choice(EVENT_TAGS)] if rng.random() < 0.3 else [])
        yield {
            "integration_id": integration_id, "connector": connector, "project": project, "title": title,
            "external_id": f"{connector}-{sha}", "ts": now_ms - span_ms + int(n * step + rng.random() * step),
            "received_at": now_ms, "data": data, "tags": tags,
            "search_text": build_search_text(title, project, data),
        }


def sha_of(n: int, count: int, seed: int = 1) -> str:
    for i, row in enumerate(generate(count, seed)):
        if i == n:
            return row["data"]["sha"]
    raise IndexError(n)


def register(db: Database) -> None:
    with db.engine.begin() as conn:
        for connector in CONNECTORS:
            conn.execute(text("INSERT INTO connector_types VALUES (:c,:c,'','','','{}',CURRENT_TIMESTAMP,"
                              "CURRENT_TIMESTAMP)"), {"c": connector})
        for integration_id, connector, _ in INTEGRATIONS:
            conn.execute(text("INSERT INTO integrations VALUES (:i,NULL,:c,:i,'{}',CURRENT_TIMESTAMP,"
                              "CURRENT_TIMESTAMP)"), {"i": integration_id, "c": connector})


def _secondary_schema(cur, sqlite: bool) -> list[str]:
    """DDL of the secondary indexes and triggers, to drop during the load and rebuild after."""
    if sqlite:
        cur.execute("SELECT sql FROM sqlite_master WHERE type IN ('index', 'trigger') AND tbl_name IN "
                    "('events', 'event_tags') AND sql IS NOT NULL")
    else:
        cur.execute("SELECT indexdef FROM pg_indexes WHERE tablename IN ('events', 'event_tags') AND indexname "
                    "NOT IN ('events_pkey', 'event_tags_pkey', 'uq_events_integration_external')")
    return [row[0] for row in cur.fetchall()]


def _drop(cur, ddl: str) -> None:
    words = ddl.split()
    kind = words[1] if words[1] in ("INDEX", "TRIGGER") else words[2]  # CREATE [UNIQUE] INDEX name
    name = words[words.index(kind) + 1]
    cur.execute(f"DROP {kind} {name}")


def load_direct(db: Database, count: int) -> None:
    register(db)
    raw = db.engine.raw_connection()
    cur = raw.cursor()
    sqlite = db.is_sqlite
    if sqlite:
        cur.execute("PRAGMA cache_size = -1000000")  # 1 GB: the unique index takes random inserts
    secondary = _secondary_schema(cur, sqlite)
    for ddl in secondary:
        _drop(cur, ddl)
    raw.commit()
    started = time.perf_counter()
    hourly: dict[tuple[int, str], list] = {}
    tag_hourly: dict[tuple[str, int, str], list] = {}
    batch, tags = [], []

    def flush():
        if sqlite:
            cur.execute("BEGIN")  # the engine's connections are in autocommit mode otherwise
            cur.executemany("INSERT INTO events (id, tenant_id, integration_id, connector, project, title, "
                            "external_id, ts, received_at, data, tags, search_text) "
                            "VALUES (?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", batch)
            cur.executemany("INSERT INTO event_tags (event_id, tag) VALUES (?, ?)", tags)
        else:
            with cur.copy("COPY events (id, integration_id, connector, project, title, external_id, ts, "
                          "received_at, data, tags, search_text) FROM STDIN") as copy:
                for row in batch:
                    copy.write_row(row)
            with cur.copy("COPY event_tags (event_id, tag) FROM STDIN") as copy:
                for row in tags:
                    copy.write_row(row)
        raw.commit()
        batch.clear()
        tags.clear()

    for event_id, row in enumerate(generate(count), start=1):
        batch.append((event_id, row["integration_id"], row["connector"], row["project"], row["title"],
                      row["external_id"], row["ts"], row["received_at"], orjson.dumps(row["data"]).decode(),
                      orjson.dumps(row["tags"]).decode(), row["search_text"]))
        tags.extend((event_id, t) for t in row["tags"])
        key = (row["ts"] // HOUR_MS * HOUR_MS, row["integration_id"])
        hourly.setdefault(key, [key[0], key[1], None, row["connector"], 0])[4] += 1
        for tag in row["tags"]:
            tag_hourly.setdefault((tag, *key), [tag, key[0], key[1], None, row["connector"], 0])[5] += 1
        if len(batch) == 50_000:
            flush()
            if event_id % 1_000_000 == 0:
                print(f"  {event_id:,} rows in {time.perf_counter() - started:.0f} s", flush=True)
    if batch:
        flush()
    placeholder = "?" if sqlite else "%s"
    if sqlite:
        cur.execute("BEGIN")
    cur.executemany(f"INSERT INTO event_counts (hour_ts, integration_id, tenant_id, connector, count) "
                    f"VALUES ({', '.join([placeholder] * 5)})", [tuple(v) for v in hourly.values()])
    cur.executemany(f"INSERT INTO event_tag_counts (tag, hour_ts, integration_id, tenant_id, connector, count) "
                    f"VALUES ({', '.join([placeholder] * 6)})", [tuple(v) for v in tag_hourly.values()])
    raw.commit()
    loaded = time.perf_counter()
    if not sqlite:
        cur.execute("SET maintenance_work_mem = '2GB'")
        cur.execute("SELECT setval(pg_get_serial_sequence('events', 'id'), %s)", (count + 1,))
    if sqlite:
        cur.execute("BEGIN")
    for ddl in secondary:
        began = time.perf_counter()
        cur.execute(ddl)
        print(f"  {time.perf_counter() - began:5.0f} s  {ddl[:60]}", flush=True)
    if sqlite:
        began = time.perf_counter()
        cur.execute("INSERT INTO events_search(events_search) VALUES ('rebuild')")
        print(f"  {time.perf_counter() - began:5.0f} s  search index", flush=True)
    raw.commit()
    indexed = time.perf_counter()
    cur.execute("ANALYZE")
    raw.commit()
    raw.close()
    print(f"loaded {count:,} events: rows {loaded - started:.0f} s, indexes {indexed - loaded:.0f} s, "
          f"analyze {time.perf_counter() - indexed:.0f} s")


def load_via_api(db: Database, api: str, pid: int, count: int) -> None:
    """POST every event through the batch endpoint (1,000 a request), sampling the backend's RSS."""
    session = requests.Session()
    started = time.perf_counter()
    samples: list[tuple[int, float]] = []
    batch = []
    for n, row in enumerate(generate(count), start=1):
        batch.append({"title": row["title"], "connector": row["connector"], "project": row["project"],
                      "timestamp": dt.datetime.fromtimestamp(row["ts"] / 1000, dt.timezone.utc).isoformat(),
                      "externalId": row["external_id"], "integrationId": row["integration_id"],
                      "data": row["data"], "tags": row["tags"][1:]})
        if len(batch) == 1000 or n == count:
            response = session.post(api + "/events/batch", data=orjson.dumps({"events": batch}),
                                    headers={"content-type": "application/json"}, timeout=300)
            response.raise_for_status()
            batch.clear()
            if n % (count // 20 or 1) == 0 or n == count:
                samples.append((n, rss_mib(pid)))
                print(f"  {n:,} events in {time.perf_counter() - started:.0f} s, backend RSS {samples[-1][1]:.0f} MiB",
                      flush=True)
    elapsed = time.perf_counter() - started
    print(f"ingested {count:,} events through the API in {elapsed:.0f} s ({count / elapsed:,.0f} events/s); "
          f"backend RSS MiB at each 5 %: {' '.join(f'{r:.0f}' for _, r in samples)}")
    with db.engine.begin() as conn:
        conn.execute(text("ANALYZE"))


def page_all(api: str, pid: int, count: int) -> None:
    session = requests.Session()
    cursor, seen, started, samples = None, 0, time.perf_counter(), []
    while True:
        params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        body = session.get(api + "/events", params=params, timeout=120).json()
        seen += len(body["events"])
        cursor = body["nextCursor"]
        if seen % (count // 20 or 1) < 500 or cursor is None:
            samples.append(rss_mib(pid))
        if cursor is None:
            break
    elapsed = time.perf_counter() - started
    print(f"paged through {seen:,} events (500 a page) in {elapsed:.0f} s; backend RSS MiB at each 5 %: "
          f"{' '.join(f'{r:.0f}' for r in samples)}")
    assert seen == count, (seen, count)


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


def cases(db: Database, count: int) -> list[tuple[str, str, dict]]:
    now = dt.datetime.now(dt.timezone.utc)
    iso = lambda d: d.isoformat().replace("+00:00", "Z")  # noqa: E731
    month = {"since": iso(now - dt.timedelta(days=30)), "until": iso(now)}
    rare = sha_of(count // 3, count)[4:16]  # 12 hex digits from inside one event's SHA
    project = "org/service-007"
    return [
        ("first page, no filter", "/events", {"limit": 50}),
        ("first page, connector", "/events", {"connector": "gitlab", "limit": 50}),
        ("first page, connector + project", "/events", {"connector": "github", "project": project, "limit": 50}),
        ("first page, tag", "/events", {"tags": "hotfix", "limit": 50}),
        ("first page, integration, 24 h", "/events", {"integrationId": "int-03",
                                                       "since": iso(now - dt.timedelta(days=1)), "limit": 50}),
        ("deep page (half way), no filter", "/events", {"limit": 50, "cursor": deep_cursor(db, count // 2)}),
        ("deep page (half way), connector", "/events", {"connector": "gitlab", "limit": 50, "cursor": deep_cursor(
            db, count // 8, "WHERE connector = :c", {"c": "gitlab"})}),
        ("deep page (half way), project", "/events", {"project": project, "limit": 50, "cursor": deep_cursor(
            db, count // 600, "WHERE project = :p", {"p": project})}),
        ("deep page (half way), tag", "/events", {"tags": "hotfix", "limit": 50, "cursor": deep_cursor(
            db, count * 3 // 80, "WHERE id IN (SELECT event_id FROM event_tags WHERE tag = :t)", {"t": "hotfix"})}),
        ("search rare (SHA substring)", "/events", {"q": rare, "limit": 50}),
        ("search rare + connector", "/events", {"q": rare, "connector": "github", "limit": 50}),
        ("search rare + project", "/events", {"q": rare, "project": project, "limit": 50}),
        ("search rare + tag", "/events", {"q": rare, "tags": "prod", "limit": 50}),
        ("search 'change 4242' (1,111 events)", "/events", {"q": "change 4242", "limit": 50}),
        ("search common ('deployment')", "/events", {"q": "deployment", "limit": 50}),
        ("search common + connector", "/events", {"q": "deployment", "connector": "gitlab", "limit": 50}),
        ("search common + project", "/events", {"q": "deployment", "project": project, "limit": 50}),
        ("search common + tag", "/events", {"q": "deployment", "tags": "hotfix", "limit": 50}),
        ("histogram 30 d", "/events/histogram", month),
        ("histogram 30 d, connector", "/events/histogram", {**month, "connector": "gitlab"}),
        ("histogram 30 d, project", "/events/histogram", {**month, "project": project}),
        ("histogram 30 d, tag", "/events/histogram", {**month, "tags": "hotfix"}),
        ("histogram 30 d, rare search", "/events/histogram", {**month, "q": rare}),
        ("histogram 24 h", "/events/histogram", {"since": iso(now - dt.timedelta(days=1)), "until": iso(now)}),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--via-api", action="store_true", help="load through POST /api/events/batch")
    parser.add_argument("--page-all", action="store_true", help="then walk the whole timeline")
    parser.add_argument("--keep", help="reuse, or load and keep, this SQLite file (PostgreSQL: database name)")
    parser.add_argument("--load-only", action="store_true", help="load (with --keep), then stop: query later")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="painchain-query-"))
    databases = None
    if args.postgres:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        from tests.support.databases import POSTGRES_URL, PostgresDatabases

        if args.keep:
            admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                reuse = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": args.keep}) == 1
                if not reuse:
                    conn.execute(text(f'CREATE DATABASE "{args.keep}"'))
            admin.dispose()
            url = make_url(POSTGRES_URL).set(database=args.keep).render_as_string(hide_password=False)
        else:
            databases = PostgresDatabases()
            url, reuse = databases.create(), False
    else:
        reuse = bool(args.keep and Path(args.keep).exists())
        url = f"sqlite:///{args.keep or tmp / 'painchain.db'}"
    print(f"# query benchmark — {machine()}, {'PostgreSQL' if args.postgres else 'SQLite'}, "
          f"{args.events:,} events over 365 days{' (reused)' if reuse else ''}")
    db = Database(url, read_timeout=0, write_timeout=0)  # bulk load, ANALYZE, OFFSET: no query budget
    upgrade(db)
    pids: list[int] = []
    if not reuse and not args.via_api:
        load_direct(db, args.events)
    elif not reuse:
        register(db)
    if args.load_only and not args.via_api:
        db.dispose()
        return
    with backend_process(tmp / "data", url, pids=pids) as api:
        if args.via_api and not reuse:
            load_via_api(db, api, pids[0], args.events)
        if args.load_only:
            db.dispose()
            return
        session = requests.Session()
        print(f"backend RSS before the queries: {rss_mib(pids[0]):.0f} MiB")
        for label, path, params in cases(db, args.events):
            samples, body = timed(session, api + path, params, args.repeat)
            size = len(body["events"]) if "events" in body else f"{body['total']:,} in {len(body['buckets'])} buckets"
            print(f"{label:38s} {summarize(samples)}  -> {size}", flush=True)
        print(f"backend RSS after the queries: {rss_mib(pids[0]):.0f} MiB")
        if args.page_all:
            page_all(api, pids[0], args.events)
    db.dispose()
    if databases:
        databases.drop_all()


if __name__ == "__main__":
    main()
