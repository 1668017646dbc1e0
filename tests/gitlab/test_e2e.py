"""GitLab end to end: the real backend on a socket, the product's Dagster definitions
(`defs/gitlab`), python-gitlab against the fake GitLab whose world changes between polls.
Every expected event is stored exactly once, with its timestamp and final status."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import dagster as dg
import pytest

from painchain_pipelines.connectors.backend_client import BackendClient
from painchain_pipelines.connectors.registration import register
from painchain_pipelines.defs.gitlab.definitions import defs as gitlab_defs
from painchain_pipelines.orchestration.partitions import partition_key
from painchain_pipelines.orchestration.resources import PainChainBackend
from tests.fakes.gitlab_server import FakeGitLab
from tests.fakes.gitlab_world import GitLabWorld

TOKEN = "e2e-gitlab-token-not-a-real-one-4f3e2d"
SERVICE_TOKEN = "pc_service_token_gitlab_e2e_6b5a4c3d"
M = dt.timedelta(minutes=1)
H = dt.timedelta(hours=1)
D = dt.timedelta(days=1)

ASSET = gitlab_defs.get_assets_def("gitlab_events")
SENSORS = {s.name: s for s in gitlab_defs.sensors}


class World:
    def __init__(self, backend, fake: FakeGitLab, world: GitLabWorld, instance: dg.DagsterInstance):
        self.backend, self.fake, self.world, self.instance = backend, fake, world, instance
        self.api = backend.client(Authorization=f"Bearer {SERVICE_TOKEN}")
        self.resources = {"painchain": PainChainBackend(api_url=backend.api_url, api_token=SERVICE_TOKEN)}
        self.repository = dg.Definitions.merge(gitlab_defs, dg.Definitions(resources=self.resources)).get_repository_def()

    def create_integration(self, projects: list[str]) -> dict:
        response = self.api.post("/integrations", json={"type": "gitlab", "config": {
            "name": "GitLab platform", "tags": ["prod"], "token": TOKEN, "url": self.fake.url, "projects": projects}})
        assert response.status_code == 201, response.text
        return response.json()

    def tick(self, sensor: str) -> dg.SensorResult:
        with dg.build_sensor_context(instance_ref=self.instance.get_ref(), resources=self.resources,
                                     repository_def=self.repository) as context:
            data = SENSORS[sensor].evaluate_tick(context)
        for request in data.dynamic_partitions_requests or []:
            self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        return data

    def run(self, request: dg.RunRequest) -> None:
        result = dg.materialize([ASSET], partition_key=request.partition_key, instance=self.instance,
                                resources=self.resources, tags=dict(request.tags))
        assert result.success

    def poll(self) -> int:
        """One live-sensor tick and the runs it asks for; how many runs that was."""
        requests = self.tick("gitlab_live_sensor").run_requests or []
        for request in requests:
            self.run(request)
        return len(requests)

    def events(self, integration_id: str) -> dict[str, dict]:
        page = self.api.get("/events", params={"integrationId": integration_id, "limit": 500}).json()
        assert page["nextCursor"] is None
        return {e["externalId"]: e for e in page["events"]}


@pytest.fixture
def e2e(make_backend, tmp_path):
    backend = make_backend("sqlite", api_token=SERVICE_TOKEN)
    register(BackendClient(backend.api_url, SERVICE_TOKEN), ["gitlab"])
    world = GitLabWorld(now=dt.datetime.now(dt.timezone.utc).replace(microsecond=0))
    home = tmp_path / "dagster"
    home.mkdir()
    with FakeGitLab(world, token=TOKEN) as fake, dg.instance_for_test(temp_dir=str(home)) as instance:
        yield World(backend, fake, world, instance)


def at(moment: dt.datetime) -> str:
    """A moment as the events API shows it."""
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def kinds(events: dict[str, dict]) -> Counter:
    return Counter(external_id.split(":")[2] for external_id in events)


def test_every_change_once_with_its_final_status_across_live_polls_and_a_backfill(e2e):
    w = e2e.world
    now = w.now
    api = w.add_project("acme/platform/api", default_branch="main")
    old = api.add_commit(branch="main", committed_date=now - 12 * D, message="twelve days ago")
    first = api.add_commit(branch="main", committed_date=now - 2 * D, message="two days ago")
    mr = api.add_merge_request("feature/cache", "main", created_at=now - D, title="Add cache")
    pipeline = api.add_pipeline(ref="main", sha=first.sha, created_at=now - 3 * H, status="running")
    deployment = api.add_deployment("production", ref="main", sha=first.sha, created_at=now - 2 * H,
                                    status="blocked")
    api.add_release("v1.0.0", created_at=now - D, released_at=now - D)
    integration = e2e.create_integration(["acme/platform/api"])
    pid = api.id

    # The first sync: queued by the integrations sensor, before any live tick.
    [first_sync] = e2e.tick("gitlab_integrations_sensor").run_requests
    e2e.run(first_sync)
    stored = e2e.events(integration["id"])
    assert f"gitlab:{pid}:commit:{first.sha}" in stored
    assert f"gitlab:{pid}:commit:{old.sha}" not in stored  # before the 7-day look-back
    assert stored[f"gitlab:{pid}:commit:{first.sha}"]["timestamp"] == at(now - 2 * D)
    assert f"gitlab:{pid}:mr:{mr.iid}:opened" in stored
    assert f"gitlab:{pid}:release:v1.0.0" in stored
    assert not [k for k in stored if f":pipeline:{pipeline.id}:" in k]  # still running
    assert e2e.poll() == 0  # nothing changed: no run

    # Between polls: the pipeline fails, the MR is merged, a commit dated two days ago is pushed.
    pipeline.set_status("failed", at=now + M)
    mr.merge(at=now + 2 * M)
    late = api.add_commit(branch="main", committed_date=now - 2 * D + H, pushed_at=now + 3 * M, message="late")
    w.advance(5 * M)
    assert e2e.poll() == 1
    stored = e2e.events(integration["id"])
    assert stored[f"gitlab:{pid}:mr:{mr.iid}:merged"]["timestamp"] == at(now + 2 * M)
    assert stored[f"gitlab:{pid}:commit:{late.sha}"]["timestamp"] == at(now - 2 * D + H)
    failed = [e for k, e in stored.items() if f":pipeline:{pipeline.id}:failed" in k]
    assert len(failed) == 1 and failed[0]["timestamp"] == at(now + M)

    # The pipeline is retried in place and succeeds; the blocked deployment is approved.
    pipeline.retry(at=now + 6 * M)
    pipeline.set_status("success", at=now + 8 * M)
    deployment.set_status("success", at=now + 9 * M)
    w.advance(5 * M)
    assert e2e.poll() == 1
    stored = e2e.events(integration["id"])
    outcomes = sorted(k.split(":")[4] for k in stored if f":pipeline:{pipeline.id}:" in k)
    assert outcomes == ["failed", "success"]
    final = [e for k, e in stored.items() if f":deployment:{deployment.id}:success" in k]
    assert len(final) == 1 and final[0]["timestamp"] == at(now + 9 * M)
    assert final[0]["data"]["environment"] == "production"
    assert e2e.poll() == 0  # idle again

    # A backfill of the day twelve days ago, as the UI launches it: one partition.
    day = (now - 12 * D).date()
    e2e.instance.add_dynamic_partitions("gitlab_integrations", [integration["id"]])
    result = dg.materialize([ASSET], partition_key=partition_key(day, integration["id"]), instance=e2e.instance,
                            resources=e2e.resources)
    assert result.success
    stored = e2e.events(integration["id"])
    assert stored[f"gitlab:{pid}:commit:{old.sha}"]["timestamp"] == at(now - 12 * D)
    # Exactly once: one event per commit, MR transition, pipeline outcome, deployment status, release.
    commits = {k.split(":")[3] for k in stored if ":commit:" in k}
    assert commits == {old.sha, first.sha, late.sha, mr.merge_commit_sha}  # the merge made one too
    assert kinds(stored)["mr"] == 2
    record = e2e.api.get(f"/integrations/{integration['id']}/sync").json()
    assert record["lastError"] is None and record["lastStats"]["failedSources"] == {}
    assert TOKEN not in str(record)


def test_an_inaccessible_project_is_reported_and_the_others_still_ingest(e2e):
    w = e2e.world
    visible = w.add_project("acme/platform/api")
    hidden = w.add_project("acme/secret/vault")
    commit = visible.add_commit(committed_date=w.now - H)
    hidden.add_commit(committed_date=w.now - H)
    e2e.fake.deny("acme/secret/vault", status=404)
    integration = e2e.create_integration(["acme/platform/api", "acme/secret/vault"])
    [first_sync] = e2e.tick("gitlab_integrations_sensor").run_requests
    result = dg.materialize([ASSET], partition_key=first_sync.partition_key, instance=e2e.instance,
                            resources=e2e.resources, tags=dict(first_sync.tags))
    assert result.success
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert not checks["sources_accessible"].passed
    assert "acme/secret/vault" in str(checks["sources_accessible"].metadata["failed_sources"].value)
    assert f"gitlab:{visible.id}:commit:{commit.sha}" in e2e.events(integration["id"])
    record = e2e.api.get(f"/integrations/{integration['id']}/sync").json()
    assert "acme/secret/vault" in str(record["lastStats"]["failedSources"])


def test_a_refused_token_fails_the_run_naming_the_integration_and_the_field(e2e):
    e2e.world.add_project("acme/platform/api")
    response = e2e.api.post("/integrations", json={"type": "gitlab", "config": {
        "name": "Wrong token", "tags": [], "token": "not-the-token-1234567890", "url": e2e.fake.url,
        "projects": ["acme/platform/api"]}})
    integration = response.json()
    [first_sync] = e2e.tick("gitlab_integrations_sensor").run_requests
    result = dg.materialize([ASSET], partition_key=first_sync.partition_key, instance=e2e.instance,
                            resources=e2e.resources, tags=dict(first_sync.tags), raise_on_error=False)
    assert not result.success
    error = e2e.api.get(f"/integrations/{integration['id']}/sync").json()["lastError"]
    assert "'Wrong token'" in error and "token" in error.split(":", 1)[1]
    assert "not-the-token-1234567890" not in error
