import dagster as dg

from painchain_pipelines.defs.github.assets import github_events, github_events_job
from painchain_pipelines.defs.github.schedules import github_daily_reconcile_schedule
from painchain_pipelines.defs.github.sensors import (
    github_deferred_retry_sensor,
    github_integrations_sensor,
    github_live_sensor,
)

defs = dg.Definitions(
    assets=[github_events],
    jobs=[github_events_job],
    sensors=[github_integrations_sensor, github_live_sensor, github_deferred_retry_sensor],
    schedules=[github_daily_reconcile_schedule],
)
