"""Followed projects the token's user is not a member of (public or internal projects it can
read): absent from `/projects?membership=true` and from the instance events feed
(`/events?scope=all`), their events are read with `GET /projects/:id/events`, one request per
such project per poll."""

import datetime as dt

import pytest

from painchain_pipelines.connectors.base import TimeWindow
from tests.gitlab.conftest import H, M, collect, gitlab_integration

D = dt.timedelta(days=1)
LOOKBACK = 3 * D
MEMBER, OTHER = "acme/app", "oss/lib"


def sync(connector, integration, state):
    return collect(connector.live_sync, integration, state, lookback=LOOKBACK)


@pytest.fixture
def mixed(world, fake, connector):
    """A member project and a public project the token is not a member of (another group), each
    with a bit of everything, synced twice (nothing new since)."""
    out = {}
    for path, member in ((MEMBER, True), (OTHER, False)):
        p = world.add_project(path, member=member)
        base = p.add_commit(committed_date=world.now - 2 * D, message=f"{path} base")
        p.add_tag("v0.9", sha=base.sha, created_at=world.now - D)
        mr = p.add_merge_request("feature/open", created_at=world.now - D, title="Still open")
        pipeline = p.add_pipeline(ref="main", sha=base.sha, created_at=world.now - H, status="running")
        deployment = p.add_deployment(sha=base.sha, created_at=world.now - H, status="running")
        out[path] = {"project": p, "base": base, "mr": mr, "pipeline": pipeline, "deployment": deployment}
    integration = gitlab_integration(fake, [MEMBER, OTHER])
    _, result = sync(connector, integration, None)
    assert not result.stats.failed_sources
    assert result.state["projects"][OTHER]["member"] is False and result.state["projects"][MEMBER]["member"]
    world.advance(2 * H)
    _, result = sync(connector, integration, result.state)
    world.advance(30 * M)
    assert not connector.detect_changes(integration, result.state).changed
    return {**out, "integration": integration, "state": result.state}


CHANGES = {
    "late push to main": lambda w, o: o["project"].add_commit(committed_date=w.now - 3 * D, pushed_at=w.now + M,
                                                              message="late push"),
    "MR merged": lambda w, o: o["mr"].merge(at=w.now + M),
    "tag": lambda w, o: o["project"].add_tag("v1.0", sha=o["base"].sha, created_at=w.now + M),
    "release with a new tag": lambda w, o: o["project"].add_release("v2.0", created_at=w.now + M),
    "release on an existing tag": lambda w, o: o["project"].add_release("v0.9", created_at=w.now + M),
    "pipeline finished": lambda w, o: o["pipeline"].set_status("success", at=w.now + M),
    "deployment finished": lambda w, o: o["deployment"].set_status("success", at=w.now + M),
}
# the events each change makes (a release with a new tag pushes the tag too; a merge lands its
# merge commit on main)
EXPECTED = {"late push to main": {"commit"}, "MR merged": {"merge_request", "commit"}, "tag": {"tag"},
            "release with a new tag": {"release", "tag"}, "release on an existing tag": {"release"},
            "pipeline finished": {"pipeline"}, "deployment finished": {"deployment"}}


@pytest.mark.parametrize("change", sorted(CHANGES))
@pytest.mark.parametrize("where", [OTHER, MEMBER])
def test_every_change_of_a_non_member_project_is_found_once(world, fake, connector, mixed, change, where):
    CHANGES[change](world, mixed[where])
    world.advance(3 * M)
    check = connector.detect_changes(mixed["integration"], mixed["state"])
    pid = mixed[where]["project"].id
    assert check.changed and check.reason.startswith((f"{where}:", f"project {pid}:")), check.reason
    events, result = sync(connector, mixed["integration"], mixed["state"])
    assert not result.stats.failed_sources
    assert {e.data["type"] for e in events} == EXPECTED[change], [e.title for e in events]
    assert {e.data["projectId"] for e in events} == {mixed[where]["project"].id}
    ids = [e.external_id for e in events]
    assert len(ids) == len(set(ids)), ids
    if change == "late push to main":
        assert [e.data["message"] for e in events] == ["late push"]
    world.advance(30 * M)
    check = connector.detect_changes(mixed["integration"], result.state)
    assert not check.changed, check.reason
    again, result = sync(connector, mixed["integration"], result.state)
    assert again == []
    # a backfill finds the same events, once each
    window = TimeWindow(world.now - 4 * D, world.now)
    backfilled, result = collect(connector.window_sync, mixed["integration"], window)
    assert not result.stats.failed_sources and result.covered == window
    backfilled_ids = [e.external_id for e in backfilled]
    assert sorted(i for i in backfilled_ids if i in ids) == sorted(ids)
    assert len(backfilled_ids) == len(set(backfilled_ids))


def test_an_idle_poll_costs_one_more_request_per_non_member_project(world, fake, connector, mixed):
    world.advance(H)
    fake.reset_requests()
    assert not connector.detect_changes(mixed["integration"], mixed["state"]).changed
    paths = sorted(r.path for r in fake.requests)
    other = mixed[OTHER]["project"].id
    member = mixed[MEMBER]["project"].id
    # 1 events feed + 1 events of the non-member project + 1 releases list per top-level group
    # + pipelines and deployments per project
    assert paths == sorted([
        "/api/v4/events", f"/api/v4/projects/{other}/events",
        "/api/v4/groups/acme/releases", "/api/v4/groups/oss/releases",
        f"/api/v4/projects/{member}/pipelines", f"/api/v4/projects/{member}/deployments",
        f"/api/v4/projects/{other}/pipelines", f"/api/v4/projects/{other}/deployments",
    ]), paths
    fake.reset_requests()
    events, _ = sync(connector, mixed["integration"], mixed["state"])
    assert events == []
    assert sorted(r.path for r in fake.requests) == paths


def test_the_weekly_listing_refresh_reads_a_non_member_project_again(world, fake, connector, mixed):
    """A new default branch of a non-member project is seen at the refresh, as for members."""
    p = mixed[OTHER]["project"]
    p.add_commit(branch="develop", committed_date=world.now + M, message="develop work")
    world.advance(8 * D)
    p.default_branch = "develop"
    fake.reset_requests()
    events, result = sync(connector, mixed["integration"], mixed["state"])
    assert fake.request_count(rf"^/api/v4/projects/{p.id}$") == 1
    assert fake.request_count(r"^/api/v4/projects$") == 1
    assert result.state["projects"][OTHER]["info"]["default_branch"] == "develop"
    assert [e.data["message"] for e in events if e.data["type"] == "commit"] == ["develop work"]


def test_a_project_whose_membership_was_lost_is_caught_up_at_the_refresh(world, fake, connector, mixed):
    """Its events leave the feed: what moved meanwhile is read in full once the weekly listing
    refresh says it is no longer a member (then its own events are read each poll)."""
    p = mixed[MEMBER]["project"]
    p.member, p.visibility = False, "internal"
    pushed = p.add_commit(committed_date=world.now + M, message="pushed after membership loss")
    world.advance(H)
    state = mixed["state"]
    _, result = sync(connector, mixed["integration"], state)
    world.advance(8 * D)
    events, result = sync(connector, mixed["integration"], result.state)
    assert [e.data["sha"] for e in events if e.data["type"] == "commit"] == [pushed.sha]
    assert result.state["projects"][MEMBER]["member"] is False
    later = p.add_commit(committed_date=world.now + M, message="later")
    world.advance(3 * M)
    assert connector.detect_changes(mixed["integration"], result.state).changed
    events, result = sync(connector, mixed["integration"], result.state)
    assert [e.data["sha"] for e in events if e.data["type"] == "commit"] == [later.sha]
