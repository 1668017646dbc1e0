import dagster as dg

from painchain_pipelines.connectors.github import GitHubConnector
from painchain_pipelines.defs.github.partitions import SETTINGS, github_partitions
from painchain_pipelines.defs.ingestion import build_ingestion_asset

github_connector = GitHubConnector()

github_events = build_ingestion_asset(
    github_connector,
    github_partitions,
    SETTINGS,
    description=(
        "GitHub changes as PainChain events: commits on the default and configured branches, pull "
        "requests opened/merged/closed, releases, completed workflow runs (each attempt), "
        "deployments and their final status. One partition per integration and UTC day; backfill "
        "any range from the UI or CLI. Live syncs are started by `github_live_sensor`."
    ),
)

github_events_job = dg.define_asset_job(
    "github_events_job",
    selection=[github_events],
    description="Materializes github_events (used by the GitHub sensors).",
)
