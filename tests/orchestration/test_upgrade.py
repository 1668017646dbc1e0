"""Upgrade in place: the current `painchain up` started on a data directory made by the previous
release (tests/fixtures/upgrade, made by make_data_dir.py with 2fa39e9). The user points the
integration at GitHub again (a new port: the fake's) and finds what they had: Dagster's run
history with its tags, the integration's partitions and past materializations, the backend's
events, and the live sync resuming from its saved state, reading only what changed since."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import tarfile
from pathlib import Path

import dagster as dg
import pytest
import requests
from alembic.script import ScriptDirectory

from painchain_pipelines.backend.migrate import alembic_config, head_revision
from painchain_pipelines.orchestration.tags import TRIGGER_TAG
from tests.fakes.github_server import FakeGitHub
from tests.fixtures.upgrade.world import TOKEN, add_after_upgrade, build_world
from tests.support.dagster_ticks import assert_no_failed_ticks
from tests.support.painchain_up import PainchainUp, user_env

pytestmark = pytest.mark.slow

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "upgrade"
MANIFEST = json.loads((FIXTURE / "manifest.json").read_text())
SENSORS = ("github_integrations_sensor", "github_live_sensor")
ENV = {"POLLING_INTERVAL": "10"}  # the live sensor's interval: only shortens the wait
ASSET = dg.AssetKey("github_events")


def alembic_revision(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        [(revision,)] = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    return revision


def events_stored_once(api: str, integration_id: str) -> list[str]:
    ids, cursor = [], None
    while True:
        params = {"integrationId": integration_id, "limit": 500, **({"cursor": cursor} if cursor else {})}
        page = requests.get(api + "/events", params=params, timeout=10).json()
        ids.extend(event["externalId"] for event in page["events"])
        cursor = page.get("nextCursor")
        if not cursor:
            break
    assert len(ids) == len(set(ids)), f"stored more than once: {sorted({i for i in ids if ids.count(i) > 1})}"
    return ids


def migration_chain() -> list[str]:
    return [s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()]


def world_has(fake: FakeGitHub, repo: str, stream: str) -> bool:
    return bool(getattr(fake.repo(repo), stream))


def is_sweep(query: dict) -> bool:
    return "created" in query


def reconcile_runs(dagster_home: Path) -> list[dg.RunRecord]:
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        return list(instance.get_run_records(filters=dg.RunsFilter(tags={TRIGGER_TAG: "daily-reconcile"})))


def during(at: dt.datetime, records: list[dg.RunRecord]) -> bool:
    return any(r.start_time <= at.timestamp() <= (r.end_time or float("inf")) for r in records)


def asset_in_the_ui(dagster_url: str) -> dict:
    query = """{ assetNodeOrError(assetKey: {path: ["github_events"]}) { __typename ... on AssetNode {
        partitionStats { numMaterialized numFailed }
        partitionDefinition { dimensionTypes { name dynamicPartitionsDefinitionName } }
        assetChecksOrError { ... on AssetChecks { checks { name } } } } } }"""
    answer = requests.post(dagster_url + "/graphql", json={"query": query}, timeout=30).json()
    return answer["data"]["assetNodeOrError"]


def sync_record(api: str, integration_id: str) -> dict:
    return requests.get(f"{api}/integrations/{integration_id}/sync", timeout=10).json()


@pytest.fixture
def old_data_dir(tmp_path) -> Path:
    with tarfile.open(FIXTURE / MANIFEST["tarball"]) as tar:
        tar.extractall(tmp_path, filter="data")
    (tmp_path / ".painchain").chmod(0o700)  # as it was (the "data" filter drops directory modes)
    assert (tmp_path / ".painchain" / "painchain.db").exists()
    return tmp_path


@pytest.fixture
def github():
    """The fixture's GitHub again, the same items with the same dates and ids (not the same port)."""
    with FakeGitHub(token=TOKEN) as fake:
        commits = build_world(fake, dt.datetime.fromisoformat(MANIFEST["world"]["anchor"]))
        assert commits == MANIFEST["world"]["commits"], "world.py no longer builds the fixture's world"
        yield fake


@pytest.mark.timeout(180)
def test_an_installation_of_the_previous_release_upgrades_in_place(old_data_dir, github):
    integration_id = MANIFEST["integration_id"]
    old = MANIFEST["dagster"]
    old_events = set(MANIFEST["event_external_ids"])
    old_state = MANIFEST["sync"]["state"]
    revision_before = alembic_revision(old_data_dir / ".painchain" / "painchain.db")

    up = PainchainUp(old_data_dir, env=user_env(**ENV))
    try:
        up.wait_for_api()
        # What the user finds: the integration, its events, its saved live state.
        integration = requests.get(f"{up.api}/integrations/{integration_id}", timeout=10).json()
        assert integration["config"]["baseUrl"] == MANIFEST["world"]["old_base_url"]
        assert set(events_stored_once(up.api, integration_id)) == old_events
        saved = sync_record(up.api, integration_id)["state"]  # in the order the old version saved it
        assert saved == old_state

        # GitHub moved (the fake's new port): a new destination needs the token typed again.
        moved = {**integration["config"], "baseUrl": github.base_url}
        refused = requests.put(f"{up.api}/integrations/{integration_id}", json={"config": moved}, timeout=10)
        assert refused.status_code == 422 and "must be entered again" in refused.text
        accepted = requests.put(f"{up.api}/integrations/{integration_id}", timeout=10,
                                json={"config": {**moved, "token": TOKEN}})
        assert accepted.status_code == 200, accepted.text
        assert sync_record(up.api, integration_id)["state"] == old_state, "editing the integration lost its state"

        github.reset_requests()
        new_events = set(add_after_upgrade(github))
        up.wait_for(lambda: new_events <= up.stored(integrationId=integration_id).keys(),
                    "the live sync of the changes made after the upgrade", 150)
        up.wait_for(lambda: sync_record(up.api, integration_id)["state"]["repos"]["octo/app"]["since"]
                    > old_state["repos"]["octo/app"]["since"], "the live state to be saved", 60)
        stored = events_stored_once(up.api, integration_id)
        record = sync_record(up.api, integration_id)
        state = record["state"]
        requests_after_upgrade = list(github.requests)
        up.wait_for_ticks("github_live_sensor", count=2)
        ui = asset_in_the_ui(up.dagster_url)
    finally:
        returncode = up.stop()
    assert returncode == 0, up.output()[-4000:]
    assert TOKEN not in up.output()
    problems = [line for line in up.output().splitlines() if " ERROR " in line or "Traceback" in line]
    assert not problems, "\n".join(problems)
    # Migrated by its own step before the backend started (no health deadline on a long migration).
    assert f"migrating the database schema {revision_before} -> {head_revision()}" in up.output()
    assert up.output().index(f"is at revision {head_revision()}") < up.output().index("PainChain UI and API:")

    # Events: the old ones kept, the new ones added, each exactly once.
    assert set(stored) == old_events | new_events
    assert not set(MANIFEST["world"]["commits"]["unsynced"]) & set(stored)

    # The live sync resumed from the saved state: no re-read from scratch.
    assert state.get("version") == old_state.get("version")
    assert list(state) == list(saved) and list(state["repos"]) == list(saved["repos"])
    for name, repo_state in state["repos"].items():
        assert list(repo_state) == list(saved["repos"][name]), f"{name}: the saved state's format changed"
        for key in ("etags", "info", "rerun_sweep"):
            assert list(repo_state[key]) == list(saved["repos"][name][key]), f"{name} {key}: format changed"
        assert repo_state["heads"] != saved["repos"][name]["heads"]  # moved on to the new commits
    stats = record["lastStats"]
    assert stats["mode"] == "live" and stats["duplicates"] == 0, stats
    assert stats["created"] == len(new_events) and stats["eventsFetched"] == len(new_events), stats
    # Each branch read from its saved head on (a compare), not listed again from a look-back.
    for name, repo_state in old_state["repos"].items():
        for head in repo_state["heads"].values():
            assert any(r.path.startswith(f"/repos/{name}/compare/{head}...") for r in requests_after_upgrade), \
                f"{name}: not read from its saved head {head}"
    # Dagster launches the missed hourly ticks of the reconcile schedule at start: when one is this
    # integration's hour, yesterday is read again as a window (no ETags), beside the live sync.
    reconciled = reconcile_runs(up.dagster_home)
    assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in reconciled)
    # The re-run sweep (workflow runs by creation day, every 30 minutes) reads a month back by
    # design (left out); the rest starts at the saved cursors: a bounded number of requests.
    unswept = [r for r in requests_after_upgrade if not is_sweep(r.query)]
    incremental = [r for r in unswept if not during(r.at, reconciled)]
    # Unchanged lists answered "304 Not Modified" to the saved ETags (free of rate limit). Only
    # empty ones: the fake's pages hold its URLs, so its new port changed the others' ETags.
    for name in old_state["repos"]:
        for stream in [s for s in ("releases", "deployments") if not world_has(github, name, s)]:
            sent = [r for r in unswept if r.path == f"/repos/{name}/{stream}"]
            answers = [r.status for r in sent if r.headers.get("if-none-match")]
            assert answers and set(answers) == {304}, f"{name} {stream}: {answers} (saved ETag not used)"
            unconditional = [r for r in sent if not r.headers.get("if-none-match")]
            assert all(during(r.at, reconciled) for r in unconditional), f"{name} {stream}: read without its ETag"
    first_sync = [r for r in MANIFEST["first_sync_requests"] if not is_sweep(r["query"])]
    assert len(incremental) <= 2 * len(first_sync), \
        f"{len(incremental)} requests after the upgrade, {len(first_sync)} for the first sync: " + \
        "\n".join(f"{r.path} {r.query}" for r in incremental)

    # Dagster: history, partitions, materializations, sensors.
    dagster_home = up.dagster_home
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        runs = {r.dagster_run.run_id: r.dagster_run for r in instance.get_run_records()}
        for old_run in old["runs"]:
            run = runs.get(old_run["run_id"])
            assert run is not None, f"run {old_run['run_id']} lost"
            assert dict(run.tags) == old_run["tags"] and run.status.value == old_run["status"]
            assert run.job_name == old_run["job_name"]
        new_runs = [run for run_id, run in runs.items() if run_id not in {r["run_id"] for r in old["runs"]}]
        assert new_runs, "no run after the upgrade"
        live = [run for run in new_runs if run.tags.get("painchain/mode") == "live"]
        assert live and all(run.job_name == "github_events_job" for run in live)
        assert all(run.tags.get("dagster/partition/integration") == integration_id for run in live)
        assert all(run.tags.get("painchain/trigger") != "new-integration" for run in new_runs), \
            "the integration was taken for a new one (first sync again)"
        assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in live)
        old_live = next(r for r in old["runs"] if r["tags"].get("painchain/mode") == "live")
        painchain_tags = {k for k in old_live["tags"] if k.startswith("painchain/")}
        assert any(painchain_tags <= set(run.tags) for run in live), [dict(run.tags) for run in live]

        assert instance.get_dynamic_partitions("github_integrations") == old["partitions"]["github_integrations"]
        assert ASSET.to_user_string() in {k.to_user_string() for k in instance.all_asset_keys()}
        records = instance.fetch_materializations(ASSET, limit=1000).records
        by_old_runs = [m for m in records if m.run_id in {r["run_id"] for r in old["runs"]}]
        assert len(by_old_runs) == old["materializations"]
        assert {m.partition_key for m in by_old_runs} == set(old["materialized_partitions"])
        today = f"{dt.datetime.now(dt.timezone.utc).date()}|{integration_id}"
        [new_live] = [m for m in records if m.partition_key == today and m.run_id in {r.run_id for r in live}][:1]
        # The same metadata names (the UI plots each one across materializations) and stream names.
        [old_live] = [m for m in by_old_runs if m.asset_materialization.metadata["mode"].value == "live"][:1]
        new_metadata, old_metadata = new_live.asset_materialization.metadata, old_live.asset_materialization.metadata
        assert list(new_metadata) == list(old_metadata)
        assert set(new_metadata["events_per_stream"].value) <= set(old_metadata["events_per_stream"].value)

        # The Dagster UI counts the old partitions as materialized, and knows the old checks.
        assert ui["__typename"] == "AssetNode", ui
        assert ui["partitionStats"]["numMaterialized"] >= len(old["materialized_partitions"]), ui
        dimensions = {d["name"]: d["dynamicPartitionsDefinitionName"] for d in ui["partitionDefinition"]["dimensionTypes"]}
        assert dimensions == {"date": None, "integration": "github_integrations"}, dimensions
        assert set(old["asset_checks_evaluated"]) <= {c["name"] for c in ui["assetChecksOrError"]["checks"]}, ui

        # The old backfill is still listed, finished.
        backfill = instance.get_backfill(old["backfill"]["id"])
        assert backfill is not None and backfill.status.value == old["backfill"]["status"]

        # Sensors and the schedule keep their identity: their old ticks and cursors are theirs
        # (a renamed code location or repository would orphan them and start new ones).
        states = {}
        for state in instance.all_instigator_state():
            assert state.instigator_name not in states, f"two states for {state.instigator_name}"
            states[state.instigator_name] = state
        for name, before in old["instigators"].items():
            assert name in states, f"{name} is gone"
            state = states[name]
            assert (state.instigator_origin_id, state.selector_id) == (before["origin_id"], before["selector_id"]), \
                f"{name} is filed under a new identity: its history and cursor are orphaned"
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=100_000)
            assert len(ticks) >= before["ticks"]
        live_ticks = instance.get_ticks(states["github_live_sensor"].instigator_origin_id,
                                        states["github_live_sensor"].selector_id, limit=100_000)
        assert len(live_ticks) > old["instigators"]["github_live_sensor"]["ticks"]
    assert_no_failed_ticks(dagster_home, SENSORS)

    # The backend's database: migrated to the current head (a no-op when no migration is newer).
    assert revision_before in migration_chain()
    assert alembic_revision(old_data_dir / ".painchain" / "painchain.db") == head_revision()
