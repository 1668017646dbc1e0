"""Pure ASGI middleware (no per-request overhead of BaseHTTPMiddleware): request guards."""

from __future__ import annotations

import ipaddress
import json


class RequestGuard:
    """Reject NUL characters in URLs (422) and request bodies over `max_bytes` (413, whether or
    not Content-Length is sent)."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # PostgreSQL cannot compare or store NUL characters; say so instead of failing inside.
        if "\x00" in scope.get("path", "") or b"%00" in scope.get("query_string", b"").lower():
            await self._send_json(send, 422, {"detail": [{"loc": ["url"], "type": "value_error",
                                                          "msg": "NUL (%00) characters are not accepted"}]})
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await self._reject(send)
                    return
        received = 0
        response_started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message):
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not response_started:
                await self._reject(send)

    async def _reject(self, send):
        await self._send_json(send, 413, {"detail": f"request body larger than {self.max_bytes} bytes"})

    @staticmethod
    async def _send_json(send, status: int, content: dict):
        body = json.dumps(content).encode()
        await send({
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        })
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


# ---------------------------------------------------------------------------- web pages


LOOPBACK_NAMES = ("localhost", "*.localhost")
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


def allowed_hosts_from(value: str | None, bind_host: str | None = None) -> tuple[str, ...]:
    """Loopback names (and every loopback address, always), the address the server is bound to
    when it is a specific one, and PAINCHAIN_ALLOWED_HOSTS (comma-separated names, `*.domain`
    for subdomains, or `*` for any Host, e.g. behind a reverse proxy that checks it)."""
    hosts = list(LOOPBACK_NAMES)
    if bind_host and bind_host not in ("0.0.0.0", "::", ""):
        hosts.append(bind_host.strip("[]").lower())
    hosts.extend(h.strip().lower() for h in (value or "").split(",") if h.strip())
    return tuple(dict.fromkeys(hosts))


def host_name(host_header: str) -> str:
    """`Example.com:8000` → `example.com`; `[::1]:8000` → `::1`."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def host_allowed(name: str, allowed: tuple[str, ...]) -> bool:
    if "*" in allowed:
        return True
    try:
        if ipaddress.ip_address(name).is_loopback:
            return True
    except ValueError:
        pass
    return any(name == rule or (rule.startswith("*.") and name.endswith(rule[1:])) for rule in allowed)


class WebPageGuard:
    """What keeps web pages away from a server that trusts this machine (as Jupyter, Vite and
    the Docker API do):

    * a Host allow-list: a DNS-rebinding page (its name resolving to 127.0.0.1) sends its own
      name as Host, so it gets a 400 instead of our answers;
    * state-changing requests (and WebSockets) from another origin are refused (403);
    * with `require_json`, POST/PUT/PATCH bodies must be JSON (415): a page can send only
      form or text/plain bodies across origins without a CORS preflight, which is never granted.
    """

    def __init__(self, app, allowed_hosts: tuple[str, ...], *, require_json: bool = True,
                 setting: str = "PAINCHAIN_ALLOWED_HOSTS"):
        self.app = app
        self.allowed_hosts = allowed_hosts
        self.require_json = require_json
        self.setting = setting
        self._hosts_seen: dict[str, bool] = {}

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
        host = headers.get("host")
        if host is not None and not self._host_allowed(host):
            await self._refuse(scope, send, 400, f"requests for host {host_name(host)!r} are not answered here; "
                               f"if that is this server's name, add it to {self.setting}")
            return
        method = scope.get("method", "GET")
        origin = headers.get("origin")
        if (scope["type"] == "websocket" or method in STATE_CHANGING) and origin is not None \
                and not self._same_origin(origin, host):
            await self._refuse(scope, send, 403, "cross-origin requests that change data are refused")
            return
        if self.require_json and method in WITH_BODY and _has_body(headers) \
                and not _is_json(headers.get("content-type", "")):
            await self._refuse(scope, send, 415, "the request body must be JSON (Content-Type: application/json)")
            return
        await self.app(scope, receive, send)

    def _host_allowed(self, host: str) -> bool:
        # Remembered per Host header: clients send the same one on every request.
        allowed = self._hosts_seen.get(host)
        if allowed is None:
            allowed = host_allowed(host_name(host), self.allowed_hosts)
            if len(self._hosts_seen) > 1000:
                self._hosts_seen.clear()
            self._hosts_seen[host] = allowed
        return allowed

    @staticmethod
    def _same_origin(origin: str, host: str | None) -> bool:
        if origin == "null" or host is None:
            return False
        scheme, _, netloc = origin.partition("://")
        return scheme in ("http", "https") and netloc.lower() == host.strip().lower()

    @staticmethod
    async def _refuse(scope, send, status: int, message: str) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await RequestGuard._send_json(send, status, {"detail": message})


def _has_body(headers: dict[str, str]) -> bool:
    # A body-less POST carries nothing a page could forge; its route answers it (405, 422...).
    return headers.get("content-length", "0").strip() not in ("", "0") or "transfer-encoding" in headers


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))
