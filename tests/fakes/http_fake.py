"""The HTTP plumbing shared by the fake GitHub and GitLab servers: a threaded HTTP/1.1 server on
a free port of a real socket, start/stop (also as a context manager, closing open keep-alive
connections), the request records, and a queue of injected faults.

A fake subclasses ``HTTPFake`` and provides ``_handle_request(method, raw_path, headers)``
(returning an object with ``status``, ``headers`` and ``body``; status ``DROPPED`` closes the
connection without answering) and ``_clock_epoch()`` (the server's clock, for the ``Date``
header). Only the standard library is used.
"""

from __future__ import annotations

import email.utils
import http.server
import re
import socket
import sys
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable

DROPPED = 0  # a response "status": close the connection without answering

__all__ = ["DROPPED", "Fault", "Faults", "HTTPFake"]


@dataclass
class Fault:
    """An injected answer for the next ``times`` requests that ``match``."""

    times: int
    status: int  # DROPPED: the connection is closed under the request
    match: Callable[[str], bool] = lambda target: True
    body: Any = None
    headers: dict = field(default_factory=dict)
    kind: str = "fail"  # a fake's own kinds, e.g. "rate_limit"
    retry_after: int = 2
    header: str = "Retry-After"


class Faults:
    """Injected faults, first added first served; each is used ``times`` times."""

    def __init__(self, lock: threading.RLock):
        self._lock = lock
        self._items: list[Fault] = []

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._items.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def take(self, *targets: str) -> Fault | None:
        """The first fault matching any of ``targets`` (it is used once), or None."""
        with self._lock:
            for i, fault in enumerate(self._items):
                if fault.times > 0 and any(fault.match(t) for t in targets):
                    fault.times -= 1
                    if fault.times <= 0:
                        del self._items[i]
                    return fault
        return None

    def __len__(self) -> int:
        return len(self._items)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: "HTTPFake"

    def handle_error(self, request, client_address):  # quiet on client disconnects (and TLS errors)
        if isinstance(sys.exc_info()[1], (ConnectionError, socket.timeout, OSError)):
            return
        super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    sys_version = ""
    server: _Server

    def log_message(self, format, *args):  # noqa: A002 - silence
        pass

    def version_string(self) -> str:
        return self.server.fake.server_header

    def date_time_string(self, timestamp: float | None = None) -> str:
        # The Date header is the server's clock (the fake's world clock), not this host's.
        return email.utils.formatdate(self.server.fake._clock_epoch() if timestamp is None else timestamp,
                                      usegmt=True)

    def setup(self):
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.server.fake._register_conn(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.fake._unregister_conn(self.connection)

    def _handle(self, method: str):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        resp = self.server.fake._handle_request(method, self.path, self.headers)
        if resp.status == DROPPED:  # the connection breaks before any answer
            self.close_connection = True
            if self.server.fake.drop_with_reset:  # RST rather than FIN
                try:
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               b"\x01\x00\x00\x00\x00\x00\x00\x00")
                except OSError:
                    pass
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.send_response(resp.status)
        for k, v in resp.headers.items():
            self.send_header(k, v)
        if resp.status != 304:
            self.send_header("Content-Length", str(len(resp.body)))
        # headers and body in one write: two small writes + Nagle + delayed ACK cost ~40 ms/request
        self._headers_buffer.append(b"\r\n")
        if resp.body and method != "HEAD" and resp.status != 304:
            self._headers_buffer.append(resp.body)
        self.flush_headers()

    def do_GET(self):
        self._handle("GET")

    def do_HEAD(self):
        self._handle("HEAD")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_PATCH(self):
        self._handle("PATCH")

    def do_DELETE(self):
        self._handle("DELETE")


class HTTPFake(ABC):
    """A fake HTTP API served on ``host`` at a free port, in a daemon thread."""

    server_header = "fake"  # the Server header
    drop_with_reset = False  # a DROPPED answer resets the connection (else closes it)

    def __init__(self, host: str = "127.0.0.1"):
        self.host = host
        self.port: int | None = None
        self.requests: list = []  # the fake's request records, in arrival order
        self._lock = threading.RLock()
        self._faults = Faults(self._lock)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._conns: set = set()

    # ---------------------------------------------------------------- to provide
    @abstractmethod
    def _handle_request(self, method: str, raw_path: str, headers) -> Any:
        ...

    def _clock_epoch(self) -> float:
        ...

    def _prepare_server(self, srv: http.server.HTTPServer) -> str:
        """Called before serving (e.g. to wrap the socket in TLS); returns the URL scheme."""
        return "http"

    def _started(self, origin: str) -> None:
        """Called once the port is known (``origin``: ``scheme://host:port``), before serving."""

    def _stopped(self) -> None:
        """Called after the server stopped."""

    # ---------------------------------------------------------------- lifecycle
    def start(self):
        if self._server is not None:
            return self
        srv = _Server((self.host, 0), _Handler)
        srv.fake = self
        scheme = self._prepare_server(srv)
        self._server = srv
        self.port = srv.server_address[1]
        self._started(f"{scheme}://{self.host}:{self.port}")
        self._thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02},
                                        name=f"{type(self).__name__}:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        srv = self._server
        if srv is None:
            return
        srv.shutdown()
        with self._lock:
            conns = list(self._conns)
        for c in conns:  # keep-alive connections would hold their handler threads
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        srv.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None
        self._stopped()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _register_conn(self, conn) -> None:
        with self._lock:
            self._conns.add(conn)

    def _unregister_conn(self, conn) -> None:
        with self._lock:
            self._conns.discard(conn)

    # ---------------------------------------------------------------- request records
    def _record(self, record) -> int:
        """Keeps a request record; returns its sequence number (1, 2, …, across resets)."""
        with self._lock:
            self.requests.append(record)
            self._req_seq = getattr(self, "_req_seq", 0) + 1
            return self._req_seq

    def request_count(self, path_regex: str | None = None) -> int:
        """Requests received (whose ``path`` matches ``path_regex``, if given)."""
        with self._lock:
            if path_regex is None:
                return len(self.requests)
            rx = re.compile(path_regex)
            return sum(1 for r in self.requests if rx.search(r.path))

    def reset_requests(self) -> None:
        with self._lock:
            self.requests.clear()
