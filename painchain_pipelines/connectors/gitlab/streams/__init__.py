"""The GitLab streams: one module per kind of event (its requests, probe, state and transform)."""

from painchain_pipelines.connectors.gitlab.streams.commits import Commits
from painchain_pipelines.connectors.gitlab.streams.deployments import Deployments
from painchain_pipelines.connectors.gitlab.streams.merge_requests import MergeRequests
from painchain_pipelines.connectors.gitlab.streams.pipelines import Pipelines
from painchain_pipelines.connectors.gitlab.streams.releases import Releases
from painchain_pipelines.connectors.gitlab.streams.tags import Tags

# Reading order: what activity shows first, then the always-probed status streams.
STREAMS = (Commits(), MergeRequests(), Tags(), Releases(), Pipelines(), Deployments())

__all__ = ["STREAMS", "Commits", "Deployments", "MergeRequests", "Pipelines", "Releases", "Tags"]
