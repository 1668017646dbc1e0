"""PyGithub, set up for ingestion: bounded waits, metered requests, conditional first pages,
and pages of plain dicts (PyGithub's pagination without building an object per item)."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import requests
from github import Auth, Github, GithubException, GithubRetry
from github.GithubException import (
    BadCredentialsException,
    RateLimitExceededExceedsMaxWait,
    RateLimitExceededException,
)
from github.PaginatedList import PaginatedList
from urllib3.exceptions import HTTPError as Urllib3Error

from painchain_pipelines.connectors.base import (
    AuthError,
    ConnectorError,
    RateLimited,
    SyncStats,
    TransientError,
    parse_http_date,
)
from painchain_pipelines.connectors.github.config import GitHubConfig

log = logging.getLogger(__name__)

# Waits longer than this (rate-limit resets, long Retry-After) leave the worker and become a
# later retry of the whole sync; shorter ones are slept inline.
MAX_INLINE_WAIT = 30.0
USER_AGENT = "PainChain-Pipelines"
# GitHub's own figures in SyncStats (and the Dagster metadata): free 304s, rate-limit headroom.
NOT_MODIFIED = "api_not_modified_304"
RATE_LIMIT_REMAINING = "rate_limit_remaining"


class SourceUnavailable(ConnectorError):
    """One repository (or one of its APIs) answered 403/404: report it, ingest the others."""


class BoundedRetry(GithubRetry):
    """GithubRetry (5xx, secondary rate limits) plus 429, with every wait capped, counting retries."""

    def __init__(self, *, stats: SyncStats | None = None, max_wait: float | None = None, **kwargs: Any):
        max_wait = MAX_INLINE_WAIT if max_wait is None else max_wait
        kwargs.setdefault("status_forcelist", [429, 500, 502, 503, 504])
        kwargs.setdefault("secondary_rate_wait", min(10.0, max_wait))
        kwargs.setdefault("max_rate_limit_wait", max_wait)
        super().__init__(**kwargs)
        self.stats = stats
        self.max_wait = max_wait

    def new(self, **kw: Any) -> "BoundedRetry":
        kw.update(stats=self.stats, max_wait=self.max_wait)
        return super().new(**kw)

    def increment(self, *args: Any, **kwargs: Any):
        retry = super().increment(*args, **kwargs)
        if self.stats is not None:
            # The attempt that failed was a request too; PyGithub only reports the final answer.
            self.stats.retries += 1
            self.stats.api_requests += 1
        return retry

    def get_retry_after(self, response) -> float | None:
        seconds = super().get_retry_after(response)
        if seconds is not None and seconds > self.max_wait:
            raise RateLimitExceededExceedsMaxWait(response.status, {"message": "Retry-After too long"},
                                                  dict(response.headers), wait=seconds)
        return seconds


class RawRecord:
    """Content class for PyGithub's PaginatedList that keeps the item's JSON as is."""

    __slots__ = ("data",)

    def __init__(self, _requester, _headers, attributes, *_args, **_kwargs):
        self.data = attributes


def make_github(config: GitHubConfig, stats: SyncStats, *, timeout: int = 30) -> Github:
    retry = BoundedRetry(
        stats=stats, total=4, backoff_factor=0.5, backoff_max=MAX_INLINE_WAIT, backoff_jitter=0.5,
    )
    gh = Github(
        auth=Auth.Token(config.token),
        base_url=config.base_url,
        per_page=100,
        timeout=timeout,
        retry=retry,
        # We poll one request at a time per integration; PyGithub's default 0.25 s pause per
        # request would turn a backfill into minutes of sleeping.
        seconds_between_requests=None,
        seconds_between_writes=None,
        user_agent=USER_AGENT,
        lazy=True,
    )
    requester = gh.requester
    stats.counters.setdefault(NOT_MODIFIED, 0)  # charted from zero in Dagster, not missing

    # PyGithub calls this debug hook with every response it reads; it is the one place that sees
    # them all (first pages, next pages, errors), so that is where requests are metered.
    def on_response(status: int, headers: dict, _data: Any) -> None:
        stats.api_requests += 1
        if status == 304:
            stats.add(NOT_MODIFIED)
        remaining = headers.get("x-ratelimit-remaining")
        if remaining is not None and str(remaining).isdigit():
            stats.gauges[RATE_LIMIT_REMAINING] = int(remaining)

    requester.DEBUG_ON_RESPONSE = on_response
    return gh


@dataclass
class Page:
    status: int  # 200 or 304
    data: Any
    headers: dict

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag")

    @property
    def server_time(self) -> dt.datetime | None:
        """GitHub's clock when it answered (the Date header, to the second; 304s carry it too)."""
        return parse_http_date(self.headers.get("date"))

    @property
    def has_next(self) -> bool:
        return 'rel="next"' in (self.headers.get("link") or "")


class GitHubReader:
    """Requests against one GitHub API with errors translated into connector errors."""

    def __init__(self, gh: Github):
        self.gh = gh

    def get(self, path: str, params: dict | None = None, etag: str | None = None) -> Page:
        headers = {"If-None-Match": etag} if etag else None
        with translate_errors(path):
            response_headers, data = self.gh.requester.requestJsonAndCheck("GET", path, params, headers)
        status = 304 if data is None and etag else 200
        return Page(status, data, response_headers)

    def items(self, path: str, params: dict | None = None, *, first: Page | None = None,
              list_item: str | None = None) -> Iterator[dict]:
        """Every item of a paginated list, following Link rel=next to the end (the caller may stop
        early); `first` reuses an already fetched first page."""
        kwargs: dict[str, Any] = {}
        if list_item:
            kwargs["list_item"] = list_item
        if first is not None:
            kwargs.update(firstData=first.data, firstHeaders=first.headers)
        paginated = PaginatedList(RawRecord, self.gh.requester, path, dict(params or {}), **kwargs)
        iterator = iter(paginated)
        while True:
            with translate_errors(path):
                record = next(iterator, None)
            if record is None:
                return
            yield record.data


class translate_errors:
    """Context manager mapping PyGithub/requests failures onto the connector's error kinds."""

    def __init__(self, what: str):
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, _tb) -> bool:
        if exc is None or isinstance(exc, ConnectorError):
            return False
        if isinstance(exc, BadCredentialsException):
            raise AuthError("GitHub rejected the token (401 Bad credentials): check config field 'token'") from None
        if isinstance(exc, RateLimitExceededExceedsMaxWait):
            # PyGithub measured the wait until X-RateLimit-Reset on this host's clock; on GitHub's.
            wait = _retry_after(exc.headers) if exc.headers else exc.wait
            raise RateLimited(f"GitHub rate limit on {self.what}: retry in {wait:.0f} s", wait) from None
        if isinstance(exc, RateLimitExceededException):
            raise RateLimited(f"GitHub rate limit on {self.what}", _retry_after(exc.headers)) from None
        if isinstance(exc, GithubException):
            message = (exc.data or {}).get("message") if isinstance(exc.data, dict) else str(exc.data)
            if exc.status in (403, 404, 409, 410, 451):
                raise SourceUnavailable(f"{self.what}: HTTP {exc.status} {message or ''}".strip()) from None
            if exc.status is None or exc.status >= 500:
                raise TransientError(f"GitHub {self.what}: HTTP {exc.status} {message or ''}".strip()) from None
            raise ConnectorError(f"GitHub {self.what}: HTTP {exc.status} {message or ''}".strip()) from None
        if isinstance(exc, (requests.RequestException, Urllib3Error, TimeoutError, ConnectionError)):
            raise TransientError(f"GitHub {self.what}: {type(exc).__name__}: {exc}") from None
        return False


def _retry_after(headers: dict | None) -> float:
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    if str(headers.get("retry-after", "")).isdigit():
        return float(headers["retry-after"])
    reset = headers.get("x-ratelimit-reset")
    if reset and str(reset).isdigit():
        # The reset is an epoch second of GitHub's clock: measure it from GitHub's Date.
        server_time = parse_http_date(headers.get("date"))
        now = server_time.timestamp() if server_time else time.time()
        return max(1.0, int(reset) - now + 1)
    return 60.0


