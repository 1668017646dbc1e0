"""Event ingestion (deduplicated on integrationId + externalId) and timeline queries."""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from sqlalchemy import BigInteger, any_, bindparam, exists, func, literal, select, text, tuple_, union_all
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError, OperationalError

from painchain_pipelines.backend.database import Database
from painchain_pipelines.backend.models import Event, EventCount, EventTag, EventTagCount
from painchain_pipelines.backend.schemas.common import iso_from_ms, to_epoch_ms
from painchain_pipelines.backend.schemas.events import EventIn
from painchain_pipelines.backend.services.ingest_store import (
    IntegrationCache,
    lookup_integrations,
    store_rows,
)
from painchain_pipelines.backend.services.json_input import INT_MIN, MAX_JSON_DEPTH, TOO_DEEP, JsonProblem

SEARCH_TEXT_LIMIT = 8192


@dataclass
class IngestResult:
    status: str  # created | duplicate | invalid
    id: int | None = None
    errors: list[dict[str, Any]] | None = None
    # For a single POST: why it is invalid, as an HTTP status (404 unknown integration, 422 bad field).
    http_status: int = 201
    # The stored row, for created events (so the API can answer without reading it back).
    row: dict[str, Any] | None = None


def _invalid(field_name: str, msg: str, http_status: int = 422) -> IngestResult:
    return IngestResult("invalid", errors=[{"loc": ["body", field_name], "msg": msg}], http_status=http_status)


def merge_tags(integration_tags: Sequence[Any], event_tags: Sequence[str]) -> list[str]:
    merged: list[str] = []
    for tag in (*integration_tags, *event_tags):
        if isinstance(tag, str) and tag and tag not in merged:
            merged.append(tag)
    return merged


def build_search_text(title: str, project: str, data: dict[str, Any], *, depth: int = 2) -> str:
    """Lower-cased title, project and every scalar value in data (not the keys), capped.

    The same walk checks how deep data nests (it is at level `depth`, counting from the event):
    raises JsonProblem past MAX_JSON_DEPTH, so that what is stored can always be read back.
    """
    parts = [title, project]
    _collect_text(data, depth, parts, len(title) + len(project))
    return "\n".join(parts)[:SEARCH_TEXT_LIMIT].lower()


def _collect_text(container: dict | list, level: int, parts: list[str], size: int) -> int:
    for value in container.values() if type(container) is dict else container:
        kind = type(value)
        if kind is str:
            if size < SEARCH_TEXT_LIMIT:
                parts.append(value)
                size += len(value) + 1
        elif kind is dict or kind is list:
            if level >= MAX_JSON_DEPTH:
                raise JsonProblem((), TOO_DEEP)
            size = _collect_text(value, level + 1, parts, size)
        elif (kind is int or kind is float) and size < SEARCH_TEXT_LIMIT:
            parts.append(str(value))
    return size


HOUR_MS = 3600 * 1000


def ingest_events(
    db: Database, events: Sequence[EventIn], tenant_scope: str | None, *, max_data_bytes: int,
    tenant_scopes: Sequence[str | None] | None = None, integrations: IntegrationCache | None = None,
) -> list[IngestResult]:
    """Store events, skipping (integrationId, externalId) pairs that already exist.

    `tenant_scope` None means the caller may post for any tenant's integration; otherwise only
    for integrations of that tenant (others look like unknown integrations, never stored).
    `tenant_scopes` gives each event its own (events of several requests stored together), and
    `integrations` caches the integrations' lookup.
    """
    try:
        return _ingest_once(db, events, tenant_scope, max_data_bytes, tenant_scopes, integrations)
    except (IntegrityError, OperationalError) as exc:
        # An integration deleted between our lookup and the insert, or (PostgreSQL) a deadlock
        # victim: both are resolved by doing it again against fresh state.
        if isinstance(exc, OperationalError) and "deadlock" not in str(exc).lower():
            raise
        if integrations is not None:
            integrations.invalidate({e.integration_id for e in events})
        return _ingest_once(db, events, tenant_scope, max_data_bytes, tenant_scopes, integrations)


def _ingest_once(
    db: Database, events: Sequence[EventIn], tenant_scope: str | None, max_data_bytes: int,
    tenant_scopes: Sequence[str | None] | None = None, cache: IntegrationCache | None = None,
) -> list[IngestResult]:
    wanted = integrations_wanted(events)
    with db.driver_write() as conn:
        integrations = cache.lookup(conn, wanted) if cache is not None else lookup_integrations(conn, wanted)
        prepared = PreparedEvents(events, integrations, tenant_scope, tenant_scopes, max_data_bytes)
        if prepared.rows:
            # Events, tags and hourly counts (see ingest_store: driver-level, one round trip on PostgreSQL).
            prepared.stored(store_rows(conn, prepared.rows))
    return prepared.results()


def integrations_wanted(events: Sequence[EventIn]) -> set[str]:
    """The integration ids to look up for these events. PostgreSQL cannot even compare a NUL
    character: such ids are answered without a lookup."""
    return {e.integration_id for e in events if "\x00" not in e.integration_id}


class PreparedEvents:
    """Events checked against their integrations (`integrations`: id -> IntegrationRow, those
    that exist) and turned into `rows` to store (EVENT_FIELDS, in key order); `stored()` takes
    what storing them created, and `results()` answers every event, in order."""

    def __init__(self, events: Sequence[EventIn], integrations: dict[str, Any], tenant_scope: str | None,
                 tenant_scopes: Sequence[str | None] | None, max_data_bytes: int):
        self._results: list[IngestResult | None] = [None] * len(events)
        received_ms = int(time.time() * 1000)
        rows: list[dict[str, Any]] = []
        row_positions: list[int] = []
        results = self._results
        for position, event in enumerate(events):
            if "\x00" in event.integration_id:
                results[position] = _invalid("integrationId", "must not contain NUL (\\u0000) characters")
                continue
            integration = integrations.get(event.integration_id)
            scope = tenant_scope if tenant_scopes is None else tenant_scopes[position]
            if integration is None or (scope is not None and integration.tenant_id != scope):
                results[position] = _invalid(
                    "integrationId", f"integration {event.integration_id!r} not found", http_status=404
                )
                continue
            if event.connector != integration.type:
                results[position] = _invalid(
                    "connector",
                    f"must be {integration.type!r}, the type of integration {event.integration_id!r}",
                )
                continue
            # One walk of data: the search text, and the nesting checked before anything
            # serialises it.
            try:
                search_text = build_search_text(event.title, event.project, event.data)
            except JsonProblem as problem:
                results[position] = _invalid("data", problem.msg)
                continue
            blob = orjson.dumps(event.data)
            if len(blob) > max_data_bytes:
                results[position] = _invalid("data", f"is larger than {max_data_bytes // 1024} KiB")
                continue
            # PostgreSQL cannot store NUL characters (text or JSONB); refuse them everywhere alike.
            nul_field = None
            if "\x00" in event.title + event.project + event.external_id + "".join(event.tags) or b"\\u0000" in blob:
                nul_field = next((f for f, v in (("title", event.title), ("project", event.project),
                                                 ("externalId", event.external_id), ("tags", "".join(event.tags)))
                                  if "\x00" in v), "data")
            if nul_field:
                results[position] = _invalid(nul_field, "must not contain NUL (\\u0000) characters")
                continue
            rows.append({
                "tenant_id": integration.tenant_id,
                "integration_id": event.integration_id,
                "connector": event.connector,
                "project": event.project,
                "title": event.title,
                "external_id": event.external_id,
                "ts": to_epoch_ms(event.timestamp),
                "received_at": received_ms,
                "data": event.data,
                "tags": merge_tags((integration.config or {}).get("tags") or [], event.tags),
                "search_text": search_text,
            })
            row_positions.append(position)
        # One key order for every writer: concurrent batches on PostgreSQL then wait for each
        # other instead of deadlocking on overlapping keys.
        order = sorted(range(len(rows)), key=lambda i: (rows[i]["integration_id"], rows[i]["external_id"]))
        self.rows = [rows[i] for i in order]
        self._row_positions = [row_positions[i] for i in order]

    def stored(self, created: dict[tuple[str, str], int]) -> None:
        """`created`: (integration_id, external_id) -> id of the rows inserted (ingest_store)."""
        for position, row in zip(self._row_positions, self.rows):
            event_id = created.pop((row["integration_id"], row["external_id"]), None)
            if event_id is None:
                self._results[position] = IngestResult("duplicate", http_status=409)
                continue
            row["id"] = event_id
            self._results[position] = IngestResult("created", id=event_id, row=row)

    def results(self) -> list[IngestResult]:
        return [r for r in self._results if r is not None]


def find_event_id(db: Database, integration_id: str, external_id: str) -> int | None:
    with db.read() as session:
        return session.scalar(
            select(Event.id).where(Event.integration_id == integration_id, Event.external_id == external_id)
        )


# ---------------------------------------------------------------- queries


class InvalidCursor(ValueError):
    pass


def encode_cursor(ts: int, event_id: int) -> str:
    return base64.urlsafe_b64encode(f"{ts}:{event_id}".encode()).decode().rstrip("=")


_CURSOR = re.compile(r"^(-?[0-9]{1,19}):([0-9]{1,19})$")
BIGINT_MAX = 2**63 - 1


def decode_cursor(cursor: str) -> tuple[int, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor("is not a cursor returned by this API") from None
    match = _CURSOR.match(raw)
    if match is None:
        raise InvalidCursor("is not a cursor returned by this API")
    ts, event_id = int(match[1]), int(match[2])
    if not (INT_MIN <= ts <= BIGINT_MAX and event_id <= BIGINT_MAX):
        raise InvalidCursor("is not a cursor returned by this API")
    return ts, event_id


# Tag filters ("events carrying every one of these tags"). One EXISTS per tag lets the planner
# drive the query from the rarest tag, but PostgreSQL plans n semi-joins in O(n^2) or worse
# (80 tags: 2 s of planning). So at most EXISTS_TAGS tags get their own EXISTS (the rarest, by a
# bounded count), and any further ones are checked together by one per-row count over
# event_tags' primary key: planning stays constant whatever the number of tags (capped by the API).
EXISTS_TAGS = 3
TAG_PROBE_LIMIT = 1000


def order_tags_by_rarity(session, tags: list[str]) -> list[str] | None:
    """`tags` (distinct) rarest first, counting each up to TAG_PROBE_LIMIT events (one statement
    of bounded index range scans); None when one of them is on no event (nothing can match)."""
    if len(tags) < 2:
        return tags
    probes = [
        select(literal(i).label("i"), func.count().label("n")).select_from(
            select(literal(1).label("one")).where(EventTag.tag == tag).limit(TAG_PROBE_LIMIT).subquery()
        )
        for i, tag in enumerate(tags)
    ]
    counts = {int(i): int(n) for i, n in session.execute(union_all(*probes)).all()}
    if any(counts.get(i, 0) == 0 for i in range(len(tags))):
        return None
    return [tags[i] for i in sorted(range(len(tags)), key=lambda i: counts[i])]


@dataclass
class EventFilter:
    tenant_id: str | None = None
    connectors: list[str] = field(default_factory=list)
    projects: list[str] = field(default_factory=list)
    integration_ids: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    since_ms: int | None = None
    until_ms: int | None = None
    received_since_ms: int | None = None
    text: str | None = None

    def prepare(self, session) -> bool:
        """Order the tags for the query (rarest first); False when nothing can match."""
        ordered = order_tags_by_rarity(session, list(dict.fromkeys(self.tags)))
        if ordered is None:
            return False
        self.tags = ordered
        return True

    @property
    def ts(self):
        """The timestamp column, or, when asking what arrived since a moment, an expression the
        planner cannot serve from a (ts, id) index: the few late arrivals are then found through
        ix_events_received and sorted, instead of walking the whole time range in order."""
        return Event.ts + 0 if self.received_since_ms is not None else Event.ts

    @property
    def order_id(self):
        return Event.id + 0 if self.received_since_ms is not None else Event.id

    def conditions(self) -> list:
        conds = []
        if self.tenant_id is not None:
            conds.append(Event.tenant_id == self.tenant_id)
        for column, values in (
            (Event.connector, self.connectors),
            (Event.project, self.projects),
            (Event.integration_id, self.integration_ids),
        ):
            if len(values) == 1:
                conds.append(column == values[0])
            elif values:
                conds.append(column.in_(values))
        for tag in self.tags[:EXISTS_TAGS]:
            conds.append(exists().where(EventTag.event_id == Event.id, EventTag.tag == tag))
        rest = self.tags[EXISTS_TAGS:]
        if rest:
            carried = select(func.count()).where(EventTag.event_id == Event.id, EventTag.tag.in_(rest))
            conds.append(carried.scalar_subquery() == len(rest))
        if self.since_ms is not None:
            conds.append(self.ts >= self.since_ms)
        if self.until_ms is not None:
            conds.append(self.ts < self.until_ms)
        if self.received_since_ms is not None:
            conds.append(Event.received_at >= self.received_since_ms)
        if self.text:
            conds.append(Event.search_text.contains(self.text.lower(), autoescape=True))
        return conds


EVENT_COLUMNS = (
    Event.id,
    Event.title,
    Event.connector,
    Event.project,
    Event.ts,
    Event.external_id,
    Event.integration_id,
    Event.tenant_id,
    Event.data,
    Event.tags,
    Event.received_at,
)


def event_to_dict(row) -> dict[str, Any]:
    return {
        "id": row.id,
        "title": row.title,
        "connector": row.connector,
        "project": row.project,
        "timestamp": iso_from_ms(row.ts),
        "externalId": row.external_id,
        "integrationId": row.integration_id,
        "tenantId": row.tenant_id,
        "data": row.data or {},
        "tags": row.tags or [],
        "receivedAt": iso_from_ms(row.received_at),
    }


# Free text (see docs/api.md, "Search"). A frequent term is found fastest by reading the
# timeline in order and checking each event: the first TEXT_SCAN_ROWS events the other filters let
# through are read that way first. A rarer term is looked up in the trigram index (migration 0005),
# which lists the events holding it: up to TEXT_CANDIDATES of them are then filtered and ordered.
# A term both rare lately and frequent in the past (more than TEXT_CANDIDATES events) is left to
# the ordered scan over the whole range, exact but slower.
TEXT_SCAN_ROWS = 2_000
WINDOW_CHUNK = 250  # rows fetched at a time from that scan (PostgreSQL: a server-side cursor)
# As many matches among those and the term is frequent enough for the ordered scan to fill a page
# within some 20,000 events: the index is not asked.
TEXT_FREQUENT_HITS = 5
TEXT_CANDIDATES = 5_000
TRIGRAM = 3  # shorter terms are not in the index


def _trigram_queries(term: str) -> list[str]:
    """FTS5 queries for events holding trigrams of `term`: its first and last ones, then up to
    8 spread over it. The index keeps no positions, so each answers a superset of the events
    containing the term (the caller rechecks the text); FTS5's cost grows with the number of
    trigrams, so the cheap query comes first and the narrower one only if that one is too wide."""
    grams = list(dict.fromkeys(term[i:i + TRIGRAM] for i in range(len(term) - TRIGRAM + 1)))

    def spread(count: int) -> list[str]:
        if len(grams) <= count:
            return grams
        return [grams[round(i * (len(grams) - 1) / (count - 1))] for i in range(count)]

    queries = [" AND ".join('"' + gram.replace('"', '""') + '"' for gram in spread(n)) for n in (2, 8)]
    return list(dict.fromkeys(queries))


def text_candidates(session, term: str, limit: int = TEXT_CANDIDATES) -> list[int] | None:
    """Ids of the events that may contain `term` (lower case) — every one that does — from the
    trigram index; None when the term is too short for the index or more than `limit` events
    qualify. On PostgreSQL the ids are exact; on SQLite a superset (check the text)."""
    if len(term) < TRIGRAM:
        return None
    if session.get_bind().dialect.name == "sqlite":
        stmt = text("SELECT rowid FROM events_search WHERE events_search MATCH :query LIMIT :n")
        for query in _trigram_queries(term):
            ids = session.scalars(stmt, {"query": query, "n": limit + 1}).all()
            if len(ids) <= limit:
                break
    else:
        # Only a bitmap scan of the GIN index: a sequential scan for a rare term reads every row.
        # (An error aborts the transaction, and these settings with it.)
        words = _index_words(session, term)
        session.execute(text("SET LOCAL enable_seqscan = off"))
        session.execute(text("SET LOCAL enable_indexscan = off"))
        stmt = select(Event.id).where(*(Event.search_text.contains(word, autoescape=True) for word in words))
        if words != [term]:  # the whole term checked on the rare words' candidates, not through the index
            stmt = stmt.where((Event.search_text + "").contains(term, autoescape=True))
        ids = session.scalars(stmt.limit(limit + 1)).all()
        session.execute(text("SET LOCAL enable_seqscan = on"))
        session.execute(text("SET LOCAL enable_indexscan = on"))
    return None if len(ids) > limit else list(ids)


def _index_words(session, term: str) -> list[str]:
    """What to look up in PostgreSQL's trigram index for `term`: its rare words when some of its
    words are frequent (fewer than TEXT_FREQUENT_HITS among the newest TEXT_SCAN_ROWS events),
    else the term itself. pg_trgm intersects the posting lists of every trigram of the pattern, so
    a word in nearly every event (`change` of `change 4242`) makes it read most of the index; the
    rare words name every event holding the term, which is then checked on those. Each word keeps
    the characters around it in the term: pg_trgm indexes a word's start and end (` 4242` is not
    inside a SHA, `deploy ` is not in `deployment`)."""
    words = list(dict.fromkeys(
        term[max(0, m.start() - 1):m.end() + 1] for m in re.finditer(r"\S+", term) if m.end() - m.start() >= TRIGRAM))
    if len(words) < 2:
        return [term]
    recent = (select(Event.search_text.label("search_text")).order_by(Event.ts.desc(), Event.id.desc())
              .limit(TEXT_SCAN_ROWS).subquery())
    hits = session.execute(select(*(
        func.count().filter(recent.c.search_text.contains(word, autoescape=True)) for word in words
    ))).one()
    rare = [word for word, count in zip(words, hits) if count < TEXT_FREQUENT_HITS]
    return rare if 0 < len(rare) < len(words) else [term]


def _after(filters: EventFilter, stmt, position: tuple[int, int] | None):
    if position is None:
        return stmt
    ts, event_id = position
    return stmt.where(tuple_(filters.ts, filters.order_id) < tuple_(literal(ts), literal(event_id)))


def _matching(session, filters: EventFilter, ids: list[int] | None) -> list:
    """The filters' conditions, among `ids` (the text candidates) if given."""
    if ids is None:
        return filters.conditions()
    if session.get_bind().dialect.name == "postgresql":
        # One array parameter: an IN list of a few thousand took longer to bind than to run.
        return [Event.id == any_(bindparam("candidate_ids", ids, type_=ARRAY(BigInteger))), *filters.conditions()]
    return [Event.id.in_(ids), *filters.conditions()]


def _newest(session, filters: EventFilter, position, count: int, ids: list[int] | None = None) -> list:
    stmt = _after(filters, select(*EVENT_COLUMNS).where(*_matching(session, filters, ids)), position)
    if ids is not None:
        # Fetch the candidates by id and sort them: no walk of a timeline index in order.
        return session.execute(stmt.order_by((Event.ts + 0).desc(), (Event.id + 0).desc()).limit(count)).all()
    return session.execute(stmt.order_by(filters.ts.desc(), filters.order_id.desc()).limit(count)).all()


def _newest_by_scan(session, filters: EventFilter, position, count: int) -> tuple[list, bool]:
    """The newest matches (up to `count`) among the next TEXT_SCAN_ROWS events the other filters
    let through, and whether they are the answer (the page is full, or no event is left)."""
    others = replace(filters, text=None)
    # One pass over the window, read as it goes: each event's id and whether its text matches;
    # a frequent term stops it early, a rare one reads it whole once (and learns if it was all).
    hit = Event.search_text.contains(filters.text.lower(), autoescape=True).label("hit")
    window = _after(others, select(Event.id, hit).where(*others.conditions()), position)
    window = window.order_by(others.ts.desc(), others.order_id.desc()).limit(TEXT_SCAN_ROWS)
    ids, scanned = [], 0
    with session.execute(window.execution_options(yield_per=WINDOW_CHUNK)) as marks:
        for mark in marks:
            scanned += 1
            if mark.hit:
                ids.append(mark.id)
                if len(ids) == count:
                    break
    rows = session.execute(select(*EVENT_COLUMNS).where(Event.id.in_(ids))
                           .order_by((Event.ts + 0).desc(), (Event.id + 0).desc())).all() if ids else []
    return rows, len(rows) == count or scanned < TEXT_SCAN_ROWS


def list_events(
    db: Database, filters: EventFilter, *, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    position = decode_cursor(cursor) if cursor else None
    with db.read() as session:
        if not filters.prepare(session):
            return [], None
        rows = None
        if filters.text:
            rows, complete = _newest_by_scan(session, filters, position, limit + 1)
            if not complete:
                frequent = len(rows) >= TEXT_FREQUENT_HITS
                ids = None if frequent else text_candidates(session, filters.text.lower())
                rows = None if ids is None else _newest(session, filters, position, limit + 1, ids) if ids else []
        if rows is None:
            rows = _newest(session, filters, position, limit + 1)
    next_cursor = encode_cursor(rows[limit - 1].ts, rows[limit - 1].id) if len(rows) > limit else None
    return [event_to_dict(r) for r in rows[:limit]], next_cursor


def get_event(db: Database, event_id: int, tenant_id: str | None) -> dict[str, Any] | None:
    stmt = select(*EVENT_COLUMNS).where(Event.id == event_id)
    if tenant_id is not None:
        stmt = stmt.where(Event.tenant_id == tenant_id)
    with db.read() as session:
        row = session.execute(stmt).first()
    return event_to_dict(row) if row else None


NICE_BUCKET_SECONDS = (
    1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
    86400, 172800, 604800, 1209600, 2592000, 7776000, 31536000,
)


def choose_bucket_seconds(span_ms: int, max_buckets: int) -> int:
    for seconds in NICE_BUCKET_SECONDS:
        if span_ms / (seconds * 1000) <= max_buckets:
            return seconds
    return NICE_BUCKET_SECONDS[-1]


def histogram(
    db: Database, filters: EventFilter, *, bucket_seconds: int, force_scan: bool = False
) -> dict[str, Any]:
    """Counts per time bucket per connector over [since, until), computed by the database.

    Whole hours come from the hourly counts (per tag when one tag is asked for) when the filters
    allow it (no project or text filter, at most one tag, bucket a whole number of hours); partial
    hours at the edges and every other case count the events themselves. Both give the same numbers.
    """
    assert filters.since_ms is not None and filters.until_ms is not None
    bucket_ms = bucket_seconds * 1000
    since, until = filters.since_ms, filters.until_ms
    counted: dict[tuple[int, str], int] = {}
    with db.read() as session:
        first_hour = -(-since // HOUR_MS) * HOUR_MS
        last_hour = until // HOUR_MS * HOUR_MS
        rollup = (
            not force_scan
            and bucket_ms % HOUR_MS == 0
            and not (filters.projects or len(set(filters.tags)) > 1 or filters.text)
            and first_hour < last_hour
        )
        if not filters.prepare(session):
            pass  # a tag on no event: every bucket is empty
        elif rollup:
            _count_rollup(session, filters, first_hour, last_hour, bucket_ms, counted)
            for lo, hi in ((since, first_hour), (last_hour, until)):
                if lo < hi:
                    _count_events(session, replace(filters, since_ms=lo, until_ms=hi), bucket_ms, counted)
        else:
            ids = text_candidates(session, filters.text.lower()) if filters.text else None
            if ids != []:
                _count_events(session, filters, bucket_ms, counted, ids)

    first, last = since // bucket_ms, (until - 1) // bucket_ms
    buckets = {i: {"start": iso_from_ms(i * bucket_ms), "total": 0, "counts": {}} for i in range(first, last + 1)}
    connectors: set[str] = set()
    total = 0
    for (index, connector), n in counted.items():
        entry = buckets[index]
        entry["counts"][connector] = entry["counts"].get(connector, 0) + n
        entry["total"] += n
        connectors.add(connector)
        total += n
    return {
        "since": iso_from_ms(since),
        "until": iso_from_ms(until),
        "bucketSeconds": bucket_seconds,
        "connectors": sorted(connectors),
        "total": total,
        "buckets": list(buckets.values()),
    }


def _add(counted: dict[tuple[int, str], int], rows) -> None:
    for row in rows:
        key = (int(row.bucket), row.connector)
        counted[key] = counted.get(key, 0) + int(row.n)


def _count_events(session, filters: EventFilter, bucket_ms: int, counted, ids: list[int] | None = None) -> None:
    bucket = (Event.ts // literal(bucket_ms, BigInteger)).label("bucket")
    stmt = select(bucket, Event.connector, func.count().label("n")).where(*_matching(session, filters, ids))
    _add(counted, session.execute(stmt.group_by(bucket, Event.connector)))


def _count_rollup(session, filters: EventFilter, first_hour: int, last_hour: int, bucket_ms: int, counted) -> None:
    """Whole hours from the hourly counts: per tag when the filter names one tag."""
    table = EventTagCount if filters.tags else EventCount
    bucket = (table.hour_ts // literal(bucket_ms, BigInteger)).label("bucket")
    conds = [table.hour_ts >= first_hour, table.hour_ts < last_hour]
    if filters.tags:
        conds.append(EventTagCount.tag == filters.tags[0])
    if filters.tenant_id is not None:
        conds.append(table.tenant_id == filters.tenant_id)
    if filters.connectors:
        conds.append(table.connector.in_(filters.connectors))
    if filters.integration_ids:
        conds.append(table.integration_id.in_(filters.integration_ids))
    stmt = select(bucket, table.connector, func.sum(table.count).label("n")).where(*conds)
    _add(counted, session.execute(stmt.group_by(bucket, table.connector)))


FACET_SAMPLE = 5000


def facets(db: Database, filters: EventFilter, limit: int = 100) -> dict[str, Any]:
    """Most frequent projects and tags among the newest FACET_SAMPLE matching events: bounded
    work whatever the range, and what people are most likely to filter on."""
    with db.read() as session:
        if not filters.prepare(session):
            return {"sample": 0, "projects": [], "tags": []}
        newest = (
            select(Event.id, Event.project)
            .where(*filters.conditions())
            .order_by(Event.ts.desc(), Event.id.desc())
            .limit(FACET_SAMPLE)
            .subquery()
        )
        sample = session.scalar(select(func.count()).select_from(newest))
        projects = session.execute(
            select(newest.c.project, func.count().label("n")).group_by(newest.c.project)
            .order_by(func.count().desc(), newest.c.project).limit(limit)
        ).all()
        tags = session.execute(
            select(EventTag.tag, func.count().label("n")).join(newest, newest.c.id == EventTag.event_id)
            .group_by(EventTag.tag).order_by(func.count().desc(), EventTag.tag).limit(limit)
        ).all()
    return {
        "sample": sample,
        "projects": [{"value": p, "count": n} for p, n in projects],
        "tags": [{"value": t, "count": n} for t, n in tags],
    }
