"""GitHub: the `github_events` asset, its job, sensors and reconcile schedule."""
from painchain_pipelines.connectors.github import GitHubConnector
from painchain_pipelines.orchestration import build_connector_defs

defs = build_connector_defs(GitHubConnector())
