"""`painchain up` used in the orders people use it: the integration already there before the
start, created within the first second, created between two starts while the connector's
metadata changed (an upgrade). Each ends with the integration's recent history stored, the
integration's card saying so, and no sensor or schedule tick in error."""

import datetime as dt
import json
import shutil
import socket
import time

import pytest
import requests

from painchain_pipelines.paths import METADATA_DIR
from tests.fakes.github_server import FakeGitHub
from tests.support.dagster_ticks import assert_no_failed_ticks
from tests.support.painchain_up import PainchainBackend, PainchainProcess, PainchainUp, free_port, user_env

pytestmark = pytest.mark.slow

TOKEN = "ghp_user_order_token_0123456789"
SENSORS = ("github_integrations_sensor", "github_live_sensor")


@pytest.fixture
def github():
    """A repository with one change in the look-back (2 days ago) and one before it (10 days)."""
    with FakeGitHub(token=TOKEN) as fake:
        repo = fake.add_repo("octo/app")
        now = fake.now()
        fake.old = repo.add_commit(message="ten days ago", authored_at=now - dt.timedelta(days=10))
        fake.recent = repo.add_commit(message="two days ago", authored_at=now - dt.timedelta(days=2))
        yield fake


def create_integration(api: str, fake) -> requests.Response:
    return requests.post(api + "/integrations", timeout=10, json={"type": "github", "config": {
        "name": "Shop GitHub", "tags": ["prod"], "token": TOKEN, "repositories": ["octo/app"],
        "baseUrl": fake.base_url}})


def card(api: str, integration_id: str) -> dict:
    return next(s for s in requests.get(api + "/integrations/status", timeout=10).json() if s["id"] == integration_id)


def assert_recent_history_stored(up: PainchainUp, fake, integration_id: str) -> None:
    recent, old = f"github:octo/app:commit:{fake.recent}", f"github:octo/app:commit:{fake.old}"
    up.wait_for(lambda: recent in up.stored(integrationId=integration_id), "the first sync (7-day look-back)")
    assert old not in up.stored(integrationId=integration_id)
    up.wait_for(lambda: card(up.api, integration_id)["lastSuccessAt"] is not None, "the card to show the sync")
    status = card(up.api, integration_id)
    assert status["orchestrator"]["running"] is True and status["orchestrator"]["problem"] is None
    assert status["lastError"] is None and status["failedSources"] == {}


def stop_cleanly(up: PainchainUp) -> None:
    assert up.stop() == 0, up.output()[-3000:]
    assert TOKEN not in up.output()


def backend_alone(workdir, env=None) -> tuple[PainchainBackend, str]:
    backend = PainchainBackend(workdir, env=env).wait_for_api()
    return backend, backend.api


def test_integration_created_before_painchain_up_starts(tmp_path, github):
    """An existing database and a fresh Dagster state: the first tick registers the type and
    finds the integration at once."""
    backend, api = backend_alone(tmp_path)
    try:
        metadata = json.loads((METADATA_DIR / "github.json").read_text())
        assert requests.post(api + "/integrations/types/register", json=metadata, timeout=10).status_code == 201
        created = create_integration(api, github)
        assert created.status_code == 201, created.text
    finally:
        assert backend.stop() == 0
    integration = created.json()
    assert not (tmp_path / ".painchain" / "dagster").exists()  # Dagster has never run here

    up = PainchainUp(tmp_path)
    try:
        up.wait_for_api()
        assert_recent_history_stored(up, github, integration["id"])
        up.wait_for_ticks("github_live_sensor")
    finally:
        stop_cleanly(up)
    assert_no_failed_ticks(up.dagster_home, SENSORS)


def test_integration_created_within_the_first_second(tmp_path, github):
    """Created as soon as the API answers, before the daemon's first tick."""
    up = PainchainUp(tmp_path)
    try:
        up.wait_for_api()
        # `painchain up` registers the types right after the API answers; retry until it has.
        up.wait_for(lambda: create_integration(up.api, github).status_code == 201,
                    "the integration to be created", 10, every=0.05)
        created_at = time.time()
        integration = requests.get(up.api + "/integrations", timeout=10).json()[0]
        assert card(up.api, integration["id"])["lastSuccessAt"] is None
        assert_recent_history_stored(up, github, integration["id"])
        up.wait_for_ticks("github_live_sensor")
    finally:
        stop_cleanly(up)
    assert_no_failed_ticks(up.dagster_home, SENSORS)
    # the scenario really was "before the daemon's first tick" (read only now: see wait_for_ticks)
    assert first_tick_at(up.dagster_home) > created_at


def first_tick_at(dagster_home) -> float:
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        return min(tick.timestamp for state in instance.all_instigator_state()
                   for tick in instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=100_000))


def test_metadata_changes_between_two_starts_while_an_integration_is_added(tmp_path, github):
    """An upgrade: the connector's metadata changed, and the first tick after the restart also
    finds a new integration (the tick that used to fail forever)."""
    metadata_dir = tmp_path / "metadata"
    shutil.copytree(METADATA_DIR, metadata_dir)
    env = user_env(PAINCHAIN_METADATA_DIR=str(metadata_dir))
    first = PainchainUp(tmp_path, env=env)
    try:
        first.wait_for_api()
        first.wait_for_ticks("github_integrations_sensor")
    finally:
        stop_cleanly(first)

    path = metadata_dir / "github.json"
    upgraded = json.loads(path.read_text())
    upgraded["description"] = "GitHub, upgraded"
    path.write_text(json.dumps(upgraded))
    backend, api = backend_alone(tmp_path, env=env)
    try:
        created = create_integration(api, github)
        assert created.status_code == 201, created.text
    finally:
        assert backend.stop() == 0

    second = PainchainUp(tmp_path, env=env)
    try:
        second.wait_for_api()
        assert_recent_history_stored(second, github, created.json()["id"])
        assert requests.get(second.api + "/integrations/types/github", timeout=10).json()["description"] == \
            "GitHub, upgraded"
    finally:
        stop_cleanly(second)
    history = assert_no_failed_ticks(second.dagster_home, SENSORS[:1])
    assert sum(history["github_integrations_sensor"].values()) >= 2  # ticks of both starts


@pytest.mark.parametrize("taken", ["api", "dagster"])
def test_painchain_up_on_a_port_in_use_says_which_and_starts_nothing(tmp_path, taken):
    port, dagster_port = free_port(), free_port()
    busy = port if taken == "api" else dagster_port
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", busy))
        listener.listen()
        up = PainchainProcess(tmp_path, "up", "--port", str(port), "--dagster-port", str(dagster_port))
        assert up.process.wait(timeout=60) == 1
        up.stop()
    output = up.output()
    assert f"port {busy} on 127.0.0.1" in output and "already in use" in output
    assert ("--port" if taken == "api" else "--dagster-port") in output
    assert "PainChain UI and API:" not in output and not (tmp_path / ".painchain").exists()
