"""Pure ASGI middleware (no per-request overhead of BaseHTTPMiddleware): request guards."""

from __future__ import annotations

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
