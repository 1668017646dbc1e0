"""Event retention in Dagster: the `event_retention` asset and its daily schedule.

The backend does the deleting (`POST /api/retention/run`, with its own PAINCHAIN_RETENTION_DAYS);
the asset calls it until it is done and records what went in the materialization's metadata, so
the Dagster UI shows every run's figures over time. With retention off the run succeeds and says so.
"""

# No `from __future__ import annotations`: Dagster reads the asset's annotations as types.
import datetime as dt
import time
from dataclasses import dataclass

import dagster as dg

from painchain_pipelines.connectors.backend_client import BackendClient, BackendError, BackendUnavailable
from painchain_pipelines.orchestration.resources import PainChainBackend
from painchain_pipelines.orchestration.settings import OrchestrationSettings

ASSET_NAME = "event_retention"
JOB_NAME = "event_retention_job"
SCHEDULE_NAME = "event_retention_schedule"
DAILY_AT_0315 = "15 3 * * *"
RETRY_ATTEMPTS = 3
# Each call prunes ~10 s; a backend that is down is waited for by the RetryPolicy, not here.
CLIENT_RETRIES = 2


@dataclass
class RetentionReport:
    enabled: bool = False
    retention_days: int | None = None
    cutoff: str | None = None
    removed: int = 0
    batches: int = 0
    longest_batch_ms: float = 0.0
    calls: int = 0
    seconds: float = 0.0

    def add(self, answer: dict) -> None:
        self.calls += 1
        self.enabled = answer["enabled"]
        self.retention_days = answer.get("retentionDays")
        self.cutoff = answer.get("cutoff")
        self.removed += answer["removed"]
        self.batches += answer["batches"]
        self.longest_batch_ms = max(self.longest_batch_ms, answer["maxBatchMs"])

    def summary(self) -> str:
        if not self.enabled:
            return "retention off: PAINCHAIN_RETENTION_DAYS is not set on the backend, every event is kept"
        return (f"removed {self.removed} events older than {self.cutoff} ({self.retention_days} days) in "
                f"{self.batches} batches, the longest {self.longest_batch_ms:.0f} ms")

    def metadata(self) -> dict:
        metadata: dict = {
            "retention": "off" if not self.enabled else f"{self.retention_days} days",
            "rows_removed": self.removed,
            "batches": self.batches,
            "longest_batch_ms": dg.MetadataValue.float(self.longest_batch_ms),
            "duration_seconds": dg.MetadataValue.float(round(self.seconds, 2)),
        }
        if self.enabled:
            metadata["retention_days"] = self.retention_days
            cutoff = dt.datetime.fromisoformat(self.cutoff.replace("Z", "+00:00"))
            metadata["cutoff"] = dg.MetadataValue.timestamp(cutoff)
        return metadata


def prune_until_done(client: BackendClient, report: RetentionReport, log) -> None:
    """Call the backend's retention until nothing older than its cutoff is left; `report` adds up
    the answers (also those before a failure)."""
    started = time.monotonic()
    while True:
        answer = client.run_retention()
        report.add(answer)
        report.seconds = time.monotonic() - started
        if answer["done"]:
            return
        log.info(f"removed {answer['removed']} events in this call ({report.removed} so far); calling again")


def build_retention_defs(settings: OrchestrationSettings | None = None) -> dg.Definitions:
    """`event_retention` (asset), `event_retention_job` and `event_retention_schedule` (daily)."""
    settings = settings or OrchestrationSettings.from_env()

    @dg.asset(
        name=ASSET_NAME,
        description="Deletes events older than the backend's PAINCHAIN_RETENTION_DAYS (nothing when unset), "
        "keeping histogram counts and search exact; records the rows removed.",
        group_name="maintenance",
        kinds={"python"},
        retry_policy=dg.RetryPolicy(max_retries=RETRY_ATTEMPTS, delay=settings.retry_delay,
                                    backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS),
    )
    def event_retention(context: dg.AssetExecutionContext, painchain: PainChainBackend) -> dg.MaterializeResult:
        report = RetentionReport()
        try:
            prune_until_done(painchain.client(retries=CLIENT_RETRIES), report, context.log)
        except (BackendUnavailable, BackendError) as exc:
            # What the calls before the failure removed stays in the run's log.
            partial = report.metadata() if report.calls else None
            if isinstance(exc, BackendUnavailable):
                raise dg.Failure(description=f"the backend does not answer: {exc}", allow_retries=True,
                                 metadata=partial) from exc
            hint = "; PAINCHAIN_API_TOKEN must be the backend's service token" if exc.status in (401, 403) else ""
            raise dg.Failure(description=f"the backend refused retention: {exc}{hint}", allow_retries=False,
                             metadata=partial) from exc
        context.log.info(report.summary())
        return dg.MaterializeResult(metadata=report.metadata())

    job = dg.define_asset_job(JOB_NAME, selection=[ASSET_NAME], description=f"Materializes {ASSET_NAME}.")
    schedule = dg.ScheduleDefinition(
        name=SCHEDULE_NAME,
        cron_schedule=DAILY_AT_0315,
        execution_timezone="UTC",
        job=job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Daily at 03:15 UTC: deletes events older than the backend's PAINCHAIN_RETENTION_DAYS "
        "(the run says 'retention off' when it is unset).",
    )
    return dg.Definitions(assets=[event_retention], jobs=[job], schedules=[schedule])
