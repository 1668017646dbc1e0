"""The deferred retry sensor: launches again, after the reset, the window runs (backfills,
reruns, reconciles) that a long rate limit stopped, so that no run process sleeps through it."""

import datetime as dt
from typing import TYPE_CHECKING

import dagster as dg

from painchain_pipelines.connectors.base import utcnow
from painchain_pipelines.orchestration.tags import (
    BATCH_TAG,
    CONNECTOR_TAG,
    DEFERRAL_TAG,
    DEFERRED_FROM_TAG,
    DEFERRED_TAG,
    INTEGRATION_NAME_TAG,
    MODE_TAG,
    PARTITION_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    RETRY_AT_TAG,
    TRIGGER_TAG,
)

if TYPE_CHECKING:  # the type define_asset_job returns; dagster does not export it
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition


DEFERRED_RETRY_INTERVAL_S = 60
CARRIED_TAGS = (MODE_TAG, TRIGGER_TAG, BATCH_TAG, INTEGRATION_NAME_TAG)


def build_deferred_retry_sensor(connector_id: str, job: "UnresolvedAssetJobDefinition") -> dg.SensorDefinition:
    @dg.sensor(
        name=f"{connector_id}_deferred_retry_sensor",
        job=job,
        minimum_interval_seconds=DEFERRED_RETRY_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Re-launches {connector_id} runs stopped by a rate limit once the limit resets.",
    )
    def deferred_retry_sensor(context: dg.SensorEvaluationContext):
        now = utcnow()
        # Any job: materializations from the UI run as Dagster's implicit asset job.
        records = context.instance.get_run_records(filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.FAILURE], tags={DEFERRED_TAG: "pending", CONNECTOR_TAG: connector_id}))
        due = [r.dagster_run for r in records if _retry_at(r.dagster_run, now) <= now]
        run_requests = [deferred_run_request(run) for run in due]
        for run in due:
            context.instance.add_run_tags(run.run_id, {DEFERRED_TAG: "relaunched"})
        waiting = len(records) - len(due)
        if not run_requests:
            return dg.SkipReason(f"{waiting} run(s) waiting for a rate limit to reset" if waiting
                                 else "no run is waiting for a rate limit")
        return run_requests

    return deferred_retry_sensor


def _retry_at(run: dg.DagsterRun, now: dt.datetime) -> dt.datetime:
    """When a deferred run may go again; a missing or mangled tag means now."""
    try:
        return dt.datetime.fromisoformat(run.tags[RETRY_AT_TAG])
    except (KeyError, ValueError):
        return now


def deferred_run_request(run: dg.DagsterRun) -> dg.RunRequest:
    """The same partitions (one key or a range) and mode as the stopped run."""
    tags = {k: v for k, v in run.tags.items() if k in CARRIED_TAGS}
    tags[DEFERRAL_TAG] = str(int(run.tags.get(DEFERRAL_TAG, "0")) + 1)
    tags[DEFERRED_FROM_TAG] = run.run_id
    run_key = f"deferred:{run.run_id}"  # launched once, even if tagging the old run failed
    if PARTITION_TAG in run.tags:
        return dg.RunRequest(run_key=run_key, partition_key=run.tags[PARTITION_TAG], tags=tags)
    tags[RANGE_START_TAG], tags[RANGE_END_TAG] = run.tags[RANGE_START_TAG], run.tags[RANGE_END_TAG]
    return dg.RunRequest(run_key=run_key, tags=tags)
