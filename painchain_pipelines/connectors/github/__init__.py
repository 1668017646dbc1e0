"""GitHub: commits, pull requests, releases, workflow runs and deployments, via PyGithub."""

from painchain_pipelines.connectors.github.connector import GitHubConnector

__all__ = ["GitHubConnector"]
