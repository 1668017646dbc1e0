"""Live syncs driven by GitLab's events feed, and commits read by compare (real GitLab lists
commits like `git log`: by date over the graph, not in push order)."""

import datetime as dt

import pytest

from painchain_pipelines.connectors.gitlab import GitLabConnector
from painchain_pipelines.connectors.gitlab.client import ClientTuning
from painchain_pipelines.connectors.gitlab.streams.base import Tuning
from tests.gitlab.conftest import H, M, collect, gitlab_integration

D = dt.timedelta(days=1)
LOOKBACK = 3 * D


def commit_shas(events):
    shas = [e.data["sha"] for e in events if e.data["type"] == "commit"]
    assert len(shas) == len(set(shas)), "a commit was emitted twice"
    return shas


def sync(connector, integration, state):
    return collect(connector.live_sync, integration, state, lookback=LOOKBACK)


def merge_old_work(world, p, head, n=3):
    """A branch of `n` commits dated two days before `head`, merged after it."""
    olds = [p.add_commit(branch="feature/old", committed_date=head.committed_date - 2 * D + i * M,
                         pushed_at=world.now + M, message=f"old work {i}") for i in range(n)]
    mr = p.add_merge_request("feature/old", created_at=world.now + 2 * M, title="Old work")
    mr.merge(at=world.now + 5 * M)
    return olds, mr


def test_a_merge_bringing_commits_dated_before_the_saved_head(world, fake, connector):
    p = world.add_project("acme/app")
    p.add_commit(committed_date=world.now - 5 * D, message="base")
    head = p.add_commit(committed_date=world.now - H, message="head before the merge")
    integration = gitlab_integration(fake, ["acme/app"])
    _, result = sync(connector, integration, None)
    assert result.state["projects"]["acme/app"]["streams"]["commits"]["heads"] == {"main": head.sha}
    olds, mr = merge_old_work(world, p, head)
    world.advance(10 * M)
    # GitLab lists them like git log: AFTER the saved head (their dates are older), so a walk from the
    # branch head back to the saved head would stop before them
    listed = [c.sha for c in p.walk("main")]
    assert listed[:2] == [mr.merge_commit_sha, head.sha] and listed[2:5] == [o.sha for o in olds[::-1]]
    assert connector.detect_changes(integration, result.state).changed
    fake.reset_requests()
    events, result = sync(connector, integration, result.state)
    assert sorted(commit_shas(events)) == sorted([mr.merge_commit_sha, *(o.sha for o in olds)])
    by_sha = {e.data["sha"]: e for e in events if e.data["type"] == "commit"}
    for old in olds:  # each with its own committed date
        assert by_sha[old.sha].timestamp == old.committed_date
        assert by_sha[old.sha].external_id == f"gitlab:{p.id}:commit:{old.sha}"
    assert fake.request_count(r"/repository/compare$") == 1 and fake.request_count(r"/repository/commits$") == 0
    assert result.state["projects"]["acme/app"]["streams"]["commits"]["heads"] == {"main": mr.merge_commit_sha}
    events, result = sync(connector, integration, result.state)
    assert commit_shas(events) == []
    world.advance(30 * M)
    assert not connector.detect_changes(integration, result.state).changed


def test_a_capped_compare_is_completed_up_to_every_missing_parent(world, fake, sleeps):
    fake.compare_commits_limit = 2  # as GitLab does for anonymous callers: the newest N only
    connector = GitLabConnector(Tuning(compare_cap=2), ClientTuning(sleep=sleeps.append))
    p = world.add_project("acme/app")
    p.add_commit(committed_date=world.now - 5 * D, message="base")
    head = p.add_commit(committed_date=world.now - H, message="head")
    integration = gitlab_integration(fake, ["acme/app"])
    _, result = sync(connector, integration, None)
    olds, mr = merge_old_work(world, p, head, n=5)
    world.advance(10 * M)
    events, result = sync(connector, integration, result.state)
    assert sorted(commit_shas(events)) == sorted([mr.merge_commit_sha, *(o.sha for o in olds)])


def test_a_force_push_reports_only_the_new_commits(world, fake, connector):
    p = world.add_project("acme/app")
    a = p.add_commit(committed_date=world.now - 2 * H, message="A")
    b = p.add_commit(committed_date=world.now - H, message="B, rewritten away")
    integration = gitlab_integration(fake, ["acme/app"])
    events, result = sync(connector, integration, None)
    assert sorted(commit_shas(events)) == sorted([a.sha, b.sha])
    p.reset_branch("main", a.sha, at=world.now + M)
    c = p.add_commit(committed_date=world.now - 3 * H, pushed_at=world.now + 3 * M, message="C, dated before A")
    world.advance(5 * M)
    assert connector.detect_changes(integration, result.state).changed
    events, result = sync(connector, integration, result.state)
    assert commit_shas(events) == [c.sha]
    assert result.state["projects"]["acme/app"]["streams"]["commits"]["heads"] == {"main": c.sha}


def test_a_saved_head_gitlab_no_longer_knows_falls_back_to_the_listing(world, fake, connector):
    p = world.add_project("acme/app")
    p.add_commit(committed_date=world.now - H, message="A")
    integration = gitlab_integration(fake, ["acme/app"])
    _, result = sync(connector, integration, None)
    result.state["projects"]["acme/app"]["streams"]["commits"]["heads"]["main"] = "f" * 40  # housekept
    new = p.add_commit(committed_date=world.now + M, message="B")
    world.advance(5 * M)
    events, result = sync(connector, integration, result.state)
    assert new.sha in commit_shas(events) and not result.stats.failed_sources
    assert result.state["projects"]["acme/app"]["streams"]["commits"]["heads"] == {"main": new.sha}


# ------------------------------------------------------------------ the change check never hides a change


@pytest.fixture
def synced(world, fake, connector):
    """A project with a bit of everything, synced twice (nothing new since)."""
    p = world.add_project("acme/platform/api", branches=("release",))
    base = p.add_commit(committed_date=world.now - 2 * D, message="base")
    p.add_commit(branch="release", committed_date=world.now - 2 * D, message="release base")
    p.add_tag("v0.9", sha=base.sha, created_at=world.now - D)
    mr = p.add_merge_request("feature/open", created_at=world.now - D, title="Still open")
    pipeline = p.add_pipeline(ref="main", sha=base.sha, created_at=world.now - H, status="running")
    integration = gitlab_integration(fake, ["acme/platform/api"], branches=["release"])
    _, result = sync(connector, integration, None)
    world.advance(2 * H)
    _, result = sync(connector, integration, result.state)
    world.advance(30 * M)
    assert not connector.detect_changes(integration, result.state).changed
    return {"project": p, "mr": mr, "base": base, "pipeline": pipeline, "integration": integration,
            "state": result.state}


CHANGES = {
    "push to main": lambda w, o: o["project"].add_commit(committed_date=w.now - 3 * D, pushed_at=w.now + M,
                                                         message="late push"),
    "push to release": lambda w, o: o["project"].add_commit(branch="release", committed_date=w.now + M,
                                                            message="backport"),
    "tag": lambda w, o: o["project"].add_tag("v1.0", sha=o["base"].sha, created_at=w.now + M),
    "release with a new tag": lambda w, o: o["project"].add_release("v2.0", created_at=w.now + M),
    "release on an existing tag": lambda w, o: o["project"].add_release("v0.9", created_at=w.now + M),
    "release upcoming on an existing tag": lambda w, o: o["project"].add_release(
        "v0.9", created_at=w.now + M, released_at=w.now + 30 * D),
    "MR opened": lambda w, o: o["project"].add_merge_request("feature/new", created_at=w.now + M),
    "MR merged": lambda w, o: o["mr"].merge(at=w.now + M),
    "MR closed": lambda w, o: o["mr"].close(at=w.now + M),
    "pipeline finished": lambda w, o: o["pipeline"].set_status("success", at=w.now + M),
    "deployment finished": lambda w, o: o["project"].add_deployment(
        sha=o["base"].sha, created_at=w.now - 3 * D, status="running").set_status("failed", at=w.now + M),
}
EXPECTED_TYPE = {"push to main": "commit", "push to release": "commit", "tag": "tag",
                 "release with a new tag": "release", "release on an existing tag": "release",
                 "release upcoming on an existing tag": "release", "MR opened": "merge_request",
                 "MR merged": "merge_request", "MR closed": "merge_request", "pipeline finished": "pipeline",
                 "deployment finished": "deployment"}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_the_change_check_sees_every_kind_of_change(world, fake, connector, synced, change):
    CHANGES[change](world, synced)
    world.advance(3 * M)
    check = connector.detect_changes(synced["integration"], synced["state"])
    assert check.changed, change
    events, result = sync(connector, synced["integration"], synced["state"])
    assert EXPECTED_TYPE[change] in {e.data["type"] for e in events}
    world.advance(30 * M)
    assert not connector.detect_changes(synced["integration"], result.state).changed
    events, _ = sync(connector, synced["integration"], result.state)
    assert events == []


def test_a_push_to_a_branch_not_followed_is_no_change(world, fake, connector, synced):
    synced["project"].add_commit(branch="feature/x", committed_date=world.now + M, message="wip")
    world.advance(3 * M)
    fake.reset_requests()
    assert not connector.detect_changes(synced["integration"], synced["state"]).changed
    events, _ = sync(connector, synced["integration"], synced["state"])
    assert events == [] and fake.request_count(r"/repository/") == 0


def test_a_backdated_release_on_an_existing_tag_comes_with_the_release_sweep(world, fake, connector, synced):
    """No event, not at the top of the group's list by released_at: the daily sweep finds it."""
    synced["project"].add_release("v0.9", created_at=world.now + M, released_at=world.now - 20 * D)
    world.advance(3 * M)
    assert not connector.detect_changes(synced["integration"], synced["state"]).changed  # the trade-off
    world.advance(2 * D)  # the sweep is overdue: the change check asks for a live sync
    check = connector.detect_changes(synced["integration"], synced["state"])
    assert check.changed and "release sweep" in check.reason
    events, result = sync(connector, synced["integration"], synced["state"])
    assert [e.external_id for e in events if e.data["type"] == "release"] == [
        f"gitlab:{synced['project'].id}:release:v0.9"]
    assert not connector.detect_changes(synced["integration"], result.state).changed


def test_a_live_sync_sweeps_a_few_due_projects(world, fake, connector):
    for i in range(5):
        world.add_project(f"acme/p{i}").add_commit(committed_date=world.now - D, message="x")
    integration = gitlab_integration(fake, [f"acme/p{i}" for i in range(5)])
    _, result = sync(connector, integration, None)
    world.advance(D + H)
    fake.reset_requests()
    _, result = sync(connector, integration, result.state)
    assert fake.request_count(r"^/api/v4/projects/\d+/releases$") == 2  # release_sweep_per_sync
    fake.reset_requests()
    _, result = sync(connector, integration, result.state)
    assert fake.request_count(r"^/api/v4/projects/\d+/releases$") == 2
    fake.reset_requests()
    _, result = sync(connector, integration, result.state)
    assert fake.request_count(r"^/api/v4/projects/\d+/releases$") == 1
    fake.reset_requests()
    _, result = sync(connector, integration, result.state)
    assert fake.request_count(r"^/api/v4/projects/\d+/releases$") == 0


# ------------------------------------------------------------------ the feed itself


def test_more_than_a_page_of_events_between_polls(world, fake, connector, synced):
    p = synced["project"]
    late = p.add_commit(committed_date=world.now - D, pushed_at=world.now + M, message="under the noise")
    for i in range(250):  # 250 pushes to a branch not followed, after it
        p.add_commit(branch="feature/noise", committed_date=world.now + 2 * M,
                     pushed_at=world.now + 2 * M + i * dt.timedelta(seconds=1), message=f"noise {i}")
    world.advance(10 * M)
    fake.reset_requests()
    check = connector.detect_changes(synced["integration"], synced["state"])
    assert check.changed and "push to main" in check.reason
    assert fake.request_count(r"^/api/v4/events$") == 3
    events, _ = sync(connector, synced["integration"], synced["state"])
    assert commit_shas(events) == [late.sha]


@pytest.mark.parametrize("tuning", [Tuning(events_max_pages=1), Tuning(events_horizon=H)],
                         ids=["more pages than events_max_pages", "cursor older than events_horizon"])
def test_when_the_feed_cannot_tell_every_activity_stream_is_read(world, fake, sleeps, tuning):
    connector = GitLabConnector(tuning, ClientTuning(sleep=sleeps.append))
    p = world.add_project("acme/app", branches=("release",))
    p.add_commit(committed_date=world.now - D, message="base")
    p.add_commit(branch="release", committed_date=world.now - D, message="release base")
    integration = gitlab_integration(fake, ["acme/app"], branches=["release"])
    _, result = sync(connector, integration, None)
    backport = p.add_commit(branch="release", committed_date=world.now + M, message="backport")
    for i in range(120):
        p.add_commit(branch="feature/noise", committed_date=world.now + 2 * M, message=f"noise {i}")
    world.advance(2 * H)
    check = connector.detect_changes(integration, result.state)
    assert check.changed and ("pages" in check.reason or "horizon" in check.reason)
    fake.reset_requests()
    events, result = sync(connector, integration, result.state)
    assert commit_shas(events) == [backport.sha]
    assert fake.request_count(r"/repository/compare$") == 2  # main and release, both read
    assert fake.request_count(r"/repository/tags$") == 1 and fake.request_count(r"/merge_requests$") == 1


def test_a_failed_activity_read_is_read_again_in_full(world, fake, connector, synced):
    p = synced["project"]
    c = p.add_commit(committed_date=world.now + M, message="x")
    world.advance(3 * M)
    fake.fail(r"/repository/compare", status=404, times=1)  # e.g. the branch briefly gone
    fake.fail(r"/repository/commits", status=403, times=1)
    events, result = sync(connector, synced["integration"], synced["state"])
    assert commit_shas(events) == [] and result.stats.failed_sources
    world.advance(30 * M)  # the push is now older than the feed's overlap
    check = connector.detect_changes(synced["integration"], result.state)
    assert check.changed and "a read failed" in check.reason
    events, result = sync(connector, synced["integration"], result.state)
    assert commit_shas(events) == [c.sha] and not result.stats.failed_sources
    world.advance(30 * M)
    assert not connector.detect_changes(synced["integration"], result.state).changed


def test_a_denied_project_does_not_hold_back_the_others(world, fake, connector):
    a = world.add_project("acme/a")
    b = world.add_project("acme/b")
    for p in (a, b):
        p.add_commit(committed_date=world.now - H, message="x")
    integration = gitlab_integration(fake, ["acme/a", "acme/b"])
    _, result = sync(connector, integration, None)
    fake.deny("acme/b")
    world.advance(5 * M)
    _, result = sync(connector, integration, result.state)
    new_a = a.add_commit(committed_date=world.now + M, message="a moved")
    new_b = b.add_commit(committed_date=world.now + M, message="b moved while denied")  # not in the feed
    world.advance(5 * M)
    events, result = sync(connector, integration, result.state)
    assert commit_shas(events) == [new_a.sha] and any(k.startswith("acme/b") for k in result.stats.failed_sources)
    world.advance(H)
    fake.allow("acme/b")
    assert connector.detect_changes(integration, result.state).changed
    events, result = sync(connector, integration, result.state)
    assert commit_shas(events) == [new_b.sha]
