"""Watch runs of a streaming connector, against an in-memory watcher: the watch sensor keeps
one segment going and hands over without a gap; a segment stores events within a second,
saves each integration's resume state after its events, picks up integrations created while it
runs, and reports a source it cannot watch without stopping the others."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time

import dagster as dg
import pytest

from painchain_pipelines.connectors.backend_client import BackendClient
from painchain_pipelines.connectors.base import ConnectorError, utcnow
from painchain_pipelines.connectors.registration import register
from painchain_pipelines.orchestration import build_connector_defs
from painchain_pipelines.orchestration.resources import PainChainBackend
from painchain_pipelines.orchestration.settings import OrchestrationSettings
from painchain_pipelines.orchestration.tags import (
    MODE_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    WATCH_AFTER_TAG,
    WATCH_TAG,
    WATCH_UNTIL_TAG,
)
from tests.orchestration.memory_connector import METADATA_DIR, Watcher

SERVICE_TOKEN = "pc_service_token_watch_9d8c7b6a5f4e"
PARTITIONS = "memory_integrations"
SEGMENT = dt.timedelta(seconds=3)


class WatchWorld:
    def __init__(self, backend, instance: dg.DagsterInstance):
        self.backend, self.instance = backend, instance
        self.connector = Watcher()
        self.api = backend.client(Authorization=f"Bearer {SERVICE_TOKEN}")
        settings = dataclasses.replace(OrchestrationSettings.from_env(), watch_segment=SEGMENT)
        self.defs = build_connector_defs(self.connector, settings)
        self.asset = self.defs.get_assets_def("memory_events")
        self.sensors = {s.name: s for s in self.defs.sensors}
        self.resources = {"painchain": PainChainBackend(api_url=backend.api_url, api_token=SERVICE_TOKEN)}

    def create_integration(self, source: str) -> dict:
        response = self.api.post("/integrations", json={
            "type": "memory", "config": {"name": f"Watched {source}", "tags": [], "source": source}})
        assert response.status_code == 201, response.text
        self.instance.add_dynamic_partitions(PARTITIONS, [response.json()["id"]])
        return response.json()

    def tick(self):
        with dg.build_sensor_context(instance=self.instance) as context:
            return self.sensors["memory_watch_sensor"].evaluate_tick(context)

    def next_segment(self) -> dg.RunRequest:
        [request] = self.tick().run_requests
        return request

    def skip_reason(self) -> str:
        data = self.tick()
        assert not data.run_requests
        return data.skip_message

    def run(self, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
        return dg.materialize([self.asset], instance=self.instance, resources=self.resources,
                              tags=dict(request.tags), raise_on_error=False)

    def external_ids(self, integration_id: str) -> list[str]:
        page = self.api.get("/events", params={"integrationId": integration_id, "limit": 500}).json()
        return sorted(e["externalId"] for e in page["events"])

    def sync_record(self, integration_id: str) -> dict:
        return self.api.get(f"/integrations/{integration_id}/sync").json()


@pytest.fixture
def world(make_backend, tmp_path, monkeypatch):
    monkeypatch.setattr("painchain_pipelines.orchestration.watch.INTEGRATIONS_REFRESH_S", 0.3)
    backend = make_backend("sqlite", api_token=SERVICE_TOKEN)
    register(BackendClient(backend.api_url, SERVICE_TOKEN), ["memory"], directory=METADATA_DIR)
    home = tmp_path / "dagster"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        yield WatchWorld(backend, instance)


def later(seconds: float, action) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(seconds), action()), daemon=True)
    thread.start()
    return thread


def test_a_watching_connector_gets_the_watch_sensor_and_no_polling():
    defs = build_connector_defs(Watcher())
    assert {s.name for s in defs.sensors} == {"memory_integrations_sensor", "memory_watch_sensor"}
    assert list(defs.schedules) == []


def test_the_sensor_keeps_one_segment_going_and_launches_the_next_just_before_it_ends(world):
    assert "no memory integration to watch" in world.skip_reason()
    a, b = world.create_integration("a"), world.create_integration("b")
    request = world.next_segment()
    assert request.tags[MODE_TAG] == "watch" and request.tags[WATCH_TAG] == "true"
    assert request.tags[RANGE_START_TAG].endswith(a["id"]) and request.tags[RANGE_END_TAG].endswith(b["id"])
    assert WATCH_AFTER_TAG not in request.tags

    def started(until: dt.datetime) -> dg.DagsterRun:
        return world.instance.add_run(dg.DagsterRun(
            job_name="memory_events_job", status=dg.DagsterRunStatus.STARTED,
            tags={WATCH_TAG: "true", WATCH_UNTIL_TAG: until.isoformat(timespec="seconds")}))

    current = started(utcnow() + dt.timedelta(minutes=5))
    assert "watches until" in world.skip_reason()  # no overlap
    world.instance.delete_run(current.run_id)
    ending = started(utcnow() + dt.timedelta(seconds=10))
    successor = world.next_segment()
    assert successor.tags[WATCH_AFTER_TAG] == ending.run_id
    world.instance.add_run(dg.DagsterRun(job_name="memory_events_job", status=dg.DagsterRunStatus.STARTING,
                                         tags=dict(successor.tags)))
    assert "next one is starting" in world.skip_reason()  # never two successors


def test_a_segment_streams_events_saves_states_and_picks_up_new_integrations(world):
    a = world.create_integration("a")
    world.connector.source("a").add(utcnow() - dt.timedelta(minutes=5), "a-old")
    request = world.next_segment()
    later(0.8, lambda: world.connector.source("a").add(utcnow(), "a-live"))
    created = {}
    later(1.0, lambda: created.update(world.create_integration("b")))
    later(1.6, lambda: world.connector.source("b").add(utcnow(), "b-live"))
    started = time.monotonic()
    result = world.run(request)
    assert result.success
    assert SEGMENT.total_seconds() <= time.monotonic() - started < SEGMENT.total_seconds() + 20
    assert world.external_ids(a["id"]) == ["a-live", "a-old"]
    assert world.external_ids(created["id"]) == ["b-live"]
    assert world.sync_record(a["id"])["state"] == {"seen": 2}
    materialized = {m.partition.split("|")[1]: m for m in result.asset_materializations_for_node("memory_events")}
    assert set(materialized) == {a["id"], created["id"]}
    metadata = materialized[a["id"]].metadata
    assert metadata["mode"].value == "watch" and metadata["events_created"].value == 2
    assert metadata["memory_watch_reads"].value >= 1
    assert 0 <= metadata["lag_p50_seconds"].value < 2.0  # "a-live" stored within a second
    run = world.instance.get_run_by_id(result.run_id)
    assert WATCH_UNTIL_TAG in run.tags

    # The next segment resumes from the saved state: nothing is posted again.
    again = world.run(world.next_segment())
    assert again.success
    [m] = [m for m in again.asset_materializations_for_node("memory_events") if m.partition.endswith(a["id"])]
    assert m.metadata["events_posted"].value == 0


def test_a_source_that_cannot_be_watched_is_reported_and_the_others_go_on(world):
    good, bad = world.create_integration("good"), world.create_integration("bad")
    world.connector.source("bad").fail_with = ConnectorError("cluster refused the token")
    later(0.5, lambda: world.connector.source("good").add(utcnow(), "good-1"))
    result = world.run(world.next_segment())
    assert result.success
    assert world.external_ids(good["id"]) == ["good-1"]
    assert "refused the token" in world.sync_record(bad["id"])["lastError"]
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert not checks["sources_accessible"].passed
    partitions = {m.partition.split("|")[1] for m in result.asset_materializations_for_node("memory_events")}
    assert partitions == {good["id"]}


def test_the_next_segment_waits_for_the_one_it_takes_over_from(world):
    world.create_integration("a")
    ending = world.instance.add_run(dg.DagsterRun(
        job_name="memory_events_job", status=dg.DagsterRunStatus.STARTED,
        tags={WATCH_TAG: "true", WATCH_UNTIL_TAG: (utcnow() + dt.timedelta(seconds=1)).isoformat()}))
    successor = world.next_segment()
    later(1.5, lambda: world.instance.report_run_canceled(ending))
    started = time.monotonic()
    result = world.run(successor)
    assert result.success
    assert time.monotonic() - started >= 1.4 + SEGMENT.total_seconds()
