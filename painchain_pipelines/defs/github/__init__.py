"""GitHub: one call, `build_connector_defs(GitHubConnector())`."""
