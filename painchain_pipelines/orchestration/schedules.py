"""The daily reconcile schedule of a connector that can read past windows."""

import datetime as dt
import hashlib
from typing import TYPE_CHECKING

import dagster as dg

from painchain_pipelines.orchestration.partitions import partition_key
from painchain_pipelines.orchestration.tags import TRIGGER_TAG

if TYPE_CHECKING:  # the type define_asset_job returns; dagster does not export it
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition


HOURLY_AT_QUARTER_PAST = "15 * * * *"


def build_reconcile_schedule(
    connector_id: str, integrations_def: dg.DynamicPartitionsDefinition, job: "UnresolvedAssetJobDefinition",
    cron: str = HOURLY_AT_QUARTER_PAST,
) -> dg.ScheduleDefinition:

    """Safety net: once a day, a window sync of yesterday for each integration.

    Live syncs already catch late changes; this makes each day's partition the source of truth
    even after an outage longer than the live look-backs. Integrations are spread over the hours
    of the day (by a hash of their id), so a few hundred of them never arrive as one burst of
    runs. Duplicates cost nothing.
    """

    @dg.schedule(
        name=f"{connector_id}_daily_reconcile_schedule",
        cron_schedule=cron,
        execution_timezone="UTC",
        job=job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Hourly; each {connector_id} integration gets a window sync of yesterday once a day, "
        "in the hour its id hashes to.",
    )
    def reconcile(context: dg.ScheduleEvaluationContext):
        moment = context.scheduled_execution_time.astimezone(dt.timezone.utc)
        yesterday = (moment - dt.timedelta(days=1)).date()
        due = [i for i in context.instance.get_dynamic_partitions(integrations_def.name)
               if reconcile_hour(i) == moment.hour]
        if not due:
            return dg.SkipReason(f"no integration is due at {moment.hour:02d}h")
        return [
            dg.RunRequest(
                run_key=f"reconcile-{yesterday.isoformat()}-{integration_id}",
                partition_key=partition_key(yesterday, integration_id),
                tags={TRIGGER_TAG: "daily-reconcile"},
            )
            for integration_id in due
        ]

    return reconcile


def reconcile_hour(integration_id: str) -> int:
    """The UTC hour (0-23) in which an integration's previous day is reconciled."""
    return int(hashlib.sha256(integration_id.encode()).hexdigest(), 16) % 24
