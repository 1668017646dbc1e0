"""The watch sensor of a streaming connector: keeps one watch run going at all times. A segment
announces when it ends (a run tag); shortly before, the next one is launched, starts its process
while the current one still watches, and takes over the moment it ends: one run slot, no gap."""

import datetime as dt
from typing import TYPE_CHECKING

import dagster as dg

from painchain_pipelines.connectors.base import parse_time, utcnow
from painchain_pipelines.orchestration.partitions import partition_key
from painchain_pipelines.orchestration.runs import ACTIVE_STATUSES
from painchain_pipelines.orchestration.tags import (
    MODE_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    TRIGGER_TAG,
    WATCH_AFTER_TAG,
    WATCH_TAG,
    WATCH_UNTIL_TAG,
)

if TYPE_CHECKING:  # the type define_asset_job returns; dagster does not export it
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition


WATCH_SENSOR_INTERVAL_S = 5
# The next segment is launched this long before the current one ends: a run process starts in
# 5-10 s on 2 cores, so it is ready to take over when the current one stops.
HANDOFF_LEAD = dt.timedelta(seconds=25)
# A watch run that dies (its process killed, e.g. with `painchain up`) is never retried by
# run_retries: a retry would copy its stale segment tags and watch alongside the segment this
# sensor starts in its place.
NO_RETRY = {"dagster/max_retries": "0"}


def build_watch_sensor(connector_id: str, integrations_def: dg.DynamicPartitionsDefinition,
                       job: "UnresolvedAssetJobDefinition") -> dg.SensorDefinition:
    @dg.sensor(
        name=f"{connector_id}_watch_sensor",
        job=job,
        minimum_interval_seconds=WATCH_SENSOR_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Keeps one watch run of every {connector_id} integration going: each run watches for "
        "a segment (PAINCHAIN_WATCH_SEGMENT_SECONDS), the next one takes over as it ends.",
    )
    def watch_sensor(context: dg.SensorEvaluationContext):
        integrations = context.instance.get_dynamic_partitions(integrations_def.name)
        if not integrations:
            return dg.SkipReason(f"no {connector_id} integration to watch")
        records = context.instance.get_run_records(filters=dg.RunsFilter(
            job_name=job.name, statuses=ACTIVE_STATUSES, tags={WATCH_TAG: "true"}))
        runs = [r.dagster_run for r in records]
        previous = None
        if runs:
            watching = [r for r in runs if WATCH_UNTIL_TAG in r.tags]
            if len(runs) > len(watching) or len(runs) > 1:
                return dg.SkipReason("a segment is watching and the next one is starting")
            [current] = watching
            until = parse_time(current.tags[WATCH_UNTIL_TAG])
            if until is not None and until - utcnow() > HANDOFF_LEAD:
                return dg.SkipReason(f"segment {current.run_id[:8]} watches until {until:%H:%M:%S} UTC")
            previous = current.run_id
        today = utcnow().date()
        tags = {**NO_RETRY, MODE_TAG: "watch", WATCH_TAG: "true",
                TRIGGER_TAG: "next segment" if previous else "no segment running",
                RANGE_START_TAG: str(partition_key(today, integrations[0])),
                RANGE_END_TAG: str(partition_key(today, integrations[-1]))}
        if previous:
            tags[WATCH_AFTER_TAG] = previous
        return dg.RunRequest(tags=tags)

    return watch_sensor
