"""Engine and sessions. SQLite gets WAL, a busy timeout, foreign keys and serialized writers.

Every API query runs under a time budget, so that no request can keep the database busy for
long (or after its client has left): `read_timeout` seconds for reads (PostgreSQL
`statement_timeout`; on SQLite a progress handler interrupts the transaction), `write_timeout`
for the API's writes. Schema migrations have none. A query stopped this way raises an error that
`is_query_timeout()` recognises; the API answers it with a 503 (see routers/base.py).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

# Defaults of the API's time budgets (BackendSettings reads the environment's overrides).
DEFAULT_READ_TIMEOUT = 5.0
DEFAULT_WRITE_TIMEOUT = 30.0
# SQLite calls the progress handler every this many virtual-machine instructions (~1 ms of work).
_SQLITE_PROGRESS_STEPS = 20_000
# PostgreSQL: SQLSTATE 57014 query_canceled (statement_timeout).
_PG_QUERY_CANCELED = "57014"


def _json_dumps(value) -> str:
    return orjson.dumps(value).decode()


def is_query_timeout(exc: BaseException) -> bool:
    """Whether `exc` is a query stopped by its time budget (either database)."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == _PG_QUERY_CANCELED:
        return True
    return isinstance(orig, sqlite3.OperationalError) and getattr(orig, "sqlite_errorname", "") == "SQLITE_INTERRUPT"


class Database:
    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        write_timeout: float = DEFAULT_WRITE_TIMEOUT,
    ):
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        # Seconds; 0 means no limit (settings: PAINCHAIN_QUERY_TIMEOUT_SECONDS / _WRITE_TIMEOUT_).
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        common = dict(echo=echo, json_serializer=_json_dumps, json_deserializer=orjson.loads)
        if self.is_sqlite:
            if self.url.database and self.url.database != ":memory:":
                Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(
                self.url,
                connect_args={"check_same_thread": False, "timeout": 30},
                pool_size=8,
                max_overflow=24,
                **common,
            )
            _configure_sqlite(self.engine, self)
        else:
            # Reads (and anything else on a plain connection) get the read budget as the session
            # default; write transactions raise or lift it with SET LOCAL.
            self.engine = create_engine(
                self.url, pool_size=10, max_overflow=20, pool_pre_ping=True,
                connect_args={"options": self._session_options(self.read_timeout)}, **common,
            )
            _configure_postgresql(self.engine, self)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._writer_engine = self.engine.execution_options(painchain_write=True, painchain_budget="write")
        self._unlimited_writer = self.engine.execution_options(painchain_write=True, painchain_budget="none")
        self._write_sessions = sessionmaker(self._writer_engine, expire_on_commit=False)
        self._unlimited_write_sessions = sessionmaker(self._unlimited_writer, expire_on_commit=False)
        # One writer at a time inside this process: SQLite has a single write lock anyway and a
        # queue here is fairer and cheaper than the busy-handler's sleep loop.
        self._write_lock = threading.Lock() if self.is_sqlite else contextlib.nullcontext()

    @property
    def safe_url(self) -> str:
        return self.url.render_as_string(hide_password=True)

    def budget(self, kind: str | None) -> float:
        """Seconds allowed to a transaction of this kind ("read", "write", "none"); 0: no limit."""
        if kind == "none":
            return 0.0
        return self.write_timeout if kind == "write" else self.read_timeout

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        with self._sessions() as session:
            yield session

    @contextlib.contextmanager
    def write(self, *, unlimited: bool = False) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on error, under the
        write budget (or none: work that cannot be split and must not fail for taking long,
        like deleting an integration with all its events)."""
        sessions = self._unlimited_write_sessions if unlimited else self._write_sessions
        with self._write_lock, sessions() as session, session.begin():
            yield session

    @contextlib.contextmanager
    def write_connection(self, *, api: bool = False) -> Iterator:
        """A Core connection in a write transaction: without a time limit (migrations), or with
        the API's write budget (`api=True`)."""
        engine = self._writer_engine if api else self._unlimited_writer
        with self._write_lock, engine.begin() as conn:
            yield conn

    @contextlib.contextmanager
    def driver_write(self, pooled=None) -> Iterator[DriverWrite]:
        """An API write transaction (write lock, write budget) on the driver's connection itself,
        for ingestion: SQLAlchemy's Connection costs about 0.2 ms per transaction, more than
        storing an event. Its statements go through DriverWrite.call (errors as SQLAlchemy's).
        `pooled`: a connection the caller holds (from engine.raw_connection()), kept open."""
        with self._write_lock:
            held = pooled is not None
            pooled = pooled if held else self.engine.raw_connection()
            try:
                tx = DriverWrite(self, pooled)
                tx.begin()
                try:
                    yield tx
                except BaseException:
                    tx.rollback()
                    raise
                tx.commit()
            finally:
                if not held:
                    pooled.close()

    def statement_writer_connect_args(self) -> dict:
        """PostgreSQL: psycopg's connect() arguments for a writer's connection of its own
        (ingest.PostgresEventWriter) whose every statement is a transaction alone: the engine's,
        in autocommit, with the write budget as the session's statement_timeout."""
        _, params = self.engine.dialect.create_connect_args(self.engine.url)
        params.pop("context", None)  # the engine's type adapters: its statements pass text
        return {**params, "options": self._session_options(self.write_timeout), "autocommit": True}

    def _session_options(self, seconds: float) -> str:
        """PostgreSQL's `options` for a session with this statement_timeout, after the URL's own
        options (ours come last and win)."""
        options = f"-c statement_timeout={_ms(seconds)}"
        return f"{self.url.query['options']} {options}" if self.url.query.get("options") else options

    def driver_error(self, statement: str, exc: Exception, connection) -> DBAPIError:
        """A driver's error on `connection` as SQLAlchemy's, as the routes answer them
        (IntegrityError, a spent budget that is_query_timeout() recognises...);
        `connection_invalidated` when the connection was lost."""
        dialect = self.engine.dialect
        return DBAPIError.instance(statement, None, exc, dialect.loaded_dbapi.Error,
                                   connection_invalidated=dialect.is_disconnect(exc, connection, None),
                                   dialect=dialect)

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


class DriverWrite:
    """A write transaction on a pooled driver connection (see Database.driver_write)."""

    def __init__(self, db: Database, pooled):
        self.dialect = db.engine.dialect
        self.connection = pooled.dbapi_connection
        self._db = db
        self._pooled = pooled
        self._deadline = pooled.info.get("painchain_deadline") if db.is_sqlite else None

    def call(self, statement: str, run):
        """run() with the driver's errors raised as SQLAlchemy's (IntegrityError, a spent budget
        that is_query_timeout() recognises...); a lost connection is not given back to the pool."""
        try:
            return run()
        except self.dialect.loaded_dbapi.Error as exc:
            error = self._db.driver_error(statement, exc, self.connection)
            if error.connection_invalidated:
                self._pooled.invalidate(exc)
            raise error from exc

    def begin(self) -> None:
        seconds = self._db.budget("write")
        if self._deadline is not None:
            self._deadline[0] = time.monotonic() + seconds if seconds > 0 else None
            # As write transactions do (see _configure_sqlite): wait for another process's writer.
            self.call("BEGIN IMMEDIATE", lambda: self.connection.execute("BEGIN IMMEDIATE"))
        else:  # psycopg opens the transaction with this first statement
            statement = f"SET LOCAL statement_timeout = {_ms(seconds)}"
            self.call(statement, lambda: self.connection.execute(statement))

    def commit(self) -> None:
        self._clear()  # a commit is never interrupted by a spent budget
        if self._db.is_sqlite:
            self.call("COMMIT", lambda: self.connection.execute("COMMIT"))
        else:
            self.call("COMMIT", self.connection.commit)

    def rollback(self) -> None:
        self._clear()
        try:
            if not self._db.is_sqlite:
                self.connection.rollback()
            elif self.connection.in_transaction:
                self.connection.execute("ROLLBACK")
        except self.dialect.loaded_dbapi.Error as exc:
            self._pooled.invalidate(exc)

    def _clear(self) -> None:
        if self._deadline is not None:
            self._deadline[0] = None


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000)) if seconds > 0 else 0


def _configure_postgresql(engine: Engine, db: Database) -> None:
    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        kind = conn.get_execution_options().get("painchain_budget")
        if kind in ("write", "none"):
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {_ms(db.budget(kind))}")


SQLITE_WAL_CHECKPOINT_PAGES = 10_000
SQLITE_WAL_SIZE_LIMIT = 64 * 1024 * 1024


def _configure_sqlite(engine: Engine, db: Database) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, record):
        # Let SQLAlchemy's "begin" event below decide how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA cache_size=-65536")
        # A checkpoint every 10,000 WAL pages (40 MB), not 1,000: single events' commits write the
        # same hot pages (index ends, hourly counts) again and again, and a checkpoint copies each
        # once. A one-event write 0.41 -> 0.35 ms, a batch of 1,000 76 -> 55 ms (docs/benchmarks.md);
        # the WAL file is cut back to 64 MB after a larger burst.
        cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_CHECKPOINT_PAGES}")
        cursor.execute(f"PRAGMA journal_size_limit={SQLITE_WAL_SIZE_LIMIT}")
        cursor.close()
        # The transaction's deadline (monotonic seconds), or None: past it, SQLite stops whatever
        # statement is running with SQLITE_INTERRUPT.
        deadline: list[float | None] = [None]
        record.info["painchain_deadline"] = deadline

        def _progress() -> int:
            limit = deadline[0]
            return 1 if limit is not None and time.monotonic() > limit else 0

        dbapi_connection.set_progress_handler(_progress, _SQLITE_PROGRESS_STEPS)

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        options = conn.get_execution_options()
        seconds = db.budget(options.get("painchain_budget"))
        conn.info["painchain_deadline"][0] = time.monotonic() + seconds if seconds > 0 else None
        # Writers take the write lock up front so that a concurrent writer in another process
        # makes us wait (busy_timeout) instead of failing a lock upgrade with SQLITE_BUSY.
        if options.get("painchain_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    def _clear(conn) -> None:
        holder = conn.info.get("painchain_deadline")
        if holder is not None:
            holder[0] = None

    # COMMIT and ROLLBACK must never be interrupted by a spent budget.
    event.listen(engine, "commit", _clear)
    event.listen(engine, "rollback", _clear)

    @event.listens_for(engine.pool, "reset")
    def _on_reset(_dbapi_connection, record, _state):
        holder = record.info.get("painchain_deadline")
        if holder is not None:
            holder[0] = None


def dialect_insert(bind, model):
    """INSERT with ON CONFLICT support (`on_conflict_do_nothing/update`) for the bind's dialect."""
    from sqlalchemy.dialects import postgresql, sqlite

    name = bind.get_bind().dialect.name if hasattr(bind, "get_bind") else bind.dialect.name
    return (postgresql if name == "postgresql" else sqlite).insert(model)
