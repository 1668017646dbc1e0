"""Live cursors and reported spans on GitHub's clock (its Date header), not this host's."""

import datetime as dt
import json
import logging

import pytest

from painchain_pipelines.connectors.base import RateLimited, TimeWindow, iso, parse_time, utcnow
from painchain_pipelines.connectors.github import GitHubConnector
from painchain_pipelines.connectors.github.connector import STATE_VERSION, Tuning
from tests.fakes import FakeGitHub
from tests.github.conftest import TOKEN, collect, github_integration, offset_to_ten_am

H = dt.timedelta(hours=1)
MINUTE = dt.timedelta(minutes=1)
OVERLAP = Tuning().overlap


def second(moment: dt.datetime) -> dt.datetime:
    return moment.replace(microsecond=0)


def make_changes(repo, fake) -> set[str]:
    """One change of every kind, at the fake's clock; returns the external ids they must give."""
    number = repo.open_pull("Add cache")
    release = repo.add_release("v2.0.0")
    run = repo.add_workflow_run()
    repo.complete_run(run, "failure")
    deployment = repo.add_deployment("production")
    status = repo.add_deployment_status(deployment, "success")
    sha = repo.add_commit(message="after")
    name = repo.full_name
    return {f"github:{name}:pr:{number}:opened", f"github:{name}:release:{release}",
            f"github:{name}:run:{run}:attempt:1", f"github:{name}:deployment:{deployment}:created",
            f"github:{name}:deployment:{deployment}:status:{status}", f"github:{name}:commit:{sha}"}


@pytest.mark.parametrize("github_ahead_hours", [-3, 3], ids=["github-3h-behind", "github-3h-ahead"])
def test_live_syncs_lose_nothing_and_reread_nothing_under_clock_skew(github_ahead_hours):
    with FakeGitHub(token=TOKEN, clock_offset=github_ahead_hours * 3600) as fake:
        repo = fake.add_repo("octo/app")
        # Changes of the hour before the first sync: a cursor on the host's clock would either
        # skip the next ones (GitHub behind) or read these again (GitHub ahead).
        fake.advance(-3600)
        before = make_changes(repo, fake)
        fake.advance(3600)
        connector, integration = GitHubConnector(), github_integration(fake, ["octo/app"])
        started = second(fake.now())
        first, result = collect(connector.live_sync, integration, None)
        assert {e.external_id for e in first} == before
        assert started <= parse_time(result.state["repos"]["octo/app"]["since"]) <= fake.now()

        for _ in range(3):  # changes between polls, each poll more than the overlap after the last
            fake.advance(60)
            expected = make_changes(repo, fake)
            fake.advance((OVERLAP + 5 * MINUTE).total_seconds())
            events, result = collect(connector.live_sync, integration, result.state)
            assert {e.external_id for e in events} == expected
            assert len(events) == len(expected)


def test_first_live_sync_reports_its_span_on_githubs_clock():
    with FakeGitHub(token=TOKEN, clock_offset=-3 * 3600) as fake:
        fake.add_repo("octo/app").add_commit(message="x", authored_at=fake.now() - H)
        started = second(fake.now())
        _, result = collect(GitHubConnector().live_sync, github_integration(fake, ["octo/app"]), None,
                            lookback=dt.timedelta(days=7))
        finished = fake.now()
    assert started <= result.covered.end <= finished
    assert result.covered == TimeWindow(result.covered.end - dt.timedelta(days=7), result.covered.end)
    assert result.window == result.covered


def test_live_covered_span_starts_at_the_latest_lower_bound():
    connector = GitHubConnector(Tuning(rerun_sweep_interval=dt.timedelta(0)))  # every sync sweeps
    with FakeGitHub(token=TOKEN, clock_offset=-3 * 3600) as fake:
        for name in ("octo/old", "octo/new"):
            fake.add_repo(name).add_commit(message="x", authored_at=fake.now() - H)
        _, first = collect(connector.live_sync, github_integration(fake, ["octo/old"]), None)
        fake.advance(300)
        _, second_sync = collect(connector.live_sync, github_integration(fake, ["octo/old", "octo/new"]),
                                 first.state)
    since_old = parse_time(first.state["repos"]["octo/old"]["since"])
    now_old = parse_time(second_sync.state["repos"]["octo/old"]["since"])
    now_new = parse_time(second_sync.state["repos"]["octo/new"]["since"])
    # octo/new reads 7 days back, octo/old from its cursor: only the latter span is read by both.
    assert second_sync.covered == TimeWindow(since_old - OVERLAP, min(now_old, now_new))
    assert second_sync.window == TimeWindow(now_new - dt.timedelta(days=7), max(now_old, now_new))


def test_between_rerun_sweeps_the_covered_span_ends_at_the_last_sweep():
    with FakeGitHub(token=TOKEN, clock_offset=offset_to_ten_am()) as fake:  # 10:00: no sweep falls due
        fake.add_repo("octo/app").add_commit(message="x", authored_at=fake.now() - H)
        connector, integration = GitHubConnector(), github_integration(fake, ["octo/app"])
        _, first = collect(connector.live_sync, integration, None)
        swept = parse_time(first.state["repos"]["octo/app"]["rerun_sweep"]["at"])
        fake.advance(120)
        _, second_sync = collect(connector.live_sync, integration, first.state)
    # Re-runs of older runs done since the sweep are not read yet: nothing after it is claimed.
    assert second_sync.covered.end == swept
    assert second_sync.covered.start == swept - OVERLAP


@pytest.mark.parametrize("failing", ["repository", "stream"])
def test_nothing_is_covered_when_a_source_failed(fake, failing):
    for name in ("octo/ok", "octo/broken"):
        fake.add_repo(name).add_commit(message="x", authored_at=fake.now() - H)
    if failing == "repository":
        fake.set_repo_error("octo/broken", 404)
    else:
        fake.fail_next(100, status=403, path_contains="/repos/octo/broken/actions")
    integration = github_integration(fake, ["octo/ok", "octo/broken"])
    _, live = collect(GitHubConnector().live_sync, integration, None)
    now = fake.now()
    _, window = collect(GitHubConnector().window_sync, integration, TimeWindow(now - 24 * H, now - H))
    assert live.stats.failed_sources and live.covered is None
    assert window.stats.failed_sources and window.covered is None


def test_window_sync_covers_its_window_up_to_githubs_now():
    with FakeGitHub(token=TOKEN, clock_offset=-3 * 3600) as fake:
        fake.add_repo("octo/app").add_commit(message="x", authored_at=fake.now() - H)
        integration = github_integration(fake, ["octo/app"])
        past = TimeWindow(fake.now() - 48 * H, fake.now() - 24 * H)
        _, result = collect(GitHubConnector().window_sync, integration, past)
        assert result.covered == past
        # "today until now" on a host 3 hours ahead reaches past GitHub's now: not claimed
        host_today = TimeWindow(fake.now() - 2 * H, utcnow())
        started = second(fake.now())
        _, result = collect(GitHubConnector().window_sync, integration, host_today)
        finished = fake.now()
    assert result.covered.start == host_today.start
    assert started <= result.covered.end <= finished


def test_state_of_the_previous_version_is_read_on_githubs_clock(caplog):
    caplog.set_level(logging.DEBUG)
    with FakeGitHub(token=TOKEN, clock_offset=-3 * 3600) as fake:  # the host ran 3 h ahead
        repo = fake.add_repo("octo/app")
        old_commit = repo.add_commit(message="old", authored_at=fake.now() - 2 * H)
        old_pr = repo.open_pull("old", created_at=fake.now() - 2 * H)
        run = repo.add_workflow_run(created_at=fake.now() - H, status="in_progress")
        connector, integration = GitHubConnector(), github_integration(fake, ["octo/app"])
        _, result = collect(connector.live_sync, integration, None)
        saved = result.state["repos"]["octo/app"]
        fake.advance(120)
        expected = make_changes(repo, fake)
        repo.complete_run(run, "success")
        expected.add(f"github:octo/app:run:{run}:attempt:1")
        fake.advance(30 * 60)  # more than the overlap: a cursor merely clamped to now would skip these
        # What version 1 saved: `since` = when the sync started, on the host's clock (ahead by
        # the same as now: advance() moved only GitHub's clock); no html_url, no re-run sweep.
        host_ahead = utcnow() - fake.now()
        v1_state = {"version": 1, "repos": {"octo/app": {
            "since": iso(parse_time(saved["since"]) + host_ahead),
            "info": {"full_name": "octo/app", "default_branch": "main"},
            "etags": saved["etags"], "heads": saved["heads"], "pending_runs": saved["pending_runs"],
            "pending_deployments": {}}}}
        assert connector.detect_changes(integration, v1_state).changed
        fake.reset_requests()
        events, upgraded = collect(connector.live_sync, integration, v1_state)
    assert {e.external_id for e in events} == expected  # nothing lost, and no 7-day re-read
    assert not {f"github:octo/app:commit:{old_commit}", f"github:octo/app:pr:{old_pr}:opened"} & {
        e.external_id for e in events}
    assert any(r.canonical_path.endswith("/compare/" + saved["heads"]["main"] + "..." + repo.head())
               for r in fake.requests)  # the branch head was carried over
    assert "if-none-match" not in fake.requests[0].headers  # info read again for html_url
    repo_state = upgraded.state["repos"]["octo/app"]
    assert upgraded.state["version"] == STATE_VERSION
    assert repo_state["info"]["html_url"] == "https://github.com/octo/app"
    assert parse_time(repo_state["since"]) <= fake.now()
    assert TOKEN not in json.dumps(upgraded.state) and TOKEN not in caplog.text


def test_state_of_the_previous_version_survives_a_failing_repository():
    with FakeGitHub(token=TOKEN, clock_offset=-3 * 3600) as fake:
        for name in ("octo/ok", "octo/down"):
            fake.add_repo(name).add_commit(message="x", authored_at=fake.now() - H)
        integration = github_integration(fake, ["octo/ok", "octo/down"])
        _, result = collect(GitHubConnector().live_sync, integration, None)
        host_since = parse_time(result.state["repos"]["octo/down"]["since"]) + 3 * H
        v1_state = {"version": 1, "repos": {
            name: {**repo_state, "since": iso(host_since)} for name, repo_state in result.state["repos"].items()}}
        fake.set_repo_error("octo/down", 404)
        _, upgraded = collect(GitHubConnector().live_sync, integration, v1_state)
    kept = parse_time(upgraded.state["repos"]["octo/down"]["since"])
    # kept for the next attempt, moved onto GitHub's clock like the others
    assert host_since - 3 * H - MINUTE <= kept <= host_since - 3 * H + MINUTE
    assert upgraded.state["version"] == STATE_VERSION and upgraded.covered is None


def test_rate_limit_waits_are_measured_on_githubs_clock():
    with FakeGitHub(token=TOKEN, clock_offset=3 * 3600) as fake:
        fake.add_repo("octo/app")
        fake.exhaust_rate_limit(reset_in=1800)  # X-RateLimit-Reset: an epoch second of GitHub's clock
        with pytest.raises(RateLimited) as excinfo:
            collect(GitHubConnector().live_sync, github_integration(fake, ["octo/app"]), None)
    assert 1700 < excinfo.value.retry_after < 1900  # not 3 h 30 min
