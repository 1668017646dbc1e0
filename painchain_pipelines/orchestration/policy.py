"""What a failed sync becomes in Dagster: an in-place retry after a short rate-limit wait, a
deferral past a long one (the deferred retry sensor relaunches the run), a retryable failure
(the asset's RetryPolicy) for what the world causes, a final one for what the user must fix."""

from __future__ import annotations

import datetime as dt
import random
from typing import NoReturn

import dagster as dg

from painchain_pipelines.connectors.base import utcnow
from painchain_pipelines.connectors.sync import SyncOutcome
from painchain_pipelines.orchestration.metadata import run_metadata
from painchain_pipelines.orchestration.tags import CONNECTOR_TAG, DEFERRAL_TAG, DEFERRED_TAG, RETRY_AT_TAG

MAX_IN_PROCESS_WAIT_S = 120  # shorter waits (secondary limits, Retry-After) are retried in place
MAX_IN_PROCESS_RETRIES = 8
MAX_DEFERRALS = 6


def raise_for_failures(context: dg.AssetExecutionContext, connector_id: str, failures: list[SyncOutcome],
                       outcomes: list[SyncOutcome], live: bool) -> NoReturn:
    message = "; ".join(o.error or "" for o in failures)
    rate_limited = [o.retry_after or 0.0 for o in failures if o.error_kind == "rate_limited"]
    if rate_limited:
        longest = max(rate_limited)
        # Jitter, so that integrations sharing a token do not all come back in the same second.
        wait_s = longest + random.uniform(1, 1 + min(10.0, longest / 10))
        if wait_s <= MAX_IN_PROCESS_WAIT_S:
            context.log.warning(f"rate limited: retrying in {wait_s:.0f} s — {message}")
            raise dg.RetryRequested(max_retries=MAX_IN_PROCESS_RETRIES, seconds_to_wait=wait_s)
        raise dg.Failure(description=_defer(context, connector_id, wait_s, message, live), allow_retries=False,
                         metadata=run_metadata(outcomes))
    # Timeouts, 5xx, an unreachable backend: the RetryPolicy tries again. Either way the failed
    # attempt keeps its figures (requests, retries) in the run's event log.
    retryable = any(o.retryable for o in failures)
    raise dg.Failure(description=message, allow_retries=retryable, metadata=run_metadata(outcomes))


def _defer(context: dg.AssetExecutionContext, connector_id: str, wait_s: float, message: str, live: bool) -> str:
    """Stop instead of sleeping through a long rate-limit wait; say when the work resumes."""
    resume_at = utcnow() + dt.timedelta(seconds=wait_s)
    when = f"{resume_at:%Y-%m-%d %H:%M} UTC"
    if live:
        return f"{message} — rate limited until {when}; live polling resumes by itself then"
    deferral = int(context.run.tags.get(DEFERRAL_TAG, "0"))
    if deferral >= MAX_DEFERRALS:
        return f"{message} — rate limited until {when}, deferred {deferral} times already: re-run it then"
    context.instance.add_run_tags(context.run.run_id, {
        DEFERRED_TAG: "pending", CONNECTOR_TAG: connector_id, RETRY_AT_TAG: resume_at.isoformat(timespec="seconds")})
    return f"{message} — rate limited until {when}; the same partitions are launched again then"
