"""GitLab: commits, merge requests, pipelines, deployments, releases and tags, via python-gitlab."""

from painchain_pipelines.connectors.gitlab.connector import GitLabConnector

__all__ = ["GitLabConnector"]
