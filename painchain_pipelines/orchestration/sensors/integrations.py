"""The integrations sensor: registers the connector type, keeps one `integration` partition
per integration of the backend, and queues the first sync of each new one."""

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from painchain_pipelines.connectors.backend_client import BackendClient, BackendError, BackendUnavailable
from painchain_pipelines.connectors.base import Connector, Integration, Watches, utcnow
from painchain_pipelines.connectors.registration import RegistrationFailed, load_metadata, register
from painchain_pipelines.connectors.sync import report_error
from painchain_pipelines.orchestration.partitions import (
    FORBIDDEN_IN_KEYS,
    partition_key,
    valid_partition_name,
)
from painchain_pipelines.orchestration.resources import PainChainBackend
from painchain_pipelines.orchestration.sensors.common import (
    backend_problem,
    dump_cursor,
    heartbeat,
    load_cursor,
    sensor_client,
    skip,
)
from painchain_pipelines.orchestration.settings import OrchestrationSettings
from painchain_pipelines.orchestration.tags import (
    BATCH_TAG,
    MODE_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    TRIGGER_TAG,
    name_tag,
)
from painchain_pipelines.paths import METADATA_DIR

if TYPE_CHECKING:  # the type define_asset_job returns; dagster does not export it
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition


INTEGRATIONS_SENSOR_INTERVAL_S = 30
MAX_REMOVALS_CHECKED_PER_TICK = 100


def metadata_digest(connector_id: str, directory: Path = METADATA_DIR) -> str:
    return hashlib.sha256(json.dumps(load_metadata(connector_id, directory), sort_keys=True).encode()).hexdigest()


def build_integrations_sensor(
    connector: Connector,
    integrations_def: dg.DynamicPartitionsDefinition,
    job: "UnresolvedAssetJobDefinition",
    settings: OrchestrationSettings,
) -> dg.SensorDefinition:

    connector_id = connector.id
    # Connectors shipped with PainChain have their metadata in metadata/; others say where theirs is.
    metadata_dir = getattr(connector, "metadata_dir", METADATA_DIR)

    @dg.sensor(
        name=f"{connector_id}_integrations_sensor",
        job=job,
        minimum_interval_seconds=INTEGRATIONS_SENSOR_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Registers the {connector_id} connector type (at start and when its metadata changes), "
        f"keeps one `integration` partition per {connector_id} integration of the backend (adds new ones, "
        "removes deleted ones) and queues the first sync of each new integration.",
    )
    def integrations_sensor(context: dg.SensorEvaluationContext, painchain: PainChainBackend):
        connector_id = connector.id
        client = sensor_client(painchain)
        cursor = load_cursor(context.cursor, legacy_key="metadata")
        # Register (upsert) the connector type when the sensor starts or the metadata changed,
        # so that `dagster dev` alone (without `painchain up`) registers it too.
        try:
            digest = metadata_digest(connector_id, metadata_dir)
            if cursor.get("metadata") != digest:
                register(client, [connector_id], attempts=1, directory=metadata_dir)
                cursor["metadata"] = digest
        except RegistrationFailed as exc:
            problem = f"registering connector type {connector_id!r} failed: {exc}"
            heartbeat(context, client, connector_id, problem=problem)
            return skip(f"{problem}; tried again on the next tick", cursor)
        try:
            integrations = client.list_integrations(connector_id)
        except (BackendUnavailable, BackendError) as exc:
            return skip(backend_problem(exc), cursor)

        usable = [i for i in integrations if valid_partition_name(i.id)]
        _report_unusable(context, client, [i for i in integrations if not valid_partition_name(i.id)], cursor)
        existing = set(context.instance.get_dynamic_partitions(integrations_def.name))
        added = [i for i in usable if i.id not in existing]
        listed = {i.id for i in integrations}
        removed = _confirmed_deleted(context, client, sorted(existing - listed))
        # A watching connector's running watch picks new integrations up by itself.
        run_requests = [] if isinstance(connector, Watches) else first_sync_requests(added, settings.batch_threshold)
        partition_requests = []
        if added:
            partition_requests.append(integrations_def.build_add_request([i.id for i in added]))
        if removed:
            partition_requests.append(integrations_def.build_delete_request(removed))
        heartbeat(context, client, connector_id, problem=None, queued=[i.id for i in added])
        if not added and not removed:
            return skip(f"{len(existing)} integrations, none added or removed", cursor)
        context.log.info(f"integrations added: {[i.id for i in added] or 'none'}; removed: {removed or 'none'}")
        return dg.SensorResult(run_requests=run_requests, dynamic_partitions_requests=partition_requests,
                               cursor=dump_cursor(cursor))

    return integrations_sensor


def first_sync_requests(added: list[Integration], batch_threshold: int) -> list[dg.RunRequest]:
    """One live run per new integration; past the batch threshold (hundreds created at once,
    a restored database) one batch run over the new partitions, which are contiguous at the
    end of the partition list (Dagster keeps dynamic partitions in the order they were added)."""
    today = utcnow().date()
    if not added:
        return []
    if len(added) > batch_threshold:
        ids = [i.id for i in added]
        return [dg.RunRequest(
            run_key="first-sync-batch-" + hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16],
            tags={MODE_TAG: "live", BATCH_TAG: "true", TRIGGER_TAG: f"{len(ids)} new integrations",
                  RANGE_START_TAG: str(partition_key(today, ids[0])),
                  RANGE_END_TAG: str(partition_key(today, ids[-1]))})]
    return [
        dg.RunRequest(
            run_key=f"first-sync-{integration.id}",
            partition_key=partition_key(today, integration.id),
            tags={MODE_TAG: "live", TRIGGER_TAG: "new-integration", **name_tag(integration)},
        )
        for integration in added
    ]


def _report_unusable(context, client: BackendClient, unusable: list[Integration], cursor: dict) -> None:
    """Integrations whose id cannot be a partition key: said once in the log and on their card."""
    reported = set(cursor.get("unusable", []))
    for integration in unusable:
        if integration.id in reported:
            continue
        problem = (f"integration {integration.name!r} ({integration.id}) cannot be synced: its id contains one "
                   f"of {' '.join(FORBIDDEN_IN_KEYS)}, which Dagster partition keys cannot hold; recreate it")
        context.log.error(problem)
        report_error(client, integration, problem)
        reported.add(integration.id)
    cursor["unusable"] = sorted(reported & {i.id for i in unusable})


def _confirmed_deleted(context, client: BackendClient, missing: list[str]) -> list[str]:
    """Of the partitions the integration list no longer shows, those the backend confirms are
    deleted: removing a partition hides its history, so a partial answer must not do it."""
    deleted = []
    for integration_id in missing[:MAX_REMOVALS_CHECKED_PER_TICK]:
        try:
            if not client.integration_exists(integration_id):
                deleted.append(integration_id)
        except (BackendUnavailable, BackendError) as exc:
            context.log.warning(f"keeping partition {integration_id}: cannot confirm it was deleted ({exc})")
    return deleted
