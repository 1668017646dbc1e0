"""The GitHub connector against the fake GitHub API, through the real PyGithub client."""

import datetime as dt
import math

import pytest

from painchain_pipelines.connectors.base import (
    AuthError,
    ConfigError,
    RateLimited,
    TimeWindow,
    TransientError,
)
from painchain_pipelines.connectors.github import GitHubConnector
from tests.fakes import FakeGitHub
from tests.github.conftest import TOKEN, collect, github_integration

H = dt.timedelta(hours=1)


def day_window(moment: dt.datetime) -> TimeWindow:
    start = dt.datetime.combine(moment.date(), dt.time(), dt.timezone.utc)
    return TimeWindow(start, start + dt.timedelta(days=1))


def counted_list_requests(fake, path_suffix):
    return [r for r in fake.requests if r.canonical_path.endswith(path_suffix) and r.counted]


def test_window_sync_builds_every_kind_of_event(fake):
    repo = fake.add_repo("octo/app")
    day = (fake.now() - dt.timedelta(days=2)).replace(hour=10, minute=0, second=0, microsecond=0)
    sha = repo.add_commit(message="Fix login\n\nlong body", authored_at=day, author_login="alice")
    number = repo.open_pull("Add cache", user="bob", created_at=day + H)
    repo.merge_pull(number, at=day + 2 * H, merge_commit_sha=sha)
    closed = repo.open_pull("Abandoned", created_at=day + H)
    repo.close_pull(closed, at=day + 3 * H)
    repo.add_release("v1.2.0", name="v1.2.0", created_at=day + H, published_at=day + 4 * H)
    repo.add_release("v2-draft", draft=True, created_at=day + H)
    run = repo.add_workflow_run(name="CI", head_sha=sha, created_at=day + 5 * H)
    repo.complete_run(run, "failure", at=day + 5 * H + dt.timedelta(minutes=7))
    in_progress = repo.add_workflow_run(name="Deploy", head_sha=sha, created_at=day + 6 * H, status="in_progress")
    deployment = repo.add_deployment("production", sha=sha, ref="main", created_at=day + 7 * H)
    repo.add_deployment_status(deployment, "in_progress", at=day + 7 * H)
    repo.add_deployment_status(deployment, "success", at=day + 7 * H + dt.timedelta(minutes=3),
                               log_url="https://ci.example/deploy/1")

    events, result = collect(GitHubConnector().window_sync, github_integration(fake, ["octo/app"]), day_window(day))
    by_id = {e.external_id: e for e in events}
    release_id = next(k for k in by_id if ":release:" in k)
    status_id = next(k for k in by_id if ":status:" in k)
    assert set(by_id) == {
        f"github:octo/app:commit:{sha}",
        f"github:octo/app:pr:{number}:opened",
        f"github:octo/app:pr:{number}:merged",
        f"github:octo/app:pr:{closed}:opened",
        f"github:octo/app:pr:{closed}:closed:{int((day + 3 * H).timestamp())}",
        f"github:octo/app:run:{run}:attempt:1",
        f"github:octo/app:deployment:{deployment}:created",
        release_id,
        status_id,
    }
    assert status_id.startswith(f"github:octo/app:deployment:{deployment}:status:")
    commit = by_id[f"github:octo/app:commit:{sha}"]
    assert commit.title == "Commit to main: Fix login"
    assert commit.timestamp == day
    assert commit.project == "octo/app"
    assert commit.data["url"] == f"https://github.com/octo/app/commit/{sha}"
    assert commit.data["author"] == "alice" and commit.data["sha"] == sha
    merged = by_id[f"github:octo/app:pr:{number}:merged"]
    assert merged.timestamp == day + 2 * H and merged.data["mergeCommitSha"] == sha and merged.data["sha"] == sha
    assert merged.data["url"].endswith(f"/octo/app/pull/{number}") and merged.data["author"] == "bob"
    run_event = by_id[f"github:octo/app:run:{run}:attempt:1"]
    assert run_event.title == "Workflow CI #1 failed on main"
    assert run_event.data["conclusion"] == "failure" and run_event.data["durationSeconds"] == 7 * 60
    assert run_event.data["headSha"] == sha and run_event.timestamp == day + 5 * H + dt.timedelta(minutes=7)
    assert not any(f":run:{in_progress}:" in e.external_id for e in events)  # not final yet
    final = next(e for e in events if ":status:" in e.external_id)
    assert final.title.startswith("Deployment to production succeeded")
    assert final.data["state"] == "success" and final.data["url"] == "https://ci.example/deploy/1"
    assert final.data["durationSeconds"] == 180
    release = next(e for e in events if ":release:" in e.external_id)
    assert release.title == "Release v1.2.0 published" and release.timestamp == day + 4 * H
    assert result.stats.failed_sources == {}
    assert sum(result.stats.per_stream.values()) == len(events) == 9


def test_pagination_is_followed_to_the_end_with_the_fewest_requests(fake):
    repo = fake.add_repo("octo/big")
    day = (fake.now() - dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    for n in range(250):
        repo.add_commit(message=f"c{n}", authored_at=day + dt.timedelta(minutes=n))
    for n in range(130):
        pr = repo.open_pull(f"pr {n}", created_at=day + dt.timedelta(minutes=n))
        repo.merge_pull(pr, at=day + dt.timedelta(minutes=n + 1))
    fake.reset_requests()
    events, result = collect(GitHubConnector().window_sync, github_integration(fake, ["octo/big"]), day_window(day))
    assert sum(1 for e in events if ":commit:" in e.external_id) == 250
    assert sum(1 for e in events if e.external_id.endswith(":merged")) == 130
    assert len(counted_list_requests(fake, "/commits")) == math.ceil(250 / 100)
    assert len(counted_list_requests(fake, "/pulls")) == math.ceil(130 / 100)
    assert all(r.query.get("per_page") in (None, "100") for r in fake.requests)


def test_window_keeps_only_its_window_and_catches_runs_that_finish_inside_it(fake):
    repo = fake.add_repo("octo/app")
    midnight = (fake.now() - dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    repo.add_commit(message="day before", authored_at=midnight - H)
    repo.add_commit(message="inside", authored_at=midnight + H)
    late_run = repo.add_workflow_run(created_at=midnight - dt.timedelta(minutes=10))
    repo.complete_run(late_run, "success", at=midnight + dt.timedelta(minutes=10))
    events, _ = collect(GitHubConnector().window_sync, github_integration(fake, ["octo/app"]), day_window(midnight))
    titles = sorted(e.title for e in events)
    assert titles == ["Commit to main: inside", "Workflow CI #1 succeeded on main"]


def test_filtered_run_lists_over_1000_are_split(fake):
    repo = fake.add_repo("octo/busy")
    start = (fake.now() - dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    for n in range(1100):
        run = repo.add_workflow_run(created_at=start + dt.timedelta(seconds=60 * n))
        repo.complete_run(run, "success", at=start + dt.timedelta(seconds=60 * n + 30))
    events, _ = collect(GitHubConnector().window_sync, github_integration(fake, ["octo/busy"]), day_window(start))
    assert len({e.external_id for e in events}) == 1100


def test_inaccessible_repositories_are_reported_and_the_others_ingested(fake):
    fake.add_repo("octo/ok").add_commit(message="ok", authored_at=fake.now() - H)
    fake.add_repo("octo/secret")
    fake.set_repo_error("octo/secret", 404)
    fake.add_repo("octo/forbidden")
    fake.set_repo_error("octo/forbidden", 403)
    integration = github_integration(fake, ["octo/ok", "octo/secret", "octo/forbidden"])
    events, result = collect(GitHubConnector().live_sync, integration, None)
    assert [e.title for e in events] == ["Commit to main: ok"]
    assert set(result.stats.failed_sources) == {"octo/secret", "octo/forbidden"}
    assert "404" in result.stats.failed_sources["octo/secret"]
    assert "octo/secret" not in result.state["repos"]
    with pytest.raises(ConfigError) as excinfo:
        collect(GitHubConnector().live_sync, github_integration(fake, ["octo/secret"]), None)
    assert excinfo.value.field == "repositories"


def test_bad_token_fails_fast_naming_the_field(fake):
    fake.add_repo("octo/app")
    integration = github_integration(fake, ["octo/app"])
    integration.config["token"] = "wrong"
    with pytest.raises(AuthError) as excinfo:
        collect(GitHubConnector().live_sync, integration, None)
    assert "'token'" in str(excinfo.value) and "wrong" not in str(excinfo.value)
    assert sum(1 for r in fake.requests if r.status == 401) == 1  # no retries


@pytest.mark.parametrize(
    "config, field",
    [({"repositories": "not json"}, "repositories"), ({"repositories": ["nope"]}, "repositories"),
     ({"repositories": []}, "repositories"), ({"token": ""}, "token"), ({"baseUrl": "ftp://x"}, "baseUrl"),
     ({"branches": [""]}, "branches")],
)
def test_config_errors_name_the_field(fake, config, field):
    integration = github_integration(fake, ["octo/app"])
    integration.config.update(config)
    with pytest.raises(ConfigError) as excinfo:
        GitHubConnector().validate(integration)
    assert excinfo.value.field == field


def test_transient_errors_are_retried_inline_then_reported(fake):
    fake.add_repo("octo/app").add_commit(message="x", authored_at=fake.now() - H)
    integration = github_integration(fake, ["octo/app"])
    fake.fail_next(2, status=502, path_contains="/commits")
    events, result = collect(GitHubConnector().live_sync, integration, None)
    assert [e.title for e in events] == ["Commit to main: x"]
    assert result.stats.retries == 2
    fake.fail_next(50, status=503)
    with pytest.raises(TransientError):
        collect(GitHubConnector().live_sync, integration, None)


def test_long_rate_limit_waits_become_a_later_retry(fake):
    fake.add_repo("octo/app")
    integration = github_integration(fake, ["octo/app"])
    fake.exhaust_rate_limit(reset_in=1800)
    with pytest.raises(RateLimited) as excinfo:
        collect(GitHubConnector().live_sync, integration, None)
    assert 1700 < excinfo.value.retry_after < 1900
    fake.advance(1801)
    collect(GitHubConnector().live_sync, integration, None)  # works again after the reset
    fake.secondary_rate_limit_next(retry_after=600)
    with pytest.raises(RateLimited) as excinfo:
        collect(GitHubConnector().live_sync, integration, None)
    assert excinfo.value.retry_after == 600


def test_short_secondary_rate_limit_is_waited_inline(fake):
    fake.add_repo("octo/app").add_commit(message="x", authored_at=fake.now() - H)
    fake.secondary_rate_limit_next(retry_after=1, path_contains="/commits")
    events, result = collect(GitHubConnector().live_sync, github_integration(fake, ["octo/app"]), None)
    assert len(events) == 1 and result.stats.retries == 1


def test_live_sync_catches_late_pushes_final_statuses_and_reruns(fake):
    repo = fake.add_repo("octo/app")
    now = fake.now()
    repo.add_commit(message="first", authored_at=now - 2 * H)
    run = repo.add_workflow_run(created_at=now - H, status="in_progress")
    deployment = repo.add_deployment(created_at=now - H)
    repo.add_deployment_status(deployment, "in_progress", at=now - H)
    connector, integration = GitHubConnector(), github_integration(fake, ["octo/app"])
    first, result = collect(connector.live_sync, integration, None)
    assert sorted(e.external_id.split(":")[2] for e in first) == ["commit", "deployment"]
    assert not any(":run:" in e.external_id for e in first)  # in progress: not final yet

    fake.advance(600)
    # authored 5 hours ago, pushed now: older than the last sync, still new on the branch
    late = repo.add_commit(message="late push", authored_at=fake.now() - 5 * H)
    repo.complete_run(run, "success")
    repo.add_deployment_status(deployment, "failure")
    second, result = collect(connector.live_sync, integration, result.state)
    assert {e.external_id for e in second} == {
        f"github:octo/app:commit:{late}",
        f"github:octo/app:run:{run}:attempt:1",
        next(e.external_id for e in second if ":status:" in e.external_id),
    }
    assert next(e for e in second if ":run:" in e.external_id).data["conclusion"] == "success"
    assert next(e for e in second if ":status:" in e.external_id).data["state"] == "failure"

    repo.rerun(run)
    repo.complete_run(run, "failure")
    third, result = collect(connector.live_sync, integration, result.state)
    assert [e.external_id for e in third] == [f"github:octo/app:run:{run}:attempt:2"]
    assert third[0].title.endswith("(attempt 2)")

    fourth, result = collect(connector.live_sync, integration, result.state)
    assert fourth == []


def test_idle_poll_costs_no_rate_limited_request(fake):
    repo = fake.add_repo("octo/app")
    repo.add_commit(message="x", authored_at=fake.now() - H)
    repo.add_workflow_run(created_at=fake.now() - H, status="in_progress")
    connector, integration = GitHubConnector(), github_integration(fake, ["octo/app"], branches=["release"])
    repo.create_branch("release")
    _, result = collect(connector.live_sync, integration, None)
    fake.reset_requests()
    check = connector.detect_changes(integration, result.state)
    assert check.changed is False
    assert [r for r in fake.requests if r.counted] == []
    # main + release commits, pulls, releases, runs, deployments, the pending run
    assert check.stats.counters.get("api_not_modified_304", 0) == len(fake.requests) == 6
    hotfix = repo.add_commit(branch="release", message="hotfix")
    check = connector.detect_changes(integration, result.state)
    assert check.changed and "commits:release" in check.reason
    events, _ = collect(connector.live_sync, integration, result.state)
    [event] = [e for e in events if e.external_id == f"github:octo/app:commit:{hotfix}"]
    assert event.title == "Commit to release: hotfix" and event.data["branch"] == "release"


@pytest.mark.parametrize("final_state, verb", [("failure", "failed"), ("error", "errored")])
def test_deployments_end_in_their_final_state(fake, final_state, verb):
    repo = fake.add_repo("octo/app")
    day = (fake.now() - dt.timedelta(days=2)).replace(hour=10, minute=0, second=0, microsecond=0)
    deployment = repo.add_deployment("staging", ref="main", created_at=day)
    repo.add_deployment_status(deployment, "in_progress", at=day)
    repo.add_deployment_status(deployment, final_state, at=day + dt.timedelta(minutes=2))
    events, _ = collect(GitHubConnector().window_sync, github_integration(fake, ["octo/app"]), day_window(day))
    [final] = [e for e in events if ":status:" in e.external_id]
    assert final.data["state"] == final_state and final.data["environment"] == "staging"
    assert final.title.startswith(f"Deployment to staging {verb}")


def test_github_enterprise_base_url(fake):
    with FakeGitHub(token=TOKEN, api_prefix="/api/v3") as ghe:
        ghe.add_repo("corp/app").add_commit(message="ghe", authored_at=ghe.now() - H)
        events, _ = collect(GitHubConnector().live_sync, github_integration(ghe, ["corp/app"]), None)
    assert [e.title for e in events] == ["Commit to main: ghe"]
    assert all(r.path.startswith("/repos/corp/app") for r in ghe.requests)


@pytest.mark.parametrize("mode", ["live", "window"])
def test_deployment_links_point_at_the_web_host_on_github_enterprise(mode):
    # The web UI of an Enterprise server is not where its API is: take links from the API's html_url.
    with FakeGitHub(token=TOKEN, api_prefix="/api/v3", html_base="https://ghe.example.com") as ghe:
        repo = ghe.add_repo("corp/app")
        repo.add_commit(message="x", authored_at=ghe.now() - 2 * H)
        deployment = repo.add_deployment("prod eu/1", created_at=ghe.now() - H)
        repo.add_deployment_status(deployment, "success", at=ghe.now() - H)
        integration = github_integration(ghe, ["corp/app"])
        if mode == "live":
            events, _ = collect(GitHubConnector().live_sync, integration, None)
        else:
            events, _ = collect(GitHubConnector().window_sync, integration, TimeWindow(ghe.now() - 3 * H, ghe.now()))
    links = {e.data["state"]: e.data["url"] for e in events if e.data["type"] == "deployment"}
    assert links == {"created": "https://ghe.example.com/corp/app/deployments/prod%20eu%2F1",
                     "success": "https://ghe.example.com/corp/app/deployments/prod%20eu%2F1"}


def test_deployment_links_on_github_com(fake):
    repo = fake.add_repo("octo/app")
    repo.add_commit(message="x", authored_at=fake.now() - 2 * H)
    repo.add_deployment("production", created_at=fake.now() - H)
    events, _ = collect(GitHubConnector().live_sync, github_integration(fake, ["octo/app"]), None)
    [event] = [e for e in events if e.data["type"] == "deployment"]
    assert event.data["url"] == "https://github.com/octo/app/deployments/production"


def test_reopened_and_closed_again_pr_gives_two_close_events(fake):
    repo = fake.add_repo("octo/app")
    start = fake.now() - 5 * H
    number = repo.open_pull("flaky", created_at=start)
    repo.close_pull(number, at=start + H)
    connector, integration = GitHubConnector(), github_integration(fake, ["octo/app"])
    first, result = collect(connector.live_sync, integration, None)
    repo.reopen_pull(number)
    fake.advance(60)
    repo.close_pull(number)
    second, _ = collect(connector.live_sync, integration, result.state)
    closes = [e.external_id for e in first + second if ":closed:" in e.external_id]
    assert len(set(closes)) == 2


def test_429_with_short_retry_after_is_retried_inline(fake):
    fake.add_repo("octo/app").add_commit(message="x", authored_at=fake.now() - H)
    fake.fail_next(1, status=429, path_contains="/pulls", headers={"Retry-After": "1"},
                   body={"message": "Too many requests"})
    events, result = collect(GitHubConnector().live_sync, github_integration(fake, ["octo/app"]), None)
    assert [e.title for e in events] == ["Commit to main: x"]
    assert result.stats.retries == 1
    assert [r.status for r in fake.requests if r.canonical_path.endswith("/pulls")] == [429, 200]


def test_requests_carry_rate_limit_figures_into_the_stats(fake):
    fake.add_repo("octo/app").add_commit(message="x", authored_at=fake.now() - H)
    _, result = collect(GitHubConnector().live_sync, github_integration(fake, ["octo/app"]), None)
    assert result.stats.gauges["rate_limit_remaining"] == fake.rate_remaining
    assert result.stats.api_requests == len(fake.requests)
