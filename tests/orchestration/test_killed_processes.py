"""Processes killed in the middle of a sync, through `painchain up` as a user runs it, with the
shipped dagster.yaml: the run worker, the Dagster daemon, and everything at once (a machine
crash) during a backfill. Each ends with every change stored exactly once, the integration
live-syncing again (a commit pushed after the recovery arrives) and no sensor tick in error.

Run with `-s` to see the measured recovery times."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import time

import dagster as dg
import pytest
import requests
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.launcher import WorkerStatus
from dagster._core.storage.tags import GRPC_INFO_TAG

from painchain_pipelines.orchestration.tags import MODE_TAG
from painchain_pipelines.run_launcher import LocalRunLauncher, process_alive_since
from tests.fakes.github_server import FakeGitHub
from tests.support.dagster_ticks import assert_no_failed_ticks
from tests.support.painchain_up import PainchainUp, user_env

TOKEN = "ghp_killed_processes_token_24680"
SENSORS = ("github_integrations_sensor", "github_live_sensor")
# The live sensor's interval (a product setting, default 60 s) only shortens the final wait for
# a new commit; nothing about dead runs is configured here: the shipped dagster.yaml applies.
ENV = {"POLLING_INTERVAL": "10"}
SLOW_S = 3.0  # latency of every fake GitHub request while a run must stay in progress
BACKFILL_MUTATION = """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
    __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""


# ------------------------------------------------------------------------------ helpers


def commit_id(sha: str) -> str:
    return f"github:octo/app:commit:{sha}"


def log(t0: float, what: str) -> None:
    print(f"[{time.monotonic() - t0:6.1f} s] {what}", flush=True)


def start(workdir) -> PainchainUp:
    up = PainchainUp(workdir, env=user_env(**ENV))
    up.wait_for_api()
    return up


def create_integration(up: PainchainUp, fake: FakeGitHub) -> str:
    body = {"type": "github", "config": {"name": "Shop GitHub", "tags": ["prod"], "token": TOKEN,
                                         "repositories": ["octo/app"], "baseUrl": fake.base_url}}
    created: list[dict] = []

    def create() -> bool:  # `painchain up` registers the connector types right after the API answers
        response = requests.post(up.api + "/integrations", json=body, timeout=10)
        if response.status_code == 201:
            created.append(response.json())
        return bool(created)

    up.wait_for(create, "the integration to be created", 30, every=0.2)
    return created[0]["id"]


def run_records(up: PainchainUp, **filters) -> list[dg.RunRecord]:
    with dg.DagsterInstance.from_config(str(up.dagster_home)) as instance:
        return list(instance.get_run_records(filters=dg.RunsFilter(**filters)))


def dagster_storage_ready(up: PainchainUp) -> None:
    """Wait until `painchain up` has created Dagster's storage (its code server does, before the
    webserver starts). Opening a fresh SQLite storage while another process creates it can stamp
    its schema version twice and break the instance for good (dagster-io/dagster#27390)."""
    up.wait_for_dagster()


def run(up: PainchainUp, run_id: str) -> dg.DagsterRun:
    [record] = run_records(up, run_ids=[run_id])
    return record.dagster_run


def run_in_progress(up: PainchainUp, fake: FakeGitHub, **tags) -> tuple[str, int]:
    """(run id, pid of its run worker) of a STARTED run with these tags, once it has sent a
    request to GitHub (so it is in the middle of its sync)."""
    found: list[tuple[str, int]] = []
    seen_requests: dict[str, int] = {}
    dagster_storage_ready(up)

    def started() -> bool:
        for record in run_records(up, statuses=[dg.DagsterRunStatus.STARTED], tags=tags):
            run_id = record.dagster_run.run_id
            if run_id not in seen_requests:
                seen_requests[run_id] = len(fake.requests)
            elif len(fake.requests) > seen_requests[run_id]:
                found.append((run_id, worker_pid(up, run_id)))
                return True
        return False

    up.wait_for(started, f"a run {tags or ''} in progress", 240, every=0.5)
    return found[0]


def worker_pid(up: PainchainUp, run_id: str) -> int:
    """The run worker: the process that reported the run's start (what run monitoring checks)."""
    with dg.DagsterInstance.from_config(str(up.dagster_home)) as instance:
        [record] = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_START).records
        return record.event_log_entry.dagster_event.pid


def retry_of(up: PainchainUp, run_id: str) -> dg.DagsterRun | None:
    for record in run_records(up):
        if record.dagster_run.parent_run_id == run_id and record.dagster_run.tags.get("dagster/retry_number") == "1":
            return record.dagster_run
    return None


def wait_for_recovery(up: PainchainUp, run_id: str, t0: float) -> dg.DagsterRun:
    """The dead run marked failed by Dagster, and its automatic retry succeeded."""
    dagster_storage_ready(up)
    up.wait_for(lambda: run(up, run_id).status == dg.DagsterRunStatus.FAILURE, "the dead run to be marked failed", 300)
    log(t0, f"run {run_id[:8]} marked failed")
    up.wait_for(lambda: retry_of(up, run_id) is not None, "run_retries to relaunch it", 120)
    retry = retry_of(up, run_id)
    up.wait_for(lambda: run(up, retry.run_id).status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE),
                "the relaunched run to finish", 300)
    assert run(up, retry.run_id).status == dg.DagsterRunStatus.SUCCESS, up.output()[-4000:]
    log(t0, f"its retry {retry.run_id[:8]} succeeded")
    return retry


def stored_once(up: PainchainUp, integration_id: str) -> set[str]:
    """The integration's stored events (every page), each stored exactly once."""
    ids: list[str] = []
    cursor = None
    while True:
        params = {"integrationId": integration_id, "limit": 500, **({"cursor": cursor} if cursor else {})}
        page = requests.get(up.api + "/events", params=params, timeout=10).json()
        ids.extend(event["externalId"] for event in page["events"])
        cursor = page.get("nextCursor")
        if not cursor:
            break
    assert len(ids) == len(set(ids)), f"stored more than once: {sorted(i for i in ids if ids.count(i) > 1)}"
    return set(ids)


def assert_nothing_lost_and_live_again(up: PainchainUp, fake: FakeGitHub, integration_id: str,
                                       expected: set[str], t0: float) -> None:
    up.wait_for(lambda: expected <= up.stored(integrationId=integration_id).keys(), "every change to be stored", 240)
    assert stored_once(up, integration_id) == expected
    pushed = commit_id(fake.repo("octo/app").add_commit(message="after the recovery"))
    up.wait_for(lambda: pushed in up.stored(integrationId=integration_id), "a live sync of the new commit", 240)
    log(t0, "a commit pushed after the recovery is stored (live sync)")
    assert stored_once(up, integration_id) == expected | {pushed}


def daemon_pids(up: PainchainUp) -> list[int]:
    pattern = f"dagster-daemon run -w {up.dagster_home / 'workspace.yaml'}"
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    return [int(p) for p in found]


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (`painchain up` starts each child in a session of its own)."""
    children: dict[int, list[int]] = {}
    for line in subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True).stdout.splitlines():
        child, parent = map(int, line.split())
        children.setdefault(parent, []).append(child)
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo.extend(children.get(tree[-1], []))
    return tree


def crash(up: PainchainUp) -> list[int]:
    """Every process of this `painchain up` dies at the same instant, as in a machine crash:
    all are frozen first (no one can react to another's death), then SIGKILLed."""
    tree = process_tree(up.process.pid)
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for pid in tree:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
    up.process.wait(timeout=30)
    up.stop()  # closes its log
    return tree


def assert_gone(pids: list[int], seconds: float = 30) -> None:
    """None of these processes survived (killed processes may take a moment to exit)."""
    deadline = time.monotonic() + seconds
    while alive := [pid for pid in pids if process_alive_since(pid, time.time()) is not False]:
        assert time.monotonic() < deadline, f"processes survived: {alive}"
        time.sleep(0.2)


@pytest.fixture
def github():
    """A repository with three changes in the first sync's look-back and two on older days."""
    with FakeGitHub(token=TOKEN) as fake:
        repo = fake.add_repo("octo/app")
        now = fake.now()
        fake.old_days = [(now - dt.timedelta(days=n)).date() for n in (12, 11)]
        fake.old = {commit_id(repo.add_commit(message=f"old {day}", authored_at=dt.datetime.combine(
            day, dt.time(12), dt.timezone.utc))) for day in fake.old_days}
        fake.recent = {commit_id(repo.add_commit(message=f"{n} days ago", authored_at=now - dt.timedelta(days=n)))
                       for n in (3, 2, 1)}
        yield fake


# ------------------------------------------------------------------------------ end to end

@pytest.mark.slow
@pytest.mark.timeout(900)
def test_run_worker_killed_mid_sync_is_failed_and_relaunched(tmp_path, github):
    """SIGKILL of the run worker of a live sync (the first sync): the code server that started it
    reports it failed, run_retries relaunches it with its tags, and it stores everything."""
    up = start(tmp_path)
    try:
        github.latency = SLOW_S
        integration_id = create_integration(up, github)
        run_id, pid = run_in_progress(up, github, **{"dagster/partition/integration": integration_id})
        assert run(up, run_id).tags[MODE_TAG] == "live"
        os.kill(pid, signal.SIGKILL)
        github.latency = 0
        t0 = time.monotonic()
        log(t0, f"run worker {pid} of run {run_id[:8]} killed")

        retry = wait_for_recovery(up, run_id, t0)
        assert retry.tags[MODE_TAG] == "live"
        assert retry.tags["dagster/partition/integration"] == integration_id
        assert_nothing_lost_and_live_again(up, github, integration_id, github.recent, t0)
    finally:
        returncode = up.stop()
    assert returncode == 0, up.output()[-3000:]
    assert TOKEN not in up.output()
    assert_no_failed_ticks(up.dagster_home, SENSORS)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_daemon_killed_mid_sync_then_painchain_up_restarted(tmp_path, github):
    """SIGKILL of `dagster-daemon` during a live sync: `painchain up` stops the rest (the run
    worker is killed with the code server after its grace period), the user starts it again:
    run monitoring finds the run's process gone, marks the run failed, run_retries relaunches it."""
    first = start(tmp_path)
    try:
        github.latency = SLOW_S
        integration_id = create_integration(first, github)
        run_id, pid = run_in_progress(first, github, **{"dagster/partition/integration": integration_id})
        [daemon] = daemon_pids(first)
        tree = process_tree(first.process.pid)
        os.kill(daemon, signal.SIGKILL)
        t0 = time.monotonic()
        log(t0, f"dagster-daemon {daemon} killed during run {run_id[:8]} (worker {pid})")
        assert first.process.wait(timeout=180) == 1
    finally:
        first.stop()
    log(t0, "painchain up stopped by itself")
    assert "Dagster daemon exited unexpectedly" in first.output()
    assert_gone(tree)
    # The run outlived the code server's grace period: nothing is left to report its end.
    assert run(first, run_id).status == dg.DagsterRunStatus.STARTED

    github.latency = 0
    second = start(tmp_path)
    log(t0, "painchain up started again")
    try:
        retry = wait_for_recovery(second, run_id, t0)
        assert retry.tags[MODE_TAG] == "live"
        assert_nothing_lost_and_live_again(second, github, integration_id, github.recent, t0)
    finally:
        returncode = second.stop()
    assert returncode == 0, second.output()[-3000:]
    assert TOKEN not in first.output() + second.output()
    assert_no_failed_ticks(second.dagster_home, SENSORS)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_everything_killed_during_a_backfill_then_painchain_up_restarted(tmp_path, github):
    """A backfill launched as the Dagster UI does, and every process of `painchain up` killed at
    once in the middle of it (a machine crash); `painchain up` started again in the same
    directory: the backfill's run is failed and relaunched, its days are loaded, the backfill
    completes and the integration live-syncs again."""
    first = start(tmp_path)
    try:
        integration_id = create_integration(first, github)
        first.wait_for(lambda: github.recent <= first.stored(integrationId=integration_id).keys(), "the first sync")
        github.latency = SLOW_S
        answer = requests.post(first.dagster_url + "/graphql", timeout=30, json={
            "query": BACKFILL_MUTATION, "variables": {"params": {
                "assetSelection": [{"path": ["github_events"]}],
                "partitionNames": [f"{day}|{integration_id}" for day in github.old_days]}}}).json()
        assert answer["data"]["launchPartitionBackfill"]["__typename"] == "LaunchBackfillSuccess", answer
        backfill_id = answer["data"]["launchPartitionBackfill"]["backfillId"]
        run_id, pid = run_in_progress(first, github, **{"dagster/backfill": backfill_id})
        assert MODE_TAG not in run(first, run_id).tags  # a window sync
    finally:
        tree = crash(first)
    t0 = time.monotonic()
    log(t0, f"every process of painchain up killed during backfill run {run_id[:8]} (worker {pid})")
    assert_gone(tree)
    assert run(first, run_id).status == dg.DagsterRunStatus.STARTED

    github.latency = 0
    second = start(tmp_path)
    log(t0, "painchain up started again")
    try:
        retry = wait_for_recovery(second, run_id, t0)
        assert retry.tags["dagster/backfill"] == backfill_id
        assert MODE_TAG not in retry.tags
        with dg.DagsterInstance.from_config(str(second.dagster_home)) as instance:
            second.wait_for(lambda: instance.get_backfill(backfill_id).status == BulkActionStatus.COMPLETED_SUCCESS,
                            "the backfill to complete", 240)
        log(t0, "backfill completed")
        assert_nothing_lost_and_live_again(second, github, integration_id, github.recent | github.old, t0)
    finally:
        returncode = second.stop()
    assert returncode == 0, second.output()[-3000:]
    assert TOKEN not in first.output() + second.output()
    assert_no_failed_ticks(second.dagster_home, SENSORS)


# ------------------------------------------------------------------------------ the health check


def test_the_health_check_tells_a_live_worker_from_a_dead_one_and_a_reused_pid():
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        time.sleep(0.2)
        assert process_alive_since(sleeper.pid, time.time()) is True
        # Started well after the run it is said to run: another process got the pid.
        assert process_alive_since(sleeper.pid, time.time() - 3600) is False
        sleeper.kill()
        time.sleep(0.2)
        assert process_alive_since(sleeper.pid, time.time()) is False  # a zombie, not reaped yet
    finally:
        sleeper.kill()
        sleeper.wait()
    assert process_alive_since(sleeper.pid, time.time()) is False  # gone


def _started_run(instance: dg.DagsterInstance, run_id: str, host: str, pid: int | None) -> dg.DagsterRun:
    instance.add_run(dg.DagsterRun(job_name="j", run_id=run_id, status=dg.DagsterRunStatus.STARTED,
                                   tags={GRPC_INFO_TAG: json.dumps({"host": host, "port": 4000})}))
    if pid is not None:
        instance.report_dagster_event(dg.DagsterEvent(dg.DagsterEventType.RUN_START.value, job_name="j", pid=pid),
                                      run_id=run_id)
    return instance.get_run_by_id(run_id)


def test_the_health_check_fails_a_run_whose_worker_is_gone_with_its_retry_decided_first(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    overrides = {"run_retries": {"enabled": True, "max_retries": 2, "retry_on_asset_or_op_failure": False}}
    with dg.instance_for_test(temp_dir=str(tmp_path), overrides=overrides) as instance:
        launcher = LocalRunLauncher()
        launcher.register_instance(instance)
        living = _started_run(instance, "living", "127.0.0.1", os.getpid())
        assert launcher.check_run_worker_health(living).status == WorkerStatus.RUNNING
        assert instance.get_run_by_id("living").status == dg.DagsterRunStatus.STARTED

        gone = _started_run(instance, "gone", "127.0.0.1", dead.pid)
        assert launcher.check_run_worker_health(gone).status == WorkerStatus.FAILED
        failed = instance.get_run_by_id("gone")
        assert failed.status == dg.DagsterRunStatus.FAILURE
        assert failed.tags["dagster/will_retry"] == "true"
        [failure] = instance.get_records_for_run("gone", of_type=dg.DagsterEventType.RUN_FAILURE).records
        assert f"pid {dead.pid}" in failure.event_log_entry.dagster_event.message


def test_the_health_check_reports_runs_it_cannot_see_as_running(tmp_path):
    """Runs of a code server on another machine, and runs not started yet, are never failed."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        launcher = LocalRunLauncher()
        launcher.register_instance(instance)
        remote = _started_run(instance, "remote", "code-server", dead.pid)
        assert launcher.check_run_worker_health(remote).status == WorkerStatus.RUNNING
        not_started = _started_run(instance, "local", "localhost", None)
        assert launcher.check_run_worker_health(not_started).status == WorkerStatus.RUNNING
        assert instance.get_run_by_id("remote").status == dg.DagsterRunStatus.STARTED
