"""An integration's GitHub configuration, checked with messages that name the field."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from painchain_pipelines.connectors.base import ConfigError
from painchain_pipelines.connectors.config_fields import branch_names, http_url, json_list

DEFAULT_BASE_URL = "https://api.github.com"
MAX_REPOSITORIES = 200
_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class GitHubConfig:
    token: str
    repositories: tuple[str, ...]
    base_url: str = DEFAULT_BASE_URL
    branches: tuple[str, ...] = ()

    def __repr__(self) -> str:  # the token must never be printed
        return f"GitHubConfig(repositories={self.repositories!r}, base_url={self.base_url!r}, branches={self.branches!r})"


def parse_config(config: Mapping[str, Any]) -> GitHubConfig:
    token = config.get("token")
    if not isinstance(token, str) or not token.strip():
        raise ConfigError("token", "is missing (a personal access token or fine-grained token)")

    repositories: list[str] = []
    for item in json_list(config.get("repositories"), "repositories"):
        if isinstance(item, Mapping):  # {"owner": "org", "repo": "name"}, as in the connector guide
            item = f"{item.get('owner', '')}/{item.get('repo', '')}"
        if not isinstance(item, str) or not _REPO.match(item.strip()):
            raise ConfigError("repositories", f"{item!r} is not of the form owner/repo")
        name = item.strip()
        if name.lower() not in (r.lower() for r in repositories):
            repositories.append(name)
    if not repositories:
        raise ConfigError("repositories", 'lists no repository; e.g. ["octocat/hello-world"]')
    if len(repositories) > MAX_REPOSITORIES:
        raise ConfigError("repositories", f"lists more than {MAX_REPOSITORIES} repositories; split the integration")

    base_url = http_url(config.get("baseUrl"), "baseUrl", DEFAULT_BASE_URL, " (GitHub Enterprise: https://HOST/api/v3)")
    return GitHubConfig(token=token.strip(), repositories=tuple(repositories), base_url=base_url,
                        branches=branch_names(config.get("branches")))
