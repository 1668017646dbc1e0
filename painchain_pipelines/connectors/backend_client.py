"""HTTP client for the PainChain backend, as connectors use it (requests + urllib3 retries)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from painchain_pipelines.connectors.base import Event, Integration

log = logging.getLogger(__name__)

BATCH_SIZE = 500
REPORT_SLICE = 5_000


class BackendError(Exception):
    """The backend refused a request (4xx): retrying will not help."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class BackendUnavailable(Exception):
    """The backend could not be reached or kept failing (5xx) after retries."""


@dataclass
class PostStats:
    posted: int = 0
    created: int = 0
    duplicates: int = 0
    invalid: int = 0
    invalid_examples: list[str] = field(default_factory=list)

    def add(self, other: "PostStats") -> None:
        self.posted += other.posted
        self.created += other.created
        self.duplicates += other.duplicates
        self.invalid += other.invalid
        self.invalid_examples.extend(other.invalid_examples[: 5 - len(self.invalid_examples)])


class _CountingRetry(Retry):
    """urllib3 Retry that counts, per thread, the attempts it retried: a sync runs in one thread,
    so the count of a sync is exact even when a batch run syncs many integrations at once."""

    _counts = threading.local()

    def increment(self, *args: Any, **kwargs: Any) -> Retry:
        retry = super().increment(*args, **kwargs)
        _CountingRetry._counts.value = retried_in_this_thread() + 1
        return retry


def retried_in_this_thread() -> int:
    """How many backend requests this thread retried so far."""
    return getattr(_CountingRetry._counts, "value", 0)


class BackendClient:
    def __init__(self, api_url: str, token: str | None = None, *, timeout: float = 30.0, retries: int = 5):
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        # Event posts are idempotent (the backend deduplicates), so POST is retried like GET.
        retry = _CountingRetry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            backoff_factor=0.5,
            backoff_max=30,
            backoff_jitter=0.5,
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=frozenset({"GET", "PUT", "POST", "DELETE"}),
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        self.session.mount("http://", HTTPAdapter(max_retries=retry, pool_maxsize=16))
        self.session.mount("https://", HTTPAdapter(max_retries=retry, pool_maxsize=16))
        self.session.headers["User-Agent"] = "painchain-pipelines"
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def __repr__(self) -> str:
        return f"BackendClient({self.api_url!r})"

    def _request(self, method: str, path: str, *, tenant_id: str | None = None, **kwargs: Any) -> Any:
        headers = {"x-tenant-id": tenant_id} if tenant_id else None
        try:
            response = self.session.request(
                method, self.api_url + path, headers=headers, timeout=self.timeout, **kwargs
            )
        except requests.RequestException as exc:
            raise BackendUnavailable(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500:
            raise BackendUnavailable(f"{method} {path}: HTTP {response.status_code}: {response.text[:300]}")
        if response.status_code >= 400:
            raise BackendError(f"{method} {path}: HTTP {response.status_code}: {response.text[:500]}",
                               response.status_code)
        return response.json() if response.content else None

    # -- connector types
    def register_type(self, metadata: Mapping[str, Any]) -> dict:
        return self._request("POST", "/integrations/types/register", json=metadata)

    # -- integrations
    def list_integrations(self, connector_type: str) -> list[Integration]:
        body = self._request("GET", "/integrations", params={"type": connector_type})
        return [Integration.from_api(item) for item in body]

    def get_integration(self, connector_type: str, integration_id: str) -> Integration | None:
        # The connector read (secrets in clear) is the typed list; pick ours from it.
        return next((i for i in self.list_integrations(connector_type) if i.id == integration_id), None)

    def integration_exists(self, integration_id: str) -> bool:
        """False only when the backend says the integration is gone (404)."""
        try:
            self._request("GET", f"/integrations/{quote(integration_id, safe='')}")
        except BackendError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def report_orchestrator(self, connector_type: str, **report: Any) -> None:
        """The orchestrator's heartbeat: `problem` (None clears it), `checked` and `queued` ids
        (sent in slices: the backend takes at most 10,000 of each per report)."""
        path = f"/integrations/types/{connector_type}/orchestrator"
        checked, queued = list(report.pop("checked", [])), list(report.pop("queued", []))
        while True:
            body = {**report, "checked": checked[:REPORT_SLICE], "queued": queued[:REPORT_SLICE]}
            self._request("PUT", path, json=body)
            checked, queued = checked[REPORT_SLICE:], queued[REPORT_SLICE:]
            if not checked and not queued:
                return

    def get_sync(self, integration: Integration) -> dict:
        return self._request("GET", f"/integrations/{integration.id}/sync", tenant_id=integration.tenant_id)

    def put_sync(self, integration: Integration, **report: Any) -> dict:
        return self._request(
            "PUT", f"/integrations/{integration.id}/sync", tenant_id=integration.tenant_id,
            json={k: v for k, v in report.items() if v is not None},
        )

    # -- retention
    def run_retention(self) -> dict:
        """One bounded round of the backend's retention (admin); repeat while not `done`."""
        return self._request("POST", "/retention/run")

    # -- events
    def post_events(self, integration: Integration, events: Iterable[Event]) -> PostStats:
        stats = PostStats()
        batch: list[dict] = []
        for event in events:
            batch.append(event.to_api(integration.id))
            if len(batch) == BATCH_SIZE:
                stats.add(self._post_batch(integration, batch))
                batch = []
        if batch:
            stats.add(self._post_batch(integration, batch))
        return stats

    def _post_batch(self, integration: Integration, batch: list[dict]) -> PostStats:
        body = self._request("POST", "/events/batch", tenant_id=integration.tenant_id, json={"events": batch})
        stats = PostStats(posted=len(batch), created=body["created"], duplicates=body["duplicates"],
                          invalid=body["invalid"])
        for item in body["results"]:
            if item["status"] == "invalid" and len(stats.invalid_examples) < 5:
                reason = "; ".join(f"{'.'.join(map(str, e['loc'][1:]))}: {e['msg']}" for e in item.get("errors", []))
                stats.invalid_examples.append(f"{batch[item['index']]['externalId']}: {reason}")
        return stats


class EventBuffer:
    """The sink handed to connectors: buffers events and posts them in batches as they come,
    so a large sync holds at most one batch in memory."""

    def __init__(self, client: BackendClient, integration: Integration, batch_size: int = BATCH_SIZE):
        self.client = client
        self.integration = integration
        self.batch_size = batch_size
        self.stats = PostStats()
        self._pending: list[Event] = []

    def __call__(self, event: Event) -> None:
        self._pending.append(event)
        if len(self._pending) >= self.batch_size:
            self.flush()

    def flush(self) -> PostStats:
        self.flush_with_events()
        return self.stats

    def flush_with_events(self) -> list[Event]:
        """Post what is pending; the events just stored (a failed post keeps them pending)."""
        if not self._pending:
            return []
        pending = self._pending
        self.stats.add(self.client.post_events(self.integration, pending))
        self._pending = []
        return pending
