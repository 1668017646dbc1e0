"""Request lanes: the pipelines API has its own pacing budget (token bucket) and its own 429 state."""

import datetime as dt

import pytest

from painchain_pipelines.connectors.base import RateLimited, SyncStats, TimeWindow
from painchain_pipelines.connectors.gitlab import GitLabConnector
from painchain_pipelines.connectors.gitlab.client import ClientTuning, GitLabClient, lane_of
from painchain_pipelines.connectors.gitlab.config import parse_config
from tests.gitlab.conftest import collect, gitlab_integration

D = dt.timedelta(days=1)
DAY = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)


def client_for(fake, sleeps, **tuning) -> GitLabClient:
    config = parse_config(gitlab_integration(fake, ["acme/app"]).config)
    return GitLabClient(config, SyncStats(), ClientTuning(sleep=sleeps.append, **tuning))


@pytest.fixture
def project(world):
    return world.add_project("acme/app")


def pipelines(project) -> str:
    return f"/projects/{project.id}/pipelines"


def commits(project) -> str:
    return f"/projects/{project.id}/repository/commits"


def test_paths_are_classified_into_lanes():
    assert lane_of("/projects/42/pipelines") == "pipelines"
    assert lane_of("/projects/acme%2Fapp/pipelines/7/jobs") == "pipelines"
    assert lane_of("/projects/42/repository/commits") == "default"
    assert lane_of("/projects/42/merge_requests") == "default"
    assert lane_of("/projects/acme%2Fpipelines") == "default"  # a project named "pipelines"
    assert lane_of("/groups/pipelines/merge_requests") == "default"


def test_pipelines_budget_paces_only_pipelines_requests(fake, project, sleeps):
    with client_for(fake, sleeps, pipelines_per_minute=6, clock=lambda: 1000.0) as client:  # time stands still
        waits = []
        for _ in range(8):
            client.get(pipelines(project))
            waits.append(list(sleeps))
            sleeps.clear()
            client.get(commits(project))  # interleaved: the default lane is not paced
            client.get(f"/projects/{project.id}/merge_requests")
            assert sleeps == []
        assert waits[:6] == [[]] * 6
        assert [len(w) for w in waits[6:]] == [1, 1]
        assert [w[0] for w in waits[6:]] == [10.0, 10.0]  # 60 s / 6, each
        assert client.stats.counters["api_paced_waits_pipelines"] == 2
        assert "api_paced_waits" not in client.stats.counters  # RateLimit-Remaining pacing: not involved
        assert client.stats.api_requests == len(fake.requests) == 24


def test_default_lane_is_unpaced_by_default(fake, project, sleeps):
    with client_for(fake, sleeps) as client:
        for _ in range(200):
            client.get(commits(project))
    assert sleeps == []


def test_a_429_on_pipelines_holds_back_pipelines_only(fake, project, sleeps):
    fake.rate_limit(r"/pipelines", times=1, retry_after=5)
    with client_for(fake, sleeps) as client:
        client.get(pipelines(project))  # 429, then after the wait its retry
        assert len(sleeps) == 1 and 4.9 <= sleeps[0] <= 5.0
        assert [r.status for r in fake.requests] == [429, 200]
        client.get(commits(project))
        client.get(pipelines(project))
        assert len(sleeps) == 1  # the wait was served once
        assert client.stats.counters["api_rate_limited_429"] == 1
        assert client.stats.counters["api_rate_limited_429_pipelines"] == 1
        assert client.stats.retries == 1


def test_a_pipelines_429_does_not_delay_commits_while_it_lasts(fake, project, sleeps):
    """While the pipelines lane waits for its reset, commits go out at once; pipelines wait the rest."""
    now = [1000.0]
    fake.rate_limit(r"/pipelines", times=1, retry_after=20)
    with client_for(fake, sleeps, clock=lambda: now[0], rate_limit_retries=0) as client:
        with pytest.raises(RateLimited):  # no inline retry allowed: the caller gets the wait
            client.get(pipelines(project))
        now[0] += 8
        client.get(commits(project))
        assert sleeps == []
        client.get(pipelines(project))
        assert len(sleeps) == 1 and 11.9 <= sleeps[0] <= 12.0  # 20 s after the 429, not 20 s more
        assert [r.status for r in fake.requests] == [429, 200, 200]


@pytest.mark.parametrize("header", ["Retry-After", "RateLimit-Reset"])
def test_a_long_pipelines_429_defers_the_run_with_its_wait(fake, project, sleeps, header):
    fake.rate_limit(r"/pipelines", times=1, retry_after=600, header=header)
    with client_for(fake, sleeps) as client:
        with pytest.raises(RateLimited) as info:
            client.get(pipelines(project))
        assert 590 <= info.value.retry_after <= 601  # on GitLab's clock (the Date header)
        assert sleeps == []
        client.get(commits(project))  # the default lane is not held back
        with pytest.raises(RateLimited) as again:  # the pipelines lane still is: no request sent
            client.get(pipelines(project))
        assert 590 <= again.value.retry_after <= 601
        assert [r.status for r in fake.requests] == [429, 200]


def test_sync_counts_pipelines_pacing(world, fake, sleeps):
    names = [f"acme/app{i}" for i in range(8)]
    for name in names:
        world.add_project(name).add_commit(committed_date=DAY, message="x")
    connector = GitLabConnector(client_tuning=ClientTuning(sleep=sleeps.append, pipelines_per_minute=6))
    events, result = collect(connector.window_sync, gitlab_integration(fake, names), TimeWindow(DAY, DAY + D))
    assert len(events) == 8
    pipeline_requests = [r for r in fake.requests if r.path.endswith("/pipelines")]
    assert len(pipeline_requests) == 8
    assert result.stats.counters["api_paced_waits_pipelines"] == 2
    assert sleeps == [pytest.approx(10.0, abs=1.5)] * 2  # less the time the sync took
