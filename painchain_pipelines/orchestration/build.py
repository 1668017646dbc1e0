"""A connector's whole Dagster wiring in one call. What gets wired follows what the connector
declares it can do (the capability protocols of connectors/base.py)."""

from __future__ import annotations

import dagster as dg

from painchain_pipelines.connectors.base import Connector, SyncsLive, SyncsWindows, Watches
from painchain_pipelines.orchestration.asset import asset_name, build_ingestion_asset
from painchain_pipelines.orchestration.partitions import integration_partitions
from painchain_pipelines.orchestration.schedules import build_reconcile_schedule
from painchain_pipelines.orchestration.sensors.deferred_retry import build_deferred_retry_sensor
from painchain_pipelines.orchestration.sensors.integrations import build_integrations_sensor
from painchain_pipelines.orchestration.sensors.live import build_live_sensor
from painchain_pipelines.orchestration.sensors.watch import build_watch_sensor
from painchain_pipelines.orchestration.settings import OrchestrationSettings


def job_name(connector_id: str) -> str:
    return f"{connector_id}_events_job"


def build_connector_defs(connector: Connector, settings: OrchestrationSettings | None = None) -> dg.Definitions:
    """`<id>_events` (partitioned by integration × day, with checks), `<id>_events_job`, and:
    always the integrations sensor (partitions, and first syncs of live connectors); the live
    sensor if the connector syncs live; the watch sensor if it watches; the deferred retry sensor
    and the daily reconcile schedule if it reads past windows."""
    if not isinstance(connector, (SyncsLive, SyncsWindows, Watches)):
        raise TypeError(f"connector {connector.id!r} implements none of SyncsLive, SyncsWindows and Watches: "
                        "there is nothing to orchestrate")
    settings = settings or OrchestrationSettings.from_env()
    integrations, partitions = integration_partitions(connector.id, settings.history_start)
    asset = build_ingestion_asset(connector, partitions, settings)
    job = dg.define_asset_job(job_name(connector.id), selection=[asset_name(connector.id)],
                              description=f"Materializes {asset_name(connector.id)} (used by its sensors).")
    sensors = [build_integrations_sensor(connector, integrations, job, settings)]
    schedules = []
    if isinstance(connector, SyncsLive):
        sensors.append(build_live_sensor(connector, integrations, job, settings))
    if isinstance(connector, Watches):
        sensors.append(build_watch_sensor(connector.id, integrations, job))
    if isinstance(connector, SyncsWindows):
        sensors.append(build_deferred_retry_sensor(connector.id, job))
        schedules.append(build_reconcile_schedule(connector.id, integrations, job))
    return dg.Definitions(assets=[asset], jobs=[job], sensors=sensors, schedules=schedules)
