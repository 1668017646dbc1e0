"""python-gitlab, set up for ingestion: every request metered by a session hook, our own bounded
retries (429 with Retry-After or RateLimit-Reset, 5xx, timeouts, dropped connections), pacing by
RateLimit-Remaining, request lanes (the pipelines API paced by its own token bucket, its 429s
holding back only pipelines requests), GitLab's clock from the Date header, and errors that never
carry the token."""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlparse

import gitlab
import requests
from gitlab.exceptions import GitlabAuthenticationError, GitlabError, GitlabHttpError

from painchain_pipelines.connectors.base import (
    AuthError,
    ConnectorError,
    RateLimited,
    SyncStats,
    TransientError,
    parse_http_date,
    utcnow,
)
from painchain_pipelines.connectors.gitlab.config import GitLabConfig

log = logging.getLogger(__name__)

USER_AGENT = "PainChain-Pipelines"
RATE_LIMIT_REMAINING = "rate_limit_remaining"
RATE_LIMITED_429 = "api_rate_limited_429"
PACED_WAITS = "api_paced_waits"  # RateLimit-Remaining pacing; lane buckets: api_paced_waits_<lane>
DEFAULT_LANE = "default"
PIPELINES_LANE = "pipelines"
# /projects/:id/pipelines and below (:id is always URL-encoded, so a project or group *named*
# "pipelines" does not match): GitLab instances commonly rate-limit it separately and more tightly,
# and it is the most expensive list on the server.
_PIPELINES_PATH = re.compile(r"^/projects/[^/]+/pipelines(?:[/?]|$)")


class SourceUnavailable(ConnectorError):
    """One project (or one of its features) answered 401/403/404: report it, ingest the others."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass
class ClientTuning:
    # Waits longer than this (rate-limit resets, long Retry-After) leave the worker: RateLimited,
    # the orchestration defers the run. Shorter ones are slept inline.
    max_inline_wait: float = 30.0
    # Attempts per request for 5xx, timeouts and dropped connections (then TransientError).
    attempts: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    # 429s slept inline per request before giving up with RateLimited.
    rate_limit_retries: int = 3
    # Stop and wait for the reset when RateLimit-Remaining drops to this (others share the quota).
    reserve: int = 5
    timeout: float = 30.0
    # Lanes: a token bucket per lane (burst = the per-minute budget), and a 429 on a lane holds back
    # only that lane's later requests. None: no bucket (paced by RateLimit-Remaining only).
    pipelines_per_minute: float | None = 120.0
    default_per_minute: float | None = None
    sleep: Callable[[float], None] = field(default=time.sleep)
    clock: Callable[[], float] = field(default=time.monotonic)


def lane_of(path: str) -> str:
    """The lane of a request path (relative to /api/v4)."""
    return PIPELINES_LANE if _PIPELINES_PATH.match(path) else DEFAULT_LANE


@dataclass
class Lane:
    """One lane's pacing budget and 429 state, on `ClientTuning.clock`.

    The bucket's clock moves forward by the waits it asks for (``at``), so a request after a wait
    is admitted whether the wait was slept or only recorded (tests)."""

    name: str
    per_minute: float | None
    tokens: float = 0.0
    at: float | None = None  # when `tokens` was last brought up to date
    blocked_until: float | None = None  # a 429's Retry-After / RateLimit-Reset, on the clock

    def __post_init__(self) -> None:
        self.tokens = float(self.per_minute or 0)

    def reserve(self, now: float, limit: float) -> float:
        """Seconds before the next request of this lane may go. At most `limit`: the token is
        taken (the caller then waits that long); above it nothing is taken (the caller defers)."""
        if not self.per_minute:
            return 0.0
        rate = self.per_minute / 60.0
        if self.at is None:
            self.at = now
        if now > self.at:
            self.tokens = min(float(self.per_minute), self.tokens + (now - self.at) * rate)
            self.at = now
        wait = max(0.0, (1.0 - self.tokens) / rate)
        if wait > limit:
            return wait
        if wait:
            self.at += wait
            self.tokens = 1.0
        self.tokens -= 1.0
        return wait


@dataclass
class Page:
    data: Any
    headers: requests.structures.CaseInsensitiveDict
    next_params: dict[str, str] | None  # query of the rel="next" link, None on the last page

    @property
    def server_time(self) -> dt.datetime | None:
        return parse_http_date(self.headers.get("date"))


class GitLabClient:
    """GET requests against one GitLab instance, translated into connector errors."""

    def __init__(self, config: GitLabConfig, stats: SyncStats, tuning: ClientTuning | None = None):
        self.config = config
        self.stats = stats
        self.tuning = tuning or ClientTuning()
        self._ca_file: str | None = None
        verify: bool | str = True
        if config.ca_certificate:
            handle, self._ca_file = tempfile.mkstemp(prefix="painchain-gitlab-ca-", suffix=".pem")
            with os.fdopen(handle, "w") as out:
                out.write(config.ca_certificate)
            verify = self._ca_file
        self.gl = gitlab.Gitlab(
            url=config.url,
            private_token=config.token,
            ssl_verify=verify,
            timeout=self.tuning.timeout,
            user_agent=USER_AGENT,
            retry_transient_errors=False,  # retried here, counted and bounded
            keep_base_url=True,
        )
        # The token travels in PRIVATE-TOKEN, which requests would forward on a redirect to any
        # host: refuse redirects (a moved instance is a configuration change).
        self.gl.session.max_redirects = 0
        self.gl.session.hooks["response"].append(self._on_response)
        self.server_time: dt.datetime | None = None  # GitLab's clock, from the latest Date header
        self.host_ahead: dt.timedelta = dt.timedelta(0)
        self._last: requests.Response | None = None
        self.lanes = {
            DEFAULT_LANE: Lane(DEFAULT_LANE, self.tuning.default_per_minute),
            PIPELINES_LANE: Lane(PIPELINES_LANE, self.tuning.pipelines_per_minute),
        }

    # ------------------------------------------------------------------ plumbing

    def close(self) -> None:
        try:
            self.gl.session.close()
        finally:
            if self._ca_file:
                try:
                    os.unlink(self._ca_file)
                except OSError:
                    pass
                self._ca_file = None

    def __enter__(self) -> "GitLabClient":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def _on_response(self, response: requests.Response, *_args, **_kwargs) -> None:
        """Every HTTP response (errors and 304s included) passes here: the one meter."""
        self.stats.api_requests += 1
        self._last = response
        remaining = response.headers.get("RateLimit-Remaining")
        if remaining is not None and str(remaining).isdigit():
            value = int(remaining)
            current = self.stats.gauges.get(RATE_LIMIT_REMAINING)
            self.stats.gauges[RATE_LIMIT_REMAINING] = value if current is None else min(current, value)
        moment = parse_http_date(response.headers.get("Date"))
        if moment is not None:
            self.server_time = moment
            self.host_ahead = utcnow() - moment

    def now(self) -> dt.datetime:
        """GitLab's clock now (this host's clock corrected by the last measured difference)."""
        return utcnow() - self.host_ahead

    def _redact(self, text: Any) -> str:
        text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        if self.config.token:
            text = text.replace(self.config.token, "[REDACTED]")
        return text[:300]

    # ------------------------------------------------------------------ requests

    def get(self, path: str, params: dict | None = None, what: str | None = None) -> Page:
        what = what or path
        params = {k: v for k, v in (params or {}).items() if v is not None}
        failures = 0
        limited = 0
        lane = self.lanes[lane_of(path)]
        while True:
            self._admit(lane, what)
            self._last = None
            try:
                response = self.gl.http_request("get", path, query_data=params, obey_rate_limit=False,
                                                retry_transient_errors=False, max_retries=0)
            except GitlabAuthenticationError:
                raise SourceUnavailable(f"{what}: HTTP 401 Unauthorized", 401) from None
            except GitlabHttpError as exc:
                status = exc.response_code or 0
                headers = self._last.headers if self._last is not None else {}
                if status == 429:
                    self.stats.add(RATE_LIMITED_429)
                    if lane.name != DEFAULT_LANE:
                        self.stats.add(f"{RATE_LIMITED_429}_{lane.name}")
                    wait = retry_after(headers)
                    # Only this lane's later requests (this one's retry first) wait for it.
                    until = self.tuning.clock() + wait
                    lane.blocked_until = max(lane.blocked_until or until, until)
                    if wait <= self.tuning.max_inline_wait and limited < self.tuning.rate_limit_retries:
                        limited += 1
                        self.stats.retries += 1
                        continue  # _admit waits it out
                    raise RateLimited(f"GitLab rate limit on {what}: retry in {wait:.0f} s", wait) from None
                if status in (403, 404, 410):
                    raise SourceUnavailable(f"{what}: HTTP {status} {self._message(exc)}".strip(), status) from None
                if status >= 500 or status in (408, 409):
                    failures += 1
                    if failures < self.tuning.attempts:
                        self._backoff(failures, what, f"HTTP {status}")
                        continue
                    raise TransientError(f"GitLab {what}: HTTP {status} after {failures} attempts") from None
                raise ConnectorError(f"GitLab {what}: HTTP {status} {self._message(exc)}".strip()) from None
            except requests.TooManyRedirects:
                raise ConnectorError(f"GitLab {what}: redirected; set config field 'url' to GitLab's final "
                                     "address (the token is not sent to redirect targets)") from None
            except requests.exceptions.SSLError as exc:
                raise ConnectorError(f"GitLab {what}: TLS verification failed ({type(exc).__name__}); for a "
                                     "private CA set config field 'caCertificate'") from None
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                if self._last is None:  # no response reached the hook: count the attempt here
                    self.stats.api_requests += 1
                failures += 1
                if failures < self.tuning.attempts:
                    self._backoff(failures, what, type(exc).__name__)
                    continue
                raise TransientError(f"GitLab {what}: {type(exc).__name__} after {failures} attempts") from None
            except GitlabError as exc:  # parsing errors and the like
                raise ConnectorError(f"GitLab {what}: {type(exc).__name__}") from None
            try:
                data = response.json()
            except ValueError:
                failures += 1
                if failures < self.tuning.attempts:
                    self._backoff(failures, what, "invalid JSON")
                    continue
                raise TransientError(f"GitLab {what}: invalid JSON after {failures} attempts") from None
            self._pace(response.headers, what)
            return Page(data, response.headers, _next_params(response))

    def pages(self, path: str, params: dict | None = None, what: str | None = None) -> Iterator[Page]:
        """Every page of a list, following rel="next" (offset or keyset) on the same path."""
        params = dict(params or {})
        while True:
            page = self.get(path, params, what)
            yield page
            if page.next_params is None or not isinstance(page.data, list) or not page.data:
                return
            params = {**params, **page.next_params}

    def items(self, path: str, params: dict | None = None, what: str | None = None) -> Iterator[dict]:
        for page in self.pages(path, params, what):
            yield from page.data

    def _message(self, exc: GitlabHttpError) -> str:
        message = exc.error_message
        if isinstance(message, dict):
            message = message.get("message") or message.get("error") or ""
        return self._redact(message or "")

    def _backoff(self, failures: int, what: str, reason: str) -> None:
        self.stats.retries += 1
        wait = min(self.tuning.backoff_max, self.tuning.backoff_base * 2 ** (failures - 1))
        wait *= random.uniform(0.75, 1.25)
        log.info("GitLab %s: %s; retry %d in %.2f s", what, reason, failures, wait)
        self.tuning.sleep(wait)

    def _admit(self, lane: Lane, what: str) -> None:
        """Hold a request back while its lane is rate-limited (a 429's wait) or out of budget
        (token bucket): inline up to `max_inline_wait`, else RateLimited (the run is deferred)."""
        now = self.tuning.clock()
        if lane.blocked_until is not None:
            wait = lane.blocked_until - now
            if wait > self.tuning.max_inline_wait:
                raise RateLimited(f"GitLab rate limit on {what} ({lane.name} requests): "
                                  f"retry in {wait:.0f} s", wait)
            if wait > 0:
                log.info("GitLab rate limit on %s requests: waiting %.1f s before %s", lane.name, wait, what)
                self.tuning.sleep(wait)
                now += wait
            lane.blocked_until = None
        wait = lane.reserve(max(now, self.tuning.clock()), self.tuning.max_inline_wait)
        if wait > self.tuning.max_inline_wait:
            raise RateLimited(f"GitLab {lane.name} request budget ({lane.per_minute:g}/min) used up before "
                              f"{what}: retry in {wait:.0f} s", wait)
        if wait > 0:
            self.stats.add(f"{PACED_WAITS}_{lane.name}")
            log.debug("GitLab %s lane: pacing %.2f s before %s", lane.name, wait, what)
            self.tuning.sleep(wait)

    def _pace(self, headers, what: str) -> None:
        """Slow down before GitLab says 429: at `reserve` requests left, wait for the reset."""
        remaining = headers.get("RateLimit-Remaining")
        if remaining is None or not str(remaining).isdigit() or int(remaining) > self.tuning.reserve:
            return
        wait = retry_after(headers, default=None)
        if wait is None:
            return
        if wait > self.tuning.max_inline_wait:
            raise RateLimited(f"GitLab rate limit nearly used up ({remaining} left) after {what}: "
                              f"retry in {wait:.0f} s", wait)
        self.stats.add(PACED_WAITS)
        self.tuning.sleep(wait)

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def project_path(project: str | int) -> str:
        return f"/projects/{quote(str(project), safe='')}"


def _next_params(response: requests.Response) -> dict[str, str] | None:
    link = response.links.get("next")
    if not link or not link.get("url"):
        return None
    return dict(parse_qsl(urlparse(link["url"]).query, keep_blank_values=True))


def retry_after(headers, default: float | None = 60.0) -> float | None:
    """Seconds to wait from a 429's Retry-After, or RateLimit-Reset (an epoch second of GitLab's
    clock, so measured from GitLab's Date header, not this host's clock)."""
    value = str(headers.get("Retry-After") or "").strip()
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            moment = parse_http_date(value)  # an HTTP date
            if moment is not None:
                server = parse_http_date(headers.get("Date")) or utcnow()
                return max(0.0, (moment - server).total_seconds())
    reset = str(headers.get("RateLimit-Reset") or "").strip()
    if reset.isdigit():
        server = parse_http_date(headers.get("Date"))
        now = server.timestamp() if server else time.time()
        return max(0.0, int(reset) - now)
    return default


def auth_error(url: str) -> AuthError:
    return AuthError(f"GitLab at {url} rejected the token (401 Unauthorized): check config field 'token' "
                     "(expired, revoked, or missing the read_api scope)", "token")
