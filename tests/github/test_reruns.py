"""Re-runs of workflow runs up to 30 days old: the live sync's periodic, conditional sweep."""

import datetime as dt

import pytest

from painchain_pipelines.connectors.github import GitHubConnector
from painchain_pipelines.connectors.github.connector import Tuning
from tests.fakes import FakeGitHub
from tests.github.conftest import TOKEN, collect, github_integration, offset_to_ten_am

DAY = dt.timedelta(days=1)
MINUTE = dt.timedelta(minutes=1)
SWEEP_INTERVAL = Tuning().rerun_sweep_interval


@pytest.fixture
def fake():
    # 10:00 UTC: the hours these tests move the clock never change the days the sweep lists.
    with FakeGitHub(token=TOKEN, clock_offset=offset_to_ten_am()) as server:
        yield server


def completed_run(repo, created_at, conclusion="success", name="CI"):
    run = repo.add_workflow_run(name=name, created_at=created_at)
    repo.complete_run(run, conclusion, at=created_at + 6 * MINUTE)
    return run


def sweep_requests(fake):
    return [r for r in fake.requests if r.canonical_path.endswith("/actions/runs") and "created" in r.query]


def busy_repo(fake, name="octo/app"):
    """A repository whose runs list's first page holds only recent runs, as in a busy one."""
    repo = fake.add_repo(name)
    repo.add_commit(message="x", authored_at=fake.now() - 2 * DAY)
    for n in range(100):
        completed_run(repo, fake.now() - DAY + n * MINUTE)
    return repo


def test_rerun_of_a_run_older_than_the_lookback_is_caught_by_the_next_sweep(fake):
    repo = busy_repo(fake)
    old = completed_run(repo, fake.now() - 20 * DAY, "failure")
    connector, integration = GitHubConnector(), github_integration(fake, ["octo/app"])
    first, result = collect(connector.live_sync, integration, None)
    assert not any(f":run:{old}:" in e.external_id for e in first)  # completed 20 days ago

    fake.advance(600)
    repo.rerun(old, actor="bob")
    fake.advance(300)
    repo.complete_run(old, "success")
    completed_at = fake.now().replace(microsecond=0)
    # The runs list shows runs by creation: the change probe cannot see the re-run ...
    assert connector.detect_changes(integration, result.state).changed is False
    fake.advance((SWEEP_INTERVAL - 14 * MINUTE).total_seconds())
    # ... until the sweep is due, which counts as a change.
    check = connector.detect_changes(integration, result.state)
    assert check.changed and "re-run sweep due" in check.reason
    events, result = collect(connector.live_sync, integration, result.state)
    [event] = events
    assert event.external_id == f"github:octo/app:run:{old}:attempt:2"
    assert event.data["conclusion"] == "success" and event.data["attempt"] == 2
    assert event.timestamp == completed_at and event.data["triggeringActor"] == "bob"
    assert event.title.endswith("(attempt 2)")
    assert connector.detect_changes(integration, result.state).changed is False


def test_rerun_in_progress_when_swept_is_followed_to_completion(fake):
    repo = busy_repo(fake)
    old = completed_run(repo, fake.now() - 12 * DAY)
    connector, integration = GitHubConnector(), github_integration(fake, ["octo/app"])
    _, result = collect(connector.live_sync, integration, None)
    fake.advance(SWEEP_INTERVAL.total_seconds())
    repo.rerun(old)
    repo.start_run(old)
    events, result = collect(connector.live_sync, integration, result.state)
    assert events == []  # not final yet
    assert result.state["repos"]["octo/app"]["pending_runs"][str(old)]  # with its ETag
    assert connector.detect_changes(integration, result.state).changed is False

    fake.advance(120)
    repo.complete_run(old, "cancelled")
    check = connector.detect_changes(integration, result.state)  # seen within a minute, not a sweep
    assert check.changed and f"run {old}" in check.reason
    events, result = collect(connector.live_sync, integration, result.state)
    assert [(e.external_id, e.data["conclusion"]) for e in events] == [
        (f"github:octo/app:run:{old}:attempt:2", "cancelled")]
    assert result.state["repos"]["octo/app"]["pending_runs"] == {}


def test_a_rerun_done_before_the_first_sync_inside_its_lookback_is_read(fake):
    repo = busy_repo(fake)
    old = completed_run(repo, fake.now() - 25 * DAY)
    repo.rerun(old, at=fake.now() - 2 * DAY)
    repo.complete_run(old, "failure", at=fake.now() - 2 * DAY + 5 * MINUTE)
    events, _ = collect(GitHubConnector().live_sync, github_integration(fake, ["octo/app"]), None)
    assert f"github:octo/app:run:{old}:attempt:2" in {e.external_id for e in events}


def test_idle_sweep_is_free_and_only_asks_for_days_with_runs(fake):
    repo = busy_repo(fake)
    for days_ago in (20, 12, 12, 11):
        completed_run(repo, fake.now() - days_ago * DAY)
    connector, integration = GitHubConnector(), github_integration(fake, ["octo/app"])
    _, result = collect(connector.live_sync, integration, None)
    fake.advance(SWEEP_INTERVAL.total_seconds())
    _, result = collect(connector.live_sync, integration, result.state)  # lists the days the first sync read
    fake.advance(SWEEP_INTERVAL.total_seconds())
    fake.reset_requests()
    events, result = collect(connector.live_sync, integration, result.state)
    assert events == []
    swept = sweep_requests(fake)
    assert sorted(r.query["created"][:10] for r in swept) == sorted(
        (fake.now() - n * DAY).date().isoformat() for n in (20, 12, 11))
    assert [r.status for r in swept] == [304] * 3
    assert [r for r in fake.requests if r.counted] == []


def test_sweep_asks_each_page_with_its_own_etag(fake):
    repo = busy_repo(fake)
    day = (fake.now() - 15 * DAY).replace(hour=0, minute=0, second=0, microsecond=0)
    runs = [completed_run(repo, day + n * MINUTE) for n in range(250)]
    connector, integration = GitHubConnector(), github_integration(fake, ["octo/app"])
    _, result = collect(connector.live_sync, integration, None)
    fake.advance(SWEEP_INTERVAL.total_seconds())
    repo.rerun(runs[5])  # created early in the day: on the list's last page
    repo.complete_run(runs[5], "failure")
    fake.reset_requests()
    events, result = collect(connector.live_sync, integration, result.state)
    assert [e.external_id for e in events] == [f"github:octo/app:run:{runs[5]}:attempt:2"]
    pages = [(r.query["page"], r.status) for r in sweep_requests(fake) if r.query["created"].startswith(
        day.date().isoformat())]
    assert pages == [("1", 304), ("2", 304), ("3", 200)]


def test_days_over_githubs_1000_result_cap_are_swept_by_hour(fake):
    repo = busy_repo(fake)
    day = (fake.now() - 15 * DAY).replace(hour=0, minute=0, second=0, microsecond=0)
    runs = [completed_run(repo, day + n * dt.timedelta(seconds=70)) for n in range(1100)]
    connector, integration = GitHubConnector(), github_integration(fake, ["octo/app"])
    _, result = collect(connector.live_sync, integration, None)
    fake.advance(SWEEP_INTERVAL.total_seconds())
    # The first of the day's runs: past the 1,000 results a whole-day list would show.
    repo.rerun(runs[0])
    repo.complete_run(runs[0], "success")
    fake.reset_requests()
    events, result = collect(connector.live_sync, integration, result.state)
    assert [e.external_id for e in events] == [f"github:octo/app:run:{runs[0]}:attempt:2"]
    asked = {r.query["created"][:13] for r in sweep_requests(fake) if r.query["created"].startswith(
        day.date().isoformat())}
    with_runs = {(day + n * dt.timedelta(seconds=70)).strftime("%Y-%m-%dT%H") for n in range(1100)}
    assert asked == with_runs and len(with_runs) == 22  # by hour; the 2 hours without runs not asked again


def test_sweeps_fall_due_together_once_per_slot_of_the_clock(fake):
    for name in ("octo/a", "octo/b"):
        busy_repo(fake, name)
    connector = GitHubConnector()
    _, result = collect(connector.live_sync, github_integration(fake, ["octo/a"]), None)  # at 10:00
    fake.advance((SWEEP_INTERVAL / 3).total_seconds())
    integration = github_integration(fake, ["octo/a", "octo/b"])
    _, result = collect(connector.live_sync, integration, result.state)  # octo/b's first sweep, 10:10
    swept_at = {name: s["rerun_sweep"]["at"] for name, s in result.state["repos"].items()}
    assert swept_at["octo/a"] < swept_at["octo/b"]
    fake.advance((SWEEP_INTERVAL / 3).total_seconds())
    assert connector.detect_changes(integration, result.state).changed is False  # 10:20
    fake.advance((SWEEP_INTERVAL / 3 + MINUTE).total_seconds())
    assert connector.detect_changes(integration, result.state).changed  # 10:31: both due
    _, result = collect(connector.live_sync, integration, result.state)
    assert all(result.state["repos"][name]["rerun_sweep"]["at"] > swept_at[name] for name in swept_at)


def test_a_sweep_is_never_due_within_half_an_interval_of_the_last(fake):
    busy_repo(fake)
    connector, integration = GitHubConnector(), github_integration(fake, ["octo/app"])
    fake.advance((25 * MINUTE).total_seconds())
    _, result = collect(connector.live_sync, integration, None)  # first sweep at 10:25
    fake.advance((6 * MINUTE).total_seconds())
    assert connector.detect_changes(integration, result.state).changed is False  # 10:31: a new slot, too soon
    fake.advance((10 * MINUTE).total_seconds())
    check = connector.detect_changes(integration, result.state)  # 10:41
    assert check.changed and "re-run sweep due" in check.reason
