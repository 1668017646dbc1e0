"""The single-event hot path, `POST /api/events`. The events of concurrent requests are stored
together, in one transaction (group commit): a commit is the dearest part of a small write, and
PostgreSQL pays it with a disk flush. Each request still gets its own answer.

* EventWriter (SQLite): one writer thread per app; an event that fails never fails the others
  stored with it (the group is then stored event by event).
* PostgresEventWriter (PostgreSQL): the event loop itself, on an asyncio connection; a group that
  fails leaves each of its requests to the route, which stores and answers it alone.
* SingleEventFastPath: pure ASGI, inside the guards and the metrics middleware. It answers the
  common case (a JSON body that validates, an event created or a duplicate) without FastAPI's
  routing, dependency solving and thread-pool hop; every other request (bad JSON, a field at
  fault, a refused token, an unknown integration...) goes on to the route in routers/events.py
  with its body, which answers it as before. Both store through the same service code.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from types import SimpleNamespace
from typing import Any

import orjson
import psycopg
from fastapi import HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from painchain_pipelines.backend.auth import bearer_scheme, get_principal
from painchain_pipelines.backend.database import Database
from painchain_pipelines.backend.routers.events import _may_hold_long_integer
from painchain_pipelines.backend.schemas.events import EventIn
from painchain_pipelines.backend.services import events as service
from painchain_pipelines.backend.services.ingest_store import IntegrationCache, store_rows_postgresql_async
from painchain_pipelines.backend.services.json_input import MAX_JSON_DEPTH, JsonProblem, check_json

log = logging.getLogger(__name__)

# Events stored per transaction at most: the queue of a burst is taken in bites this large.
MAX_GROUP = 500


class EventWriter:
    """Stores single events for the event loop(s), in groups. The thread starts on first use."""

    def __init__(self, db: Database, integrations: IntegrationCache, *, max_data_bytes: int):
        self._db = db
        self._connection = _HeldConnection(db)
        self._integrations = integrations
        self._max_data_bytes = max_data_bytes
        self._queue: deque = deque()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    async def store(self, event: EventIn, tenant_scope: str | None) -> tuple[service.IngestResult, int | None]:
        """(what became of the event, the stored id of its duplicate if it is one)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._wake:
            if self._closed:
                raise RuntimeError("the event writer is stopped")
            self._queue.append((event, tenant_scope, loop, future))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="painchain-event-writer", daemon=True)
                self._thread.start()
            self._wake.notify()
        return await future

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=60)

    async def aclose(self) -> None:
        await run_in_threadpool(self.close)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._closed:
                    self._wake.wait()
                if not self._queue:
                    self._connection.close()
                    return
                group = [self._queue.popleft() for _ in range(min(len(self._queue), MAX_GROUP))]
            try:
                self._store_group(group)
            except BaseException as exc:  # never leave a request waiting
                log.exception("event writer")
                for item in group:
                    _settle(item, error=exc)

    def _store_group(self, group: list) -> None:
        try:
            results = self._ingest([item[0] for item in group], [item[1] for item in group])
        except Exception as exc:
            if len(group) == 1:
                _settle(group[0], error=exc)
                return
            # Something failed the transaction: store one by one, so it fails only its own event.
            for item in group:
                self._store_group([item])
            return
        for item, result in zip(group, results):
            existing = None
            if result.status == "duplicate":
                try:
                    existing = service.find_event_id(self._db, item[0].integration_id, item[0].external_id)
                except Exception as exc:
                    _settle(item, error=exc)
                    continue
            _settle(item, value=(result, existing))

    def _ingest(self, events: list[EventIn], scopes: list[str | None]) -> list[service.IngestResult]:
        return service.ingest_events(self._connection, events, None, max_data_bytes=self._max_data_bytes,
                                     tenant_scopes=scopes, integrations=self._integrations)


class _HeldConnection:
    """The writer thread's own pooled connection, held, as a Database for ingest_events:
    checking a connection out of the pool and back costs more than a one-event transaction."""

    def __init__(self, db: Database):
        self._db = db
        self._pooled = None

    def driver_write(self):
        if self._pooled is not None and not self._pooled.is_valid:  # lost: a new one
            self._pooled.close()
            self._pooled = None
        if self._pooled is None:
            self._pooled = self._db.engine.raw_connection()
        return self._db.driver_write(self._pooled)

    def close(self) -> None:
        if self._pooled is not None:
            self._pooled.close()
            self._pooled = None


class PostgresEventWriter:
    """Stores single events on PostgreSQL from the event loop, in groups: while one group's
    statement runs, the requests that arrive queue up for the next one. The statement goes on an
    asyncio connection of the writer's own, in autocommit under the write budget
    (Database.statement_writer_connect_args), so that it commits in its one round trip. With a
    writer thread, each group also waited for threads to wake and for the GIL: PostgreSQL worked
    on the statement for about half of the time the writer waited for it (docs/benchmarks.md)."""

    def __init__(self, db: Database, integrations: IntegrationCache, *, max_data_bytes: int):
        self._db = db
        self._integrations = integrations
        self._max_data_bytes = max_data_bytes
        self._queue: list = []
        self._drainer: asyncio.Task | None = None
        self._connection: psycopg.AsyncConnection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._failure_logged_at: float | None = None

    async def store(self, event: EventIn, tenant_scope: str | None) -> tuple[service.IngestResult, int | None]:
        """(what became of the event, the stored id of its duplicate if it is one). One event
        loop at a time (uvicorn's): a new one starts afresh."""
        if self._closed:
            raise RuntimeError("the event writer is stopped")
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a connection and a task belong to the loop they were made in
            self._drop_connection()
            self._loop, self._queue, self._drainer = loop, [], None
        future = loop.create_future()
        self._queue.append((event, tenant_scope, future))
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain())
        result = await future
        existing = None
        if result.status == "duplicate":
            existing = await run_in_threadpool(service.find_event_id, self._db, event.integration_id,
                                               event.external_id)
        return result, existing

    async def aclose(self) -> None:
        self._closed = True
        if self._drainer is not None:
            await self._drainer
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def _drain(self) -> None:
        group: list = []
        try:
            while self._queue:
                group, self._queue = self._queue[:MAX_GROUP], self._queue[MAX_GROUP:]
                try:
                    results = await self._ingest([item[0] for item in group], [item[1] for item in group])
                except Exception as exc:  # each request then goes on to the route, which answers it
                    self._log_failure(len(group), exc)
                    _settle_all(group, error=exc)
                else:
                    for (_, _, future), result in zip(group, results):
                        if not future.done():  # else its request was cancelled (its client left)
                            future.set_result(result)
                group = []
        except BaseException as exc:  # cancelled: never leave a request waiting
            _settle_all(group + self._queue, error=RuntimeError(f"the event writer stopped: {exc!r}"))
            self._queue = []
            raise
        finally:
            self._drainer = None

    async def _ingest(self, events: list[EventIn], scopes: list[str | None]) -> list[service.IngestResult]:
        integrations, missing = self._integrations.cached(service.integrations_wanted(events))
        if missing:
            integrations.update(await run_in_threadpool(self._lookup, missing))
        prepared = service.PreparedEvents(events, integrations, None, scopes, self._max_data_bytes)
        if prepared.rows:
            prepared.stored(await self._store(prepared.rows))
        return prepared.results()

    def _lookup(self, ids: list[str]) -> dict:
        with self._db.driver_write() as tx:
            return self._integrations.lookup(tx, ids)

    async def _store(self, rows: list[dict]) -> dict[tuple[str, str], int]:
        """store_rows on the writer's connection (a new one if there is none or it was lost);
        psycopg's errors raised as SQLAlchemy's, as the routes answer them."""
        if self._connection is None or self._connection.closed:
            self._connection = None
            try:
                self._connection = await psycopg.AsyncConnection.connect(**self._db.statement_writer_connect_args())
            except psycopg.Error as exc:
                raise self._db.driver_error("connect", exc, None) from exc
        connection = self._connection
        try:
            return await store_rows_postgresql_async(connection, rows)
        except psycopg.Error as exc:
            error = self._db.driver_error("store events", exc, connection)
            if error.connection_invalidated:
                self._drop_connection()
            if isinstance(exc, psycopg.IntegrityError):  # an integration deleted by another process
                self._integrations.invalidate({row["integration_id"] for row in rows})
            raise error from exc

    def _log_failure(self, size: int, exc: Exception) -> None:
        """A warning, at most one a minute: each failure costs its requests a second try."""
        now = time.monotonic()
        if self._failure_logged_at is None or now - self._failure_logged_at > 60:
            self._failure_logged_at = now
            log.warning("storing a group of %d single events failed, the API stores them one by one: %s",
                        size, str(exc).splitlines()[0])

    def _drop_connection(self) -> None:
        if self._connection is not None:
            self._connection.pgconn.finish()  # no await: its loop may be gone
            self._connection = None


def _settle_all(items: list, *, error: BaseException) -> None:
    for _, _, future in items:
        if not future.done():
            future.set_exception(error)


def _settle(item, *, value: Any = None, error: BaseException | None = None) -> None:
    _, _, loop, future = item

    def settle() -> None:
        if future.done():  # the request was cancelled (its client left)
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    try:
        loop.call_soon_threadsafe(settle)
    except RuntimeError:  # the loop is closed: nobody is waiting any more
        pass


# ---------------------------------------------------------------------------- the fast path

_PATH = "/api/events"
_JSON_TYPES = (b"application/json", b"application/json; charset=utf-8", b"application/json;charset=utf-8")


class SingleEventFastPath:
    """See the module docstring. `route`: the FastAPI route of POST /api/events, put in the
    scope as routing would (the metrics middleware labels requests by it)."""

    def __init__(self, app, ctx, route=None):
        self.app = app
        self.ctx = ctx
        self.route = route

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != _PATH or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        messages = []
        body = b""
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        if messages[-1]["type"] == "http.request":
            answer = await self._answer(scope, body)
            if answer is not None:
                await send(answer[0])
                await send(answer[1])
                return
        # Anything else: the route answers, from the same body.
        pending = deque(messages)

        async def replay():
            return pending.popleft() if pending else await receive()

        await self.app(scope, replay, send)

    async def _answer(self, scope, body: bytes) -> tuple[dict, dict] | None:
        """The response messages, or None to let the route answer."""
        content_type = None
        tenant_headers = 0
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.lower()
            elif name == b"x-tenant-id":
                tenant_headers += 1
        if content_type not in _JSON_TYPES or tenant_headers > 1:
            return None
        event = _valid_event(body)
        if event is None:
            return None
        request = Request(scope)
        try:
            principal = await get_principal(request, await bearer_scheme(request),
                                            request.headers.get("x-tenant-id"))
        except HTTPException:
            return None
        try:
            result, existing = await self.ctx.ingest_writer.store(event, principal.tenant_id)
        except SQLAlchemyError:
            return None  # rolled back: the route tries once more, and answers (503) and counts errors
        if result.status == "invalid":
            return None  # the route answers it (and counts it), naming the field
        if self.route is not None:
            scope["route"] = self.route
            scope["endpoint"] = self.route.endpoint
        metrics = getattr(self.ctx, "metrics", None)
        if metrics is not None:
            metrics.count_single_event(scope, event.connector, result.status)
        if result.status == "duplicate":
            return _json(409, {"detail": "duplicate event: this (integrationId, externalId) is already stored",
                               "existingId": existing})
        return _json(201, service.event_to_dict(SimpleNamespace(**result.row)))


def _valid_event(body: bytes) -> EventIn | None:
    """The event if the body is one that the route would accept as is, else None. The route
    parses exactly and applies services/json_input's rules; here orjson is trusted only where it
    cannot differ: it refuses NaN, infinities, lone surrogates and control characters itself, a
    digit run that may be a 64-bit overflow goes to the route, and so does any escaped NUL. The
    nesting rule is walked only when the body has enough brackets to break it."""
    if b"\\u0000" in body or _may_hold_long_integer(body):
        return None
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(value) is not dict:
        return None
    try:
        if body.count(b"{") + body.count(b"[") > MAX_JSON_DEPTH:
            check_json(value)
        return EventIn.model_validate(value)
    except (JsonProblem, ValidationError):
        return None


def _json(status: int, content: Any) -> tuple[dict, dict]:
    body = orjson.dumps(content)
    return (
        {"type": "http.response.start", "status": status,
         "headers": [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]},
        {"type": "http.response.body", "body": body},
    )
