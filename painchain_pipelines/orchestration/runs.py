"""Queries on Dagster's run queue: which integrations are being synced right now."""

from __future__ import annotations

import dagster as dg

from painchain_pipelines.orchestration.tags import BATCH_TAG, INTEGRATION_TAG, RANGE_END_TAG, RANGE_START_TAG

ACTIVE_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def integrations_with_active_runs(instance: dg.DagsterInstance, integrations_def_name: str,
                                  exclude_run: str | None = None) -> set[str]:
    """Integrations some queued or running run is syncing: runs of one partition, and range runs
    (backfills, batches), which cover the integrations from the range's first to its last in
    partition order. Any job: the UI's materializations run as Dagster's implicit asset job."""
    records = instance.get_run_records(filters=dg.RunsFilter(statuses=ACTIVE_STATUSES))
    busy: set[str] = set()
    ordered: list[str] | None = None
    for record in records:
        tags = record.dagster_run.tags
        if record.dagster_run.run_id == exclude_run:
            continue
        if INTEGRATION_TAG in tags:
            busy.add(tags[INTEGRATION_TAG])
        elif "|" in tags.get(RANGE_START_TAG, "") and "|" in tags.get(RANGE_END_TAG, ""):
            ordered = ordered if ordered is not None else list(instance.get_dynamic_partitions(integrations_def_name))
            first, last = (tags[t].split("|", 1)[1] for t in (RANGE_START_TAG, RANGE_END_TAG))
            if first in ordered and last in ordered:
                busy.update(ordered[ordered.index(first):ordered.index(last) + 1])
    return busy


def batch_active(instance: dg.DagsterInstance, job_name: str) -> bool:
    """Whether a live sync of every integration (one batch run) is queued or running."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(job_name=job_name, statuses=ACTIVE_STATUSES, tags={BATCH_TAG: "true"}), limit=1)
    return bool(records)
