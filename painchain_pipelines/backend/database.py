"""Engine and sessions. SQLite gets WAL, a busy timeout, foreign keys and serialized writers."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker


def _json_dumps(value) -> str:
    return orjson.dumps(value).decode()


class Database:
    def __init__(self, url: str, *, echo: bool = False):
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
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
            _configure_sqlite(self.engine)
        else:
            self.engine = create_engine(self.url, pool_size=10, max_overflow=20, pool_pre_ping=True, **common)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._writer_engine = self.engine.execution_options(painchain_write=True)
        self._write_sessions = sessionmaker(self._writer_engine, expire_on_commit=False)
        # One writer at a time inside this process: SQLite has a single write lock anyway and a
        # queue here is fairer and cheaper than the busy-handler's sleep loop.
        self._write_lock = threading.Lock() if self.is_sqlite else contextlib.nullcontext()

    @property
    def safe_url(self) -> str:
        return self.url.render_as_string(hide_password=True)

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        with self._sessions() as session:
            yield session

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on error."""
        with self._write_lock, self._write_sessions() as session, session.begin():
            yield session

    @contextlib.contextmanager
    def write_connection(self) -> Iterator:
        """A Core connection in a write transaction (used by migrations)."""
        with self._write_lock, self._writer_engine.begin() as conn:
            yield conn

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy's "begin" event below decide how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # Writers take the write lock up front so that a concurrent writer in another process
        # makes us wait (busy_timeout) instead of failing a lock upgrade with SQLITE_BUSY.
        if conn.get_execution_options().get("painchain_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")
