"""Every branch of every sensor and of the schedule, evaluated as the daemon does
(`evaluate_tick`: Dagster's own checks of the result run too) against a real instance, the real
backend and the fake GitHub. None of them may end in an error."""

import datetime as dt
import http.server
import json
import socket
import threading

import dagster as dg
import pytest

from painchain_pipelines.backend.models import Integration
from painchain_pipelines.connectors.backend_client import BackendClient
from painchain_pipelines.connectors.registration import load_metadata, register
from painchain_pipelines.orchestration.resources import PainChainBackend
from painchain_pipelines.orchestration.sensors.integrations import metadata_digest
from painchain_pipelines.orchestration.tags import (
    BATCH_TAG,
    INTEGRATION_NAME_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
)
from tests.orchestration.conftest import GITHUB_TOKEN, SERVICE_TOKEN
from tests.orchestration.github_defs import (
    github_daily_reconcile_schedule,
    github_deferred_retry_sensor,
    github_events,
    github_integrations_sensor,
    github_live_sensor,
    product_definitions,
)

H = dt.timedelta(hours=1)
REPOSITORY = product_definitions().get_repository_def()
PARTITIONS = "github_integrations"


def evaluate(sensor, world, cursor=None, resources=None):
    """One tick as the daemon runs it; the partition requests are applied like the daemon does."""

    # With an instance ref, as in the daemon: partitioned run requests are then validated too.
    # Entered, so that the instance it opens from the ref is closed here: left to the garbage
    # collector, it would leave Dagster's current state storage pointing at a dead instance.
    with dg.build_sensor_context(instance_ref=world.instance.get_ref(), resources=resources or world.resources,
                                 cursor=cursor, repository_def=REPOSITORY) as context:
        data = sensor.evaluate_tick(context)
    for request in data.dynamic_partitions_requests or []:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            world.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        else:
            for key in request.partition_keys:
                world.instance.delete_dynamic_partition(request.partitions_def_name, key)
    return data


def status_of(world, integration_id: str) -> dict:
    return next(s for s in world.api.get("/integrations/status").json() if s["id"] == integration_id)


def resources_for(url: str, token: str | None = SERVICE_TOKEN) -> dict:
    return {"painchain": PainChainBackend(api_url=url, api_token=token)}


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/api"


class FailingBackend:
    """Answers every request with one status (a backend behind a broken proxy, a failing database)."""

    def __init__(self, status: int):
        outer = self
        self.requests = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                outer.requests += 1
                self.rfile.read(int(self.headers.get("content-length") or 0))
                body = b'{"detail": "database unavailable"}'
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = _answer

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------- integrations sensor


def test_first_tick_ever_with_integrations_already_there_registers_adds_and_queues(world):
    """The bug users hit: registration and new integrations in the same (first) tick."""
    world.fake.add_repo("octo/app").add_commit(message="recent", authored_at=world.fake.now() - 2 * H)
    first = world.create_integration(["octo/app"])
    second = world.create_integration(["octo/app"], tenant="acme")
    data = evaluate(github_integrations_sensor, world)
    assert data.skip_message is None
    assert sorted(r.partition_key.keys_by_dimension["integration"] for r in data.run_requests) == sorted(
        [first["id"], second["id"]])
    assert {r.tags[INTEGRATION_NAME_TAG] for r in data.run_requests} == {"GitHub octo/app"}
    assert json.loads(data.cursor)["metadata"] == metadata_digest("github")
    assert set(world.instance.get_dynamic_partitions(PARTITIONS)) == {first["id"], second["id"]}
    status = status_of(world, first["id"])
    assert status["orchestrator"]["running"] is True and status["orchestrator"]["problem"] is None
    assert status["firstSyncQueuedAt"] is not None
    assert all(world.execute(r).success for r in data.run_requests)
    # the next tick: nothing to do, said so, cursor kept
    again = evaluate(github_integrations_sensor, world, cursor=data.cursor)
    assert again.run_requests == [] and again.skip_message == "2 integrations, none added or removed"
    assert again.cursor == data.cursor


def test_first_tick_on_a_backend_where_the_type_is_not_registered_yet(make_backend, world):
    bare = make_backend("sqlite", api_token=SERVICE_TOKEN)
    resources = resources_for(bare.api_url)
    data = evaluate(github_integrations_sensor, world, resources=resources)
    assert data.skip_message == "0 integrations, none added or removed"
    assert bare.client(Authorization=f"Bearer {SERVICE_TOKEN}").get("/integrations/types/github").status_code == 200
    assert json.loads(data.cursor)["metadata"] == metadata_digest("github")


def test_a_cursor_of_the_previous_version_is_read_and_replaced(world):
    world.fake.add_repo("octo/app")
    integration = world.create_integration(["octo/app"])
    data = evaluate(github_integrations_sensor, world, cursor=metadata_digest("github"))  # a bare digest
    assert [r.partition_key.keys_by_dimension["integration"] for r in data.run_requests] == [integration["id"]]
    assert json.loads(data.cursor)["metadata"] == metadata_digest("github")


def test_metadata_change_with_integrations_added_and_removed_in_the_same_tick(world, monkeypatch):
    world.fake.add_repo("octo/a")
    world.fake.add_repo("octo/b")
    kept = world.create_integration(["octo/a"])
    leaving = world.create_integration(["octo/b"])
    cursor = evaluate(github_integrations_sensor, world).cursor
    world.api.delete(f"/integrations/{leaving['id']}")
    arriving = world.create_integration(["octo/b"])
    upgraded = {**load_metadata("github"), "description": "Upgraded connector"}
    monkeypatch.setattr("painchain_pipelines.orchestration.sensors.integrations.load_metadata", lambda _id, _directory: upgraded)
    monkeypatch.setattr("painchain_pipelines.connectors.registration.load_metadata", lambda _id, _directory: upgraded)
    data = evaluate(github_integrations_sensor, world, cursor=cursor)
    assert world.api.get("/integrations/types/github").json()["description"] == "Upgraded connector"
    assert [r.partition_key.keys_by_dimension["integration"] for r in data.run_requests] == [arriving["id"]]
    assert set(world.instance.get_dynamic_partitions(PARTITIONS)) == {kept["id"], arriving["id"]}
    assert json.loads(data.cursor)["metadata"] != json.loads(cursor)["metadata"]


def test_registration_refused_is_the_skip_reason_and_shown_on_the_cards(world, monkeypatch):
    world.fake.add_repo("octo/app")
    integration = world.create_integration(["octo/app"])
    broken = {**load_metadata("github"), "color": "not-a-colour"}
    with monkeypatch.context() as patch:
        patch.setattr("painchain_pipelines.orchestration.sensors.integrations.load_metadata", lambda _id, _directory: broken)
        patch.setattr("painchain_pipelines.connectors.registration.load_metadata", lambda _id, _directory: broken)
        data = evaluate(github_integrations_sensor, world)
    assert data.run_requests == [] and world.instance.get_dynamic_partitions(PARTITIONS) == []
    assert "registering connector type 'github' failed" in data.skip_message and "color" in data.skip_message
    assert json.loads(data.cursor or "{}").get("metadata") is None  # registration is tried again
    problem = status_of(world, integration["id"])["orchestrator"]["problem"]
    assert "registering connector type 'github' failed" in problem
    recovered = evaluate(github_integrations_sensor, world, cursor=data.cursor)
    assert [r.partition_key.keys_by_dimension["integration"] for r in recovered.run_requests] == [integration["id"]]
    assert status_of(world, integration["id"])["orchestrator"]["problem"] is None


@pytest.mark.parametrize("sensor", [github_integrations_sensor, github_live_sensor], ids=["integrations", "live"])
def test_backend_down_is_a_skip_with_the_reason_and_the_cursor_kept(world, sensor):
    cursor = json.dumps({"metadata": metadata_digest("github"), "offset": 3, "held": {}}, sort_keys=True)
    data = evaluate(sensor, world, cursor=cursor, resources=resources_for(dead_url()))
    assert data.run_requests == [] and "the backend does not answer" in data.skip_message
    assert data.cursor == cursor
    # and on the very first tick, when registration is what fails
    first = evaluate(github_integrations_sensor, world, resources=resources_for(dead_url()))
    assert "registering connector type 'github' failed" in first.skip_message


@pytest.mark.parametrize("sensor", [github_integrations_sensor, github_live_sensor], ids=["integrations", "live"])
def test_backend_answering_5xx_is_a_skip_with_the_reason(world, sensor):
    failing = FailingBackend(503)
    try:
        cursor = json.dumps({"metadata": metadata_digest("github")})
        data = evaluate(sensor, world, cursor=cursor, resources=resources_for(failing.url))
    finally:
        failing.close()
    assert data.run_requests == [] and "the backend does not answer" in data.skip_message
    assert "503" in data.skip_message and failing.requests >= 1


@pytest.mark.parametrize("sensor", [github_integrations_sensor, github_live_sensor], ids=["integrations", "live"])
def test_backend_refusing_the_token_says_which_setting_is_wrong(world, sensor):
    cursor = json.dumps({"metadata": metadata_digest("github")})
    data = evaluate(sensor, world, cursor=cursor, resources=resources_for(world.backend.api_url, "wrong-token"))
    assert data.run_requests == [] and "401" in data.skip_message and "PAINCHAIN_API_TOKEN" in data.skip_message
    assert "wrong-token" not in data.skip_message


def test_hundreds_of_new_integrations_become_one_batch_run_that_syncs_each(world):
    world.fake.add_repo("octo/app").add_commit(message="recent", authored_at=world.fake.now() - 2 * H)
    created = [world.create_integration(["octo/app"]) for _ in range(120)]
    data = evaluate(github_integrations_sensor, world)
    [batch] = data.run_requests
    assert batch.tags[BATCH_TAG] == "true"
    keys = github_events.partitions_def.get_partition_keys_in_range(
        dg.PartitionKeyRange(batch.tags[RANGE_START_TAG], batch.tags[RANGE_END_TAG]),
        dynamic_partitions_store=world.instance)
    assert {k.split("|")[1] for k in keys} == {i["id"] for i in created}
    assert status_of(world, created[-1]["id"])["firstSyncQueuedAt"] is not None
    assert world.execute(batch).success
    assert all(len(world.events(i["id"])) == 1 for i in created)


def test_an_integration_id_that_cannot_be_a_partition_key_is_reported_once(world, capfd):
    world.fake.add_repo("octo/app")
    good = world.create_integration(["octo/app"])
    with world.backend.app_db().write() as session:
        session.add(Integration(id="legacy|id,with[chars]", tenant_id=None, type="github", name="Imported",
                                config={"name": "Imported", "tags": [], "repositories": ["octo/app"]}))
    data = evaluate(github_integrations_sensor, world)
    assert [r.partition_key.keys_by_dimension["integration"] for r in data.run_requests] == [good["id"]]
    assert world.instance.get_dynamic_partitions(PARTITIONS) == [good["id"]]
    assert "'Imported' (legacy|id,with[chars]) cannot be synced" in capfd.readouterr().err
    card = status_of(world, "legacy|id,with[chars]")
    assert "cannot be synced" in card["lastError"]
    first_error_at = card["lastErrorAt"]
    again = evaluate(github_integrations_sensor, world, cursor=data.cursor)
    assert again.skip_message == "1 integrations, none added or removed"
    assert status_of(world, "legacy|id,with[chars]")["lastErrorAt"] == first_error_at  # not re-reported


def test_a_partition_is_removed_only_when_the_backend_confirms_the_deletion(world):
    world.fake.add_repo("octo/app")
    kept = world.create_integration(["octo/app"])
    cursor = evaluate(github_integrations_sensor, world).cursor
    # an integration the list no longer shows but that still exists (here: moved to another type)
    other_type = "other-" + kept["id"][-8:]
    world.api.post("/integrations/types/register", json={"id": other_type, "displayName": "Other",
                                                         "configSchema": {"fields": []}})
    with world.backend.app_db().write() as session:
        session.get(Integration, kept["id"]).type = other_type
    world.instance.add_dynamic_partitions(PARTITIONS, ["deleted-long-ago-0000"])
    data = evaluate(github_integrations_sensor, world, cursor=cursor)
    assert set(world.instance.get_dynamic_partitions(PARTITIONS)) == {kept["id"]}
    assert data.run_requests == []


# ---------------------------------------------------------------------------- live sensor


def test_live_sensor_reports_quiet_integrations_as_checked(world):
    world.fake.add_repo("octo/app").add_commit(message="x", authored_at=world.fake.now() - H)
    integration = world.create_integration(["octo/app"])
    world.add_partition(integration["id"])
    assert world.materialize(integration["id"], live=True).success
    synced = status_of(world, integration["id"])
    data = evaluate(github_live_sensor, world)
    assert data.run_requests == [] and "1/1 checked, 0 live syncs requested" in data.skip_message
    checked = status_of(world, integration["id"])
    assert checked["lastCheckedAt"] > synced["lastCheckedAt"] and checked["lastSuccessAt"] == synced["lastSuccessAt"]


def test_live_sensor_survives_an_unexpected_error_of_one_integration(world, monkeypatch, capfd):
    from painchain_pipelines.connectors.github import GitHubConnector

    integrations = []
    for name in ("octo/a", "octo/b"):
        world.fake.add_repo(name).add_commit(message="x", authored_at=world.fake.now() - H)
        integrations.append(world.create_integration([name]))
        world.add_partition(integrations[-1]["id"])
    broken = integrations[0]["id"]
    real = GitHubConnector.detect_changes

    def detect(self, integration, state):
        if integration.id == broken:
            raise KeyError("full_name")  # e.g. an answer of a shape nobody expected
        return real(self, integration, state)

    monkeypatch.setattr(GitHubConnector, "detect_changes", detect)
    data = evaluate(github_live_sensor, world, cursor="not json at all")
    assert [r.partition_key.keys_by_dimension["integration"] for r in data.run_requests] == [integrations[1]["id"]]
    assert f"({broken}): change check failed unexpectedly" in capfd.readouterr().err


def test_live_sensor_skips_while_a_batch_runs(world):
    world.instance.add_run(dg.DagsterRun(job_name="github_events_job", status=dg.DagsterRunStatus.STARTED,
                                         tags={BATCH_TAG: "true"}))
    data = evaluate(github_live_sensor, world)
    assert data.run_requests == [] and "a live sync of every integration is running" in data.skip_message


# ---------------------------------------------------------------------------- retries and schedule


def test_deferred_retry_sensor_with_a_mangled_retry_time_relaunches_now(world):
    run = world.instance.add_run(dg.DagsterRun(job_name="github_events_job", status=dg.DagsterRunStatus.FAILURE,
                                               tags={"painchain/deferred": "pending", "painchain/connector": "github",
                                                     "painchain/retry_at": "soon", "dagster/partition": "2026-12-01|x"}))
    world.add_partition("x")
    [request] = evaluate(github_deferred_retry_sensor, world).run_requests
    assert request.tags["painchain/deferred_from"] == run.run_id
    assert evaluate(github_deferred_retry_sensor, world).skip_message == "no run is waiting for a rate limit"


def test_reconcile_schedule_with_no_integrations_and_with_one(world):
    moment = dt.datetime(2026, 11, 25, 3, 15, tzinfo=dt.timezone.utc)
    empty = github_daily_reconcile_schedule.evaluate_tick(
        dg.build_schedule_context(instance=world.instance, scheduled_execution_time=moment))
    assert empty.skip_message == "no integration is due at 03h"


def test_registration_happens_once_per_metadata_version(world, monkeypatch):
    calls = []
    real = register
    monkeypatch.setattr("painchain_pipelines.orchestration.sensors.integrations.register",
                        lambda *a, **k: (calls.append(a[1]), real(*a, **k)))
    cursor = evaluate(github_integrations_sensor, world).cursor
    evaluate(github_integrations_sensor, world, cursor=cursor)
    assert calls == [["github"]]
    assert BackendClient(world.backend.api_url, SERVICE_TOKEN).list_integrations("github") == []
    assert GITHUB_TOKEN not in cursor
