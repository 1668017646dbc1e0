"""GitLab: the `gitlab_events` asset, its job, sensors and reconcile schedule."""
from painchain_pipelines.connectors.gitlab import GitLabConnector
from painchain_pipelines.orchestration import build_connector_defs

defs = build_connector_defs(GitLabConnector())
