"""GitLab: one call, `build_connector_defs(GitLabConnector())`."""
