"""The orchestration framework against an in-memory connector: what gets wired follows the
connector's capabilities, and deferral, batch live runs, failure isolation and busy
integrations behave the same whatever the source is."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt

import dagster as dg
import pytest

from painchain_pipelines.connectors.backend_client import BackendClient
from painchain_pipelines.connectors.base import AuthError, RateLimited, utcnow
from painchain_pipelines.connectors.registration import register
from painchain_pipelines.orchestration import build_connector_defs
from painchain_pipelines.orchestration.partitions import partition_key
from painchain_pipelines.orchestration.resources import PainChainBackend
from painchain_pipelines.orchestration.settings import OrchestrationSettings
from painchain_pipelines.orchestration.tags import (
    BATCH_TAG,
    DEFERRAL_TAG,
    DEFERRED_TAG,
    INTEGRATION_TAG,
    MODE_TAG,
    RETRY_AT_TAG,
)
from tests.orchestration.memory_connector import (
    METADATA_DIR,
    LiveOnly,
    MemoryConnector,
    NothingToOrchestrate,
    WindowsOnly,
)

SERVICE_TOKEN = "pc_service_token_memory_3c2b1a0f9e8d"
PARTITIONS = "memory_integrations"
H = dt.timedelta(hours=1)


class MemoryWorld:
    def __init__(self, backend, instance: dg.DagsterInstance, connector):
        self.backend, self.instance, self.connector = backend, instance, connector
        self.api = backend.client(Authorization=f"Bearer {SERVICE_TOKEN}")
        settings = dataclasses.replace(OrchestrationSettings.from_env(), batch_threshold=2, retry_delay=1)
        self.defs = build_connector_defs(connector, settings)
        self.asset = self.defs.get_assets_def("memory_events")
        self.sensors = {s.name.removeprefix("memory_"): s for s in self.defs.sensors}
        self.resources = {"painchain": PainChainBackend(api_url=backend.api_url, api_token=SERVICE_TOKEN)}
        self.repository = dg.Definitions.merge(self.defs, dg.Definitions(resources=self.resources)).get_repository_def()

    def create_integration(self, source: str) -> dict:
        response = self.api.post("/integrations", json={
            "type": "memory", "config": {"name": f"Memory {source}", "tags": [], "source": source}})
        assert response.status_code == 201, response.text
        return response.json()

    def evaluate(self, sensor_name: str, cursor: str | None = None):
        with dg.build_sensor_context(instance_ref=self.instance.get_ref(), resources=self.resources,
                                     cursor=cursor, repository_def=self.repository) as context:
            data = self.sensors[sensor_name].evaluate_tick(context)
        for request in data.dynamic_partitions_requests or []:
            self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        return data

    def execute(self, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
        return dg.materialize([self.asset], partition_key=request.partition_key, instance=self.instance,
                              resources=self.resources, tags=dict(request.tags), raise_on_error=False)

    def materialize(self, integration_id: str, day: dt.date, tags: dict | None = None) -> dg.ExecuteInProcessResult:
        return dg.materialize([self.asset], partition_key=partition_key(day, integration_id), instance=self.instance,
                              resources=self.resources, tags=tags or {}, raise_on_error=False)

    def external_ids(self, integration_id: str) -> list[str]:
        page = self.api.get("/events", params={"integrationId": integration_id, "limit": 500}).json()
        return sorted(e["externalId"] for e in page["events"])

    def sync_record(self, integration_id: str) -> dict:
        return self.api.get(f"/integrations/{integration_id}/sync").json()

    def materialized(self, integration_id: str) -> set[str]:
        keys = self.instance.get_materialized_partitions(self.asset.key)
        return {k for k in keys if k.endswith("|" + integration_id)}


@pytest.fixture
def make_world(make_backend, tmp_path):
    def make(connector=None) -> MemoryWorld:
        backend = make_backend("sqlite", api_token=SERVICE_TOKEN)
        register(BackendClient(backend.api_url, SERVICE_TOKEN), ["memory"], directory=METADATA_DIR)
        home = tmp_path / f"dagster{len(worlds)}"
        home.mkdir()
        instance = stack.enter_context(dg.instance_for_test(temp_dir=str(home)))
        worlds.append(MemoryWorld(backend, instance, connector or MemoryConnector()))
        return worlds[-1]

    worlds: list[MemoryWorld] = []
    with contextlib.ExitStack() as stack:
        yield make


def names(defs: dg.Definitions) -> tuple[set[str], set[str]]:
    return {s.name for s in defs.sensors}, {s.name for s in defs.schedules}


def test_what_gets_wired_follows_what_the_connector_can_do():
    assert names(build_connector_defs(MemoryConnector())) == (
        {"memory_integrations_sensor", "memory_live_sensor", "memory_deferred_retry_sensor"},
        {"memory_daily_reconcile_schedule"})
    assert names(build_connector_defs(LiveOnly())) == ({"memory_integrations_sensor", "memory_live_sensor"}, set())
    assert names(build_connector_defs(WindowsOnly())) == (
        {"memory_integrations_sensor", "memory_deferred_retry_sensor"}, {"memory_daily_reconcile_schedule"})
    with pytest.raises(TypeError, match="none of SyncsLive, SyncsWindows and Watches"):
        build_connector_defs(NothingToOrchestrate())
    defs = build_connector_defs(MemoryConnector())
    assert [a.key.to_user_string() for a in defs.assets] == ["memory_events"]
    assert [j.name for j in defs.jobs] == ["memory_events_job"]


def test_first_sync_then_the_probe_keeps_idle_integrations_quiet(make_world):
    world = make_world()
    source = world.connector.source("a")
    now = utcnow()
    for n in range(3):
        source.add(now - (n + 1) * H, f"a-{n}")
    integration = world.create_integration("a")

    [first] = world.evaluate("integrations_sensor").run_requests
    assert world.execute(first).success
    assert world.external_ids(integration["id"]) == ["a-0", "a-1", "a-2"]
    record = world.sync_record(integration["id"])
    assert record["state"]["until"] and record["lastStats"]["counters"] == {"memory_reads": 1}

    quiet = world.evaluate("live_sensor")
    assert quiet.run_requests == [] and "0 live syncs requested" in quiet.skip_message
    source.add(utcnow(), "a-new")
    [live] = world.evaluate("live_sensor").run_requests
    assert live.tags[MODE_TAG] == "live" and live.tags["painchain/trigger"] == "1 new items"
    result = world.execute(live)
    assert result.success
    [materialization] = result.asset_materializations_for_node("memory_events")
    assert materialization.metadata["memory_reads"].value == 1
    assert materialization.metadata["events_created"].value == 1
    assert world.external_ids(integration["id"]) == ["a-0", "a-1", "a-2", "a-new"]


def test_a_long_rate_limit_defers_the_window_run_and_the_retry_sensor_relaunches_it(make_world):
    world = make_world()
    source = world.connector.source("slow")
    yesterday = utcnow().date() - dt.timedelta(days=1)
    source.add(dt.datetime.combine(yesterday, dt.time(12), dt.timezone.utc), "slow-1")
    integration = world.create_integration("slow")
    world.instance.add_dynamic_partitions(PARTITIONS, [integration["id"]])

    source.fail_with = RateLimited("quota exhausted", retry_after=3600)
    failed = world.materialize(integration["id"], yesterday)
    assert not failed.success
    run = world.instance.get_run_by_id(failed.run_id)
    assert run.tags[DEFERRED_TAG] == "pending"
    resume_at = dt.datetime.fromisoformat(run.tags[RETRY_AT_TAG])
    assert dt.timedelta(minutes=59) < resume_at - utcnow() < dt.timedelta(minutes=62)
    [failure] = failed.get_step_failure_events()
    assert "the same partitions are launched again then" in failure.step_failure_data.error.message
    assert "quota exhausted" in world.sync_record(integration["id"])["lastError"]

    waiting = world.evaluate("deferred_retry_sensor")
    assert waiting.run_requests == [] and "1 run(s) waiting" in waiting.skip_message
    world.instance.add_run_tags(run.run_id, {RETRY_AT_TAG: (utcnow() - H).isoformat()})  # the hour passed
    source.fail_with = None
    [again] = world.evaluate("deferred_retry_sensor").run_requests
    assert again.partition_key == str(partition_key(yesterday, integration["id"]))
    assert again.tags[DEFERRAL_TAG] == "1"
    assert world.instance.get_run_by_id(run.run_id).tags[DEFERRED_TAG] == "relaunched"
    assert world.execute(again).success
    assert world.external_ids(integration["id"]) == ["slow-1"]


def test_a_batch_live_run_goes_past_a_failing_integration_and_leaves_it_unmaterialized(make_world):
    world = make_world()
    integrations = []
    for n in range(4):
        world.connector.source(f"s{n}").add(utcnow() - H, f"s{n}-event")
        integrations.append(world.create_integration(f"s{n}"))
    [batch] = world.evaluate("integrations_sensor").run_requests  # 4 new > threshold 2
    assert batch.tags[BATCH_TAG] == "true"
    world.connector.source("s2").fail_with = AuthError("the source refused the token")

    result = world.execute(batch)
    assert result.success
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert not checks["integrations_synced"].passed
    assert set(checks["integrations_synced"].metadata["integrations_failed"].value) == {integrations[2]["id"]}
    for n, integration in enumerate(integrations):
        synced = world.external_ids(integration["id"]) == [f"s{n}-event"]
        assert synced == (n != 2)
        assert bool(world.materialized(integration["id"])) == (n != 2)
    assert "refused the token" in world.sync_record(integrations[2]["id"])["lastError"]


def test_the_live_sensor_leaves_integrations_with_a_run_of_their_own_alone(make_world):
    world = make_world()
    busy, free = (world.create_integration(name) for name in ("busy", "free"))
    world.instance.add_dynamic_partitions(PARTITIONS, [busy["id"], free["id"]])
    world.instance.add_run(dg.DagsterRun(job_name="memory_events_job", status=dg.DagsterRunStatus.STARTED,
                                         tags={INTEGRATION_TAG: busy["id"]}))
    data = world.evaluate("live_sensor")
    assert [r.partition_key.keys_by_dimension["integration"] for r in data.run_requests] == [free["id"]]
    assert world.connector.source("busy").probes == 0


def test_a_live_only_connector_brings_a_backfilled_day_up_to_date_with_a_live_sync(make_world):
    world = make_world(LiveOnly())
    world.connector.source("k").add(utcnow() - H, "k-1")
    integration = world.create_integration("k")
    world.instance.add_dynamic_partitions(PARTITIONS, [integration["id"]])
    # No change probe: every tick asks for a live sync, and the sync itself finds out.
    [request] = world.evaluate("live_sensor").run_requests
    assert request.tags["painchain/trigger"] == "poll"
    result = world.materialize(integration["id"], utcnow().date() - dt.timedelta(days=3))
    assert result.success
    assert world.external_ids(integration["id"]) == ["k-1"]
    assert world.sync_record(integration["id"])["state"]["until"]
