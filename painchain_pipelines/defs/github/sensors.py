from painchain_pipelines.defs.github.assets import github_connector, github_events_job
from painchain_pipelines.defs.github.partitions import SETTINGS, github_integrations
from painchain_pipelines.defs.ingestion import (
    build_deferred_retry_sensor,
    build_integrations_sensor,
    build_live_sensor,
)

github_integrations_sensor = build_integrations_sensor("github", github_integrations, github_events_job, SETTINGS)
github_live_sensor = build_live_sensor(github_connector, github_integrations, github_events_job, SETTINGS)
github_deferred_retry_sensor = build_deferred_retry_sensor("github", github_events_job)
