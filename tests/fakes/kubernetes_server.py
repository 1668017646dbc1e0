"""A local fake of the Kubernetes API server on a real socket, serving a ``ClusterWorld``.

The official ``kubernetes`` Python client works against it unchanged::

    w = ClusterWorld(name="prod-eu", now=datetime(2026, 12, 1, 12, tzinfo=timezone.utc))
    d = w.apply_deployment("shop", "api", image="registry.example.com/shop/api:1.4.0", replicas=3)
    with FakeKubernetes(w, token="t0k3n") as fake:
        cfg = kubernetes.client.Configuration(host=fake.url, api_key={"authorization": "t0k3n"},
                                              api_key_prefix={"authorization": "Bearer"})
        api = kubernetes.client.AppsV1Api(kubernetes.client.ApiClient(cfg))
        for ev in kubernetes.watch.Watch().stream(api.list_deployment_for_all_namespaces,
                                                  resource_version="1000", timeout_seconds=5): ...

Only GET.  Served: /version, /api, /apis, /api/v1, /apis/apps/v1, /apis/events.k8s.io/v1 (discovery),
core/v1 pods + events (+ namespaces list), apps/v1 deployments, statefulsets, daemonsets, replicasets,
controllerrevisions, events.k8s.io/v1 events; cluster-wide and namespaced lists, single GETs,
``limit``/``continue`` pagination (consistent snapshots), label and field selectors, watches
(``watch=true`` or the legacy ``/watch/`` paths) with resume from a resourceVersion, 410 Gone
outside the history window, BOOKMARKs, ``timeoutSeconds``, ``sendInitialEvents``.
Standard library only (``http.server.ThreadingHTTPServer``; orjson when installed).

Controls: ``fake.requests`` (RequestRecord per request, watches included, duration filled when the
stream ends), ``fake.history_window`` (resourceVersions a watch / continue token may resume from),
``fake.expire_history()``, ``fake.drop_watches()``, ``fake.fail(regex, status, times)`` (regex searched
in ``path?query``; status 0 drops the connection), ``fake.down``, ``fake.bookmark_interval_s``,
``fake.watch_timeout_s`` (server cap when the client sends no timeoutSeconds, 1800 s),
``fake.configuration(token)`` (a ready ``kubernetes.client.Configuration``), ``tls=True`` + ``fake.ca_path``.

What the kubernetes client (v37) does with it -- worth knowing when writing a connector:

* A too-old resourceVersion on a watch is answered HTTP 200 + one ``ERROR`` event whose object is a
  Status ``{code: 410, reason: Expired}``, then the stream ends.  ``watch.Watch().stream`` raises
  ``ApiException(status=410)`` at once when ``timeout_seconds`` was given; without it, it silently
  retries once from the same (stale) resourceVersion and raises on the second 410.  Relist then.
* A continue token older than the window: HTTP 410 ``Expired``; the Status carries an inconsistent
  ``metadata.continue`` that finishes the list from the latest state.
* ``drop_watches()`` / a server going away mid-stream: ``stream`` raises
  ``urllib3.exceptions.ProtocolError('Response ended prematurely')`` (no automatic reconnect).
  A clean end (``timeoutSeconds`` reached) just ends the generator when ``timeout_seconds`` was given;
  without it the client reconnects from the last seen resourceVersion (BOOKMARKs included).
* ``down``: every connection is closed without an answer -> urllib3 retries (3 by default), then
  ``MaxRetryError(ProtocolError('Connection aborted.', RemoteDisconnected(...)))``.
* events.k8s.io/v1 serves old-style (core-written) events with ``eventTime: null``, as the real
  apiserver does; the typed client (pydantic models) then fails with a ``ValidationError`` for the
  whole list / watch event.  Use core/v1 events, or ``_preload_content=False`` / ``deserialize=False``.
* New-style events (events.k8s.io writers: scheduler ``Scheduled``, ``api="events.k8s.io"``) read via
  core/v1 have ``count``, ``firstTimestamp``, ``lastTimestamp`` null: the time is ``eventTime`` /
  ``series.lastObservedTime``.
* List items carry no ``kind`` / ``apiVersion`` (as from the real server); watch objects and GETs do.
* Watch filters by the object state at each change (no synthetic DELETED when an object stops matching
  a label selector; labels never change in this world).
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import http.server
import json
import re
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

from .kubernetes_world import RESOURCES, ClusterWorld, event_to_events_v1

__all__ = ["FakeKubernetes", "ClusterWorld", "RequestRecord"]

VERSION = {"major": "1", "minor": "31", "gitVersion": "v1.31.4", "gitCommit": "a78aa47129b8539636eb86a9d00e31b2720fe06b",
           "gitTreeState": "clean", "buildDate": "2024-12-10T18:05:21Z", "goVersion": "go1.22.10",
           "compiler": "gc", "platform": "linux/amd64"}

# group prefix -> {resource: store}
GROUPS: dict[str, dict[str, str]] = {
    "/api/v1": {"pods": "pods", "events": "events", "namespaces": "namespaces"},
    "/apis/apps/v1": {"deployments": "deployments", "statefulsets": "statefulsets", "daemonsets": "daemonsets",
                      "replicasets": "replicasets", "controllerrevisions": "controllerrevisions"},
    "/apis/events.k8s.io/v1": {"events": "events"},
}
SINGULAR = {"pods": "pod", "events": "event", "deployments": "deployment", "statefulsets": "statefulset",
            "daemonsets": "daemonset", "replicasets": "replicaset", "controllerrevisions": "controllerrevision",
            "namespaces": "namespace"}
SHORT = {"pods": ["po"], "events": ["ev"], "deployments": ["deploy"], "statefulsets": ["sts"],
         "daemonsets": ["ds"], "replicasets": ["rs"], "namespaces": ["ns"]}

# field selectors the real apiserver accepts per resource (plus metadata.name / metadata.namespace)
FIELDS: dict[tuple[str, str], dict[str, str]] = {
    ("pods", "core"): {"spec.nodeName": "spec.nodeName", "spec.restartPolicy": "spec.restartPolicy",
                       "spec.schedulerName": "spec.schedulerName",
                       "spec.serviceAccountName": "spec.serviceAccountName", "status.phase": "status.phase",
                       "status.podIP": "status.podIP", "status.nominatedNodeName": "status.nominatedNodeName"},
    ("events", "core"): {f"involvedObject.{k}": f"involvedObject.{k}" for k in
                         ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")}
    | {"reason": "reason", "reportingComponent": "reportingComponent", "source": "source.component",
       "type": "type"},
    ("events", "events.k8s.io"): {f"regarding.{k}": f"regarding.{k}" for k in
                                  ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")}
    | {"reason": "reason", "reportingController": "reportingController", "type": "type"},
    ("replicasets", "core"): {"status.replicas": "status.replicas"},
}

UTC_STATUS = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
           409: "Conflict", 410: "Expired", 429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
           504: "Timeout"}
DROPPED = 0


@dataclass
class RequestRecord:
    method: str
    path: str  # decoded, without the query string, e.g. /apis/apps/v1/namespaces/shop/deployments
    query: dict[str, str]
    status: int = 0  # 0: connection dropped / refused (``down`` or ``fail(status=0)``)
    watch: bool = False
    duration: float = 0.0  # seconds; for a watch, the life of the stream (0 while still open)
    at: datetime | None = None  # world time when received
    headers: dict[str, str] = field(default_factory=dict)  # request headers, lower-case keys


@dataclass
class _Fault:
    regex: re.Pattern
    status: int
    times: int
    body: Any = None
    headers: dict | None = None


class ApiError(Exception):
    def __init__(self, status: int, message: str, reason: str | None = None, details: dict | None = None,
                 metadata: dict | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason or REASONS.get(status, "Unknown")
        self.details = details
        self.metadata = metadata
        self.headers = headers or {}

    def body(self) -> dict:
        b = dict(UTC_STATUS, metadata=self.metadata or {}, message=self.message, reason=self.reason, code=self.status)
        if self.details:
            b["details"] = self.details
        return b


def status_body(code: int, message: str, reason: str | None = None, details: dict | None = None) -> dict:
    return ApiError(code, message, reason, details).body()


class _Resp:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, body: bytes = b"", headers: dict | None = None):
        self.status = status
        self.body = body
        self.headers = headers or {}


try:
    import orjson as _orjson

    def _dumps(obj: Any) -> bytes:
        return _orjson.dumps(obj)
except ImportError:  # pragma: no cover
    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()


# --------------------------------------------------------------------------------------------
# selectors


def _split_top(s: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return [x.strip() for x in out if x.strip()]


def parse_label_selector(s: str | None):
    """-> predicate(labels: dict) -> bool.  Supports =, ==, !=, in, notin, exists, !exists."""
    if not s:
        return None
    reqs = []
    for part in _split_top(s):
        m = re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", part)
        if m:
            vals = {v.strip() for v in m.group(3).split(",") if v.strip()}
            reqs.append((m.group(1), m.group(2), vals))
            continue
        m = re.fullmatch(r"([\w./-]+)\s*(==|!=|=)\s*([\w./-]*)", part)
        if m:
            reqs.append((m.group(1), "!=" if m.group(2) == "!=" else "=", m.group(3)))
            continue
        m = re.fullmatch(r"(!?)([\w./-]+)", part)
        if m:
            reqs.append((m.group(2), "!exists" if m.group(1) else "exists", None))
            continue
        raise ApiError(400, f"unable to parse requirement: found '{part}', expected: identifier")

    def pred(labels: dict) -> bool:
        labels = labels or {}
        for k, op, v in reqs:
            if op == "=" and labels.get(k) != v:
                return False
            if op == "!=" and labels.get(k) == v:
                return False
            if op == "in" and labels.get(k) not in v:
                return False
            if op == "notin" and k in labels and labels[k] in v:
                return False
            if op == "exists" and k not in labels:
                return False
            if op == "!exists" and k in labels:
                return False
        return True
    return pred


def _dig(obj: dict, path: str) -> str:
    cur: Any = obj
    for p in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(p)
    if cur is None:
        return ""
    return str(cur)


def parse_field_selector(s: str | None, resource: str, api: str):
    if not s:
        return None
    allowed = {"metadata.name": "metadata.name", "metadata.namespace": "metadata.namespace",
               **FIELDS.get((resource, api), {})}
    reqs = []
    for part in _split_top(s):
        m = re.fullmatch(r"([\w.{}\[\]-]+)\s*(==|!=|=)\s*(.*)", part)
        if not m:
            raise ApiError(400, f"invalid selector: '{s}'; can't understand '{part}'")
        key, op, val = m.group(1), m.group(2), m.group(3)
        if key not in allowed:
            raise ApiError(400, f'field label not supported: {key}')
        reqs.append((allowed[key], op != "!=", val))

    def pred(obj: dict) -> bool:
        return all((_dig(obj, path) == val) == eq for path, eq, val in reqs)
    return pred


# --------------------------------------------------------------------------------------------
# continue tokens (as the apiserver encodes them: base64 of {"v","rv","start"})


def encode_continue(rv: int, start_key: str) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start_key + "\x00"}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_continue(tok: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4))
        d = json.loads(raw)
        if d.get("v") != "meta.k8s.io/v1":
            raise ValueError
        return int(d["rv"]), str(d["start"]).rstrip("\x00")
    except (ValueError, KeyError, TypeError, binascii.Error, json.JSONDecodeError):
        raise ApiError(400, "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
                       "BadRequest") from None


# --------------------------------------------------------------------------------------------
# HTTP plumbing


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    fake: "FakeKubernetes"

    def handle_error(self, request, client_address):
        import sys
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, socket.timeout, OSError, ssl.SSLError, ValueError)):
            return
        super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    sys_version = ""
    server: _Server

    def log_message(self, format, *args):  # noqa: A002
        pass

    def version_string(self) -> str:
        return ""

    def send_response(self, code, message=None):  # no Server header, as kube-apiserver
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def date_time_string(self, timestamp: float | None = None) -> str:
        return email.utils.formatdate(self.server.fake.world.now.timestamp() if timestamp is None else timestamp,
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
        except OSError:
            pass
        finally:
            self.server.fake._unregister_conn(self.connection)

    def abort(self):
        """Close without an answer (RST)."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def send_resp(self, resp: _Resp, method: str):
        self.send_response(resp.status)
        for k, v in resp.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(resp.body)))
        self._headers_buffer.append(b"\r\n")
        if resp.body and method != "HEAD":
            self._headers_buffer.append(resp.body)
        self.flush_headers()

    def _handle(self, method: str):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.fake._handle(self, method)

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


class _Watch:
    __slots__ = ("conn", "dropped", "rec")

    def __init__(self, conn, rec):
        self.conn = conn
        self.dropped = threading.Event()
        self.rec = rec


class _Dropped(Exception):
    pass


# --------------------------------------------------------------------------------------------


class FakeKubernetes:
    """Fake kube-apiserver at ``fake.url`` (``http://127.0.0.1:PORT``)."""

    def __init__(self, world: ClusterWorld, token: str = "fake-kube-token", host: str = "127.0.0.1",
                 tls: bool = False, latency_s: float = 0.0, history_window: int = 1000,
                 bookmark_interval_s: float = 1.0, watch_timeout_s: float = 1800.0):
        self.world = world
        self.token = token
        self.host = host
        self.tls = tls
        self.latency_s = latency_s
        self.history_window = history_window
        self.bookmark_interval_s = bookmark_interval_s
        self.watch_timeout_s = watch_timeout_s  # server-side cap when the client sends no timeoutSeconds
        self.ca_path: str | None = None
        self.url = ""
        self.port: int | None = None
        self.requests: list[RequestRecord] = []
        self._lock = threading.RLock()
        self._faults: list[_Fault] = []
        self._expired_below = 0
        self._down = False
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._conns: set = set()
        self._watches: set[_Watch] = set()
        self._tmpdir: tempfile.TemporaryDirectory | None = None

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> "FakeKubernetes":
        if self._server is not None:
            return self
        srv = _Server((self.host, 0), _Handler)
        srv.fake = self
        scheme = "http"
        if self.tls:
            self._setup_tls(srv)
            scheme = "https"
        self._server = srv
        self.port = srv.server_address[1]
        self.url = f"{scheme}://{self.host}:{self.port}"
        self._thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02},
                                        name=f"FakeKubernetes:{self.port}", daemon=True)
        self._thread.start()
        return self

    def _setup_tls(self, srv: _Server):
        self._tmpdir = tempfile.TemporaryDirectory(prefix="fakekube-tls-")
        d = Path(self._tmpdir.name)
        cert, key = d / "ca.crt", d / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
             "-days", "2", "-subj", f"/CN={self.host}",
             "-addext", f"subjectAltName=IP:{self.host},DNS:localhost,DNS:kubernetes.default.svc"],
            check=True, capture_output=True)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        self.ca_path = str(cert)

    def stop(self) -> None:
        srv = self._server
        if srv is None:
            return
        srv.shutdown()
        self.drop_watches()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        srv.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> "FakeKubernetes":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _register_conn(self, conn):
        with self._lock:
            self._conns.add(conn)

    def _unregister_conn(self, conn):
        with self._lock:
            self._conns.discard(conn)

    # ---------------------------------------------------------------- test controls
    def configuration(self, token: str | None = None):
        """A ``kubernetes.client.Configuration`` for this fake (bearer token, CA when tls)."""
        from kubernetes import client
        cfg = client.Configuration(host=self.url)
        cfg.api_key = {"authorization": token or self.token}
        cfg.api_key_prefix = {"authorization": "Bearer"}
        if self.tls:
            cfg.ssl_ca_cert = self.ca_path
        return cfg

    @property
    def down(self) -> bool:
        return self._down

    @down.setter
    def down(self, value: bool) -> None:
        self._down = bool(value)
        if value:
            self.drop_watches()
            with self._lock:
                conns = list(self._conns)
            for c in conns:  # idle keep-alive connections die too
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def expire_history(self) -> None:
        """From now on, resuming (watch or continue token) from any resourceVersion before the
        current one gets 410 Gone (as after an etcd compaction)."""
        with self.world.lock:
            self._expired_below = self.world.resource_version

    def oldest_resumable_rv(self) -> int:
        with self.world.lock:
            return max(self._expired_below, self.world.resource_version - self.history_window, self.world.start_rv)

    def drop_watches(self) -> int:
        """Close every open watch connection abruptly (no final chunk).  Returns how many."""
        with self._lock:
            ws = list(self._watches)
        for w in ws:
            w.dropped.set()
            try:
                w.conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self.world.changed:
            self.world.changed.notify_all()
        return len(ws)

    @property
    def open_watches(self) -> int:
        with self._lock:
            return len(self._watches)

    def fail(self, path_regex: str, status: int = 500, times: int = 1, body: Any = None,
             headers: dict | None = None) -> None:
        """The next ``times`` requests whose ``path?query`` matches (re.search) get ``status`` with a
        Status body (0: the connection is dropped without an answer).  401/403 as for a refused token."""
        with self._lock:
            self._faults.append(_Fault(re.compile(path_regex), status, times, body, headers))

    def request_count(self, path_regex: str | None = None, watch: bool | None = None) -> int:
        with self._lock:
            rx = re.compile(path_regex) if path_regex else None
            return sum(1 for r in self.requests
                       if (rx is None or rx.search(r.path)) and (watch is None or r.watch == watch))

    def reset_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # ---------------------------------------------------------------- request handling
    def _handle(self, h: _Handler, method: str) -> None:
        t0 = time.monotonic()
        raw_path, _, qs = h.path.partition("?")
        path = unquote(raw_path)
        query = dict(parse_qsl(qs, keep_blank_values=True))
        is_watch = query.get("watch") in ("true", "1") or "/watch/" in path
        rec = RequestRecord(method, path, query, 0, is_watch, 0.0, self.world.now,
                            {k.lower(): v for k, v in h.headers.items()})
        with self._lock:
            self.requests.append(rec)
        if self._down:
            h.abort()
            rec.duration = time.monotonic() - t0
            return
        if self.latency_s:
            time.sleep(self.latency_s)
        fault = self._fault_for(path + ("?" + qs if qs else ""))
        try:
            if fault is not None:
                if fault.status == DROPPED:
                    h.abort()
                    return
                raise ApiError(fault.status, self._fault_message(fault.status, path), headers=fault.headers)
            auth = h.headers.get("Authorization", "")
            if not (auth.startswith("Bearer ") and auth[len("Bearer "):].strip() == self.token):
                raise ApiError(401, "Unauthorized")
            if method not in ("GET", "HEAD"):
                raise ApiError(405, "the server does not allow this method on the requested resource",
                               "MethodNotAllowed")
            route = self._route(path)
            if route is None:
                raise ApiError(404, "the server could not find the requested resource", "NotFound",
                               {})
            if route[0] == "discovery":
                resp = self._json(200, route[1])
            else:
                _, store, api, ns, name, group_prefix = route
                if is_watch:
                    if name is not None:  # watch of one object: /watch/namespaces/ns/pods/name
                        query = dict(query, fieldSelector=",".join(
                            x for x in (query.get("fieldSelector"), f"metadata.name={name}") if x))
                    rec.status = 200
                    self._serve_watch(h, rec, store, api, ns, query, group_prefix)
                    return
                if name is not None:
                    resp = self._json(200, self._get(store, api, ns, name, group_prefix))
                else:
                    resp = self._json(200, self._list(store, api, ns, query, group_prefix))
        except ApiError as e:
            body = e.body()
            if fault is not None and fault.body is not None:
                body = fault.body
            resp = self._json(e.status, body, e.headers)
        except Exception as e:  # noqa: BLE001 - a bug in the fake answers 500, visibly
            resp = self._json(500, status_body(500, f"fake kube-apiserver error: {e!r}", "InternalError"))
        finally:
            if not rec.duration:  # a watch records its own (the life of its stream)
                rec.duration = time.monotonic() - t0
        rec.status = resp.status
        try:
            h.send_resp(resp, method)
        except OSError:
            h.close_connection = True

    def _fault_message(self, status: int, path: str) -> str:
        if status == 401:
            return "Unauthorized"
        if status == 403:
            return (f'{self._route_res(path)} is forbidden: User "system:serviceaccount:painchain:painchain" '
                    f'cannot list resource "{self._route_res(path)}" in API group "" at the cluster scope')
        if status == 429:
            return "Too many requests, please try again later."
        if status == 410:
            return "too old resource version"
        return "Internal error occurred: injected fault"

    def _route_res(self, path: str) -> str:
        r = self._route(path)
        return r[1] if r and r[0] == "resource" else "resource"

    def _fault_for(self, target: str) -> _Fault | None:
        with self._lock:
            for f in self._faults:
                if f.times > 0 and f.regex.search(target):
                    f.times -= 1
                    if f.times == 0:
                        self._faults.remove(f)
                    return f
        return None

    def _json(self, status: int, body: Any, extra: dict | None = None) -> _Resp:
        headers = {"Audit-Id": str(uuid.uuid4()), "Cache-Control": "no-cache, private",
                   "Content-Type": "application/json"}
        if status == 429:
            headers["Retry-After"] = "1"
        if extra:
            headers.update(extra)
        return _Resp(status, _dumps(body), headers)

    # ---------------------------------------------------------------- routing
    def _route(self, path: str):
        p = path.rstrip("/") or "/"
        if p == "/version":
            return ("discovery", VERSION)
        if p == "/api":
            return ("discovery", {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": "10.0.0.1:6443"}]})
        if p == "/apis":
            return ("discovery", {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": [{"groupVersion": f"{g}/v1", "version": "v1"}],
                 "preferredVersion": {"groupVersion": f"{g}/v1", "version": "v1"}}
                for g in ("apps", "events.k8s.io")]})
        for prefix, resources in GROUPS.items():
            if p == prefix:
                gv = prefix[len("/apis/"):] if prefix.startswith("/apis/") else "v1"
                return ("discovery", {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                                      "resources": [self._discovery_entry(r, prefix) for r in resources]})
            if not p.startswith(prefix + "/"):
                continue
            segs = p[len(prefix) + 1:].split("/")
            if segs and segs[0] == "watch":
                segs = segs[1:]
            ns = None
            if len(segs) >= 3 and segs[0] == "namespaces":
                ns = segs[1]
                segs = segs[2:]
            if not segs or segs[0] not in resources or len(segs) > 2:
                return None
            store = resources[segs[0]]
            name = segs[1] if len(segs) == 2 else None
            if store == "namespaces" and ns is not None:
                return None
            api = "events.k8s.io" if prefix == "/apis/events.k8s.io/v1" else "core"
            return ("resource", store, api, ns, name, prefix)
        return None

    @staticmethod
    def _discovery_entry(resource: str, prefix: str) -> dict:
        kind = "Namespace" if resource == "namespaces" else RESOURCES[resource][1]
        e = {"name": resource, "singularName": SINGULAR[resource], "namespaced": resource != "namespaces",
             "kind": kind, "verbs": ["get", "list", "watch"]}
        if resource in SHORT and prefix != "/apis/events.k8s.io/v1":
            e["shortNames"] = SHORT[resource]
        return e

    # ---------------------------------------------------------------- rendering
    @staticmethod
    def _render(obj: dict, store: str, api: str) -> dict:
        if store == "events" and api == "events.k8s.io":
            return event_to_events_v1(obj)
        return obj

    @staticmethod
    def _api_version(store: str, api: str) -> str:
        if store == "events" and api == "events.k8s.io":
            return "events.k8s.io/v1"
        if store == "namespaces":
            return "v1"
        return RESOURCES[store][0]

    def _namespaces(self) -> list[dict]:
        w = self.world
        out: dict[str, dict] = {}
        for store in RESOURCES:
            for (ns, _), o in w._store[store].items():
                if ns and ns not in out:
                    out[ns] = o
        res = []
        for ns, first in sorted(out.items()):
            res.append({"kind": "Namespace", "apiVersion": "v1", "metadata": {
                "name": ns, "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{w.name}/{ns}")),
                "resourceVersion": str(w.start_rv),
                "creationTimestamp": first["metadata"].get("creationTimestamp"),
                "labels": {"kubernetes.io/metadata.name": ns}},
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
        return res

    def _get(self, store: str, api: str, ns: str | None, name: str, prefix: str) -> dict:
        w = self.world
        with w.lock:
            if store == "namespaces":
                o = next((x for x in self._namespaces() if x["metadata"]["name"] == name), None)
            else:
                o = w._store[store].get((ns or "", name))
        if o is None:
            group = "" if prefix == "/api/v1" else prefix.split("/")[2]
            raise ApiError(404, f'{store}{"." + group if group else ""} "{name}" not found', "NotFound",
                           {"name": name, **({"group": group} if group else {}), "kind": store})
        return self._render(o, store, api)

    def _list(self, store: str, api: str, ns: str | None, q: dict, prefix: str) -> dict:
        w = self.world
        label_pred = parse_label_selector(q.get("labelSelector"))
        field_pred = parse_field_selector(q.get("fieldSelector"), store, api)
        try:
            limit = int(q.get("limit") or 0)
        except ValueError:
            raise ApiError(400, f"invalid limit {q.get('limit')!r}") from None
        cont = q.get("continue")
        start_after: tuple[str, str] | None = None
        with w.lock:
            floor = self.oldest_resumable_rv()
            if store == "namespaces":
                items = self._namespaces()
                list_rv = w.resource_version
                if cont:
                    start_after = ("", decode_continue(cont)[1])
            elif cont:
                rv, start = decode_continue(cont)
                ns_, _, nm = start.partition("/")
                start_after = (ns_, nm)
                if rv == -1:  # inconsistent continuation: latest state
                    rv = w.resource_version
                elif rv < floor:
                    new_tok = encode_continue(-1, start)
                    raise ApiError(410, "The provided continue parameter is too old to display a consistent list "
                                        "result. You can start a new list without the continue parameter, or use "
                                        "the continue token in this response to retrieve the remainder of the "
                                        "results. Continuing with the provided token results in an inconsistent "
                                        "list - objects that were created, modified, or deleted between the time "
                                        "the first chunk was returned and now may show up in the list.",
                                   "Expired", metadata={"continue": new_tok})
                items = w.state_at(store, rv) if rv < w.resource_version else w.snapshot(store)
                list_rv = rv
            else:
                rvq = q.get("resourceVersion")
                if q.get("resourceVersionMatch") == "Exact" and rvq:
                    n = int(rvq)
                    if n < floor:
                        raise ApiError(410, "The resourceVersion for the provided list is too old.", "Expired")
                    items = w.state_at(store, n)
                    list_rv = n
                else:
                    items = w.snapshot(store)
                    list_rv = w.resource_version
        out = []
        remaining = 0
        last_key = None
        more = False
        for o in items:
            m = o["metadata"]
            key = (m.get("namespace") or "", m["name"])
            if start_after is not None and key <= start_after:
                continue
            if ns is not None and key[0] != ns:
                continue
            r = self._render(o, store, api)
            if label_pred and not label_pred(m.get("labels") or {}):
                continue
            if field_pred and not field_pred(r):
                continue
            if limit and len(out) >= limit:
                more = True
                remaining += 1
                continue
            out.append(r)
            last_key = key
        kind = ("Namespace" if store == "namespaces" else RESOURCES[store][1]) + "List"
        meta: dict[str, Any] = {"resourceVersion": str(list_rv)}
        if more and last_key is not None:
            meta["continue"] = encode_continue(list_rv, f"{last_key[0]}/{last_key[1]}" if last_key[0] else last_key[1])
            if not label_pred and not field_pred:
                meta["remainingItemCount"] = remaining
        items_out = [{k: v for k, v in it.items() if k not in ("kind", "apiVersion")} for it in out]
        return {"kind": kind, "apiVersion": self._api_version(store, api), "metadata": meta, "items": items_out}

    # ---------------------------------------------------------------- watch
    def _serve_watch(self, h: _Handler, rec: RequestRecord, store: str, api: str, ns: str | None, q: dict,
                     prefix: str) -> None:
        t0 = time.monotonic()
        w = self.world
        try:
            label_pred = parse_label_selector(q.get("labelSelector"))
            field_pred = parse_field_selector(q.get("fieldSelector"), store, api)
            timeout = float(q["timeoutSeconds"]) if q.get("timeoutSeconds") else self.watch_timeout_s
        except (ApiError, ValueError) as e:
            err = e if isinstance(e, ApiError) else ApiError(400, str(e))
            rec.status = err.status
            h.send_resp(self._json(err.status, err.body()), "GET")
            return
        if store == "namespaces":
            rec.status = 405
            h.send_resp(self._json(405, status_body(405, "watch of namespaces is not served by the fake",
                                                    "MethodNotAllowed")), "GET")
            return
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        send_initial = q.get("sendInitialEvents") in ("true", "1")
        api_version = self._api_version(store, api)
        kind = RESOURCES[store][1]

        def matches(o: dict) -> bool:
            m = o["metadata"]
            if ns is not None and m.get("namespace") != ns:
                return False
            if label_pred and not label_pred(m.get("labels") or {}):
                return False
            if field_pred and not field_pred(self._render(o, store, api)):
                return False
            return True

        def line(type_: str, o: dict) -> bytes:
            r = self._render(o, store, api)
            if "kind" not in r:
                r = {"kind": kind, "apiVersion": api_version, **r}
            return _dumps({"type": type_, "object": r}) + b"\n"

        watch = _Watch(h.connection, rec)
        with self._lock:
            self._watches.add(watch)
        wfile = h.wfile

        def send(data: bytes) -> None:
            if watch.dropped.is_set():
                raise _Dropped()
            wfile.write(b"%x\r\n" % len(data) + data + b"\r\n")
            wfile.flush()

        def end_stream() -> None:
            # Recorded before the client can see the end: a test that reads the request record
            # or open_watches as soon as its stream ended finds them final.
            rec.duration = time.monotonic() - t0
            with self._lock:
                self._watches.discard(watch)
            wfile.write(b"0\r\n\r\n")
            wfile.flush()

        try:
            h.send_response(200)
            h.send_header("Audit-Id", str(uuid.uuid4()))
            h.send_header("Cache-Control", "no-cache, private")
            h.send_header("Content-Type", "application/json")
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            rvq = q.get("resourceVersion")
            with w.lock:
                cur = w.resource_version
                floor = self.oldest_resumable_rv()
                initial: list[dict] = []
                expired = False
                if send_initial or rvq in (None, "", "0"):
                    initial = [o for o in w.snapshot(store) if matches(o)]
                    cursor = cur
                else:
                    try:
                        cursor = int(rvq)
                    except ValueError:
                        cursor = -1
                    if cursor < floor:
                        expired = True
            if expired:
                send(_dumps({"type": "ERROR", "object": status_body(
                    410, f"too old resource version: {rvq} ({floor})", "Expired")}) + b"\n")
                end_stream()
                return
            for o in initial:
                send(line("ADDED", o))
            if send_initial and bookmarks:
                send(_dumps({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": api_version, "metadata": {
                    "resourceVersion": str(cursor), "annotations": {"k8s.io/initial-events-end": "true"}}}}) + b"\n")
            deadline = t0 + timeout
            next_bm = time.monotonic() + self.bookmark_interval_s
            while True:
                if watch.dropped.is_set() or self._server is None:
                    raise _Dropped()
                now = time.monotonic()
                if now >= deadline:
                    break
                with w.changed:
                    changes = w.changes_since(cursor)
                    if not changes:
                        wait = min(deadline - now, 0.25)
                        if bookmarks:
                            wait = min(wait, max(0.0, next_bm - now))
                        w.changed.wait(max(wait, 0.001))
                        changes = w.changes_since(cursor)
                for c in changes:
                    cursor = c.rv
                    if c.resource == store and matches(c.obj):
                        send(line(c.type, c.obj))
                if bookmarks and time.monotonic() >= next_bm:
                    send(_dumps({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": api_version,
                                                                "metadata": {"resourceVersion": str(cursor)}}}) + b"\n")
                    next_bm = time.monotonic() + self.bookmark_interval_s
            end_stream()  # clean end of the stream
        except (_Dropped, OSError, ValueError):
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        finally:
            with self._lock:
                self._watches.discard(watch)
            if not rec.duration:  # dropped or failed before end_stream
                rec.duration = time.monotonic() - t0
