"""GitLab through `painchain up` as a user runs it: the integration created in the UI's API, its
first sync by the daemon, a restart while the world moves on (a pipeline finishes, a commit is
pushed late), and a backfill launched from the Dagster UI. Every event once, no failed tick."""

import datetime as dt

import pytest
import requests

from tests.fakes.gitlab_server import FakeGitLab
from tests.fakes.gitlab_world import GitLabWorld
from tests.support.dagster_ticks import assert_no_failed_ticks
from tests.support.painchain_up import PainchainUp, user_env

pytestmark = pytest.mark.slow

TOKEN = "up-gitlab-token-not-a-real-one-9a8b7c"
M, D = dt.timedelta(minutes=1), dt.timedelta(days=1)
BACKFILL = """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
    __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""


def stop_cleanly(up: PainchainUp) -> str:
    assert up.stop() == 0, up.output()[-3000:]
    output = up.output()
    assert TOKEN not in output
    return output


def test_first_sync_restart_and_a_backfill_from_the_dagster_ui(tmp_path):
    world = GitLabWorld(now=dt.datetime.now(dt.timezone.utc).replace(microsecond=0))
    project = world.add_project("acme/platform/api", default_branch="main")
    now = world.now
    old = project.add_commit(committed_date=now - 12 * D, message="twelve days ago")
    recent = project.add_commit(committed_date=now - 2 * D, message="two days ago")
    pipeline = project.add_pipeline(ref="main", sha=recent.sha, created_at=now - 10 * M, status="running")
    env = user_env(POLLING_INTERVAL="5")
    with FakeGitLab(world, token=TOKEN) as fake:
        prefix = f"gitlab:{project.id}:"
        up = PainchainUp(tmp_path, env=env)
        try:
            up.wait_for_api()
            config = {"name": "Platform GitLab", "tags": ["prod"], "token": TOKEN, "url": fake.url,
                      "projects": ["acme/platform/api"]}
            up.wait_for(lambda: requests.post(up.api + "/integrations", timeout=10, json={
                "type": "gitlab", "config": config}).status_code == 201, "the integration to be created", 30, 0.1)
            integration = requests.get(up.api + "/integrations", timeout=10).json()[0]
            up.wait_for(lambda: prefix + f"commit:{recent.sha}" in up.stored(), "the first sync", 240, every=2)
            assert prefix + f"commit:{old.sha}" not in up.stored()
        finally:
            stop_cleanly(up)

        # While PainChain is stopped: the pipeline fails, a commit dated yesterday is pushed.
        pipeline.set_status("failed", at=now + M)
        late = project.add_commit(committed_date=now - D, pushed_at=now + 2 * M, message="late push")
        world.advance(3 * M)

        up = PainchainUp(tmp_path, env=env)
        try:
            up.wait_for_api()
            up.wait_for(lambda: {prefix + f"commit:{late.sha}"} <= set(up.stored())
                        and any(k.startswith(prefix + f"pipeline:{pipeline.id}:failed") for k in up.stored()),
                        "the live sync after the restart", 240, every=2)
            up.wait_for_dagster()
            answer = requests.post(up.dagster_url + "/graphql", timeout=30, json={
                "query": BACKFILL, "variables": {"params": {
                    "assetSelection": [{"path": ["gitlab_events"]}],
                    "partitionNames": [f"{(now - 12 * D).date()}|{integration['id']}"]}}}).json()
            assert answer["data"]["launchPartitionBackfill"]["__typename"] == "LaunchBackfillSuccess", answer
            up.wait_for(lambda: prefix + f"commit:{old.sha}" in up.stored(), "the backfill", 240, every=2)
            stored = up.stored(integrationId=integration["id"])
        finally:
            stop_cleanly(up)
    assert {k for k in stored if ":commit:" in k} == {prefix + f"commit:{c.sha}" for c in (old, recent, late)}
    assert len([k for k in stored if f":pipeline:{pipeline.id}:" in k]) == 1
    assert_no_failed_ticks(up.dagster_home, ("gitlab_integrations_sensor", "gitlab_live_sensor"))
