"""Run the real backend (FastAPI + uvicorn) on a real socket inside the test process."""

from __future__ import annotations

import threading
import time
from typing import Any

import requests
import uvicorn

from painchain_pipelines.backend.app import create_app
from painchain_pipelines.backend.config import BackendSettings


class _Faults:
    """ASGI wrapper answering the next matching requests with an error status (a failing proxy
    or database in front of the real app)."""

    def __init__(self, app):
        self.app = app
        self.pending: list[list] = []  # [count, status, path fragment or None]
        self.lock = threading.Lock()

    async def __call__(self, scope, receive, send):
        status = self._take(scope) if scope["type"] == "http" else None
        if status is None:
            await self.app(scope, receive, send)
            return
        body = b'{"detail": "injected fault"}'
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    def _take(self, scope) -> int | None:
        with self.lock:
            for fault in self.pending:
                if fault[2] is None or fault[2] in scope["path"]:
                    fault[0] -= 1
                    if fault[0] <= 0:
                        self.pending.remove(fault)
                    return fault[1]
        return None


class BackendServer:
    def __init__(self, settings: BackendSettings):
        self.settings = settings
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    def start(self, port: int = 0) -> "BackendServer":
        app = self.app = create_app(self.settings)
        self._faults = _Faults(app)
        config = uvicorn.Config(self._faults, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="backend-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("backend server did not start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(timeout=30)
            self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return self.url + "/api"

    def fail_next(self, count: int = 1, status: int = 503, path_contains: str | None = None) -> None:
        """The next `count` requests whose path contains `path_contains` get `status`."""
        with self._faults.lock:
            self._faults.pending.append([count, status, path_contains])

    def app_db(self):
        """The running app's database (for tests that set up states the API cannot)."""
        return self.app.state.ctx.db

    def client(self, **headers: str) -> "ApiClient":
        return ApiClient(self.api_url, headers)

    def __enter__(self) -> "BackendServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class ApiClient:
    """requests against /api with default headers; paths are relative to /api."""

    def __init__(self, api_url: str, headers: dict[str, str] | None = None):
        self.api_url = api_url
        self.session = requests.Session()
        self.session.headers.update(headers or {})

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, self.api_url + path, timeout=60, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def with_headers(self, **headers: str) -> "ApiClient":
        merged = dict(self.session.headers)
        merged.update(headers)
        return ApiClient(self.api_url, merged)
