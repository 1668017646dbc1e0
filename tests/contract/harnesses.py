"""One harness per connector: its fake API, an integration pointing at it, a way to make a change
at a given moment, and configurations that must be refused. The contract tests run on each."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import Any

from painchain_pipelines.connectors.base import Integration
from painchain_pipelines.connectors.github import GitHubConnector
from painchain_pipelines.connectors.gitlab import GitLabConnector
from tests.fakes import FakeGitHub
from tests.fakes.gitlab_server import FakeGitLab
from tests.fakes.gitlab_world import GitLabWorld


class Harness:
    connector_id: str
    token: str
    # (config changes, the field the ConfigError must name)
    invalid_configs: list[tuple[dict[str, Any], str]]

    def running(self) -> contextlib.AbstractContextManager["Harness"]: ...

    def connector(self): ...

    def now(self) -> dt.datetime: ...

    def config(self, **changes: Any) -> dict[str, Any]: ...

    def add_change(self, at: dt.datetime) -> None: ...

    def integration(self, integration_id: str = "contract-1", tenant_id: str | None = None,
                    **changes: Any) -> Integration:
        return Integration(id=integration_id, name="Contract", type=self.connector_id,
                           config=self.config(**changes), tenant_id=tenant_id)

    def wrong_token(self) -> str:
        return self.token[:-6] + "000000"


class GitHubHarness(Harness):
    connector_id = "github"
    token = "ghp_contract_secret_token_5d4c3b2a1f0e"
    invalid_configs = [
        ({"repositories": "octo/app"}, "repositories"),
        ({"repositories": []}, "repositories"),
        ({"repositories": ["not a repository"]}, "repositories"),
        ({"baseUrl": "ftp://example.com"}, "baseUrl"),
        ({"token": ""}, "token"),
    ]

    @contextlib.contextmanager
    def running(self) -> Iterator["GitHubHarness"]:
        with FakeGitHub(token=self.token) as fake:
            self.fake = fake
            self.repo = fake.add_repo("octo/contract")
            yield self

    def connector(self):
        return GitHubConnector()

    def now(self) -> dt.datetime:
        return self.fake.now()

    def config(self, **changes: Any) -> dict[str, Any]:
        return {"name": "Contract", "tags": ["contract"], "token": self.token,
                "repositories": ["octo/contract"], "baseUrl": self.fake.base_url, **changes}

    def add_change(self, at: dt.datetime) -> None:
        self.repo.add_commit(message=f"change at {at:%H:%M:%S}", authored_at=at, committed_at=at)


class GitLabHarness(Harness):
    connector_id = "gitlab"
    token = "contract-gitlab-secret-token-8a7b6c"
    invalid_configs = [
        ({"projects": "acme/contract"}, "projects"),
        ({"projects": []}, "projects"),
        ({"url": "gitlab.example.com"}, "url"),
        ({"branches": "main"}, "branches"),
        ({"token": ""}, "token"),
        ({"caCertificate": "not a certificate"}, "caCertificate"),
    ]

    @contextlib.contextmanager
    def running(self) -> Iterator["GitLabHarness"]:
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        self.world = GitLabWorld(now=now)
        self.project = self.world.add_project("acme/contract", default_branch="main")
        with FakeGitLab(self.world, token=self.token) as fake:
            self.fake = fake
            yield self

    def connector(self):
        return GitLabConnector()

    def now(self) -> dt.datetime:
        return self.world.now

    def config(self, **changes: Any) -> dict[str, Any]:
        return {"name": "Contract", "tags": ["contract"], "token": self.token, "url": self.fake.url,
                "projects": ["acme/contract"], **changes}

    def add_change(self, at: dt.datetime) -> None:
        self.project.add_commit(branch="main", committed_date=at, message=f"change at {at:%H:%M:%S}")


HARNESSES = [GitHubHarness, GitLabHarness]
