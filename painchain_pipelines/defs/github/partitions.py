from painchain_pipelines.defs.ingestion import integration_partitions
from painchain_pipelines.defs.settings import OrchestrationSettings

SETTINGS = OrchestrationSettings.from_env()

# Keys read `2026-11-24|<integrationId>` (Dagster orders dimensions alphabetically).
github_integrations, github_partitions = integration_partitions("github", SETTINGS.history_start)
