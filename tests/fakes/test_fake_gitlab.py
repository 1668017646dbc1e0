"""Tests of the fake GitLab itself, with the real python-gitlab client and plain requests."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import gitlab
import pytest
import requests

from tests.fakes.gitlab_server import FakeGitLab
from tests.fakes.gitlab_world import GitLabWorld, advance_bench_world, build_bench_world

UTC = timezone.utc
NOW = datetime(2026, 11, 2, 12, tzinfo=UTC)
TOKEN = "glpat-test-token"


def T(h: float, day: int = 2) -> datetime:
    return datetime(2026, 11, day, tzinfo=UTC) + timedelta(hours=h)


def client(fake: FakeGitLab, token: str = TOKEN) -> gitlab.Gitlab:
    return gitlab.Gitlab(fake.url, private_token=token, retry_transient_errors=False)


def get(fake: FakeGitLab, path: str, token: str = TOKEN, **kw) -> requests.Response:
    headers = kw.pop("headers", {})
    headers.setdefault("PRIVATE-TOKEN", token)
    return requests.get(fake.url + "/api/v4" + path, headers=headers, timeout=10, **kw)


@pytest.fixture
def world() -> GitLabWorld:
    return GitLabWorld(now=NOW)


# ------------------------------------------------------------------------------------ pagination


def test_offset_pagination_to_the_end(world):
    p = world.add_project("acme/platform/api")
    for i in range(45):
        p.add_merge_request(f"feat-{i}", created_at=T(-50 + i), title=f"MR {i}")
    with FakeGitLab(world, token=TOKEN) as fake:
        r = get(fake, f"/projects/{p.id}/merge_requests", params={"per_page": 20})
        assert r.status_code == 200
        h = r.headers
        assert (h["X-Total"], h["X-Total-Pages"], h["X-Page"], h["X-Per-Page"]) == ("45", "3", "1", "20")
        assert h["X-Next-Page"] == "2" and h["X-Prev-Page"] == ""
        assert set(r.links) == {"next", "first", "last"}
        assert r.links["next"]["url"].startswith(fake.url + "/api/v4/projects/")
        last = requests.get(r.links["last"]["url"], headers={"PRIVATE-TOKEN": TOKEN}, timeout=10)
        assert last.headers["X-Next-Page"] == "" and len(last.json()) == 5 and "next" not in last.links
        assert set(last.links) == {"prev", "first", "last"}

        fake.reset_requests()
        mrs = list(client(fake).projects.get("acme/platform/api", lazy=True).mergerequests.list(
            iterator=True, per_page=20))
        assert [m.iid for m in mrs] == list(range(45, 0, -1))  # created_at desc by default
        assert fake.request_count(r"/merge_requests$") == 3


def test_keyset_pagination_on_projects(world):
    for i in range(25):
        world.add_project(f"acme/team-{i % 3}/svc-{i}")
    with FakeGitLab(world, token=TOKEN) as fake:
        r = get(fake, "/projects", params={"pagination": "keyset", "order_by": "id", "sort": "asc", "per_page": 10})
        assert r.status_code == 200
        assert "X-Total" not in r.headers and "X-Next-Page" not in r.headers
        assert list(r.links) == ["next"] and "id_after=" in r.links["next"]["url"]
        fake.reset_requests()
        ps = list(client(fake).projects.list(iterator=True, pagination="keyset", order_by="id", sort="asc",
                                             per_page=10))
        ids = [p.id for p in ps]
        assert ids == sorted(ids) and len(ids) == 25
        assert fake.request_count(r"^/api/v4/projects$") == 3
        assert get(fake, "/projects", params={"pagination": "keyset", "order_by": "name"}).status_code == 405


def test_more_than_10000_omits_totals(world):
    p = world.add_project("acme/big/repo")
    for i in range(10_001):
        p.add_pipeline(sha=f"{i:040x}", created_at=T(-200) + timedelta(seconds=i), status="success")
    with FakeGitLab(world, token=TOKEN) as fake:
        r = get(fake, f"/projects/{p.id}/pipelines", params={"per_page": 100})
        assert r.status_code == 200 and len(r.json()) == 100
        assert "X-Total" not in r.headers and "X-Total-Pages" not in r.headers
        assert r.headers["X-Next-Page"] == "2"
        assert set(r.links) == {"next", "first"}
        r2 = get(fake, f"/projects/{p.id}/pipelines", params={"per_page": 100, "status": "failed"})
        assert r2.headers["X-Total"] == "0"


# ------------------------------------------------------------------------------------ commits


def test_commits_since_until_stop_rule_and_late_push(world):
    p = world.add_project("acme/platform/api", branches=("main", "release"))
    a = p.add_commit(committed_date=T(9), message="A", committer_tz_offset="+02:00")
    b = p.add_commit(committed_date=T(8), pushed_at=T(13), message="B (late)")  # late push
    c = p.add_commit(committed_date=T(10), message="C")
    with FakeGitLab(world, token=TOKEN) as fake:
        gl = client(fake)
        proj = gl.projects.get("acme/platform/api")
        assert [x.id for x in proj.commits.list(get_all=True)] == [c.sha, a.sha]
        assert get(fake, f"/projects/{p.id}/repository/commits/{b.sha}").status_code == 404
        assert proj.branches.get("main").commit["id"] == c.sha
        got_a = proj.commits.get(a.sha)
        assert got_a.committed_date == "2026-11-02T11:00:00.000+02:00"
        assert got_a.authored_date == "2026-11-02T11:00:00.000+02:00"

        world.advance(timedelta(hours=1, minutes=30))  # 13:30: B lands on top of C
        assert [x.id for x in proj.commits.list(get_all=True)] == [b.sha, c.sha, a.sha]
        assert proj.commits.get(b.sha).parent_ids == [c.sha]
        # since: the walk stops at the first commit older than since (B, dated 08:00)
        assert proj.commits.list(get_all=True, since=iso(T(8, 2) + timedelta(minutes=30))) == []
        assert [x.id for x in proj.commits.list(get_all=True, since=iso(T(7)))] == [b.sha, c.sha, a.sha]
        assert [x.id for x in proj.commits.list(get_all=True, until=iso(T(9, 2) + timedelta(minutes=30)))] == [
            b.sha, a.sha]
        cmp = proj.repository_compare(a.sha, "main")
        assert [x["id"] for x in cmp["commits"]] == [c.sha, b.sha] and cmp["diffs"] == []
        # filtered commit lists get GitLab's "offset + size + 1" X-Total: a full page implies a next page
        r = get(fake, f"/projects/{p.id}/repository/commits", params={"since": iso(T(7)), "per_page": 3})
        assert r.headers["X-Total"] == "4" and r.headers["X-Next-Page"] == "2"
        ev = proj.events.list(action="pushed", get_all=True)
        assert ev[0].push_data["commit_to"] == b.sha and ev[0].created_at == "2026-11-02T13:00:00.000Z"


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_merge_brings_older_commits_and_first_parent(world):
    p = world.add_project("acme/platform/api")
    base = p.add_commit(committed_date=T(1), message="base")
    f1 = p.add_commit(branch="feat-1", committed_date=T(2), message="feat work")
    mr = p.add_merge_request("feat-1", created_at=T(3), title="Feature one", author="alice")
    mr.merge(at=T(5))
    with FakeGitLab(world, token=TOKEN) as fake:
        proj = client(fake).projects.get(p.id)
        all_ = [x.id for x in proj.commits.list(get_all=True)]
        assert all_ == [mr.merge_commit_sha, f1.sha, base.sha]
        fp = [x.id for x in proj.commits.list(get_all=True, first_parent=True)]
        assert fp == [mr.merge_commit_sha, base.sha]
        m = proj.mergerequests.get(mr.iid)
        assert (m.state, m.merge_commit_sha, m.references["full"]) == ("merged", mr.merge_commit_sha,
                                                                       "acme/platform/api!1")
        assert proj.commits.get(mr.merge_commit_sha).parent_ids == [base.sha, f1.sha]


def test_commits_are_listed_like_git_log_by_date_not_by_push(world):
    """A merge bringing commits dated before the previous head lists them AFTER that head."""
    p = world.add_project("acme/platform/api")
    base = p.add_commit(committed_date=T(-72), message="base")
    olds = [p.add_commit(branch="feat", committed_date=T(-48 + i), pushed_at=T(-40), message=f"old {i}")
            for i in range(3)]
    head = p.add_commit(committed_date=T(-1), message="head before the merge")
    mr = p.add_merge_request("feat", created_at=T(-30), title="Old work")
    mr.merge(at=T(1))
    with FakeGitLab(world, token=TOKEN) as fake:
        world.advance(timedelta(hours=2))
        proj = client(fake).projects.get(p.id)
        listed = [x.id for x in proj.commits.list(get_all=True)]
        # git log: merge (T1), head (T-1), then the merged-in commits (T-46..T-48), then base
        assert listed == [mr.merge_commit_sha, head.sha, olds[2].sha, olds[1].sha, olds[0].sha, base.sha]
        assert [x.id for x in proj.commits.list(get_all=True, first_parent=True)] == [
            mr.merge_commit_sha, head.sha, base.sha]
        assert [x.id for x in proj.commits.list(get_all=True, order="topo")] == listed
        # since stops at the first older commit of the date-ordered walk
        assert [x.id for x in proj.commits.list(get_all=True, since=iso(T(-2)))] == [mr.merge_commit_sha, head.sha]
        # compare from the old head: exactly what the merge brought, oldest first, head last
        cmp = proj.repository_compare(head.sha, "main")
        assert [x["id"] for x in cmp["commits"]] == [olds[0].sha, olds[1].sha, olds[2].sha, mr.merge_commit_sha]
        assert cmp["commit"]["id"] == mr.merge_commit_sha
        same = proj.repository_compare("main", "main")
        assert same["commits"] == [] and same["commit"] is None and same["compare_same_ref"] is True
        r = get(fake, f"/projects/{p.id}/repository/compare", params={"from": "f" * 40, "to": "main"})
        assert r.status_code == 404


def test_force_push_and_compare_from_a_commit_no_longer_on_the_branch(world):
    p = world.add_project("acme/platform/api")
    a = p.add_commit(committed_date=T(-5), message="A")
    b = p.add_commit(committed_date=T(-4), message="B (will be dropped)")
    p.reset_branch("main", a.sha, at=T(1))
    c = p.add_commit(committed_date=T(0.5), pushed_at=T(1.5), message="C (rewritten)")
    with FakeGitLab(world, token=TOKEN) as fake:
        world.advance(timedelta(hours=2))
        proj = client(fake).projects.get(p.id)
        assert [x.id for x in proj.commits.list(get_all=True)] == [c.sha, a.sha]
        assert proj.commits.get(b.sha).id == b.sha  # still readable by SHA
        cmp = proj.repository_compare(b.sha, "main")  # merge base A: only C is new
        assert [x["id"] for x in cmp["commits"]] == [c.sha]
        ev = proj.events.list(get_all=True, sort="desc")
        assert ev[0].push_data["commit_to"] == c.sha and ev[1].push_data["commit_to"] == a.sha


def test_instance_events_of_every_visible_project(world):
    p = world.add_project("acme/platform/api")
    q = world.add_project("acme/data/ingest")
    s = world.add_project("other/secret")
    p.add_commit(committed_date=T(-30), message="p1")  # 2026-10-31 18:00
    q.add_commit(committed_date=T(-3), message="q1")  # 2026-11-01 21:00
    s.add_commit(committed_date=T(-2), message="s1")
    mr = q.add_merge_request("feat", created_at=T(-2.5))
    mr.close(at=T(-1))
    p.add_tag("v1", created_at=T(-0.5))
    with FakeGitLab(world, token=TOKEN) as fake:
        fake.deny("other/secret")
        r = get(fake, "/events", params={"scope": "all", "per_page": 100})
        assert r.status_code == 200
        got = r.json()
        assert {e["project_id"] for e in got} == {p.id, q.id}  # denied projects are not shown
        assert [e["created_at"] for e in got] == sorted((e["created_at"] for e in got), reverse=True)
        assert got[0]["push_data"]["ref_type"] == "tag" and got[0]["push_data"]["ref"] == "v1"
        assert got[1]["target_type"] == "MergeRequest" and got[1]["target_iid"] == mr.iid
        assert got[1]["action_name"] == "closed"
        # without scope=all: only the token user's own events (none here)
        assert get(fake, "/events").json() == []
        # after is an exclusive date (UTC): after=2026-10-31 is from 2026-11-01 00:00
        after = get(fake, "/events", params={"scope": "all", "after": "2026-10-31"}).json()
        assert [e["id"] for e in after] == [e["id"] for e in got[:-1]]
        assert get(fake, "/events", params={"scope": "all", "after": "2026-11-01"}).json() == []
        assert [e["id"] for e in get(fake, "/events", params={"scope": "all", "before": "2026-11-01"}).json()] == [
            got[-1]["id"]]
        pushes = get(fake, "/events", params={"scope": "all", "action": "pushed"}).json()
        assert {e["action_name"] for e in pushes} == {"pushed to", "pushed new"}
        mrs = get(fake, "/events", params={"scope": "all", "target_type": "merge_request"}).json()
        assert [e["action_name"] for e in mrs] == ["closed", "opened"]
        asc = get(fake, "/events", params={"scope": "all", "sort": "asc", "per_page": 2})
        assert [e["id"] for e in asc.json()] == [e["id"] for e in got[::-1][:2]]
        assert asc.headers["X-Next-Page"] == "2" and "next" in asc.links
        gl = client(fake)
        assert len(gl.events.list(scope="all", get_all=True)) == len(got)


# ------------------------------------------------------------------------------------ filters


def test_projects_the_token_is_not_a_member_of(world):
    """Public/internal non-member projects: readable, not in membership lists nor in the
    instance events feed (scope=all), their events in /projects/:id/events."""
    member = world.add_project("acme/app")
    other = world.add_project("oss/lib", member=False)
    internal = world.add_project("corp/tools", member=False, visibility="internal")
    hidden = world.add_project("secret/x", member=False, visibility="private")
    for p in (member, other, internal, hidden):
        p.add_commit(committed_date=NOW - timedelta(hours=1), message="x")
    with FakeGitLab(world, token=TOKEN) as fake:
        assert [p["id"] for p in get(fake, "/projects", params={"membership": "true"}).json()] == [member.id]
        assert {p["id"] for p in get(fake, "/projects").json()} == {member.id, other.id, internal.id}
        assert {e["project_id"] for e in get(fake, "/events", params={"scope": "all"}).json()} == {member.id}
        assert {e["project_id"] for e in get(fake, f"/projects/{other.id}/events").json()} == {other.id}
        assert get(fake, f"/projects/{other.id}").json()["visibility"] == "public"
        assert get(fake, f"/projects/{internal.id}").json()["visibility"] == "internal"
        assert len(get(fake, f"/projects/{other.id}/repository/commits").json()) == 1
        assert get(fake, f"/projects/{hidden.id}").status_code == 404
        assert get(fake, "/projects/secret%2Fx/repository/commits").status_code == 404
        assert {r["id"] for r in get(fake, "/groups/oss/projects").json()} == {other.id}


def test_updated_after_filters_and_deployment_pairing(world):
    p = world.add_project("acme/platform/api")
    p.add_commit(committed_date=T(-30))
    old_mr = p.add_merge_request("a", created_at=T(-30))
    new_mr = p.add_merge_request("b", created_at=T(-20))
    new_mr.merge(at=T(1))
    pl_old = p.add_pipeline(created_at=T(-30), status="running")
    pl_old.set_status("success", at=T(-29))
    pl_new = p.add_pipeline(created_at=T(-30), status="running")
    pl_new.set_status("failed", at=T(2))
    d1 = p.add_deployment(environment="production", created_at=T(-30), status="running")
    d1.set_status("success", at=T(3))
    d2 = p.add_deployment(environment="staging", created_at=T(-29), status="running")
    d2.set_status("success", at=T(-28))
    d3 = p.add_deployment(environment="production", created_at=T(-10), status="blocked")
    with FakeGitLab(world, token=TOKEN) as fake:
        proj = client(fake).projects.get(p.id)
        since = "2026-11-02T00:00:00Z"
        assert [m.iid for m in proj.mergerequests.list(updated_after=since, get_all=True)] == [new_mr.iid]
        assert old_mr.iid not in [m.iid for m in proj.mergerequests.list(updated_after=since, get_all=True)]
        pls = proj.pipelines.list(updated_after=since, get_all=True)
        assert [x.id for x in pls] == [pl_new.id]
        assert "started_at" not in pls[0].attributes and "finished_at" not in pls[0].attributes
        full = proj.pipelines.get(pl_new.id)
        assert full.finished_at == "2026-11-02T02:00:00.000Z" and full.duration == 32 * 3600
        ds = proj.deployments.list(updated_after=since, order_by="updated_at", sort="asc", get_all=True)
        assert [d.id for d in ds] == [d1.id]
        # production GitLab: updated_* without order_by=updated_at is re-sorted by updated_at, not rejected
        ds = proj.deployments.list(updated_after="2026-11-01T00:00:00Z", order_by="id", get_all=True)
        assert [d.id for d in ds] == [d3.id, d1.id]
        assert get(fake, f"/projects/{p.id}/deployments").json()[2]["status"] == "blocked"
        assert get(fake, f"/projects/{p.id}/deployments").json()[2]["deployable"]["status"] == "manual"
        r = get(fake, f"/projects/{p.id}/deployments", params={"finished_after": since})
        assert r.status_code == 400
        assert r.json() == {"message": "400 Bad request - `finished_at` filter and `finished_at` sorting must be paired"}
        fake.deployments_strict_pairing = True
        r = get(fake, f"/projects/{p.id}/deployments", params={"updated_after": since})
        assert r.status_code == 400 and "must be paired" in r.json()["message"]
        with pytest.raises(gitlab.exceptions.GitlabListError) as ei:
            proj.deployments.list(updated_after=since, get_all=True)
        assert ei.value.response_code == 400
        assert get(fake, f"/projects/{p.id}/pipelines", params={"status": "bogus"}).json() == {
            "error": "status does not have a valid value"}
        assert get(fake, f"/projects/{p.id}/merge_requests", params={"updated_after": "yesterday"}).json() == {
            "error": "updated_after is invalid"}


def test_pipeline_retry_keeps_id_and_scheduled_finish(world):
    p = world.add_project("acme/platform/api")
    c = p.add_commit(committed_date=T(10))
    pl = p.add_pipeline(sha=c.sha, created_at=T(11), status="running")
    pl.set_status("failed", at=T(11.5))
    pl.retry(at=T(11.75))
    world.schedule(T(12.5), lambda: pl.set_status("success", at=world.now))
    with FakeGitLab(world, token=TOKEN) as fake:
        proj = client(fake).projects.get(p.id)
        got = proj.pipelines.list(get_all=True)
        assert [(x.id, x.status) for x in got] == [(pl.id, "running")]
        assert got[0].updated_at == "2026-11-02T11:45:00.000Z"
        world.advance(timedelta(hours=1))
        got = proj.pipelines.get(pl.id)
        assert (got.id, got.status, got.finished_at) == (pl.id, "success", "2026-11-02T12:30:00.000Z")
        assert got.started_at == "2026-11-02T11:00:00.000Z"


def test_last_activity_at_one_hour_throttle(world):
    p = world.add_project("acme/platform/api", created_at=T(-48))
    p.add_commit(committed_date=T(-10))
    p.add_commit(committed_date=T(-9.5))  # within 1 h of the stored value: no move
    assert p.last_activity_at == T(-10)
    p.add_commit(committed_date=T(-8.9))  # stored value older than 1 h: moves
    assert p.last_activity_at == T(-8.9)
    pl = p.add_pipeline(created_at=T(-5), status="running")
    pl.set_status("success", at=T(-4))  # not activity
    p.add_deployment(created_at=T(-3), status="success")  # not activity
    assert p.last_activity_at == T(-8.9)
    p.add_merge_request("x", created_at=T(-2))
    p.add_commit(committed_date=T(-1.5))
    assert p.last_activity_at == T(-2)
    with FakeGitLab(world, token=TOKEN) as fake:
        gl = client(fake)
        assert gl.projects.get(p.id).last_activity_at == "2026-11-01T22:00:00.000Z"
        late = [x.id for x in gl.projects.list(last_activity_after="2026-11-01T21:00:00Z", get_all=True)]
        assert late == [p.id]
        assert gl.projects.list(last_activity_after="2026-11-01T22:30:00Z", get_all=True) == []


# ------------------------------------------------------------------------------------ HTTP behaviour


def test_etag_304_counts_against_rate_limit(world):
    p = world.add_project("acme/platform/api")
    p.add_commit(committed_date=T(-1))
    with FakeGitLab(world, token=TOKEN) as fake:
        fake.rate_limit_per_minute = 100
        r1 = get(fake, f"/projects/{p.id}/repository/commits")
        etag = r1.headers["ETag"]
        assert etag.startswith('W/"') and r1.headers["Date"] == "Mon, 02 Nov 2026 12:00:00 GMT"
        r2 = get(fake, f"/projects/{p.id}/repository/commits", headers={"If-None-Match": etag})
        assert r2.status_code == 304 and r2.content == b""
        assert int(r2.headers["RateLimit-Remaining"]) == int(r1.headers["RateLimit-Remaining"]) - 1
        assert r2.headers["RateLimit-Limit"] == "100"
        assert [x.status for x in fake.requests] == [200, 304]
        p.add_commit(committed_date=T(-0.5))
        assert get(fake, f"/projects/{p.id}/repository/commits", headers={"If-None-Match": etag}).status_code == 200
        fake.rate_limit_per_minute = 3
        r = get(fake, "/version")
        assert r.status_code == 429 and r.text == "Retry later\n" and int(r.headers["Retry-After"]) >= 1


def test_429_and_faults(world):
    p = world.add_project("acme/platform/api")
    p.add_commit(committed_date=T(-1))
    with FakeGitLab(world, token=TOKEN) as fake:
        fake.rate_limit(r"/pipelines", times=1, retry_after=1)
        r = get(fake, f"/projects/{p.id}/pipelines")
        assert r.status_code == 429 and r.text == "Retry later\n"
        assert r.headers["Content-Type"] == "text/plain" and r.headers["Retry-After"] == "1"
        fake.rate_limit(r"/pipelines", times=1, retry_after=5, header="RateLimit-Reset")
        r = get(fake, f"/projects/{p.id}/pipelines")
        assert r.status_code == 429 and int(r.headers["RateLimit-Reset"]) == int(NOW.timestamp()) + 5
        # python-gitlab obeys Retry-After and retries
        fake.rate_limit(r"/merge_requests", times=1, retry_after=1)
        t0 = time.monotonic()
        assert client(fake).projects.get(p.id, lazy=True).mergerequests.list(get_all=True) == []
        assert time.monotonic() - t0 >= 0.9
        fake.fail(r"/repository/commits", status=502, times=1)
        with pytest.raises(gitlab.exceptions.GitlabListError) as ei:
            client(fake).projects.get(p.id, lazy=True).commits.list(get_all=True)
        assert ei.value.response_code == 502
        fake.fail(r"/repository/commits", status=0, times=1)
        with pytest.raises(requests.exceptions.ConnectionError):
            get(fake, f"/projects/{p.id}/repository/commits")
        assert get(fake, f"/projects/{p.id}/repository/commits").status_code == 200
        assert [x.status for x in fake.requests if "/repository/commits" in x.path] == [502, 0, 200]


def test_auth_deny_and_prefix(world):
    p = world.add_project("acme/platform/api")
    world.add_project("acme/platform/secret")
    with FakeGitLab(world, token=TOKEN, path_prefix="/gitlab") as fake:
        assert fake.url.endswith("/gitlab")
        for path in ("/user", "/projects", f"/projects/{p.id}/pipelines", "/nope"):
            r = get(fake, path, token="wrong")
            assert r.status_code == 401 and r.json() == {"message": "401 Unauthorized"}
        r = requests.get(fake.url + "/api/v4/user", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert r.status_code == 200 and r.json()["web_url"].startswith(fake.url + "/")
        with pytest.raises(gitlab.exceptions.GitlabAuthenticationError):
            client(fake, token="wrong").auth()
        gl = client(fake)
        gl.auth()
        assert gl.personal_access_tokens.get("self").scopes == ["read_api"]
        # the project path is one %-encoded segment
        r = get(fake, "/projects/acme%2Fplatform%2Fapi")
        assert r.status_code == 200 and r.json()["path_with_namespace"] == "acme/platform/api"
        assert fake.requests[-1].path == "/api/v4/projects/acme/platform/api"
        fake.deny("acme/platform/secret")
        assert get(fake, "/projects/acme%2Fplatform%2Fsecret").json() == {"message": "404 Project Not Found"}
        assert [x.path_with_namespace for x in gl.projects.list(get_all=True)] == ["acme/platform/api"]
        g = gl.groups.get("acme")
        assert [x.path for x in g.projects.list(include_subgroups=True, get_all=True)] == ["api"]
        fake.deny("acme/platform/secret", status=403)
        assert get(fake, "/projects/acme%2Fplatform%2Fsecret").status_code == 403
        assert requests.get(f"http://127.0.0.1:{fake.port}/api/v4/user", headers={"PRIVATE-TOKEN": TOKEN},
                            timeout=10).status_code == 404
        assert get(fake, "/projects/1/unknown").json() == {"message": "404 Project Not Found"}
        assert get(fake, f"/projects/{p.id}/unknown").json() == {"message": "404 Not Found"}


def test_releases_tags_events_group_lists(world):
    p = world.add_project("acme/platform/api")
    q = world.add_project("acme/platform/web/frontend")
    c1 = p.add_commit(committed_date=T(-30))
    p.add_release("v1.0.0", created_at=T(-29), released_at=T(-29))
    p.add_release("v1.1.0", created_at=T(-5), released_at=T(48))  # upcoming
    p.add_release("v0.9.0", created_at=T(-4), released_at=T(-100))  # backdated
    p.add_tag("v1.2.1", sha=c1.sha, created_at=T(-3))
    q.add_commit(committed_date=T(-2))
    q.add_release("w2", created_at=T(-1))
    mr = q.add_merge_request("feat", created_at=T(-1.5))
    mr.close(at=T(-1))
    with FakeGitLab(world, token=TOKEN) as fake:
        gl = client(fake)
        proj = gl.projects.get(p.id)
        rels = proj.releases.list(get_all=True)
        assert [r.tag_name for r in rels] == ["v1.1.0", "v1.0.0", "v0.9.0"]  # released_at desc
        assert rels[0].upcoming_release is True and rels[1].upcoming_release is False
        assert [r.tag_name for r in proj.releases.list(order_by="created_at", get_all=True)] == [
            "v0.9.0", "v1.1.0", "v1.0.0"]
        tags = proj.tags.list(get_all=True, order_by="name", sort="asc")
        assert [t.name for t in tags] == ["v0.9.0", "v1.0.0", "v1.1.0", "v1.2.1"]
        assert tags[-1].release is None and tags[0].release["tag_name"] == "v0.9.0"
        assert [t.name for t in proj.tags.list(search="^v1.1", get_all=True)] == ["v1.1.0"]
        grp = gl.groups.get("acme/platform")
        rels = get(fake, "/groups/acme%2Fplatform/releases").json()  # python-gitlab has no group releases
        assert {r["tag_name"] for r in rels} == {"v1.0.0", "v1.1.0", "v0.9.0", "w2"}
        assert [m.state for m in grp.mergerequests.list(get_all=True)] == ["closed"]
        qe = gl.projects.get(q.id).events.list(get_all=True)
        assert [e.action_name for e in qe] == ["closed", "pushed new", "opened", "pushed to"]
        assert qe[1].push_data["ref_type"] == "tag"
        assert gl.projects.get(q.id).events.list(action="closed", target_type="merge_request",
                                                 get_all=True)[0].target_iid == mr.iid
        assert proj.events.list(after="2026-11-01", get_all=True) == []
        # after/before are dates, exclusive: after=D means created after the end of day D (UTC)
        assert len(proj.events.list(after="2026-10-31", get_all=True)) == 3
        assert len(proj.events.list(after="2026-10-30", get_all=True)) == 5
        assert len(proj.events.list(before="2026-11-01", get_all=True)) == 2


# ------------------------------------------------------------------------------------ benchmark world


def test_bench_world_counts_determinism_and_advance():
    t0 = time.monotonic()
    w = build_bench_world(seed=7, now=NOW)
    assert time.monotonic() - t0 < 10
    c = w.counts()
    assert c["projects"] == 20 and c["groups"] >= 6
    assert 10_500 <= c["default_branch_commits"] <= 13_500
    assert 0.07 <= c["late_pushed_commits"] / c["default_branch_commits"] <= 0.13
    assert c["merged_in_older_commits"] > 500
    assert c["other_branch_commits"] > 100
    assert 2_600 <= c["merge_requests"] <= 3_400
    assert min(c["mr_opened"], c["mr_merged"], c["mr_closed"]) > 200
    assert 4_000 <= c["pipelines"] <= 5_600 and c["pipelines_retried"] > 100
    assert 750 <= c["deployments"] <= 1_150 and c["deployments_failed"] > 20 and c["deployments_blocked"] > 20
    assert 160 <= c["releases"] <= 240 and c["releases_upcoming"] >= 2 and c["releases_backdated"] >= 3
    assert 200 <= c["tags"] <= 310
    assert c["pending_callbacks"] > 0  # late pushes, running pipelines, blocked deployments in flight
    assert build_bench_world(seed=7, now=NOW).counts() == c
    advance_bench_world(w, days=1, seed=8)
    c2 = w.counts()
    assert w.now == NOW + timedelta(days=1)
    assert 60 <= c2["default_branch_commits"] - c["default_branch_commits"] <= 250
    assert c2["pipelines"] > c["pipelines"] and c2["merge_requests"] > c["merge_requests"]
    with FakeGitLab(w, token=TOKEN) as fake:
        gl = client(fake)
        grp = gl.groups.get("acme")
        ps = grp.projects.list(include_subgroups=True, get_all=True, per_page=100)
        assert len(ps) == 20
        r = get(fake, "/groups/acme/merge_requests", params={"per_page": 100})
        assert int(r.headers["X-Total"]) == c2["merge_requests"]


def test_tls_self_signed(world):
    import shutil
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    world.add_project("acme/platform/api")
    with FakeGitLab(world, token=TOKEN, tls=True, path_prefix="/gitlab") as fake:
        assert fake.url.startswith("https://") and fake.ca_path
        gl = gitlab.Gitlab(fake.url, private_token=TOKEN, ssl_verify=fake.ca_path, retry_transient_errors=False)
        assert [p.path for p in gl.projects.list(get_all=True)] == ["api"]
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(fake.url + "/api/v4/version", headers={"PRIVATE-TOKEN": TOKEN}, timeout=10)
