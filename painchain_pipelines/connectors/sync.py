"""One sync of one integration, end to end, in plain Python: read the integration from the
backend, run the connector, post its events, save its state and report the outcome.

The orchestration calls this and turns the outcome into Dagster results, retries or failures.
State is saved only after every event was stored, so a failure never skips events: the next
attempt starts again from the last saved state and the backend drops the duplicates.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from painchain_pipelines.connectors.backend_client import (
    BackendClient,
    BackendError,
    BackendUnavailable,
    EventBuffer,
    PostStats,
    retried_in_this_thread,
)
from painchain_pipelines.connectors.base import (
    AuthError,
    ConfigError,
    Connector,
    ConnectorError,
    Integration,
    RateLimited,
    SyncStats,
    TimeWindow,
    TransientError,
)

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 4000
ErrorKind = Literal["missing", "config", "auth", "rate_limited", "transient"]


@dataclass
class SyncOutcome:
    integration_id: str
    mode: str
    integration_name: str | None = None
    tenant_id: str | None = None
    windows: list[TimeWindow] = field(default_factory=list)
    # The spans every source was read completely (see SyncResult.covered).
    covered: list[TimeWindow] = field(default_factory=list)
    stats: SyncStats = field(default_factory=SyncStats)
    posted: PostStats = field(default_factory=PostStats)
    backend_retries: int = 0
    duration_s: float = 0.0
    error: str | None = None
    error_kind: ErrorKind | None = None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def retryable(self) -> bool:
        return self.error_kind in ("rate_limited", "transient")

    def report(self) -> dict[str, Any]:
        """Figures for the backend's sync record and the Dagster metadata (no secrets)."""
        return {
            "mode": self.mode,
            "windows": [str(w) for w in self.windows],
            "sources": self.stats.sources,
            "failedSources": self.stats.failed_sources,
            "eventsFetched": self.stats.events_fetched,
            "eventsPerStream": self.stats.per_stream,
            "posted": self.posted.posted,
            "created": self.posted.created,
            "duplicates": self.posted.duplicates,
            "invalid": self.posted.invalid,
            "invalidExamples": self.posted.invalid_examples,
            "apiRequests": self.stats.api_requests,
            "counters": self.stats.counters,
            "gauges": self.stats.gauges,
            "retries": self.stats.retries,
            "backendRetries": self.backend_retries,
            "durationSeconds": round(self.duration_s, 3),
        }


def run_sync(
    client: BackendClient,
    connector: Connector,
    integration_id: str,
    *,
    windows: list[TimeWindow] | None = None,
    lookback: dt.timedelta = dt.timedelta(days=7),
) -> SyncOutcome:
    """A live sync (windows None: continue from the saved state) or a sync of the given windows."""
    outcome = SyncOutcome(integration_id=integration_id, mode="window" if windows else "live")
    started = time.perf_counter()
    backend_retries_before = retried_in_this_thread()
    integration = None
    try:
        integration = client.get_integration(connector.id, integration_id)
        if integration is None:
            outcome.error_kind = "missing"
            outcome.error = f"integration {integration_id} does not exist (any more) in the backend"
            return outcome
        outcome.integration_name, outcome.tenant_id = integration.name, integration.tenant_id
        connector.validate(integration)
        buffer = EventBuffer(client, integration)
        if windows:
            for window in windows:
                result = connector.window_sync(integration, window, buffer)
                outcome.windows.append(window)
                if result.covered is not None:
                    outcome.covered.append(result.covered)
                outcome.stats.merge(result.stats)
            outcome.posted = buffer.flush()
            state = None
        else:
            saved = client.get_sync(integration).get("state") or None
            result = connector.live_sync(integration, saved, buffer, lookback)
            outcome.windows.append(result.window)
            if result.covered is not None:
                outcome.covered.append(result.covered)
            outcome.stats = result.stats
            outcome.posted = buffer.flush()
            state = result.state
        outcome.duration_s = time.perf_counter() - started
        client.put_sync(integration, status="success", stats=outcome.report(), state=state)
    except (ConfigError, AuthError) as exc:
        outcome.error_kind = "auth" if isinstance(exc, AuthError) else "config"
        outcome.error = f"integration {_label(integration, integration_id)}: {exc}"
    except RateLimited as exc:
        outcome.error_kind, outcome.retry_after = "rate_limited", exc.retry_after
        outcome.error = f"integration {_label(integration, integration_id)}: {exc}"
    except BackendError as exc:  # the backend refused us (4xx): retrying will not help
        outcome.error_kind = "config"
        outcome.error = f"integration {_label(integration, integration_id)}: {exc}"
    except (TransientError, BackendUnavailable, ConnectorError) as exc:
        outcome.error_kind = "transient"
        outcome.error = f"integration {_label(integration, integration_id)}: {type(exc).__name__}: {exc}"
    finally:
        outcome.duration_s = time.perf_counter() - started
        outcome.backend_retries = retried_in_this_thread() - backend_retries_before
    if outcome.error and integration is not None:
        report_error(client, integration, outcome.error, stats=outcome.report())
    return outcome


def _label(integration, integration_id: str) -> str:
    return f"{integration.name!r} ({integration_id})" if integration else integration_id


def report_error(client: BackendClient, integration: Integration, error: str,
                 stats: dict[str, Any] | None = None) -> None:
    """Put the error on the integration's sync record (the web UI card shows it); a backend that
    cannot take it is logged, never raised: the run or tick that failed says it anyway."""
    try:
        client.put_sync(integration, status="error", error=error[:MAX_ERROR_CHARS], stats=stats)
    except (BackendUnavailable, BackendError) as exc:
        log.warning("could not report the failure of integration %s to the backend: %s", integration.id, exc)
