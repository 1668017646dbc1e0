"""An integration's GitLab configuration, checked with messages that name the field."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from painchain_pipelines.connectors.base import ConfigError
from painchain_pipelines.connectors.config_fields import (
    boolean,
    branch_names,
    http_url,
    json_list,
    pem_certificates,
)

DEFAULT_URL = "https://gitlab.com"
MAX_PROJECTS = 200
# group/subgroup/.../project: GitLab path segments (letters, digits, _ . - ; not starting with - or .)
_SEGMENT = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
_PROJECT_PATH = re.compile(rf"^{_SEGMENT}(/{_SEGMENT})+$")


@dataclass(frozen=True)
class GitLabConfig:
    token: str
    projects: tuple[str, ...]  # "group/sub/project" paths or numeric ids (as strings)
    url: str = DEFAULT_URL
    branches: tuple[str, ...] = ()
    all_branches: bool = False
    ca_certificate: str | None = None

    def __repr__(self) -> str:  # the token must never be printed
        return (f"GitLabConfig(projects={self.projects!r}, url={self.url!r}, branches={self.branches!r}, "
                f"all_branches={self.all_branches!r}, ca_certificate={'set' if self.ca_certificate else None})")

    __str__ = __repr__


def parse_config(config: Mapping[str, Any]) -> GitLabConfig:
    token = config.get("token")
    if not isinstance(token, str) or not token.strip():
        raise ConfigError("token", "is missing (a personal, group or project access token with read_api)")
    if any(c.isspace() for c in token.strip()):
        raise ConfigError("token", "contains whitespace")

    projects: list[str] = []
    for item in json_list(config.get("projects"), "projects"):
        if isinstance(item, int) and not isinstance(item, bool) and item > 0:
            item = str(item)
        if not isinstance(item, str):
            raise ConfigError("projects", f"{item!r} is not a project path (group/project) or numeric id")
        name = item.strip().strip("/")
        if not (name.isdigit() and int(name) > 0) and not _PROJECT_PATH.match(name):
            raise ConfigError("projects", f"{item!r} is not a project path like group/subgroup/project "
                                          "or a numeric project id")
        if name.lower() not in (p.lower() for p in projects):
            projects.append(name)
    if not projects:
        raise ConfigError("projects", 'lists no project; e.g. ["my-group/my-project"]')
    if len(projects) > MAX_PROJECTS:
        raise ConfigError("projects", f"lists more than {MAX_PROJECTS} projects; split the integration")

    url = http_url(config.get("url"), "url", DEFAULT_URL,
                   " (GitLab's address, e.g. https://gitlab.example.com or https://host/gitlab)")
    if url.endswith("/api/v4"):
        url = url[: -len("/api/v4")]  # the instance's address, not its API's

    return GitLabConfig(
        token=token.strip(),
        projects=tuple(projects),
        url=url,
        branches=branch_names(config.get("branches"), "branches"),
        all_branches=boolean(config.get("allBranches"), "allBranches"),
        ca_certificate=pem_certificates(config.get("caCertificate"), "caCertificate"),
    )
