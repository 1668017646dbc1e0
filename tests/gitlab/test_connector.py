"""The GitLab connector against the fake GitLab API (a real socket), through the real python-gitlab."""

import datetime as dt
import logging

import pytest

from painchain_pipelines.connectors.base import (
    AuthError,
    ConfigError,
    RateLimited,
    TimeWindow,
    TransientError,
)
from painchain_pipelines.connectors.gitlab import GitLabConnector
from painchain_pipelines.connectors.gitlab.client import ClientTuning
from painchain_pipelines.connectors.gitlab.config import parse_config
from tests.fakes.gitlab_server import FakeGitLab
from tests.gitlab.conftest import TOKEN, H, M, collect, gitlab_integration

D = dt.timedelta(days=1)
DAY = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
WINDOW = TimeWindow(DAY, DAY + D)


def ids(events):
    return [e.external_id for e in events]


def by_id(events):
    assert len(ids(events)) == len(set(ids(events))), "an event was emitted twice"
    return {e.external_id: e for e in events}


def populate(world):
    """One project with one of everything on 2026-11-01 (the world's now is 2026-11-02 12:00)."""
    p = world.add_project("acme/platform/api", default_branch="main", branches=("release",))
    base = p.add_commit(committed_date=DAY - 2 * D, message="Initial commit", author="alice")
    fix = p.add_commit(committed_date=DAY + 9 * H, message="Fix login\n\nlong body", author="alice",
                       committer_tz_offset="+02:00")
    release_fix = p.add_commit(branch="release", committed_date=DAY + 9 * H + 30 * M, message="Backport fix")
    mr = p.add_merge_request("feature/x", created_at=DAY + 10 * H, title="Add cache", author="bob")
    mr.merge(at=DAY + 11 * H, merged_by="carol")
    closed = p.add_merge_request("feature/y", created_at=DAY + 10 * H, title="Abandoned")
    closed.close(at=DAY + 12 * H)
    pipeline = p.add_pipeline(ref="main", sha=fix.sha, created_at=DAY + 13 * H, status="running")
    pipeline.set_status("failed", at=DAY + 13 * H + 7 * M)
    running = p.add_pipeline(ref="main", sha=fix.sha, created_at=DAY + 14 * H, status="running")
    deployment = p.add_deployment(environment="production", ref="main", sha=fix.sha, created_at=DAY + 15 * H,
                                  status="running")
    deployment.set_status("success", at=DAY + 15 * H + 3 * M)
    p.add_release("v1.2.0", created_at=DAY + 16 * H, released_at=DAY + 16 * H)
    p.add_tag("build-1", sha=fix.sha, created_at=DAY + 17 * H)
    return dict(project=p, base=base, fix=fix, release_fix=release_fix, mr=mr, closed=closed, pipeline=pipeline,
                running=running, deployment=deployment)


def test_window_sync_builds_every_kind_of_event(world, fake, connector):
    o = populate(world)
    pid = o["project"].id
    integration = gitlab_integration(fake, ["acme/platform/api"], branches='["release"]')
    events, result = collect(connector.window_sync, integration, WINDOW)
    got = by_id(events)
    merged_mr = o["mr"]
    assert set(got) == {
        f"gitlab:{pid}:commit:{o['fix'].sha}",
        f"gitlab:{pid}:commit:{o['release_fix'].sha}",
        f"gitlab:{pid}:commit:{merged_mr.merge_commit_sha}",
        f"gitlab:{pid}:mr:{merged_mr.iid}:opened",
        f"gitlab:{pid}:mr:{merged_mr.iid}:merged",
        f"gitlab:{pid}:mr:{o['closed'].iid}:opened",
        f"gitlab:{pid}:mr:{o['closed'].iid}:closed:{int((DAY + 12 * H).timestamp())}",
        f"gitlab:{pid}:pipeline:{o['pipeline'].id}:failed:{int((DAY + 13 * H + 7 * M).timestamp())}",
        f"gitlab:{pid}:deployment:{o['deployment'].id}:success:{int((DAY + 15 * H + 3 * M).timestamp())}",
        f"gitlab:{pid}:release:v1.2.0",
        f"gitlab:{pid}:tag:v1.2.0",
        f"gitlab:{pid}:tag:build-1",
    }
    assert result.covered == WINDOW and result.state is None and not result.stats.failed_sources
    commit = got[f"gitlab:{pid}:commit:{o['fix'].sha}"]
    assert commit.title == "Commit to main: Fix login" and commit.timestamp == DAY + 9 * H
    assert commit.project == "acme/platform/api" and commit.connector == "gitlab"
    assert commit.data["url"] == f"{fake.url}/acme/platform/api/-/commit/{o['fix'].sha}"
    assert commit.data["sha"] == o["fix"].sha and commit.data["branch"] == "main"
    assert commit.data["author"] and commit.data["parents"] == [o["base"].sha]
    merged = got[f"gitlab:{pid}:mr:{merged_mr.iid}:merged"]
    assert merged.timestamp == DAY + 11 * H and merged.data["mergeCommitSha"] == merged_mr.merge_commit_sha
    assert merged.data["sourceBranch"] == "feature/x" and merged.data["targetBranch"] == "main"
    assert merged.data["iid"] == merged_mr.iid and merged.data["url"].endswith(f"/-/merge_requests/{merged_mr.iid}")
    failed = got[f"gitlab:{pid}:pipeline:{o['pipeline'].id}:failed:{int((DAY + 13 * H + 7 * M).timestamp())}"]
    assert failed.timestamp == DAY + 13 * H + 7 * M and failed.data["ref"] == "main"
    assert failed.data["sha"] == o["fix"].sha and failed.data["status"] == "failed"
    assert not any(f":pipeline:{o['running'].id}:" in i for i in got)  # not finished
    deploy = next(e for e in events if ":deployment:" in e.external_id)
    assert deploy.data["environment"] == "production" and deploy.data["status"] == "success"
    assert deploy.data["sha"] == o["fix"].sha and deploy.timestamp == DAY + 15 * H + 3 * M
    release = got[f"gitlab:{pid}:release:v1.2.0"]
    assert release.timestamp == DAY + 16 * H and release.data["tag"] == "v1.2.0"
    # every event links to its page and names its project
    assert all(e.data.get("url") and e.data["projectId"] == pid for e in events)


def test_window_sync_is_half_open(world, fake, connector):
    p = world.add_project("acme/app")
    at_start = p.add_commit(committed_date=DAY, message="at start")
    p.add_commit(committed_date=DAY + D, message="at end")  # belongs to the next day
    p.add_commit(committed_date=DAY - M, message="before")
    events, _ = collect(connector.window_sync, gitlab_integration(fake, ["acme/app"]), WINDOW)
    assert [e.data["sha"] for e in events] == [at_start.sha]


def test_window_sync_finds_a_late_push_behind_older_commits(world, fake, connector):
    """`since` would stop at the first older commit; the window sync does not use it."""
    p = world.add_project("acme/app")
    inside = p.add_commit(committed_date=DAY + 8 * H, message="inside")
    # pushed after `inside` but committed two days before the window: listed above `inside`
    p.add_commit(committed_date=DAY - 2 * D, pushed_at=DAY + 9 * H, message="old, pushed late")
    late = p.add_commit(committed_date=DAY + 10 * H, pushed_at=DAY + 30 * H, message="late push")
    events, _ = collect(connector.window_sync, gitlab_integration(fake, ["acme/app"]), WINDOW)
    assert {e.data["sha"] for e in events} == {inside.sha, late.sha}


def test_live_polls_report_each_change_once_with_its_final_status(world, fake, connector):
    o = populate(world)
    p, pid = o["project"], o["project"].id
    integration = gitlab_integration(fake, ["acme/platform/api"], branches=["release"])
    events, result = collect(connector.live_sync, integration, None, lookback=3 * D)
    first = by_id(events)
    assert f"gitlab:{pid}:commit:{o['fix'].sha}" in first and f"gitlab:{pid}:tag:build-1" in first
    assert not any(f":pipeline:{o['running'].id}:" in i for i in first)
    state = result.state
    seen = list(events)

    def poll():
        nonlocal state
        new, res = collect(connector.live_sync, integration, state, lookback=3 * D)
        state = res.state
        seen.extend(new)
        return new

    # the clock moves: a pipeline finishes, an MR opens and merges later, a commit dated an hour ago is pushed,
    # a manual deployment waits for approval, a failed pipeline is retried in place
    now = world.now
    o["running"].set_status("success", at=now + 5 * M)
    mr = p.add_merge_request("feature/z", created_at=now + 6 * M, title="Later")
    late = p.add_commit(committed_date=now - H, pushed_at=now + 20 * M, message="written an hour before its push")
    blocked = p.add_deployment(environment="production", ref="main", sha=o["fix"].sha, created_at=now + 7 * M,
                               status="blocked")
    retried = p.add_pipeline(ref="main", sha=o["fix"].sha, created_at=now + 8 * M, status="running")
    retried.set_status("failed", at=now + 12 * M)
    world.advance(15 * M)
    new = by_id(poll())
    assert set(new) == {
        f"gitlab:{pid}:pipeline:{o['running'].id}:success:{int((now + 5 * M).timestamp())}",
        f"gitlab:{pid}:mr:{mr.iid}:opened",
        f"gitlab:{pid}:deployment:{blocked.id}:blocked:{int((now + 7 * M).timestamp())}",
        f"gitlab:{pid}:pipeline:{retried.id}:failed:{int((now + 12 * M).timestamp())}",
    }
    assert poll() == []  # nothing moved

    retried.retry(at=now + 16 * M)
    retried.set_status("success", at=now + 25 * M)
    mr.merge(at=now + 26 * M)
    blocked.set_status("running", at=now + 40 * M)
    blocked.set_status("success", at=now + 45 * M)
    world.advance(50 * M)
    new = by_id(poll())
    # status changes are not activity: reported at once
    assert f"gitlab:{pid}:pipeline:{retried.id}:success:{int((now + 25 * M).timestamp())}" in new
    assert f"gitlab:{pid}:deployment:{blocked.id}:success:{int((now + 45 * M).timestamp())}" in new
    # the push and the merge came within GitLab's hour of activity throttling after the MR was opened
    # (12:06): last_activity_at did not move, but the events feed shows them: reported at once
    assert p.last_activity_at == now + 6 * M
    assert f"gitlab:{pid}:commit:{late.sha}" in new  # pushed an hour after its date
    assert new[f"gitlab:{pid}:commit:{late.sha}"].timestamp == now - H
    assert f"gitlab:{pid}:mr:{mr.iid}:merged" in new
    assert f"gitlab:{pid}:commit:{mr.merge_commit_sha}" in new
    world.advance(H)
    assert poll() == []
    world.advance(2 * H)
    assert poll() == []
    assert poll() == []
    by_id(seen)  # every event exactly once over all polls
    statuses = {e.external_id.split(":")[3]: e.data["status"] for e in seen if ":pipeline:" in e.external_id
                and e.external_id.split(":")[3] == str(retried.id)}
    assert statuses  # the retry's failure and its success are both there
    assert sum(1 for e in seen if f":pipeline:{retried.id}:" in e.external_id) == 2


def test_activity_inside_gitlabs_throttling_hour_is_reported_at_once(world, fake, connector):
    """last_activity_at moves at most once an hour; the events feed does not wait."""
    p = world.add_project("acme/app")
    p.add_commit(committed_date=world.now - 10 * M, message="moves last_activity_at")
    integration = gitlab_integration(fake, ["acme/app"])
    _, result = collect(connector.live_sync, integration, None, lookback=D)
    hidden = p.add_commit(committed_date=world.now + 5 * M, message="inside the hour")
    world.advance(10 * M)
    assert p.last_activity_at < hidden.committed_date  # GitLab did not move it
    check = connector.detect_changes(integration, result.state)
    assert check.changed and "push to main" in check.reason
    events, result = collect(connector.live_sync, integration, result.state, lookback=D)
    assert [e.data["sha"] for e in events] == [hidden.sha]
    assert not connector.detect_changes(integration, result.state).changed
    world.advance(H + 10 * M)
    assert not connector.detect_changes(integration, result.state).changed  # no catch-up needed
    events, result = collect(connector.live_sync, integration, result.state, lookback=D)
    assert events == []


def test_external_ids_are_the_same_in_window_and_live_syncs(world, fake, connector):
    populate(world)
    integration = gitlab_integration(fake, ["acme/platform/api"], branches=["release"])
    window_events, _ = collect(connector.window_sync, integration, WINDOW)
    live_events, _ = collect(connector.live_sync, integration, None, lookback=3 * D)
    live_in_window = {e.external_id: e for e in live_events if e.timestamp in WINDOW}
    assert set(by_id(window_events)) == set(live_in_window)
    for event in window_events:
        twin = live_in_window[event.external_id]
        assert (twin.timestamp, twin.title, twin.data) == (event.timestamp, event.title, event.data)


def test_probe_says_no_change_after_an_idle_sync_and_costs_little(world, fake, connector):
    populate(world)
    world.add_project("acme/other").add_commit(committed_date=DAY, message="x")
    integration = gitlab_integration(fake, ["acme/platform/api", "acme/other"])
    _, result = collect(connector.live_sync, integration, None, lookback=3 * D)
    world.advance(2 * H)
    _, result = collect(connector.live_sync, integration, result.state, lookback=3 * D)
    fake.reset_requests()
    check = connector.detect_changes(integration, result.state)
    assert not check.changed, check.reason
    # the events feed, the newest releases of the group acme, then per project one pipelines and
    # one deployments request (no projects listing: ids, paths and default branches are in the state)
    assert len(fake.requests) == 1 + 1 + 2 * 2 == check.stats.api_requests
    assert [r.path for r in fake.requests[:2]] == ["/api/v4/events", "/api/v4/groups/acme/releases"]
    fake.reset_requests()
    events, again = collect(connector.live_sync, integration, result.state, lookback=3 * D)
    assert events == [] and len(fake.requests) == 6


@pytest.mark.parametrize("what", ["pipeline", "deployment"])
def test_probe_sees_a_status_change_that_is_not_activity(world, fake, connector, what):
    o = populate(world)
    integration = gitlab_integration(fake, ["acme/platform/api"])
    _, result = collect(connector.live_sync, integration, None, lookback=3 * D)
    world.advance(2 * H)
    _, result = collect(connector.live_sync, integration, result.state, lookback=3 * D)
    assert not connector.detect_changes(integration, result.state).changed
    before = o["project"].last_activity_at
    if what == "pipeline":
        o["running"].set_status("canceled", at=world.now + M)
    else:
        o["project"].add_deployment(environment="staging", sha=o["fix"].sha, created_at=world.now - 3 * D,
                                    status="running").set_status("failed", at=world.now + M)
    world.advance(2 * M)
    assert o["project"].last_activity_at == before  # not activity
    check = connector.detect_changes(integration, result.state)
    assert check.changed and what in check.reason
    events, result = collect(connector.live_sync, integration, result.state, lookback=3 * D)
    assert [e.data["type"] for e in events] == [what]
    assert not connector.detect_changes(integration, result.state).changed


def test_probe_on_a_never_synced_integration_says_changed(world, fake, connector):
    world.add_project("acme/app")
    check = connector.detect_changes(gitlab_integration(fake, ["acme/app"]), None)
    assert check.changed and "never synced" in check.reason


@pytest.mark.parametrize("header", ["Retry-After", "RateLimit-Reset"])
def test_short_rate_limits_are_waited_inline_and_counted(world, fake, connector, sleeps, header):
    world.add_project("acme/app").add_commit(committed_date=DAY, message="x")
    fake.rate_limit(r"/repository/commits", times=1, retry_after=2, header=header)
    events, result = collect(connector.window_sync, gitlab_integration(fake, ["acme/app"]), WINDOW)
    assert len(events) == 1 and result.stats.retries == 1
    assert sleeps and 1 <= sleeps[0] <= 3  # measured on GitLab's clock (the world's), not this host's
    assert result.stats.api_requests == len(fake.requests)
    assert result.stats.counters["api_rate_limited_429"] == 1


@pytest.mark.parametrize("header", ["Retry-After", "RateLimit-Reset"])
def test_long_rate_limits_defer_the_run(world, fake, connector, header):
    world.add_project("acme/app")
    fake.rate_limit(r"/pipelines", times=1, retry_after=600, header=header)
    with pytest.raises(RateLimited) as info:
        collect(connector.live_sync, gitlab_integration(fake, ["acme/app"]), None, lookback=D)
    assert 590 <= info.value.retry_after <= 601


def test_server_errors_and_dropped_connections_are_retried(world, fake, connector, sleeps):
    world.add_project("acme/app").add_commit(committed_date=DAY, message="x")
    fake.fail(r"/repository/commits", status=502, times=1)
    fake.fail(r"/merge_requests", status=0, times=1)  # connection dropped
    events, result = collect(connector.window_sync, gitlab_integration(fake, ["acme/app"]), WINDOW)
    assert len(events) == 1 and result.stats.retries == 2 and len(sleeps) == 2
    assert result.stats.api_requests == len(fake.requests)


def test_persistent_server_errors_become_transient_errors(world, fake, connector):
    world.add_project("acme/app")
    fake.fail(r"/pipelines", status=503, times=50)
    with pytest.raises(TransientError) as info:
        collect(connector.live_sync, gitlab_integration(fake, ["acme/app"]), None, lookback=D)
    assert "503" in str(info.value) and TOKEN not in str(info.value)


@pytest.mark.parametrize("status", [403, 404])
def test_an_inaccessible_project_is_reported_and_the_others_ingest(world, fake, connector, status):
    world.add_project("acme/app").add_commit(committed_date=DAY, message="x")
    world.add_project("acme/secret").add_commit(committed_date=DAY, message="y")
    fake.deny("acme/secret", status=status)
    integration = gitlab_integration(fake, ["acme/app", "acme/secret"])
    events, result = collect(connector.live_sync, integration, None, lookback=3 * D)
    assert [e.project for e in events] == ["acme/app"]
    assert str(status) in result.stats.failed_sources["acme/secret"] and result.covered is None
    events, result = collect(connector.window_sync, integration, WINDOW)
    assert [e.project for e in events] == ["acme/app"] and "acme/secret" in result.stats.failed_sources


def test_no_accessible_project_is_an_error(world, fake, connector):
    world.add_project("acme/secret")
    fake.deny("acme/secret")
    with pytest.raises(ConfigError) as info:
        collect(connector.live_sync, gitlab_integration(fake, ["acme/secret", "acme/missing"]), None, lookback=D)
    assert info.value.field == "projects"


def test_a_bad_token_names_the_field_and_never_shows_the_token(world, fake, connector, caplog):
    world.add_project("acme/app")
    bad = "gitlab-WRONG-token-do-not-print-42"
    integration = gitlab_integration(fake, ["acme/app"], token=bad)
    caplog.set_level(logging.DEBUG)
    for call in (lambda: connector.live_sync(integration, None, lambda e: None, D),
                 lambda: connector.window_sync(integration, WINDOW, lambda e: None),
                 lambda: connector.detect_changes(integration, None)):
        with pytest.raises(AuthError) as info:
            call()
        assert info.value.field == "token" and "'token'" in str(info.value)
        assert bad not in str(info.value) and bad not in repr(info.value)
        assert info.value.__cause__ is None and info.value.__context__ is None or bad not in str(info.value.__context__)
    assert bad not in caplog.text and TOKEN not in caplog.text
    assert bad not in repr(parse_config(integration.config))


def test_self_managed_gitlab_under_a_path_prefix(world):
    p = world.add_project("acme/app")
    commit = p.add_commit(committed_date=DAY, message="x")
    with FakeGitLab(world, token=TOKEN, path_prefix="/gitlab") as fake:
        assert fake.url.endswith("/gitlab")
        integration = gitlab_integration(fake, ["acme/app"])
        connector = GitLabConnector(client_tuning=ClientTuning(sleep=lambda s: None))
        events, _ = collect(connector.window_sync, integration, WINDOW)
        assert [e.data["sha"] for e in events] == [commit.sha]
        assert all(r.raw_path.startswith("/api/v4/") for r in fake.requests)
        # the API address pasted instead of the instance's also works
        integration = gitlab_integration(fake, ["acme/app"], url=fake.url + "/api/v4/")
        events, _ = collect(connector.window_sync, integration, WINDOW)
        assert len(events) == 1


def test_self_managed_gitlab_with_a_private_ca(world):
    p = world.add_project("acme/app")
    p.add_commit(committed_date=DAY, message="x")
    with FakeGitLab(world, token=TOKEN, tls=True) as fake:
        pem = open(fake.ca_path).read()
        connector = GitLabConnector(client_tuning=ClientTuning(sleep=lambda s: None, attempts=1))
        events, _ = collect(connector.window_sync, gitlab_integration(fake, ["acme/app"], caCertificate=pem), WINDOW)
        assert len(events) == 1
        with pytest.raises(Exception) as info:  # without the CA: refused, and the message says what to set
            collect(connector.window_sync, gitlab_integration(fake, ["acme/app"]), WINDOW)
        assert "caCertificate" in str(info.value)


def test_projects_by_numeric_id_and_numeric_state_keys(world, fake, connector):
    p = world.add_project("acme/app")
    p.add_commit(committed_date=DAY, message="x")
    events, result = collect(connector.live_sync, gitlab_integration(fake, [p.id]), None, lookback=3 * D)
    assert [e.project for e in events] == ["acme/app"] and str(p.id) in result.state["projects"]


@pytest.mark.parametrize("config, field", [
    ({"projects": ["a/b"]}, "token"),
    ({"token": "t"}, "projects"),
    ({"token": "t", "projects": "[]"}, "projects"),
    ({"token": "t", "projects": "not json"}, "projects"),
    ({"token": "t", "projects": '{"a": 1}'}, "projects"),
    ({"token": "t", "projects": ["justaname"]}, "projects"),
    ({"token": "t", "projects": ["a/b"], "url": "ftp://gitlab.example.com"}, "url"),
    ({"token": "t", "projects": ["a/b"], "url": "gitlab.example.com"}, "url"),
    ({"token": "t", "projects": ["a/b"], "url": "https://user:pw@gitlab.example.com"}, "url"),
    ({"token": "t", "projects": ["a/b"], "branches": "[release"}, "branches"),
    ({"token": "t", "projects": ["a/b"], "branches": ["bad branch"]}, "branches"),
    ({"token": "t", "projects": ["a/b"], "branches": ["a..b"]}, "branches"),
    ({"token": "t", "projects": ["a/b"], "allBranches": "maybe"}, "allBranches"),
    ({"token": "t", "projects": ["a/b"], "caCertificate": "not a certificate"}, "caCertificate"),
    ({"token": "t", "projects": ["a/b"], "caCertificate":
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"}, "caCertificate"),
])
def test_config_errors_name_the_field(config, field):
    with pytest.raises(ConfigError) as info:
        parse_config(config)
    assert info.value.field == field and repr(field) in str(info.value)


def test_config_defaults_and_secrets(world, fake):
    config = parse_config({"token": " glpat-abc ", "projects": '["Acme/App", "acme/app", "7"]'})
    assert config.url == "https://gitlab.com" and config.token == "glpat-abc"
    assert config.projects == ("Acme/App", "7") and not config.all_branches
    assert "glpat-abc" not in repr(config) and "glpat-abc" not in str(config)


def test_all_branches(world, fake, connector):
    p = world.add_project("acme/app", branches=("release", "feature/a"))
    p.add_commit(committed_date=DAY - D, message="root")
    on_feature = p.add_commit(branch="feature/a", committed_date=DAY + H, message="feature work")
    integration = gitlab_integration(fake, ["acme/app"], allBranches=True)
    events, result = collect(connector.live_sync, integration, None, lookback=3 * D)
    assert on_feature.sha in {e.data["sha"] for e in events}
    newer = p.add_commit(branch="feature/a", committed_date=world.now + M, message="more")
    world.advance(2 * M)
    events, _ = collect(connector.live_sync, integration, result.state, lookback=3 * D)
    assert [e.data["sha"] for e in events] == [newer.sha] and events[0].data["branch"] == "feature/a"


def test_state_is_json_and_requests_are_all_counted(world, fake, connector):
    import json

    populate(world)
    integration = gitlab_integration(fake, ["acme/platform/api"])
    fake.reset_requests()
    _, result = collect(connector.live_sync, integration, None, lookback=3 * D)
    assert json.loads(json.dumps(result.state)) == result.state
    assert result.stats.api_requests == len(fake.requests)
    assert "rate_limit_remaining" in result.stats.gauges
    assert TOKEN not in json.dumps(result.state)
