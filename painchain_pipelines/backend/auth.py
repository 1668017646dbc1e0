"""Who is calling, and which tenant they act for.

* Service token (`PAINCHAIN_API_TOKEN`): acts for any tenant; `x-tenant-id` selects one, and
  without it the request is unscoped (connectors list integrations of every tenant).
* Tenant token (api_tokens table): acts only for its tenant; a different `x-tenant-id` is a 403.
* No token configured ("open mode", the local default): like the service token.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Header, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select

from painchain_pipelines.backend.models import ApiToken

TENANT_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
TOKEN_CACHE_SECONDS = 30.0

bearer_scheme = HTTPBearer(auto_error=False, description="PAINCHAIN_API_TOKEN or a tenant token")


@dataclass(frozen=True)
class Principal:
    kind: Literal["service", "tenant", "anonymous"]
    # The tenant this request acts for; None means unscoped (every tenant).
    tenant_id: str | None
    loopback: bool
    browser: bool

    @property
    def is_admin(self) -> bool:
        return self.kind in ("service", "anonymous")

    @property
    def may_read_secrets(self) -> bool:
        """Connectors need secrets in clear; people (and browsers) never get them."""
        if self.browser:
            return False
        return self.kind == "service" or (self.kind == "anonymous" and self.loopback)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "pct_" + secrets.token_urlsafe(32)


class TenantTokenCache:
    """Token hash -> tenant, cached briefly so authentication costs no query per request."""

    def __init__(self, ttl: float = TOKEN_CACHE_SECONDS):
        self._ttl = ttl
        self._entries: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def peek(self, token: str) -> tuple[bool, str | None]:
        """(known, tenant) from the cache alone, without touching the database."""
        with self._lock:
            hit = self._entries.get(hash_token(token))
        if hit and time.monotonic() - hit[0] < self._ttl:
            return True, hit[1]
        return False, None

    def lookup(self, db, token: str) -> str | None:
        known, tenant = self.peek(token)
        if known:
            return tenant
        digest = hash_token(token)
        now = time.monotonic()
        with db.read() as session:
            tenant = session.scalar(select(ApiToken.tenant_id).where(ApiToken.token_sha256 == digest))
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[digest] = (now, tenant)
        return tenant

    def invalidate(self) -> None:
        with self._lock:
            self._entries.clear()


def _is_loopback(request: Request) -> bool:
    return _loopback_address(request.client.host if request.client else "")


@functools.lru_cache(maxsize=1024)  # parsing the address is a tenth of a single POST's own work
def _loopback_address(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host in ("localhost", "testclient")


async def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    x_tenant_id: Annotated[
        str | None,
        Header(alias="x-tenant-id", description="Act for this tenant (null tenant = free tier)."),
    ] = None,
) -> Principal:
    ctx = request.app.state.ctx
    if x_tenant_id is not None and not TENANT_ID_PATTERN.match(x_tenant_id):
        raise HTTPException(
            status_code=400,
            detail="header x-tenant-id must be 1-128 characters of letters, digits and . _ : @ -",
        )
    loopback = _is_loopback(request)
    # Browsers send Sec-Fetch-* (to localhost and HTTPS origins), Origin (on cross-origin
    # requests) and a Mozilla User-Agent: any of them means a page may be reading, so never
    # secrets in clear. (Plain-HTTP pages of other names send no Sec-Fetch-*: the Host
    # allow-list keeps those out, see middleware.WebPageGuard.)
    browser = ("sec-fetch-mode" in request.headers or "origin" in request.headers
               or request.headers.get("user-agent", "").startswith("Mozilla/"))
    token = credentials.credentials if credentials else None
    service_token = ctx.settings.api_token

    if token and service_token and hmac.compare_digest(token.encode(), service_token.encode()):
        return Principal("service", x_tenant_id, loopback, browser)
    if token:
        known, tenant = ctx.token_cache.peek(token)
        if not known:
            tenant = await run_in_threadpool(ctx.token_cache.lookup, ctx.db, token)
        if tenant is not None:
            if x_tenant_id is not None and x_tenant_id != tenant:
                raise HTTPException(status_code=403, detail="this token does not act for that x-tenant-id")
            return Principal("tenant", tenant, loopback, browser)
        if service_token or credentials is not None:
            raise HTTPException(
                status_code=401,
                detail="invalid API token",
                headers={"WWW-Authenticate": "Bearer"},
            )
    if service_token:
        raise HTTPException(
            status_code=401,
            detail="authentication required: send Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return Principal("anonymous", x_tenant_id, loopback, browser)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


async def require_admin(principal: CurrentPrincipal) -> Principal:
    if not principal.is_admin:
        raise HTTPException(status_code=403, detail="a tenant token cannot do this; use the service token")
    return principal
