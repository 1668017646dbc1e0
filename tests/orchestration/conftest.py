"""End to end: the real backend, the real Dagster definitions, PyGithub against the fake GitHub."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from painchain_pipelines.connectors.backend_client import BackendClient
from painchain_pipelines.connectors.registration import register
from painchain_pipelines.orchestration.partitions import partition_key
from painchain_pipelines.orchestration.resources import PainChainBackend
from painchain_pipelines.orchestration.tags import MODE_TAG
from tests.fakes import FakeGitHub
from tests.orchestration.github_defs import github_events

GITHUB_TOKEN = "ghp_e2e_secret_token_value_9f8e7d6c5b4a"
SERVICE_TOKEN = "pc_service_token_e2e_7a6b5c4d3e2f"


class World:
    """Everything one end-to-end test needs, wired together."""

    def __init__(self, backend, fake: FakeGitHub, instance: dg.DagsterInstance, instance_dir):
        self.backend = backend
        self.fake = fake
        self.instance = instance
        self.instance_dir = instance_dir
        self.api = backend.client(Authorization=f"Bearer {SERVICE_TOKEN}")
        self.resources = {"painchain": PainChainBackend(api_url=backend.api_url, api_token=dg.EnvVar("PAINCHAIN_API_TOKEN"))}

    def create_integration(self, repositories, tenant=None, **config) -> dict:
        api = self.api.with_headers(**{"x-tenant-id": tenant}) if tenant else self.api
        body = {"name": "GitHub " + "/".join(repositories), "tags": ["prod"], "token": GITHUB_TOKEN,
                "repositories": repositories, "baseUrl": self.fake.base_url, **config}
        response = api.post("/integrations", json={"type": "github", "config": body})
        assert response.status_code == 201, response.text
        return response.json()

    def add_partition(self, integration_id: str) -> None:
        self.instance.add_dynamic_partitions("github_integrations", [integration_id])

    def materialize(self, integration_id: str, date: dt.date | None = None, *, live: bool = False,
                    raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
        date = date or dt.datetime.now(dt.timezone.utc).date()
        return dg.materialize(
            [github_events],
            partition_key=partition_key(date, integration_id),
            instance=self.instance,
            resources=self.resources,
            tags={MODE_TAG: "live"} if live else {},
            raise_on_error=raise_on_error,
        )

    def execute(self, request: dg.RunRequest, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            [github_events], partition_key=request.partition_key, instance=self.instance,
            resources=self.resources, tags=dict(request.tags), raise_on_error=raise_on_error,
        )

    def events(self, integration_id: str) -> dict[str, dict]:
        out, cursor = {}, None
        while True:
            params = {"integrationId": integration_id, "limit": 500, **({"cursor": cursor} if cursor else {})}
            page = self.api.get("/events", params=params).json()
            for event in page["events"]:
                assert event["externalId"] not in out, f"stored twice: {event['externalId']}"
                out[event["externalId"]] = event
            cursor = page["nextCursor"]
            if not cursor:
                return out

    def sync_record(self, integration_id: str) -> dict:
        return self.api.get(f"/integrations/{integration_id}/sync").json()


@pytest.fixture
def world(make_backend, tmp_path, monkeypatch):
    monkeypatch.setenv("PAINCHAIN_API_TOKEN", SERVICE_TOKEN)
    backend = make_backend("sqlite", api_token=SERVICE_TOKEN)
    register(BackendClient(backend.api_url, SERVICE_TOKEN), ["github"])
    instance_dir = tmp_path / "dagster_home"
    instance_dir.mkdir()
    with FakeGitHub(token=GITHUB_TOKEN) as fake, dg.instance_for_test(temp_dir=str(instance_dir)) as instance:
        yield World(backend, fake, instance, instance_dir)
