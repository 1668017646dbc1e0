"""The GitHub connector's streams, one file per kind of event: its requests, its state, its change
probe and its transform. `STREAMS` is the order a repository's streams are read in."""

from painchain_pipelines.connectors.github.streams.base import Stream
from painchain_pipelines.connectors.github.streams.commits import CommitsStream
from painchain_pipelines.connectors.github.streams.deployments import DeploymentsStream
from painchain_pipelines.connectors.github.streams.pull_requests import PullRequestsStream
from painchain_pipelines.connectors.github.streams.releases import ReleasesStream
from painchain_pipelines.connectors.github.streams.workflow_runs import WorkflowRunsStream

STREAMS: tuple[type[Stream], ...] = (
    CommitsStream, PullRequestsStream, ReleasesStream, WorkflowRunsStream, DeploymentsStream,
)

__all__ = ["STREAMS", "CommitsStream", "DeploymentsStream", "PullRequestsStream", "ReleasesStream", "Stream",
           "WorkflowRunsStream"]
