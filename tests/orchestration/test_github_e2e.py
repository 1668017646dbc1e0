"""GitHub ingestion end to end: sensors, live syncs, backfills, retries, restarts, secrets."""

import datetime as dt
import json
import os
import subprocess
import sys
import time

import dagster as dg
import requests
import requests.adapters

from painchain_pipelines.orchestration.schedules import reconcile_hour
from painchain_pipelines.orchestration.tags import MODE_TAG, TRIGGER_TAG
from tests.orchestration.conftest import GITHUB_TOKEN, SERVICE_TOKEN
from tests.orchestration.github_defs import (
    github_daily_reconcile_schedule,
    github_deferred_retry_sensor,
    github_events,
    github_events_job,
    github_integrations_sensor,
    github_live_sensor,
)

H = dt.timedelta(hours=1)


def apply_partition_requests(result: dg.SensorResult, instance: dg.DagsterInstance) -> None:
    for request in result.dynamic_partitions_requests or []:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)


def tick(sensor, world, cursor=None):
    context = dg.build_sensor_context(instance=world.instance, resources=world.resources, cursor=cursor)
    result = sensor(context)
    if isinstance(result, dg.SensorResult):
        apply_partition_requests(result, world.instance)
        return result, result.cursor
    return result, context.cursor


def test_new_integration_gets_its_recent_history_then_live_changes(world):
    repo = world.fake.add_repo("octo/app")
    now = world.fake.now()
    old = repo.add_commit(message="ten days ago", authored_at=now - dt.timedelta(days=10))
    recent = repo.add_commit(message="three days ago", authored_at=now - dt.timedelta(days=3))
    integration = world.create_integration(["octo/app"])

    result, _ = tick(github_integrations_sensor, world)
    assert world.instance.get_dynamic_partitions("github_integrations") == [integration["id"]]
    [request] = result.run_requests
    assert request.tags[MODE_TAG] == "live" and request.tags[TRIGGER_TAG] == "new-integration"
    assert request.partition_key.keys_by_dimension["integration"] == integration["id"]
    run = world.execute(request)
    assert run.success
    stored = world.events(integration["id"])
    assert set(stored) == {f"github:octo/app:commit:{recent}"}  # 7-day look-back, not 10
    assert f"github:octo/app:commit:{old}" not in stored

    materialization = run.asset_materializations_for_node("github_events")[0]
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    assert metadata["events_created"] == 1 and metadata["events_invalid"] == 0
    assert metadata["mode"] == "live" and metadata["sources"] == ["octo/app"]
    assert metadata["api_requests"] >= 6 and "rate_limit_remaining" in metadata
    checks = {c.check_name: c.passed for c in run.get_asset_check_evaluations()}
    assert checks == {"events_stored_cleanly": True, "sources_accessible": True, "integrations_synced": True}
    assert world.sync_record(integration["id"])["lastSuccessAt"] is not None
    # The first sync read a week: today and every day it covered completely show as materialized
    # (the oldest day is covered only from the look-back's start, so it is not claimed).
    today = world.fake.now().date()
    week = {f"{today - dt.timedelta(days=n)}|{integration['id']}" for n in range(7)}
    assert set(world.instance.get_materialized_partitions(dg.AssetKey("github_events"))) == week
    assert {m.partition for m in run.asset_materializations_for_node("github_events")} == week

    # Nothing changed: the live sensor asks GitHub (304s) and starts no run.
    world.fake.reset_requests()
    result, cursor = tick(github_live_sensor, world)
    assert result.run_requests == []
    assert [r for r in world.fake.requests if r.counted] == []

    pr = repo.open_pull("Add feature")
    result, cursor = tick(github_live_sensor, world, cursor)
    [live] = result.run_requests
    assert live.tags[MODE_TAG] == "live" and "pulls" in live.tags[TRIGGER_TAG]
    assert world.execute(live).success
    assert f"github:octo/app:pr:{pr}:opened" in world.events(integration["id"])

    # Re-running today's window finds the same changes: counted as duplicates, not errors.
    today = world.fake.now().date()
    rerun = world.materialize(integration["id"], today)
    metadata = {k: v.value for k, v in rerun.asset_materializations_for_node("github_events")[0].metadata.items()}
    assert metadata["mode"] == "window" and str(today) in metadata["window"]
    assert metadata["events_created"] == 0 and metadata["events_duplicate"] == metadata["events_posted"] >= 1
    assert metadata["duration_seconds"] > 0 and metadata["api_not_modified_304"] >= 0
    assert len(world.events(integration["id"])) == 2


def test_multi_day_backfill_range_from_the_cli(world):
    repo = world.fake.add_repo("octo/app")
    today = world.fake.now().date()
    days = [today - dt.timedelta(days=n) for n in (5, 4, 3)]
    shas = [repo.add_commit(message=f"on {d}", authored_at=dt.datetime.combine(d, dt.time(12), dt.timezone.utc))
            for d in days]
    outside = repo.add_commit(message="outside", authored_at=dt.datetime.combine(
        today - dt.timedelta(days=2), dt.time(12), dt.timezone.utc))
    integration = world.create_integration(["octo/app"])
    world.add_partition(integration["id"])
    env = {**os.environ, "DAGSTER_HOME": str(world.instance_dir), "BACKEND_API_URL": world.backend.api_url,
           "PAINCHAIN_API_TOKEN": SERVICE_TOKEN}
    partition_range = f"{days[0]}|{integration['id']}...{days[-1]}|{integration['id']}"
    out = subprocess.run(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "painchain_pipelines.definitions",
         "--select", "github_events", "--partition-range", partition_range],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert set(world.events(integration["id"])) == {f"github:octo/app:commit:{s}" for s in shas}
    assert outside not in "".join(world.events(integration["id"]))
    # one run for the whole range, and each day's partition is materialized
    materialized = world.instance.get_materialized_partitions(dg.AssetKey("github_events"))
    assert {f"{d}|{integration['id']}" for d in days} <= set(materialized)
    runs = world.instance.get_runs()
    assert len(runs) == 1


def test_every_event_once_with_final_status_after_reruns_restarts_and_retries(world, make_backend):
    repo = world.fake.add_repo("octo/app")
    now = world.fake.now()
    sha = repo.add_commit(message="deploy me", authored_at=now - 2 * H)
    run_id = repo.add_workflow_run(name="CI", head_sha=sha, created_at=now - H, status="in_progress")
    deployment = repo.add_deployment("production", sha=sha, created_at=now - H)
    repo.add_deployment_status(deployment, "in_progress", at=now - H)
    integration = world.create_integration(["octo/app"])
    world.add_partition(integration["id"])

    assert world.materialize(integration["id"], live=True).success
    first = world.events(integration["id"])
    assert not any(":run:" in k or ":status:" in k for k in first)

    # GitHub fails twice with 502 on the runs list, then recovers: retried, nothing lost.
    repo.complete_run(run_id, "success")
    repo.add_deployment_status(deployment, "success")
    world.fake.fail_next(6, status=502, path_contains="/actions/runs")
    result = world.materialize(integration["id"], live=True)
    assert result.success
    retried = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert retried, "expected the run to be retried after the 502s"
    # A re-run of the same partition and a window sync of today change nothing.
    assert world.materialize(integration["id"], live=True).success
    assert world.materialize(integration["id"]).success
    stored = world.events(integration["id"])
    finals = {k: v for k, v in stored.items() if ":run:" in k or ":status:" in k}
    assert {v["data"].get("conclusion") or v["data"]["state"] for v in finals.values()} == {"success"}
    assert len(finals) == 2

    # Restart the backend on the same database: state and events survive, still exactly once.
    world.backend.stop()
    world.backend.start(port=world.backend.port)
    late = repo.add_commit(message="after restart", authored_at=now - 3 * H)
    assert world.materialize(integration["id"], live=True).success
    after = world.events(integration["id"])
    assert set(after) == set(stored) | {f"github:octo/app:commit:{late}"}
    commit = after[f"github:octo/app:commit:{late}"]
    assert commit["timestamp"].startswith((now - 3 * H).strftime("%Y-%m-%dT%H:%M"))


def test_inaccessible_repository_is_reported_and_others_ingest(world):
    world.fake.add_repo("octo/ok").add_commit(message="fine", authored_at=world.fake.now() - H)
    world.fake.add_repo("octo/gone")
    world.fake.set_repo_error("octo/gone", 404)
    integration = world.create_integration(["octo/ok", "octo/gone"])
    world.add_partition(integration["id"])
    run = world.materialize(integration["id"], live=True)
    assert run.success
    assert len(world.events(integration["id"])) == 1
    metadata = run.asset_materializations_for_node("github_events")[0].metadata
    assert "octo/gone" in metadata["failed_sources"].value
    checks = {c.check_name: c for c in run.get_asset_check_evaluations()}
    assert checks["sources_accessible"].passed is False
    assert checks["events_stored_cleanly"].passed is True


def test_bad_token_fails_fast_without_retries_and_is_reported(world):
    world.fake.add_repo("octo/app")
    integration = world.create_integration(["octo/app"], token="wrong-token")
    world.add_partition(integration["id"])
    result = world.materialize(integration["id"], live=True, raise_on_error=False)
    assert not result.success
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error)
    assert integration["id"] in message and "'token'" in message and "wrong-token" not in message
    record = world.sync_record(integration["id"])
    assert "401" in record["lastError"] and record["lastSuccessAt"] is None
    # The live sensor holds the integration back instead of failing every minute.
    result, cursor = tick(github_live_sensor, world)
    assert result.run_requests == []
    assert integration["id"] in json.loads(cursor)["held"]


def test_primary_rate_limit_becomes_a_later_retry(world, monkeypatch):
    # Waits over 1 s (instead of 30 s) leave the worker, so the test takes seconds.
    monkeypatch.setattr("painchain_pipelines.connectors.github.client.MAX_INLINE_WAIT", 1.0)
    world.fake.add_repo("octo/app").add_commit(message="x", authored_at=world.fake.now() - H)
    integration = world.create_integration(["octo/app"])
    world.add_partition(integration["id"])
    world.fake.exhaust_rate_limit(reset_in=3)
    result = world.materialize(integration["id"], live=True)
    assert result.success
    waits = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert len(waits) == 1 and 3 <= waits[0].event_specific_data.seconds_to_wait <= 7
    assert len(world.events(integration["id"])) == 1


def test_long_rate_limit_stops_the_run_and_it_is_launched_again_after_the_reset(world, monkeypatch):
    # Scaled down: waits over 1 s leave the client, over 2 s leave the run (instead of 30 s / 120 s).
    monkeypatch.setattr("painchain_pipelines.connectors.github.client.MAX_INLINE_WAIT", 1.0)
    monkeypatch.setattr("painchain_pipelines.orchestration.policy.MAX_IN_PROCESS_WAIT_S", 2.0)
    yesterday = world.fake.now().date() - dt.timedelta(days=1)
    sha = world.fake.add_repo("octo/app").add_commit(
        message="x", authored_at=dt.datetime.combine(yesterday, dt.time(9), dt.timezone.utc))
    integration = world.create_integration(["octo/app"])
    world.add_partition(integration["id"])
    world.fake.exhaust_rate_limit(reset_in=4)
    started = time.monotonic()
    result = world.materialize(integration["id"], yesterday, raise_on_error=False)
    assert not result.success and time.monotonic() - started < 4  # no worker slept through the wait
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "launched again" in str(failure.event_specific_data.error)
    stopped = world.instance.get_run_by_id(result.run_id)
    assert stopped.tags["painchain/deferred"] == "pending"

    waiting = github_deferred_retry_sensor(dg.build_sensor_context(instance=world.instance))
    assert isinstance(waiting, dg.SkipReason) and "1 run(s) waiting" in waiting.skip_message
    time.sleep(max(0.0, dt.datetime.fromisoformat(stopped.tags["painchain/retry_at"]).timestamp() - time.time()) + 0.1)
    [request] = github_deferred_retry_sensor(dg.build_sensor_context(instance=world.instance))
    assert request.partition_key == f"{yesterday}|{integration['id']}"
    assert request.tags["painchain/deferral"] == "1" and request.tags["painchain/deferred_from"] == result.run_id
    assert world.instance.get_run_by_id(result.run_id).tags["painchain/deferred"] == "relaunched"
    assert isinstance(github_deferred_retry_sensor(dg.build_sensor_context(instance=world.instance)), dg.SkipReason)
    assert world.execute(request).success
    assert f"github:octo/app:commit:{sha}" in world.events(integration["id"])


def test_a_failing_integration_leaves_the_others_of_a_range_run_materialized(world):
    yesterday = world.fake.now().date() - dt.timedelta(days=1)
    sha = world.fake.add_repo("octo/good").add_commit(
        message="kept", authored_at=dt.datetime.combine(yesterday, dt.time(9), dt.timezone.utc))
    world.fake.add_repo("octo/locked")
    broken = world.create_integration(["octo/locked"], token="revoked-token")
    good = world.create_integration(["octo/good"])
    world.add_partition(broken["id"])
    world.add_partition(good["id"])
    # a UI backfill of one day over both integrations arrives as one range run
    result = world.execute(dg.RunRequest(tags={
        "dagster/asset_partition_range_start": f"{yesterday}|{broken['id']}",
        "dagster/asset_partition_range_end": f"{yesterday}|{good['id']}"}), raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert broken["id"] in str(failure.event_specific_data.error)
    assert f"github:octo/good:commit:{sha}" in world.events(good["id"])
    materialized = set(world.instance.get_materialized_partitions(dg.AssetKey("github_events")))
    assert f"{yesterday}|{good['id']}" in materialized and f"{yesterday}|{broken['id']}" not in materialized


def test_live_sensor_leaves_integrations_alone_while_a_backfill_covers_them(world):
    integrations = []
    for name in ("octo/a", "octo/b", "octo/c"):
        world.fake.add_repo(name).add_commit(message="initial", authored_at=world.fake.now() - 2 * H)
        integration = world.create_integration([name])
        world.add_partition(integration["id"])
        assert world.materialize(integration["id"], live=True).success
        integrations.append(integration)
        world.fake.repo(name).add_commit(message="change")
    a, b, c = (i["id"] for i in integrations)
    week_ago = world.fake.now().date() - dt.timedelta(days=7)
    # a UI backfill (Dagster's implicit asset job) over a week of a and b, running
    world.instance.add_run(dg.DagsterRun(job_name="__ASSET_JOB", status=dg.DagsterRunStatus.STARTED, tags={
        "dagster/asset_partition_range_start": f"{week_ago}|{a}",
        "dagster/asset_partition_range_end": f"{world.fake.now().date()}|{b}"}))
    result, _ = tick(github_live_sensor, world)
    assert [r.partition_key.keys_by_dimension["integration"] for r in result.run_requests] == [c]


def test_integrations_sensor_registers_the_connector_type_itself(world):
    """With plain `dagster dev` nobody else registers the type."""
    world.api.post("/integrations/types/register", json={
        "id": "github", "displayName": "Outdated", "configSchema": {"fields": []}})
    result, cursor = tick(github_integrations_sensor, world)
    assert world.api.get("/integrations/types/github").json()["displayName"] == "GitHub"
    assert len(json.loads(cursor)["metadata"]) == 64


def test_sensor_removes_deleted_integrations_and_schedule_reconciles_yesterday(world):
    world.fake.add_repo("octo/a")
    world.fake.add_repo("octo/b")
    a = world.create_integration(["octo/a"])
    b = world.create_integration(["octo/b"], tenant="acme")
    tick(github_integrations_sensor, world)
    assert set(world.instance.get_dynamic_partitions("github_integrations")) == {a["id"], b["id"]}
    world.api.delete(f"/integrations/{a['id']}")
    result, _ = tick(github_integrations_sensor, world)
    assert world.instance.get_dynamic_partitions("github_integrations") == [b["id"]]
    hour = reconcile_hour(b["id"])
    due = dt.datetime(2026, 11, 25, hour, 15, tzinfo=dt.timezone.utc)
    context = dg.build_schedule_context(instance=world.instance, scheduled_execution_time=due)
    [request] = github_daily_reconcile_schedule(context)
    assert request.partition_key == f"2026-11-24|{b['id']}"
    assert request.tags[TRIGGER_TAG] == "daily-reconcile" and MODE_TAG not in request.tags
    assert world.execute(request).success
    other_hour = due.replace(hour=(hour + 1) % 24)
    skipped = github_daily_reconcile_schedule(
        dg.build_schedule_context(instance=world.instance, scheduled_execution_time=other_hour))
    assert isinstance(skipped, dg.SkipReason)


def test_an_edited_configuration_takes_effect_on_the_next_run(world):
    world.fake.add_repo("octo/one").add_commit(message="one", authored_at=world.fake.now() - H)
    added = world.fake.add_repo("octo/two").add_commit(message="two", authored_at=world.fake.now() - H)
    integration = world.create_integration(["octo/one"])
    world.add_partition(integration["id"])
    assert world.materialize(integration["id"], live=True).success
    assert not any("octo/two" in key for key in world.events(integration["id"]))
    config = {**integration["config"], "repositories": ["octo/one", "octo/two"], "token": ""}  # blank keeps it
    assert world.api.put(f"/integrations/{integration['id']}", json={"config": config}).status_code == 200
    run = world.materialize(integration["id"], live=True)
    assert f"github:octo/two:commit:{added}" in world.events(integration["id"])
    metadata = run.asset_materializations_for_node("github_events")[0].metadata
    assert metadata["sources"].value == ["octo/one", "octo/two"]


def test_tenant_integrations_post_with_their_tenant(world, monkeypatch):
    world.fake.add_repo("octo/t").add_commit(message="tenant", authored_at=world.fake.now() - H)
    integration = world.create_integration(["octo/t"], tenant="acme")
    world.add_partition(integration["id"])
    sent = []
    send = requests.adapters.HTTPAdapter.send

    def recording_send(adapter, request, **kwargs):  # what went over the wire to the backend
        if request.url.startswith(world.backend.api_url + "/events"):
            sent.append((request.method, request.url, request.headers.get("x-tenant-id")))
        return send(adapter, request, **kwargs)

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", recording_send)
    assert world.materialize(integration["id"], live=True).success
    posts = [s for s in sent if s[0] == "POST"]
    assert posts and all(url.endswith("/events/batch") and tenant == "acme" for _, url, tenant in posts)
    events = world.api.get("/events", headers={"x-tenant-id": "acme"}, params={"integrationId": integration["id"]}).json()
    assert [e["tenantId"] for e in events["events"]] == ["acme"]


def test_no_secret_reaches_dagster_storage_or_logs(world, caplog, monkeypatch):
    monkeypatch.setattr("painchain_pipelines.connectors.github.client.MAX_INLINE_WAIT", 1.0)
    monkeypatch.setattr("painchain_pipelines.orchestration.policy.MAX_IN_PROCESS_WAIT_S", 4.0)
    wrong_token = "ghp_revoked_but_still_secret_42"
    secrets = (GITHUB_TOKEN, SERVICE_TOKEN, wrong_token)
    world.fake.add_repo("octo/app").add_commit(message="x", authored_at=world.fake.now() - H)
    integration = world.create_integration(["octo/app"])
    revoked = world.create_integration(["octo/app"], token=wrong_token)
    with caplog.at_level("DEBUG"):
        tick(github_integrations_sensor, world)
        world.materialize(integration["id"], live=True)
        assert not world.materialize(revoked["id"], live=True, raise_on_error=False).success  # 401 path
        world.fake.exhaust_rate_limit(reset_in=1)
        world.materialize(integration["id"], live=True)  # short wait: retried in place
        world.fake.exhaust_rate_limit(reset_in=8)
        deferred = world.materialize(integration["id"], world.fake.now().date() - dt.timedelta(days=1),
                                     raise_on_error=False)  # long wait: deferred, tagged
        assert world.instance.get_run_by_id(deferred.run_id).tags["painchain/deferred"] == "pending"
        tick(github_live_sensor, world)
    for run in world.instance.get_runs():
        stored = json.dumps(run.run_config) + json.dumps(dict(run.tags))
        assert not [s for s in secrets if s in stored]
        for record in world.instance.all_logs(run.run_id):
            text = str(record)
            assert not [s for s in secrets if s in text]
    scanned = 0
    for path in world.instance_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            scanned += 1
            assert not [s for s in secrets if s.encode() in data], path
    assert scanned > 0
    assert not [s for s in secrets if s in caplog.text]


def test_many_changes_in_one_tick_become_one_batch_run(world):
    integrations = []
    for n in range(7):
        repo = world.fake.add_repo(f"org/svc-{n}")
        repo.add_commit(message="initial", authored_at=world.fake.now() - 2 * H)
        integration = world.create_integration([f"org/svc-{n}"])
        world.add_partition(integration["id"])
        assert world.materialize(integration["id"], live=True).success
        integrations.append(integration)
    shas = {i["id"]: world.fake.repo(f"org/svc-{n}").add_commit(message="change")
            for n, i in enumerate(integrations)}
    result, cursor = tick(github_live_sensor, world)
    [batch] = result.run_requests
    assert batch.tags["painchain/batch"] == "true" and batch.partition_key is None
    assert batch.tags["dagster/asset_partition_range_start"].endswith(integrations[0]["id"])
    job = dg.Definitions(assets=[github_events], jobs=[github_events_job],
                         resources=world.resources).resolve_job_def("github_events_job")
    run = job.execute_in_process(instance=world.instance, tags=dict(batch.tags))
    assert run.success
    for integration in integrations:
        assert f"github:org/svc-{integrations.index(integration)}:commit:{shas[integration['id']]}" in \
            world.events(integration["id"])
    today = world.fake.now().date()
    materializations = run.asset_materializations_for_node("github_events")
    assert {m.partition for m in materializations} == {f"{today}|{i['id']}" for i in integrations}
    assert sum(m.metadata["events_created"].value for m in materializations) == 7
    # One integration breaking between the tick and the run does not fail the batch for the others.
    shas = {i["id"]: world.fake.repo(f"org/svc-{n}").add_commit(message="second")
            for n, i in enumerate(integrations)}
    result, cursor = tick(github_live_sensor, world, cursor)
    [batch] = result.run_requests
    broken = integrations[3]
    assert world.api.put(f"/integrations/{broken['id']}", json={
        "config": {**broken["config"], "token": "revoked-in-between"}}).status_code == 200
    run = job.execute_in_process(instance=world.instance, tags=dict(batch.tags))
    assert run.success
    # The failing integration's partition is not shown as materialized by this run; the check says why.
    materializations = run.asset_materializations_for_node("github_events")
    assert {m.partition for m in materializations} == {f"{today}|{i['id']}" for i in integrations if i is not broken}
    assert sum(m.metadata["events_created"].value for m in materializations) == 6
    synced = next(c for c in run.get_asset_check_evaluations() if c.check_name == "integrations_synced")
    assert synced.passed is False and list(synced.metadata["integrations_failed"].value) == [broken["id"]]
    assert "401" in world.sync_record(broken["id"])["lastError"]
    # Two changes next time: two runs of their own.
    world.fake.repo("org/svc-1").add_commit(message="again")
    world.fake.repo("org/svc-2").add_commit(message="again")
    result, _ = tick(github_live_sensor, world, cursor)
    assert sorted(r.partition_key.keys_by_dimension["integration"] for r in result.run_requests) == sorted(
        [integrations[1]["id"], integrations[2]["id"]])


def test_a_backfill_runs_side_by_side_with_a_live_sync_of_the_same_integration(world):
    """The documented behaviour: a UI/CLI backfill does not wait for a live run of the same
    integration (range runs carry no per-integration tag); both are safe together because
    events are deduplicated and window syncs never touch the live cursors."""
    import threading

    repo = world.fake.add_repo("octo/app")
    today = world.fake.now().date()
    days = [today - dt.timedelta(days=n) for n in (3, 2, 1)]
    shas = {repo.add_commit(message=f"on {d}", authored_at=dt.datetime.combine(d, dt.time(12), dt.timezone.utc))
            for d in days}
    pr = repo.open_pull("Feature", created_at=dt.datetime.combine(days[1], dt.time(15), dt.timezone.utc))
    integration = world.create_integration(["octo/app"])
    world.add_partition(integration["id"])
    world.fake.latency = 0.3  # the live sync takes a few seconds: the backfill starts while it runs
    live_result = {}
    live = threading.Thread(target=lambda: live_result.update(run=world.materialize(integration["id"], live=True)))
    live.start()
    env = {**os.environ, "DAGSTER_HOME": str(world.instance_dir), "BACKEND_API_URL": world.backend.api_url,
           "PAINCHAIN_API_TOKEN": SERVICE_TOKEN}
    backfill = subprocess.run(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "painchain_pipelines.definitions",
         "--select", "github_events", "--partition-range",
         f"{days[0]}|{integration['id']}...{days[-1]}|{integration['id']}"],
        env=env, capture_output=True, text=True, timeout=300)
    live.join(timeout=300)
    world.fake.latency = 0
    assert backfill.returncode == 0, backfill.stderr[-3000:]
    assert live_result["run"].success
    starts = sorted((world.instance.get_run_by_id(r.run_id).tags.get(MODE_TAG, "window"),
                     world.instance.get_run_stats(r.run_id).start_time, world.instance.get_run_stats(r.run_id).end_time)
                    for r in world.instance.get_runs())
    (_, live_start, live_end), (_, backfill_start, _) = starts
    assert live_start < backfill_start < live_end, "the two runs did not overlap; the test proves nothing"
    expected = {f"github:octo/app:commit:{s}" for s in shas} | {f"github:octo/app:pr:{pr}:opened"}
    assert set(world.events(integration["id"])) == expected  # each change exactly once
    # The live cursors are the live sync's: the next live sync finds nothing new, and the sensor agrees.
    again = world.materialize(integration["id"], live=True)
    assert again.asset_materializations_for_node("github_events")[0].metadata["events_created"].value == 0
    result, _ = tick(github_live_sensor, world)
    assert result.run_requests == []


def test_every_retry_is_counted_in_the_run_metadata(world):
    """Faults of every kind, each retried in place: the materialization counts each one, on the
    GitHub side and on the backend side."""
    repo = world.fake.add_repo("octo/app")
    sha = repo.add_commit(message="x", authored_at=world.fake.now() - H)
    integration = world.create_integration(["octo/app"])
    world.add_partition(integration["id"])
    for status in (502, 500, 503, 429):
        world.fake.fail_next(1, status=status, path_contains="/commits")
    world.fake.fail_next(2, status=502, path_contains="/pulls")
    world.fake.secondary_rate_limit_next(retry_after=1, path_contains="/releases")
    world.fake.drop_next(2, path_contains="/deployments")
    world.fake.fail_next(3, status=500, path_contains="/actions/runs")
    github_faults = 4 + 2 + 1 + 2 + 3
    world.backend.fail_next(2, status=503, path_contains="/events/batch")
    world.backend.fail_next(1, status=502, path_contains="/sync")
    run = world.materialize(integration["id"], live=True)
    assert not [e for e in run.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]  # all retried in place
    metadata = {k: v.value for k, v in run.asset_materializations_for_node("github_events")[0].metadata.items()}
    assert metadata["api_retries"] == github_faults
    assert metadata["backend_retries"] == 3
    assert metadata["api_requests"] == len([r for r in world.fake.requests if r.path.startswith("/repos")])
    assert set(world.events(integration["id"])) == {f"github:octo/app:commit:{sha}"}
