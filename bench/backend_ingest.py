"""Ingest throughput: single-event POSTs (one client, then 8 concurrent ones), and the batch
endpoint against a raw driver ceiling measured in the same run.

    python -m bench.backend_ingest [--postgres] [--quick] [--repeats 5] [--rounds 7] [--batches 10]

The backend runs as its own process (`painchain backend`), as users run it, on a fresh database
(a SQLite file, or with --postgres a new PostgreSQL database). Clients keep their connection
alive, one process per client, and the single POSTs are run twice: with http.client, and with
a bare socket client (SocketClient) that costs about a quarter of its CPU. On this 2-core machine
the clients share the cores with the backend and the database, so the second is closer to
clients on other machines. Their CPU per request is printed. The 8 clients run 5 times with
each client kind (median run printed, then every run): on a shared host one run of the same code
moves by a quarter either way, so each run also prints how long a fixed pure-Python task took
just before it (fixed_task_ms): a slow minute of the host shows there too.

The ceiling writes the same rows (same events, same ids, tags and hourly counts) into a second
database of the same migrated schema (so every index and trigger the migrations create), 1,000
rows per transaction (plus the hourly counts per integration and per tag that ingestion keeps),
with the driver alone and no validation, deduplication or answers:
  SQLite: stdlib sqlite3 `executemany` (WAL, synchronous=NORMAL, as the backend), and a second
  one with multi-row INSERTs (500 rows each), which is faster when events have a trigger;
  PostgreSQL: psycopg `COPY events` and `COPY event_tags` (ids drawn from the sequence first),
  plus the hourly-count upsert.
Rounds alternate the endpoint and the ceiling (which goes first alternates too), so that noise
on a shared machine and the growth of the tables hit both alike; medians and spreads are printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import multiprocessing
import os
import shutil
import socket
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import orjson
from sqlalchemy import func, insert, select

from bench._support import backend_process, machine, scratch_databases
from painchain_pipelines.backend.database import SQLITE_WAL_CHECKPOINT_PAGES, Database
from painchain_pipelines.backend.migrate import upgrade
from painchain_pipelines.backend.models import ConnectorType, Event, Integration
from painchain_pipelines.backend.services.events import HOUR_MS, build_search_text, merge_tags

SCHEMA = {"fields": [
    {"key": "name", "label": "Name", "type": "text", "required": True},
    {"key": "tags", "label": "Tags", "type": "textarea", "required": True},
]}
INTEGRATION_TAGS = ["prod"]
BATCH = 1000
CLIENTS = 8


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


# ---------------------------------------------------------------------------- HTTP clients


class Client:
    """One keep-alive connection."""

    def __init__(self, api: str):
        parts = urlsplit(api)
        self.prefix = parts.path
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        headers = {"content-type": "application/json"} if body is not None else {}
        self.conn.request(method, self.prefix + path, body=body, headers=headers)
        response = self.conn.getresponse()
        return response.status, response.read()


class SocketClient:
    """One keep-alive connection on a bare socket: each request written whole, each answer read
    by its Content-Length (every answer of the backend has one). About a quarter of
    http.client's CPU per request, which here shares the 2 cores with the backend and the
    database: how a client on another machine would load them."""

    def __init__(self, api: str):
        parts = urlsplit(api)
        self.prefix = parts.path
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=120)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.host = f"{parts.hostname}:{parts.port}".encode()
        self.buffer = b""

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        head = b"%s %s%s HTTP/1.1\r\nHost: %s\r\n" % (method.encode(), self.prefix.encode(), path.encode(), self.host)
        if body is not None:
            head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        self.sock.sendall(head + b"\r\n" + (body or b""))
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            self._receive()
        header = self.buffer[:end].lower()
        at = header.find(b"\r\ncontent-length:")
        if not header.startswith(b"http/1.1 ") or at < 0:
            raise RuntimeError(f"unexpected answer: {self.buffer[:end]!r}")
        line_end = header.find(b"\r\n", at + 2)
        length = int(header[at + 17:line_end if line_end > 0 else len(header)])
        while len(self.buffer) < end + 4 + length:
            self._receive()
        answer = self.buffer[end + 4:end + 4 + length]
        self.buffer = self.buffer[end + 4 + length:]
        return int(header[9:12]), answer

    def _receive(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the backend closed the connection")
        self.buffer += chunk


CLIENT_KINDS = {"http.client": Client, "socket": SocketClient}


def setup_integration(api: str) -> str:
    client = Client(api)
    status, _ = client.call("POST", "/integrations/types/register", orjson.dumps(
        {"id": "bench", "displayName": "Bench", "configSchema": SCHEMA}))
    assert status in (200, 201), status
    status, body = client.call("POST", "/integrations", orjson.dumps(
        {"type": "bench", "config": {"name": "bench", "tags": orjson.dumps(INTEGRATION_TAGS).decode()}}))
    assert status == 201, body
    return orjson.loads(body)["id"]


def _post_singles(api: str, bodies: list[bytes], start_at: float | None = None, client_kind: str = "http.client") -> dict:
    client = CLIENT_KINDS[client_kind](api)
    client.call("GET", "/health")  # connect before the clock starts
    if start_at is not None:
        time.sleep(max(0.0, start_at - time.time()))
    statuses: Counter = Counter()
    cpu, started = time.process_time(), time.perf_counter()
    for body in bodies:
        status, _ = client.call("POST", "/events", body)
        statuses[status] += 1
    return {"statuses": statuses, "seconds": time.perf_counter() - started,
            "cpu": time.process_time() - cpu, "start": time.time() - (time.perf_counter() - started)}


def _worker(args) -> dict:
    return _post_singles(*args)


def run_singles(api: str, integration_id: str, first: int, per_client: int, clients: int,
                client_kind: str = "http.client") -> dict:
    """`clients` processes post `per_client` events each, all starting together."""
    jobs = [[orjson.dumps(make_event(integration_id, first + c * per_client + i)) for i in range(per_client)]
            for c in range(clients)]
    if clients == 1:
        out = _post_singles(api, jobs[0], None, client_kind)
        return {"rate": per_client / out["seconds"], "statuses": out["statuses"],
                "client_cpu": out["cpu"] / out["seconds"], "events": per_client}
    start_at = time.time() + 1.0 + 0.1 * clients
    with multiprocessing.get_context("fork").Pool(clients) as pool:
        outs = pool.map(_worker, [(api, job, start_at, client_kind) for job in jobs])
    first_start = min(o["start"] for o in outs)
    last_end = max(o["start"] + o["seconds"] for o in outs)
    wall = last_end - first_start
    statuses = sum((o["statuses"] for o in outs), Counter())
    return {"rate": clients * per_client / wall, "statuses": statuses,
            "client_cpu": sum(o["cpu"] for o in outs) / wall, "events": clients * per_client}


def post_batches(api: str, bodies: list[bytes]) -> tuple[float, Counter]:
    # A new connection each round: uvicorn closes one idle for 5 s (while the ceiling runs).
    client = Client(api)
    client.call("GET", "/health")
    statuses: Counter = Counter()
    started = time.perf_counter()
    for body in bodies:
        status, answer = client.call("POST", "/events/batch", body)
        statuses[status] += 1
        if status == 200:
            assert orjson.loads(answer)["created"] == BATCH, answer[:300]
    return len(bodies) * BATCH / (time.perf_counter() - started), statuses


# ---------------------------------------------------------------------------- ceilings


def ceiling_rows(integration_id: str, events: list[dict]) -> list[dict]:
    """What the endpoint stores for `events`, built once and outside the clock."""
    rows = []
    for e in events:
        ts = int(dt.datetime.fromisoformat(e["timestamp"]).timestamp() * 1000)
        rows.append({
            "tenant_id": None, "integration_id": integration_id, "connector": e["connector"],
            "project": e["project"], "title": e["title"], "external_id": e["externalId"], "ts": ts,
            "received_at": ts, "data": orjson.dumps(e["data"]).decode(),
            "tags": merge_tags(INTEGRATION_TAGS, e["tags"]),
            "search_text": build_search_text(e["title"], e["project"], e["data"]),
        })
    return rows


def _hourly(rows: list[dict]) -> list[tuple]:
    counts: Counter = Counter((r["ts"] // HOUR_MS * HOUR_MS, r["integration_id"]) for r in rows)
    return [(hour, integration, None, "bench", n) for (hour, integration), n in sorted(counts.items())]


def _tag_hourly(rows: list[dict]) -> list[tuple]:
    counts: Counter = Counter((t, r["ts"] // HOUR_MS * HOUR_MS, r["integration_id"]) for r in rows for t in r["tags"])
    return [(tag, hour, integration, None, "bench", n) for (tag, hour, integration), n in sorted(counts.items())]


_UPSERT_TAG_COUNTS = ("INSERT INTO event_tag_counts (tag, hour_ts, integration_id, tenant_id, connector, count) "
                      "VALUES ({0}, {0}, {0}, {0}, {0}, {0}) ON CONFLICT (tag, hour_ts, integration_id) "
                      "DO UPDATE SET count = event_tag_counts.count + excluded.count")


def _has_tag_counts(conn) -> bool:
    """Whether the migrations made the hourly per-tag counts table (ingestion keeps it too)."""
    try:
        conn.execute("SELECT 1 FROM event_tag_counts LIMIT 1").fetchall()
        return True
    except Exception:
        if hasattr(conn, "rollback"):
            conn.rollback()
        return False


def prepare_ceiling_db(url: str, integration_id: str) -> None:
    db = Database(url, read_timeout=0, write_timeout=0)
    upgrade(db)  # the project's migrations: every index and trigger of the real schema
    with db.engine.begin() as conn:
        conn.execute(insert(ConnectorType).values(id="bench", display_name="Bench", config_schema=SCHEMA))
        conn.execute(insert(Integration).values(id=integration_id, type="bench", name="bench",
                                                config={"name": "bench", "tags": INTEGRATION_TAGS}))
    db.dispose()


_EVENT_COLUMNS = ("id", "tenant_id", "integration_id", "connector", "project", "title", "external_id", "ts",
                  "received_at", "data", "tags", "search_text")
_UPSERT_COUNTS = ("INSERT INTO event_counts (hour_ts, integration_id, tenant_id, connector, count) "
                  "VALUES ({0}, {0}, {0}, {0}, {0}) ON CONFLICT (hour_ts, integration_id) "
                  "DO UPDATE SET count = event_counts.count + excluded.count")


class SqliteCeiling:
    def __init__(self, path: str):
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        # as the backend's connections (database.py)
        self.conn.execute("PRAGMA cache_size=-65536")
        self.conn.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_CHECKPOINT_PAGES}")
        self.tag_counts = _has_tag_counts(self.conn)

    def write(self, batches: list[list[dict]], multirow: bool = False) -> float:
        """executemany (one statement per row), or with `multirow` INSERTs of 500 rows each
        (with a trigger on events, e.g. the search index's, several times faster)."""
        conn = self.conn
        row_marks = f"({', '.join('?' * len(_EVENT_COLUMNS))})"
        insert_events = f"INSERT INTO events ({', '.join(_EVENT_COLUMNS)}) VALUES "
        upsert = _UPSERT_COUNTS.format("?")
        started = time.perf_counter()
        for rows in batches:
            conn.execute("BEGIN IMMEDIATE")
            first = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM events").fetchone()[0]
            params = [(first + i, r["tenant_id"], r["integration_id"], r["connector"], r["project"], r["title"],
                       r["external_id"], r["ts"], r["received_at"], r["data"], orjson.dumps(r["tags"]).decode(),
                       r["search_text"]) for i, r in enumerate(rows)]
            if multirow:
                for start in range(0, len(params), 500):
                    chunk = params[start:start + 500]
                    conn.execute(insert_events + ", ".join([row_marks] * len(chunk)),
                                 [value for row in chunk for value in row])
            else:
                conn.executemany(insert_events + row_marks, params)
            conn.executemany("INSERT INTO event_tags (event_id, tag) VALUES (?, ?)",
                             [(first + i, t) for i, r in enumerate(rows) for t in r["tags"]])
            conn.executemany(upsert, _hourly(rows))
            if self.tag_counts:
                conn.executemany(_UPSERT_TAG_COUNTS.format("?"), _tag_hourly(rows))
            conn.execute("COMMIT")
        return sum(len(b) for b in batches) / (time.perf_counter() - started)

    def close(self) -> None:
        self.conn.close()


class PostgresCeiling:
    def __init__(self, url: str):
        import psycopg
        from sqlalchemy.engine import make_url

        u = make_url(url)
        self.conn = psycopg.connect(host=u.host, port=u.port, user=u.username, password=u.password,
                                    dbname=u.database)
        self.tag_counts = _has_tag_counts(self.conn)
        self.conn.commit()

    def write(self, batches: list[list[dict]]) -> float:
        conn = self.conn
        upsert = _UPSERT_COUNTS.format("%s")
        started = time.perf_counter()
        for rows in batches:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute("SELECT nextval(pg_get_serial_sequence('events', 'id')) FROM generate_series(1, %s)",
                            (len(rows),))
                ids = [r[0] for r in cur.fetchall()]
                with cur.copy(f"COPY events ({', '.join(_EVENT_COLUMNS)}) FROM STDIN") as copy:
                    for event_id, r in zip(ids, rows):
                        copy.write_row((event_id, r["tenant_id"], r["integration_id"], r["connector"], r["project"],
                                        r["title"], r["external_id"], r["ts"], r["received_at"], r["data"],
                                        orjson.dumps(r["tags"]).decode(), r["search_text"]))
                with cur.copy("COPY event_tags (event_id, tag) FROM STDIN") as copy:
                    for event_id, r in zip(ids, rows):
                        for tag in r["tags"]:
                            copy.write_row((event_id, tag))
                cur.executemany(upsert, _hourly(rows))
                if self.tag_counts:
                    cur.executemany(_UPSERT_TAG_COUNTS.format("%s"), _tag_hourly(rows))
        return sum(len(b) for b in batches) / (time.perf_counter() - started)

    def close(self) -> None:
        self.conn.close()


def _driver_singles(args) -> dict:
    """One client of the driver-alone reference: each row in its own transaction (as a single
    POST commits each event before answering), ids returned, tags and hourly count written."""
    url, rows, start_at = args
    postgres = url.startswith("postgresql")
    if postgres:
        ceiling = PostgresCeiling(url)
        conn, mark = ceiling.conn, "%s"
        conn.autocommit = True  # transactions are explicit below
    else:
        conn, mark = SqliteCeiling(url.removeprefix("sqlite:///")).conn, "?"
        conn.execute("PRAGMA busy_timeout=30000")
    insert_event = (f"INSERT INTO events ({', '.join(_EVENT_COLUMNS[1:])}) VALUES "
                    f"({', '.join([mark] * (len(_EVENT_COLUMNS) - 1))}) RETURNING id")
    insert_tag = f"INSERT INTO event_tags (event_id, tag) VALUES ({mark}, {mark})"
    upsert = _UPSERT_COUNTS.format(mark)
    upsert_tags = _UPSERT_TAG_COUNTS.format(mark)
    tag_counts = _has_tag_counts(conn)
    time.sleep(max(0.0, start_at - time.time()))
    started = time.perf_counter()
    for r in rows:
        conn.execute("BEGIN" if postgres else "BEGIN IMMEDIATE")
        event_id = conn.execute(insert_event, (
            r["tenant_id"], r["integration_id"], r["connector"], r["project"], r["title"], r["external_id"],
            r["ts"], r["received_at"], r["data"], orjson.dumps(r["tags"]).decode(), r["search_text"])).fetchone()[0]
        for tag in r["tags"]:
            conn.execute(insert_tag, (event_id, tag))
        conn.execute(upsert, _hourly([r])[0])
        for tag_count in _tag_hourly([r]) if tag_counts else ():
            conn.execute(upsert_tags, tag_count)
        conn.execute("COMMIT")
    seconds = time.perf_counter() - started
    conn.close()
    return {"start": time.time() - seconds, "seconds": seconds}


def run_driver_singles(url: str, integration_id: str, numbers: list[list[int]]) -> float:
    """Events per second of the driver alone, one process per list of event numbers, all at once,
    one event per transaction."""
    clients, per_client = len(numbers), len(numbers[0])
    jobs = [ceiling_rows(integration_id, [make_event(integration_id, n) for n in job]) for job in numbers]
    start_at = time.time() + 1.0 + 0.1 * clients
    if clients == 1:
        outs = [_driver_singles((url, jobs[0], start_at))]
    else:
        with multiprocessing.get_context("fork").Pool(clients) as pool:
            outs = pool.map(_driver_singles, [(url, job, start_at) for job in jobs])
    wall = max(o["start"] + o["seconds"] for o in outs) - min(o["start"] for o in outs)
    return clients * per_client / wall


# ---------------------------------------------------------------------------- checks


def count_events(url: str, integration_id: str) -> int:
    db = Database(url, read_timeout=0, write_timeout=0)
    try:
        with db.read() as session:
            return session.scalar(select(func.count()).select_from(Event).where(Event.integration_id == integration_id))
    finally:
        db.dispose()


def repost_sample(api: str, integration_id: str, numbers: list[int]) -> Counter:
    """Events already stored, posted again: each must be a 409 naming the stored id."""
    client = Client(api)
    outcomes: Counter = Counter()
    for n in numbers:
        status, body = client.call("POST", "/events", orjson.dumps(make_event(integration_id, n)))
        ok = status == 409 and isinstance(orjson.loads(body).get("existingId"), int)
        outcomes["409 with existingId" if ok else f"unexpected {status}"] += 1
    status, body = client.call("POST", "/events/batch", orjson.dumps(
        {"events": [make_event(integration_id, n) for n in numbers]}))
    answer = orjson.loads(body)
    outcomes["batch duplicates" if status == 200 and answer["duplicates"] == len(numbers)
             else f"batch unexpected {status}"] += len(numbers)
    return outcomes


# ---------------------------------------------------------------------------- main


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fixed_task_ms() -> float:
    """Wall time of a fixed pure-Python task (median of 3), taken just before each run of the
    clients: how fast this shared host runs the same work at that moment. A slow reading often
    comes with a slower run, but the host can change speed within the run (docs/benchmarks.md)."""
    times = []
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i % 7
        times.append((time.perf_counter() - started) * 1e3)
    return statistics.median(times)


def _median_run(runs: list[dict]) -> dict:
    """The run of median rate (of an even number, the slower of the middle two)."""
    return sorted(runs, key=lambda run: run["rate"])[(len(runs) - 1) // 2]


def _spread(values: list[float], fmt: str = "{:,.0f}") -> str:
    return f"{fmt.format(min(values))}–{fmt.format(max(values))}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", action="store_true", help="use fresh PostgreSQL databases")
    parser.add_argument("--quick", action="store_true", help="short run while developing")
    parser.add_argument("--single", type=int, help="events posted one by one by one client (default 3000)")
    parser.add_argument("--per-client", type=int, help=f"events per client of {CLIENTS} (default 1000)")
    parser.add_argument("--repeats", type=int, help=f"runs of the {CLIENTS} clients per client kind (default 5)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds of batches vs ceiling (default 7)")
    parser.add_argument("--batches", type=int, help="batches of 1,000 per round and side (default 10)")
    args = parser.parse_args()
    single = args.single or (500 if args.quick else 3000)
    per_client = args.per_client or (200 if args.quick else 1000)
    repeats = args.repeats or (1 if args.quick else 5)
    rounds = args.rounds or (3 if args.quick else 7)
    batches = args.batches or (3 if args.quick else 10)
    kind = "PostgreSQL" if args.postgres else "SQLite"
    tmp = Path(tempfile.mkdtemp(prefix="painchain-bench-"))
    print(f"# ingest benchmark — {machine()}, {kind}, load average {os.getloadavg()[0]:.1f} at start")

    pids: list[int] = []
    statuses: Counter = Counter()
    with scratch_databases(args.postgres, tmp) as fresh:
        api_url, ceiling_url = fresh("api"), fresh("ceiling")
        with backend_process(tmp / "api", api_url, pids=pids) as api:
            integration_id = setup_integration(api)
            prepare_ceiling_db(ceiling_url, integration_id)
            singles = {}  # (client kind, clients) -> runs
            posted = 0
            for client_kind in CLIENT_KINDS:
                for clients, per, times in ((1, single, 1), (CLIENTS, per_client, repeats)):
                    runs = singles[client_kind, clients] = []
                    for _ in range(times):
                        fixed_task = fixed_task_ms()
                        server_cpu = _cpu_seconds(pids[0])
                        run = run_singles(api, integration_id, posted, per, clients, client_kind)
                        run["fixed_task_ms"] = fixed_task
                        run["server_cpu"] = (_cpu_seconds(pids[0]) - server_cpu) / run["events"]
                        runs.append(run)
                        statuses += run["statuses"]
                        posted += run["events"]
            one, many = (_median_run(singles["http.client", n]) for n in (1, CLIENTS))

            ceiling = PostgresCeiling(ceiling_url) if args.postgres else SqliteCeiling(
                ceiling_url.removeprefix("sqlite:///"))
            # The same single events through the driver alone, one per transaction: what the
            # database and disk allow for a single POST. It leaves the ceiling's tables as
            # large as the endpoint's.
            one_numbers = [list(range(min(single, 1000)))]
            many_numbers = [[single + c * per_client + i for i in range(min(per_client, 250))] for c in range(CLIENTS)]
            driver_one = run_driver_singles(ceiling_url, integration_id, one_numbers)
            driver_many = run_driver_singles(ceiling_url, integration_id, many_numbers)
            # ...and the rest of what the endpoint got, off the clock.
            ceiling_fill = PostgresCeiling(ceiling_url) if args.postgres else SqliteCeiling(
                ceiling_url.removeprefix("sqlite:///"))
            done = {n for job in one_numbers + many_numbers for n in job}
            rest = [n for n in range(posted) if n not in done]
            ceiling_fill.write([ceiling_rows(integration_id, [make_event(integration_id, n) for n in rest[k:k + BATCH]])
                                for k in range(0, len(rest), BATCH)])
            ceiling_fill.close()
            batch_rates, ceiling_rates, multirow_rates = [], [], []
            # SQLite: the second ceiling (multi-row INSERTs) writes into its own copy of the schema.
            multirow = None
            if not args.postgres:
                multirow_path = tmp / "ceiling_multirow.db"
                shutil.copyfile(ceiling_url.removeprefix("sqlite:///"), multirow_path)
                multirow = SqliteCeiling(str(multirow_path))
            sides = ["batch", "ceiling"] + (["multirow"] if multirow else [])
            for r in range(rounds):
                first = posted + r * batches * BATCH
                events = [[make_event(integration_id, first + b * BATCH + i) for i in range(BATCH)]
                          for b in range(batches)]
                bodies = [orjson.dumps({"events": e}) for e in events]
                rows = [ceiling_rows(integration_id, e) for e in events]
                for side in sides[r % len(sides):] + sides[:r % len(sides)]:  # who goes first rotates
                    if side == "batch":
                        rate, batch_statuses = post_batches(api, bodies)
                        batch_rates.append(rate)
                        statuses += batch_statuses
                    elif side == "ceiling":
                        ceiling_rates.append(ceiling.write(rows))
                    else:
                        multirow_rates.append(multirow.write(rows, multirow=True))
            ceiling.close()
            if multirow:
                multirow.close()
            posted += rounds * batches * BATCH
            stored = count_events(api_url, integration_id)
            sample = list(range(0, posted, max(1, posted // 50)))[:50]
            reposted = repost_sample(api, integration_id, sample)

    ratios = [b / c for b, c in zip(batch_rates, ceiling_rates)]
    batch, top = statistics.median(batch_rates), statistics.median(ceiling_rates)
    ceiling_name = "psycopg COPY (events, tags) + counts upsert" if args.postgres else "sqlite3 executemany"
    errors = sum(n for status, n in statuses.items() if status >= 500)
    for (client_kind, clients), runs in singles.items():
        run = _median_run(runs)
        label = f"single POST, {clients} {'client ' if clients == 1 else 'clients'} ({client_kind})"
        print(f"{label:32s}: {run['rate']:8,.0f} events/s  ({clients} x {run['events'] // clients} requests; "
              f"clients' CPU {run['client_cpu']:.0%} of a core, {run['client_cpu'] / run['rate'] * 1e3:.3f} "
              f"ms/request; server CPU {run['server_cpu'] * 1e3:.2f} ms/event; "
              f"fixed task {run['fixed_task_ms']:.0f} ms)")
        if len(runs) > 1:
            print(f"  median of {len(runs)} runs, spread {_spread([r['rate'] for r in runs])}: " + " / ".join(
                f"{r['rate']:,.0f} ({r['server_cpu'] * 1e3:.2f} ms, {r['fixed_task_ms']:.0f} ms)" for r in runs)
                + " events/s (server CPU per event, fixed task)")
    print(f"  driver alone, 1 event/commit  : {driver_one:8,.0f} events/s  (1 client, {min(single, 1000)} events; "
          f"endpoint / driver {one['rate'] / driver_one:.0%})")
    print(f"  driver alone, 1 event/commit  : {driver_many:8,.0f} events/s  ({CLIENTS} clients x {min(per_client, 250)} "
          f"events; endpoint / driver {many['rate'] / driver_many:.0%})")
    print(f"batch endpoint (1,000 per POST) : {batch:8,.0f} events/s  median of {rounds} rounds x {batches} "
          f"batches, spread {_spread(batch_rates)}")
    print(f"ceiling: {ceiling_name:23s}: {top:8,.0f} events/s  median of {rounds} rounds, spread "
          f"{_spread(ceiling_rates)}")
    print(f"batch / ceiling                 : {batch / top:8.0%}           (ratio of medians; per round "
          f"{_spread(ratios, '{:.0%}')}, median {statistics.median(ratios):.0%})")
    if multirow_rates:
        strong = statistics.median(multirow_rates)
        strong_ratios = [b / c for b, c in zip(batch_rates, multirow_rates)]
        print(f"ceiling: sqlite3 multi-row INSERT: {strong:8,.0f} events/s  median of {rounds} rounds, spread "
              f"{_spread(multirow_rates)} (500 rows per statement)")
        print(f"batch / multi-row ceiling       : {batch / strong:8.0%}           (per round "
              f"{_spread(strong_ratios, '{:.0%}')}, median {statistics.median(strong_ratios):.0%})")
    print("rounds (batch / ceiling" + (" / multi-row" if multirow_rates else "") + "): " + "; ".join(
        " / ".join(f"{v:,.0f}" for v in values)
        for values in zip(batch_rates, ceiling_rates, *([multirow_rates] if multirow_rates else []))))
    print(f"answers                         : {dict(sorted(statuses.items()))}  ({errors} x 5xx)")
    print(f"dedup                           : {stored:,} stored of {posted:,} distinct posted "
          f"({'exact' if stored == posted else 'MISMATCH'}); re-posted {len(sample)}: {dict(reposted)}")


if __name__ == "__main__":
    main()
