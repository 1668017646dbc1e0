import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import requests

from painchain_pipelines.connectors.backend_client import BackendClient
from painchain_pipelines.connectors.registration import RegistrationFailed, load_metadata, register
from tests.orchestration.github_defs import product_definitions
from tests.support.dagster_ticks import assert_no_failed_ticks
from tests.support.painchain_up import PainchainUp, free_port, user_env

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DISPLAY_NAMES = {"github": "GitHub", "gitlab": "GitLab", "kubernetes": "Kubernetes"}
# What each connector can do decides its sensors: polling connectors probe, Kubernetes watches.
SENSORS = {"github": ("integrations", "live", "deferred_retry"), "gitlab": ("integrations", "live", "deferred_retry"),
           "kubernetes": ("integrations", "watch", "deferred_retry")}
EXPECTED_SENSORS = {f"{c}_{s}_sensor" for c, kinds in SENSORS.items() for s in kinds}
EXPECTED_SCHEDULES = {f"{c}_daily_reconcile_schedule" for c in DISPLAY_NAMES} | {"event_retention_schedule"}

def test_definitions_load_with_every_asset_check_sensor_and_schedule():
    repository = product_definitions().get_repository_def()
    connectors = tuple(DISPLAY_NAMES)
    assert {k.to_user_string() for k in repository.asset_graph.get_all_asset_keys()} == {
        f"{c}_events" for c in connectors} | {"event_retention"}
    assert {s.name for s in repository.sensor_defs} == EXPECTED_SENSORS
    assert {s.name for s in repository.schedule_defs} == EXPECTED_SCHEDULES
    assert all(s.default_status == dg.DefaultScheduleStatus.RUNNING for s in repository.schedule_defs)
    assert {j.name for j in repository.get_all_jobs() if not j.name.startswith("__")} == {
        f"{c}_events_job" for c in connectors} | {"event_retention_job"}
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in repository.sensor_defs)
    checks = {(k.asset_key.to_user_string(), k.name) for k in repository.asset_graph.asset_check_keys}
    assert checks == {(f"{c}_events", check) for c in connectors
                      for check in ("events_stored_cleanly", "sources_accessible", "integrations_synced")}
    for connector in connectors:
        asset = repository.assets_defs_by_key[dg.AssetKey(f"{connector}_events")]
        assert asset.partitions_def.get_partition_key_from_str("2026-11-24|abc").keys_by_dimension == {
            "date": "2026-11-24", "integration": "abc"}
        assert asset.descriptions_by_key[asset.key].startswith(DISPLAY_NAMES[connector])


def test_dg_checks_and_lists_the_project_definitions():
    env = {**os.environ, "VIRTUAL_ENV": str(Path(sys.executable).parent.parent)}
    dg_cli = Path(sys.executable).with_name("dg")
    checked = subprocess.run([str(dg_cli), "check", "defs"], capture_output=True, text=True, timeout=300,
                             cwd=PROJECT_ROOT, env=env)
    assert checked.returncode == 0, checked.stdout[-2000:] + checked.stderr[-2000:]
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr
    listed = subprocess.run([str(dg_cli), "list", "defs", "--json"], capture_output=True, text=True, timeout=300,
                            cwd=PROJECT_ROOT, env=env)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "gitlab_events" in listed.stdout and "github_live_sensor" in listed.stdout
    assert "event_retention_schedule" in listed.stdout


def test_dagster_validates_the_code_location_and_loading_it_warns_about_nothing():
    out = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "painchain_pipelines.definitions"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Validation successful" in out.stderr + out.stdout
    # Every warning raised while our code loads becomes an error here.
    load = "from painchain_pipelines.definitions import defs; defs().get_repository_def()"
    strict = subprocess.run([sys.executable, "-W", "error", "-c", load],
                            capture_output=True, text=True, timeout=300)
    assert strict.returncode == 0, strict.stderr[-2000:]


def test_metadata_file_registers_and_reregistration_is_harmless(make_backend):
    backend = make_backend("sqlite")
    client = BackendClient(backend.api_url)
    register(client, ["github"])
    register(client, ["github"])
    detail = requests.get(backend.api_url + "/integrations/types/github", timeout=10).json()
    assert [f["key"] for f in detail["configSchema"]["fields"]] == [
        "name", "tags", "token", "repositories", "branches", "baseUrl"]
    token_field = next(f for f in detail["configSchema"]["fields"] if f["key"] == "token")
    assert token_field["type"] == "password" and token_field["required"] is True
    assert load_metadata("github")["id"] == "github"


def test_registration_retries_five_times_then_fails_clearly():
    sleeps = []
    client = BackendClient(f"http://127.0.0.1:{free_port()}/api", retries=0)
    with pytest.raises(RegistrationFailed) as excinfo:
        register(client, ["github"], sleep=sleeps.append)
    assert sleeps == [1.0, 2.0, 4.0, 8.0]
    assert "after 5 attempts" in str(excinfo.value)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["ctrl-c", "sigterm", "sighup"])
def test_painchain_up_serves_both_uis_and_stops_cleanly(tmp_path, stop_signal):
    up = PainchainUp(tmp_path)
    try:
        up.wait_for_dagster()  # after the types are registered
        assert requests.get(up.api + "/integrations/types", timeout=5).json()[0]["id"] == "github"
        assert (up.dagster_home / "dagster.yaml").exists()
        workspace = up.dagster_home / "workspace.yaml"
        grpc_port = re.search(r"port: (\d+)", workspace.read_text()).group(1)
        query = "{ repositoriesOrError { ... on RepositoryConnection { nodes { location { name } " \
                "sensors { name sensorState { status } } schedules { name scheduleState { status } } " \
                "assetNodes { assetKey { path } } } } } }"
        [repository] = requests.post(up.dagster_url + "/graphql", json={"query": query},
                                     timeout=30).json()["data"]["repositoriesOrError"]["nodes"]
        assert repository["location"]["name"] == "painchain"
        assert {s["name"]: s["sensorState"]["status"] for s in repository["sensors"]} == {
            name: "RUNNING" for name in EXPECTED_SENSORS}
        assert sorted((s["name"], s["scheduleState"]["status"]) for s in repository["schedules"]) == [
            (name, "RUNNING") for name in sorted(EXPECTED_SCHEDULES)]
        assert {tuple(a["assetKey"]["path"]) for a in repository["assetNodes"]} >= {
            (f"{c}_events",) for c in DISPLAY_NAMES}
        assert {t["id"] for t in requests.get(up.api + "/integrations/types", timeout=5).json()} == set(DISPLAY_NAMES)
        up.wait_for_ticks("github_integrations_sensor")
        up.wait_for_ticks("gitlab_integrations_sensor")
    finally:
        returncode = up.stop(stop_signal)
    output = up.output()
    assert returncode == 0, output[-3000:]
    assert f"PainChain UI and API: http://127.0.0.1:{up.port}/" in output
    assert f"Dagster UI:           http://127.0.0.1:{up.dagster_port}/" in output
    for p in (up.port, up.dagster_port):
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{p}/", timeout=2)
    assert "Warning" not in output, output[-3000:]
    leftovers = subprocess.run(
        ["pgrep", "-f", f"--port {up.port}|-p {up.dagster_port}|-p {grpc_port}|{workspace}"],
        capture_output=True, text=True)
    assert leftovers.stdout.strip() == ""
    assert_no_failed_ticks(up.dagster_home)


def test_shipped_instance_config_limits_runs_per_integration(tmp_path, monkeypatch):
    (tmp_path / "dagster.yaml").write_text(open("dagster.yaml").read())
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with dg.DagsterInstance.get() as instance:
        config = instance.run_coordinator.get_run_queue_config()
        assert config.max_concurrent_runs == 4
        assert config.tag_concurrency_limits == [
            {"key": "dagster/partition/integration", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]
        assert instance.run_coordinator.dequeue_use_threads is True
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        assert instance.run_retries_retry_on_asset_or_op_failure is False
        # A run whose process died is detected (tests/orchestration/test_killed_processes.py): the
        # launcher can check its worker, and the monitoring daemon runs (it is among the daemons).
        from painchain_pipelines.run_launcher import LocalRunLauncher

        assert type(instance.run_launcher) is LocalRunLauncher
        assert instance.run_launcher.supports_check_run_worker_health
        assert instance.run_monitoring_enabled and "MONITORING" in instance.get_required_daemon_types()
        assert instance.run_monitoring_poll_interval_seconds == 30
        assert instance.run_monitoring_start_timeout_seconds == 120
        assert instance.run_monitoring_cancel_timeout_seconds == 180
        assert instance.run_monitoring_max_resume_run_attempts == 0  # the launcher cannot resume runs
        assert instance.run_monitoring_max_runtime_seconds == 0  # long backfills are not cut short


def test_painchain_up_exits_clearly_when_registration_fails(tmp_path):
    port, dead_port = free_port(), free_port()
    env = user_env(BACKEND_API_URL=f"http://127.0.0.1:{dead_port}/api")  # where nothing listens
    proc = subprocess.run(
        [sys.executable, "-m", "painchain_pipelines", "up", "--port", str(port), "--dagster-port", str(free_port())],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output[-3000:]
    assert "after 5 attempts" in output and f"127.0.0.1:{dead_port}" in output
    assert "Dagster UI" not in output  # Dagster was never started
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/api/health", timeout=2)  # the backend was stopped


def test_painchain_up_first_sync_by_the_daemon_and_a_backfill_launched_like_the_dagster_ui(tmp_path):
    """The whole product as a user runs it: the daemon's sensor gives a new integration its
    recent history, and a backfill launched through Dagster's GraphQL API (what the UI's
    Materialize → Launch backfill sends) loads days older than the look-back."""
    import datetime as dt

    from tests.fakes.github_server import FakeGitHub

    with FakeGitHub(token="ghp_up_test_token") as fake:
        repo = fake.add_repo("octo/app")
        now = fake.now()
        old_days = [(now - dt.timedelta(days=n)).date() for n in (12, 11)]
        old = {f"github:octo/app:commit:{repo.add_commit(message=f'old {d}', authored_at=dt.datetime.combine(d, dt.time(12), dt.timezone.utc))}"
               for d in old_days}
        recent = f"github:octo/app:commit:{repo.add_commit(message='recent', authored_at=now - dt.timedelta(days=2))}"
        up = PainchainUp(tmp_path)
        try:
            up.wait_for_dagster()
            integration = requests.post(up.api + "/integrations", json={"type": "github", "config": {
                "name": "up test", "tags": [], "token": "ghp_up_test_token", "repositories": ["octo/app"],
                "baseUrl": fake.base_url}}, timeout=10).json()
            up.wait_for(lambda: recent in up.stored(), "the first sync (7-day look-back)", 240, every=2)
            assert not old & set(up.stored())

            mutation = """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
                __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""
            answer = requests.post(up.dagster_url + "/graphql", timeout=30, json={
                "query": mutation, "variables": {"params": {
                    "assetSelection": [{"path": ["github_events"]}],
                    "partitionNames": [f"{d}|{integration['id']}" for d in old_days]}}}).json()
            assert answer["data"]["launchPartitionBackfill"]["__typename"] == "LaunchBackfillSuccess", answer
            up.wait_for(lambda: old <= set(up.stored()), "the backfill", 240, every=2)
        finally:
            returncode = up.stop()
    output = up.output()
    assert returncode == 0, output[-3000:]
    assert "ghp_up_test_token" not in output
    assert_no_failed_ticks(up.dagster_home, ("github_integrations_sensor", "github_live_sensor"))
