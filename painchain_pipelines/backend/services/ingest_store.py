"""The SQL of ingestion (services/events.ingest_events), run on the driver's own connection
(database.Database.driver_write): building and executing Core statements cost more than the inserts.

* SQLite: multi-row `INSERT … RETURNING` for the events, then `executemany` for tags and the
  hourly counts, per integration and per tag (triggers the migrations add, e.g. the search
  index's, fire as usual).
* PostgreSQL: one statement, prepared on the connection: the rows travel as one JSON parameter,
  and data-modifying CTEs insert the events, their tags and the hourly counts (per integration and
  per tag) in one round trip; also on an asyncio connection, for the single-event writer.

Also the integration lookup cache (integration id -> tenant, type, tags) that saves ingestion a
query per request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterable
from typing import Any, NamedTuple

import orjson

from painchain_pipelines.backend.database import DriverWrite

HOUR_MS = 3600 * 1000
# Columns of a stored event, in the order of every statement below.
EVENT_FIELDS = ("tenant_id", "integration_id", "connector", "project", "title", "external_id", "ts",
                "received_at", "data", "tags", "search_text")
# SQLite allows 32,766 parameters per statement; 11 per row.
_SQLITE_ROWS_PER_INSERT = 500

_SQLITE_ROW = "(" + ",".join("?" * len(EVENT_FIELDS)) + ")"
_SQLITE_INSERT_HEAD = (f"INSERT INTO events ({', '.join(EVENT_FIELDS)}) VALUES ")
_SQLITE_INSERT_TAIL = (" ON CONFLICT (integration_id, external_id) DO NOTHING "
                       "RETURNING id, integration_id, external_id")
_SQLITE_INSERT_TAGS = "INSERT INTO event_tags (event_id, tag) VALUES (?, ?)"
_SQLITE_UPSERT_COUNTS = (
    "INSERT INTO event_counts (hour_ts, integration_id, tenant_id, connector, count) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (hour_ts, integration_id) DO UPDATE SET count = event_counts.count + excluded.count"
)
_SQLITE_UPSERT_TAG_COUNTS = (
    "INSERT INTO event_tag_counts (tag, hour_ts, integration_id, tenant_id, connector, count) "
    "VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (tag, hour_ts, integration_id) DO UPDATE SET count = event_tag_counts.count + excluded.count"
)

# `locked` takes the integrations' key-share locks before any row is written (a one-time filter
# of `ins`): the order in which deleting an integration takes its locks. Without it the foreign
# key checks come last, after the hourly counts are locked, and a deletion deadlocks with us.
# The hour of ts rounds down (floor, as Python's //) for timestamps before 1970 too.
_PG_STORE = (
    "WITH r AS (SELECT * FROM jsonb_to_recordset(%s::jsonb) AS r(tenant_id text, integration_id text, "
    "connector text, project text, title text, external_id text, ts bigint, received_at bigint, data jsonb, "
    "tags jsonb, search_text text)), "
    "locked AS (SELECT i.id FROM integrations AS i WHERE i.id IN (SELECT integration_id FROM r) "
    "ORDER BY i.id FOR KEY SHARE), "
    f"ins AS (INSERT INTO events ({', '.join(EVENT_FIELDS)}) SELECT {', '.join(EVENT_FIELDS)} FROM r "
    "WHERE (SELECT count(*) FROM locked) >= 0 "
    "ON CONFLICT (integration_id, external_id) DO NOTHING "
    "RETURNING id, integration_id, external_id, tenant_id, connector, ts, tags), "
    "tagged AS (INSERT INTO event_tags (event_id, tag) "
    "SELECT ins.id, t.tag FROM ins, jsonb_array_elements_text(ins.tags) AS t(tag)), "
    "counted AS (INSERT INTO event_counts (hour_ts, integration_id, tenant_id, connector, count) "
    "SELECT h.hour_ts, h.integration_id, min(h.tenant_id), min(h.connector), count(*) FROM "
    "(SELECT ts - mod(mod(ts, 3600000) + 3600000, 3600000) AS hour_ts, integration_id, tenant_id, connector "
    "FROM ins) AS h GROUP BY h.hour_ts, h.integration_id ORDER BY h.hour_ts, h.integration_id "
    "ON CONFLICT (hour_ts, integration_id) DO UPDATE SET count = event_counts.count + excluded.count), "
    "tag_counted AS (INSERT INTO event_tag_counts (tag, hour_ts, integration_id, tenant_id, connector, count) "
    "SELECT h.tag, h.hour_ts, h.integration_id, min(h.tenant_id), min(h.connector), count(*) FROM "
    "(SELECT t.tag, ts - mod(mod(ts, 3600000) + 3600000, 3600000) AS hour_ts, integration_id, tenant_id, "
    "connector FROM ins, jsonb_array_elements_text(ins.tags) AS t(tag)) AS h "
    "GROUP BY h.tag, h.hour_ts, h.integration_id ORDER BY h.tag, h.hour_ts, h.integration_id "
    "ON CONFLICT (tag, hour_ts, integration_id) DO UPDATE SET count = event_tag_counts.count + excluded.count) "
    "SELECT id, integration_id, external_id FROM ins"
)


def store_rows(tx: DriverWrite, rows: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """Insert `rows` (EVENT_FIELDS; ordered by key), skipping stored (integration_id,
    external_id) pairs, with their tags and hourly counts. Returns key -> id of the rows
    inserted (a key given twice is inserted once)."""
    if tx.dialect.name == "postgresql":
        return _store_postgresql(tx, rows)
    return _store_sqlite(tx, rows)


def _store_sqlite(tx: DriverWrite, rows: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    cursor = tx.connection.cursor()
    try:
        dumps = orjson.dumps
        created: dict[tuple[str, str], int] = {}
        for start in range(0, len(rows), _SQLITE_ROWS_PER_INSERT):
            chunk = rows[start:start + _SQLITE_ROWS_PER_INSERT]
            params: list[Any] = []
            for row in chunk:
                params += (row["tenant_id"], row["integration_id"], row["connector"], row["project"], row["title"],
                           row["external_id"], row["ts"], row["received_at"], dumps(row["data"]).decode(),
                           dumps(row["tags"]).decode(), row["search_text"])
            sql = _SQLITE_INSERT_HEAD + ",".join([_SQLITE_ROW] * len(chunk)) + _SQLITE_INSERT_TAIL
            for event_id, integration_id, external_id in tx.call(
                    sql, lambda: cursor.execute(sql, params).fetchall()):
                created[(integration_id, external_id)] = event_id
        tags: list[tuple[int, str]] = []
        hourly: dict[tuple[int, str], list[Any]] = {}
        tag_hourly: dict[tuple[str, int, str], list[Any]] = {}
        claimed = set()
        for row in rows:
            key = (row["integration_id"], row["external_id"])
            event_id = created.get(key)
            if event_id is None or key in claimed:  # a duplicate (stored before, or earlier in rows)
                continue
            claimed.add(key)
            tags += [(event_id, tag) for tag in row["tags"]]
            hour = (row["ts"] // HOUR_MS * HOUR_MS, row["integration_id"])
            for tag in row["tags"]:
                tag_key = (tag, *hour)
                tag_entry = tag_hourly.get(tag_key)
                if tag_entry is None:
                    tag_hourly[tag_key] = [tag, hour[0], hour[1], row["tenant_id"], row["connector"], 1]
                else:
                    tag_entry[5] += 1
            entry = hourly.get(hour)
            if entry is None:
                hourly[hour] = [hour[0], hour[1], row["tenant_id"], row["connector"], 1]
            else:
                entry[4] += 1
        if tags:
            tx.call(_SQLITE_INSERT_TAGS, lambda: cursor.executemany(_SQLITE_INSERT_TAGS, tags))
        if hourly:
            counts = [hourly[k] for k in sorted(hourly)]
            tx.call(_SQLITE_UPSERT_COUNTS, lambda: cursor.executemany(_SQLITE_UPSERT_COUNTS, counts))
        if tag_hourly:
            tag_counts = [tag_hourly[k] for k in sorted(tag_hourly)]
            tx.call(_SQLITE_UPSERT_TAG_COUNTS, lambda: cursor.executemany(_SQLITE_UPSERT_TAG_COUNTS, tag_counts))
        return created
    finally:
        cursor.close()


def _store_postgresql(tx: DriverWrite, rows: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    payload = _postgresql_payload(rows)

    def run():
        with tx.connection.cursor() as cursor:
            # Prepared once per connection: the plan of this statement is worth keeping.
            cursor.execute(_PG_STORE, (payload,), prepare=True)
            return cursor.fetchall()

    return _created(tx.call(_PG_STORE, run))


async def store_rows_postgresql_async(connection, rows: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """store_rows on an asyncio psycopg connection in autocommit (ingest.PostgresEventWriter),
    where the statement is its own transaction. psycopg's errors are raised as they are."""
    async with connection.cursor() as cursor:
        await cursor.execute(_PG_STORE, (_postgresql_payload(rows),), prepare=True)
        return _created(await cursor.fetchall())


def _postgresql_payload(rows: list[dict[str, Any]]) -> str:
    return orjson.dumps([{f: row[f] for f in EVENT_FIELDS} for row in rows]).decode()


def _created(inserted: list[tuple[int, str, str]]) -> dict[tuple[str, str], int]:
    return {(integration_id, external_id): event_id for event_id, integration_id, external_id in inserted}


# ---------------------------------------------------------------------------- integrations

# How long another process's edit of an integration (its tags, tenant) may go unseen here. Edits
# and deletions through this process's API are seen at once (they call invalidate()).
INTEGRATION_CACHE_SECONDS = 2.0


class IntegrationRow(NamedTuple):
    id: str
    tenant_id: str | None
    type: str
    config: dict[str, Any]


def lookup_integrations(tx: DriverWrite, ids: Collection[str]) -> dict[str, IntegrationRow]:
    """The integrations of these ids that exist."""
    if not ids:
        return {}
    ids = list(ids)
    if tx.dialect.name == "postgresql":
        sql = "SELECT id, tenant_id, type, config FROM integrations WHERE id = ANY(%s)"
        params: Any = (ids,)
    else:
        sql = f"SELECT id, tenant_id, type, config FROM integrations WHERE id IN ({', '.join('?' * len(ids))})"
        params = ids

    def run():
        cursor = tx.connection.cursor()
        try:
            return cursor.execute(sql, params).fetchall()
        finally:
            cursor.close()

    found = {}
    for integration_id, tenant_id, type_id, config in tx.call(sql, run):
        if isinstance(config, str):  # SQLite keeps JSON as text
            config = orjson.loads(config)
        found[integration_id] = IntegrationRow(integration_id, tenant_id, type_id, config)
    return found


class IntegrationCache:
    """Integration id -> its row (id, tenant_id, type, config), for ingestion. Only integrations
    that exist are cached; events of one deleted by another process fail their foreign key, and
    ingestion then drops the entries and tries again (services/events.ingest_events)."""

    def __init__(self, ttl: float = INTEGRATION_CACHE_SECONDS):
        self._ttl = ttl
        self._entries: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()
        # Bumped by every invalidation: a lookup that started before one does not store its
        # (possibly older) rows.
        self._generation = 0

    def lookup(self, tx: DriverWrite, ids: Iterable[str]) -> dict[str, IntegrationRow]:
        found, missing = self.cached(ids)
        if missing:
            now, generation = time.monotonic(), self._generation
            rows = lookup_integrations(tx, missing)
            with self._lock:
                if generation == self._generation:
                    if len(self._entries) > 10_000:
                        self._entries.clear()
                    for integration_id, row in rows.items():
                        self._entries[integration_id] = (now, row)
            found.update(rows)
        return found

    def cached(self, ids: Iterable[str]) -> tuple[dict[str, IntegrationRow], list[str]]:
        """(the rows of these ids known and fresh here, the ids to look up)."""
        now = time.monotonic()
        found: dict[str, Any] = {}
        missing: list[str] = []
        entries = self._entries
        for integration_id in ids:
            hit = entries.get(integration_id)
            if hit is not None and now - hit[0] < self._ttl:
                found[integration_id] = hit[1]
            else:
                missing.append(integration_id)
        return found, missing

    def invalidate(self, integration_ids: Iterable[str] | None = None) -> None:
        """Forget the given integrations (all when None); call it after their change commits."""
        with self._lock:
            self._generation += 1
            if integration_ids is None:
                self._entries.clear()
            else:
                for integration_id in integration_ids:
                    self._entries.pop(integration_id, None)
