from painchain_pipelines.defs.github.assets import github_events_job
from painchain_pipelines.defs.github.partitions import github_integrations
from painchain_pipelines.defs.ingestion import build_reconcile_schedule

github_daily_reconcile_schedule = build_reconcile_schedule("github", github_integrations, github_events_job)
