"""Tests of the fake GitHub server, driven through the real PyGithub client."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

import github
import pytest
import requests

from .github_server import FIXTURES_DIR, FakeGitHub, parse_github_date_range, templates

UTC = timezone.utc
T0 = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)


def client(fake: FakeGitHub, token: str | None = None, **kw) -> github.Github:
    return github.Github(auth=github.Auth.Token(token or fake.token), base_url=fake.base_url,
                         seconds_between_requests=0, retry=None, **kw)


@pytest.fixture
def fake():
    with FakeGitHub() as f:
        yield f


def list_requests(fake: FakeGitHub, suffix: str):
    return [r for r in fake.requests if (r.canonical_path or r.path).endswith(suffix)]


# ------------------------------------------------------------------------------------------ fixtures


def test_templates_are_the_copied_upstream_files():
    t = templates()
    assert t.repository["full_name"] == "rsn491/PyGithub"  # body line of the first replay block
    assert t.commit_item["commit"]["message"] == "Fix all the bugs"
    for name in ("github-openapi/LICENSE", "pygithub/COPYING", "pygithub/COPYING.LESSER", "SOURCES.md"):
        assert (FIXTURES_DIR / name).is_file(), name


def test_payloads_keep_template_fields_and_rewrite_urls(fake):
    fake2 = FakeGitHub(html_base="https://ghe.example.com").start()
    try:
        for f in (fake, fake2):
            r = f.add_repo("acme/shop")
            sha = r.add_commit(message="init")
            r.open_pull("PR", head_ref="main")
            r.add_release("v1")
            r.add_workflow_run()
            d = r.add_deployment()
            r.add_deployment_status(d, "success")
        t = templates()
        s = requests.Session()
        s.headers["Authorization"] = "token test-token"
        checks = {
            "/repos/acme/shop/commits": t.commit_item, "/repos/acme/shop/pulls": t.pull,
            "/repos/acme/shop/releases": t.release, "/repos/acme/shop/deployments": t.deployment,
            f"/repos/acme/shop/deployments/{d}/statuses": t.deployment_status,
        }
        for path, template in checks.items():
            resp = s.get(fake2.base_url + path)
            assert resp.status_code == 200, path
            assert "api.github.com" not in resp.text and "https://github.com/" not in resp.text.replace(
                "https://github.com/images", ""), path
            item = resp.json()[0]
            assert set(template) <= set(item), (path, set(template) - set(item))
            assert item["url"].startswith(fake2.base_url + "/repos/acme/shop/"), item["url"]
        runs = s.get(fake2.base_url + "/repos/acme/shop/actions/runs").json()
        assert set(t.run) <= set(runs["workflow_runs"][0])
        assert runs["workflow_runs"][0]["html_url"].startswith("https://ghe.example.com/acme/shop/actions/runs/")
        repo = s.get(fake2.base_url + "/repos/acme/shop").json()
        assert repo["full_name"] == "acme/shop" and repo["default_branch"] == "main" and "parent" not in repo
        assert repo["commits_url"] == fake2.base_url + "/repos/acme/shop/commits{/sha}"
        # the default html_base keeps github.com html links, while API URLs point at the fake
        gh = client(fake)
        c = gh.get_repo("acme/shop").get_commit(sha)
        assert c.html_url == f"https://github.com/acme/shop/commit/{sha}"
        assert c.url == f"{fake.base_url}/repos/acme/shop/commits/{sha}"
    finally:
        fake2.stop()


# ------------------------------------------------------------------------------------------ commits


def test_commit_pagination_250_with_per_page_100(fake):
    r = fake.add_repo("acme/shop")
    shas = [r.add_commit(message=f"c{i}") for i in range(250)]
    gh = client(fake, per_page=100)
    repo = gh.get_repo("acme/shop")
    fake.reset_requests()
    got = [c.sha for c in repo.get_commits()]
    assert got == shas[::-1]  # newest pushed first
    reqs = list_requests(fake, "/commits")
    assert len(reqs) == 3
    assert [q.query.get("page") for q in reqs] == [None, "2", "3"]
    assert all(q.query["per_page"] == "100" for q in reqs)
    # pages 2 and 3 were followed from Link headers, which use the /repositories/{id} alias on the fake's base
    assert reqs[1].path == f"/repositories/{r.id}/commits" and reqs[1].canonical_path == "/repos/acme/shop/commits"
    assert len(fake.requests) == 3  # no completion requests: list items are complete


def test_link_header_format_and_rels(fake):
    r = fake.add_repo("acme/shop")
    for i in range(25):
        r.add_commit(message=f"c{i}")
    s = requests.Session()
    s.headers["Authorization"] = "Bearer test-token"
    url = f"{fake.base_url}/repos/acme/shop/commits"
    first = s.get(url, params={"sha": "main", "per_page": 10})
    base = f"{fake.base_url}/repositories/{r.id}/commits"
    assert first.headers["Link"] == (f'<{base}?sha=main&per_page=10&page=2>; rel="next", '
                                      f'<{base}?sha=main&per_page=10&page=3>; rel="last"')
    mid = s.get(url, params={"page": 2, "sha": "main", "per_page": 10})
    assert mid.headers["Link"] == (f'<{base}?page=1&sha=main&per_page=10>; rel="prev", '
                                    f'<{base}?page=3&sha=main&per_page=10>; rel="next", '
                                    f'<{base}?page=3&sha=main&per_page=10>; rel="last", '
                                    f'<{base}?page=1&sha=main&per_page=10>; rel="first"')
    last = s.get(first.links["last"]["url"])
    assert len(last.json()) == 5 and "next" not in last.links and last.links["first"]["url"].endswith("page=1")
    assert "Link" not in s.get(url, params={"per_page": 100}).headers
    assert len(s.get(url, params={"per_page": 1000}).json()) == 25  # capped at 100, all fit
    assert len(s.get(url).json()) == 25 and len(s.get(url, params={"per_page": 5, "page": 9}).json()) == 0


def test_commits_since_until_on_committer_date_and_push_order(fake):
    r = fake.add_repo("acme/shop")
    a = r.add_commit(message="a", authored_at=T0)
    b = r.add_commit(message="b", authored_at=T0 + timedelta(hours=1))
    c = r.add_commit(message="c", authored_at=T0 - timedelta(days=5), committed_at=T0 + timedelta(hours=2))
    late_old = r.add_commit(message="pushed late, old date", authored_at=T0 - timedelta(days=30))
    repo = client(fake).get_repo("acme/shop")
    assert [x.sha for x in repo.get_commits()] == [late_old, c, b, a]
    assert [x.sha for x in repo.get_commits(since=T0 + timedelta(hours=1))] == [c, b]  # inclusive, committer date
    assert [x.sha for x in repo.get_commits(until=T0 + timedelta(hours=1))] == [late_old, b, a]
    assert [x.sha for x in repo.get_commits(since=T0, until=T0)] == [a]
    got = repo.get_commits(since=T0 + timedelta(hours=2))[0]
    assert got.commit.author.date == T0 - timedelta(days=5) and got.commit.committer.date == T0 + timedelta(hours=2)
    assert got.commit.message == "c" and got.author.login == "octocat" and got.parents[0].sha == b


def test_branches_compare_and_single_commit(fake):
    r = fake.add_repo("acme/shop")
    base = [r.add_commit(message=f"m{i}") for i in range(3)]
    r.create_branch("feature/x")
    f1 = r.add_commit(branch="feature/x", message="f1")
    f2 = r.add_commit(branch="feature/x", message="f2")
    m4 = r.add_commit(message="m4")
    repo = client(fake).get_repo("acme/shop")
    assert [c.sha for c in repo.get_commits(sha="feature/x")] == [f2, f1, *base[::-1]]
    assert [c.sha for c in repo.get_commits(sha=f1)] == [f1, *base[::-1]]
    assert repo.get_branch("feature/x").commit.sha == f2
    with pytest.raises(github.UnknownObjectException):
        repo.get_branch("nope")
    cmp = repo.compare("main", "feature/x")
    assert (cmp.status, cmp.ahead_by, cmp.behind_by, cmp.total_commits) == ("diverged", 2, 1, 2)
    assert [c.sha for c in cmp.commits] == [f1, f2]  # oldest first
    assert cmp.merge_base_commit.sha == base[-1]
    assert repo.compare(base[0], base[2]).status == "ahead"
    assert repo.compare(m4, base[1]).status == "behind"
    assert repo.compare("main", m4).status == "identical"
    with pytest.raises(github.UnknownObjectException):
        repo.compare("main", "0" * 40)
    c = repo.get_commit(f1)
    assert c.commit.message == "f1" and c.stats.total == 0 and c.files.totalCount == 0
    with pytest.raises(github.GithubException) as ei:
        repo.get_commit("1" * 40)
    assert ei.value.status == 422


def test_compare_commits_paginate(fake):
    r = fake.add_repo("acme/shop")
    r.add_commit(message="root")
    r.create_branch("big")
    shas = [r.add_commit(branch="big", message=f"b{i}") for i in range(7)]
    repo = client(fake).get_repo("acme/shop")
    fake.reset_requests()
    cmp = repo.compare("main", "big", comparison_commits_per_page=3)
    assert [c.sha for c in cmp.commits] == shas
    assert len(list_requests(fake, "/compare/main...big")) == 3


def test_empty_repository_commits_is_409(fake):
    fake.add_repo("acme/empty")
    with pytest.raises(github.GithubException) as ei:
        list(client(fake).get_repo("acme/empty").get_commits())
    assert ei.value.status == 409 and ei.value.data["message"] == "Git Repository is empty."


# ------------------------------------------------------------------------------------------ pulls & releases


def test_pulls_state_sort_and_direction(fake):
    r = fake.add_repo("acme/shop")
    r.add_commit()
    p1 = r.open_pull("one", created_at=T0)
    p2 = r.open_pull("two", created_at=T0 + timedelta(minutes=1))
    p3 = r.open_pull("three", created_at=T0 + timedelta(minutes=2))
    r.merge_pull(p1, at=T0 + timedelta(minutes=10))
    r.close_pull(p3, at=T0 + timedelta(minutes=5))
    repo = client(fake).get_repo("acme/shop")
    assert [p.number for p in repo.get_pulls()] == [p2]  # default: open
    assert [p.number for p in repo.get_pulls(state="all")] == [p3, p2, p1]  # created desc
    assert [p.number for p in repo.get_pulls(state="all", sort="updated", direction="desc")] == [p1, p3, p2]
    assert [p.number for p in repo.get_pulls(state="all", sort="updated")] == [p2, p3, p1]  # asc by default
    assert [p.number for p in repo.get_pulls(state="closed", sort="updated", direction="desc")] == [p1, p3]
    r.reopen_pull(p3, at=T0 + timedelta(minutes=20))
    assert [p.number for p in repo.get_pulls(state="all", sort="updated", direction="desc")] == [p3, p1, p2]
    fake.reset_requests()
    merged = repo.get_pulls(state="closed")[0]
    assert merged.merged_at == T0 + timedelta(minutes=10) and merged.closed_at == merged.merged_at
    assert len(fake.requests) == 1
    assert merged.merged is True and merged.merged_by.login == "octocat"  # not in list items: completes
    assert [q.path for q in fake.requests[1:]] == [f"/repos/acme/shop/pulls/{p1}"]
    assert repo.get_pull(p2).merged is False and repo.get_pull(p2).merge_commit_sha is None


def test_releases_sorted_by_created_desc_with_drafts(fake):
    r = fake.add_repo("acme/shop")
    v1 = r.add_release("v1.0.0", created_at=T0)
    draft = r.add_release("v2.0.0", created_at=T0 + timedelta(days=2), draft=True)
    v15 = r.add_release("v1.5.0", created_at=T0 + timedelta(days=1), prerelease=True)
    repo = client(fake).get_repo("acme/shop")
    rels = list(repo.get_releases())
    assert [x.id for x in rels] == [draft, v15, v1]
    assert rels[0].draft and rels[0].published_at is None and rels[1].prerelease
    r.publish_release(draft, at=T0 + timedelta(days=3))
    pub = repo.get_releases()[0]
    assert pub.published_at == T0 + timedelta(days=3) and not pub.draft
    assert pub.html_url == "https://github.com/acme/shop/releases/tag/v2.0.0"


# ------------------------------------------------------------------------------------------ workflow runs


def test_date_range_syntax():
    at = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
    assert parse_github_date_range("2026-11-24")(at)
    assert not parse_github_date_range("2026-11-25")(at)
    assert parse_github_date_range(">=2026-11-24")(at) and not parse_github_date_range(">2026-11-24")(at)
    assert parse_github_date_range("<=2026-11-24")(at) and not parse_github_date_range("<2026-11-24")(at)
    assert parse_github_date_range("2026-11-23..2026-11-24")(at)
    assert not parse_github_date_range("2026-11-20..2026-11-23")(at)
    assert parse_github_date_range("2026-11-24T12:00:00Z..*")(at)
    assert not parse_github_date_range(">2026-11-24T12:00:00Z")(at)
    assert parse_github_date_range("*..2026-11-24T12:00:00Z")(at)
    assert parse_github_date_range("2026-11-24T13:00:00+01:00")(at)


def test_workflow_runs_created_filter_and_order(fake):
    r = fake.add_repo("acme/shop")
    sha = r.add_commit(message="Fix the build\n\nlong body")
    ids = [r.add_workflow_run(name="CI", created_at=T0 + timedelta(hours=12 * i)) for i in range(6)]
    same_second = r.add_workflow_run(name="Lint", created_at=T0 + timedelta(hours=12 * 5), event="pull_request")
    repo = client(fake).get_repo("acme/shop")
    assert [x.id for x in repo.get_workflow_runs()] == [same_second, *ids[::-1]]  # created desc, then id desc
    assert [x.id for x in repo.get_workflow_runs(created="2026-11-25")] == [ids[3], ids[2]]
    assert [x.id for x in repo.get_workflow_runs(created=">=2026-11-26")] == [same_second, ids[5], ids[4]]
    assert [x.id for x in repo.get_workflow_runs(created="2026-11-24T22:00:00Z..2026-11-25T12:00:00Z")] == [ids[2], ids[1]]
    assert [x.id for x in repo.get_workflow_runs(created="<2026-11-25")] == [ids[1], ids[0]]
    assert [x.id for x in repo.get_workflow_runs(event="pull_request")] == [same_second]
    run = repo.get_workflow_run(ids[0])
    assert (run.name, run.run_number, run.run_attempt, run.head_sha, run.display_title) == ("CI", 1, 1, sha, "Fix the build")
    assert run.html_url == f"https://github.com/acme/shop/actions/runs/{ids[0]}" and run.event == "push"
    assert repo.get_workflow_run(ids[5]).run_number == 6 and repo.get_workflow_run(same_second).run_number == 1


def test_workflow_run_lifecycle_and_status_filter(fake):
    r = fake.add_repo("acme/shop")
    r.add_commit()
    a = r.add_workflow_run(created_at=T0)
    b = r.add_workflow_run(created_at=T0 + timedelta(minutes=1))
    r.start_run(a, at=T0 + timedelta(minutes=2))
    r.complete_run(a, "failure", at=T0 + timedelta(minutes=5))
    repo = client(fake).get_repo("acme/shop")
    assert [x.id for x in repo.get_workflow_runs(status="completed")] == [a]
    assert [x.id for x in repo.get_workflow_runs(status="failure")] == [a]
    assert [x.id for x in repo.get_workflow_runs(status="queued")] == [b]
    r.rerun(a, at=T0 + timedelta(minutes=30))
    run = repo.get_workflow_run(a)
    assert (run.status, run.conclusion, run.run_attempt) == ("queued", None, 2)
    assert run.created_at == T0 and run.run_started_at == run.updated_at == T0 + timedelta(minutes=30)


def test_workflow_runs_filtered_lists_are_capped_at_1000(fake):
    r = fake.add_repo("acme/shop")
    r.add_commit()
    for i in range(1050):
        r.add_workflow_run(created_at=T0 + timedelta(seconds=i))
    repo = client(fake, per_page=100).get_repo("acme/shop")
    assert repo.get_workflow_runs().totalCount == 1050
    capped = repo.get_workflow_runs(status="queued")
    assert capped.totalCount == 1000
    last_page = capped.get_page(9)
    assert len(last_page) == 100 and last_page[-1].created_at == T0 + timedelta(seconds=50)
    assert capped.get_page(10) == []
    h, data = repo._requester.requestJsonAndCheck("GET", f"{repo.url}/actions/runs",
                                                  {"branch": "main", "per_page": 100, "page": 10})
    assert data["total_count"] == 1000 and len(data["workflow_runs"]) == 100
    assert 'rel="next"' not in h["link"]


# ------------------------------------------------------------------------------------------ deployments


def test_deployments_and_statuses(fake):
    r = fake.add_repo("acme/shop")
    sha = r.add_commit()
    d1 = r.add_deployment("staging", created_at=T0, description="first")
    d2 = r.add_deployment("production", created_at=T0 + timedelta(minutes=1))
    s1 = r.add_deployment_status(d1, "in_progress", at=T0 + timedelta(minutes=2))
    s2 = r.add_deployment_status(d1, "success", at=T0 + timedelta(minutes=3), target_url="https://ci/1",
                                 environment_url="https://staging.example.com")
    repo = client(fake).get_repo("acme/shop")
    deps = list(repo.get_deployments())
    assert [d.id for d in deps] == [d2, d1]
    assert deps[1].updated_at == T0 + timedelta(minutes=3) and deps[1].created_at == T0
    assert (deps[1].sha, deps[1].ref, deps[1].environment, deps[1].description) == (sha, "main", "staging", "first")
    assert "html_url" not in deps[1].raw_data
    assert [d.id for d in repo.get_deployments(environment="production")] == [d2]
    statuses = list(deps[1].get_statuses())
    assert [s.id for s in statuses] == [s2, s1]
    assert (statuses[0].state, statuses[0].target_url, statuses[0].log_url, statuses[0].environment_url) == (
        "success", "https://ci/1", "https://ci/1", "https://staging.example.com")
    assert statuses[0].environment == "staging" and statuses[0].created_at == T0 + timedelta(minutes=3)
    assert list(repo.get_deployment(d2).get_statuses()) == []


# ------------------------------------------------------------------------------------------ HTTP semantics


def test_etag_304_not_counted(fake):
    r = fake.add_repo("acme/shop")
    r.add_commit()
    gh = client(fake)
    url = f"{fake.base_url}/repos/acme/shop/commits"
    h, data = gh.requester.requestJsonAndCheck("GET", url, {"per_page": 10})
    etag = h["etag"]
    assert etag.startswith('W/"') and len(data) == 1
    before = fake.rate_remaining
    h2, data2 = gh.requester.requestJsonAndCheck("GET", url, {"per_page": 10}, headers={"If-None-Match": etag})
    assert data2 is None and h2["etag"] == etag  # 304 surfaces as (headers, None), no exception
    assert fake.requests[-1].status == 304 and fake.requests[-1].counted is False
    assert fake.rate_remaining == before == int(h2["x-ratelimit-remaining"])
    r.add_commit()
    h3, data3 = gh.requester.requestJsonAndCheck("GET", url, {"per_page": 10}, headers={"If-None-Match": etag})
    assert len(data3) == 2 and h3["etag"] != etag and fake.rate_remaining == before - 1
    gh.get_rate_limit()
    assert fake.requests[-1].path == "/rate_limit" and not fake.requests[-1].counted
    assert fake.rate_remaining == before - 1


def test_bad_token_is_401(fake):
    fake.add_repo("acme/shop")
    with pytest.raises(github.BadCredentialsException) as ei:
        client(fake, token="wrong").get_repo("acme/shop")
    assert ei.value.status == 401 and ei.value.data["message"] == "Bad credentials"
    resp = requests.get(f"{fake.base_url}/repos/acme/shop")
    assert resp.status_code == 401 and resp.json()["status"] == "401"


def test_repo_errors_404_403_and_clear(fake):
    r = fake.add_repo("acme/shop")
    r.add_commit()
    gh = client(fake)
    repo = gh.get_repo("acme/shop")
    fake.set_repo_error("acme/shop", 404)
    with pytest.raises(github.UnknownObjectException):
        list(repo.get_commits())
    with pytest.raises(github.UnknownObjectException):
        gh.requester.requestJsonAndCheck("GET", f"/repositories/{r.id}/pulls")
    fake.set_repo_error("acme/shop", 403)
    with pytest.raises(github.GithubException) as ei:
        list(repo.get_workflow_runs())
    assert ei.value.status == 403 and ei.value.data["message"] == "Resource not accessible by integration"
    assert not isinstance(ei.value, github.RateLimitExceededException)
    fake.set_repo_error("acme/shop", None)
    assert len(list(repo.get_commits())) == 1
    with pytest.raises(github.UnknownObjectException):
        gh.get_repo("acme/missing")


def test_fail_next_502_and_429(fake):
    r = fake.add_repo("acme/shop")
    r.add_commit()
    gh = client(fake)
    repo = gh.get_repo("acme/shop")
    fake.fail_next(count=2, status=502, path_contains="/commits")
    assert repo.get_pulls().totalCount == 0  # other paths unaffected
    for _ in range(2):
        with pytest.raises(github.GithubException) as ei:
            list(repo.get_commits())
        assert ei.value.status == 502 and ei.value.data == {"message": "Server Error"}
    assert len(list(repo.get_commits())) == 1  # queue consumed
    fake.fail_next(status=429, headers={"Retry-After": "7"})
    with pytest.raises(github.GithubException) as ei:
        repo.get_releases().totalCount
    assert ei.value.status == 429 and ei.value.headers["retry-after"] == "7"


def test_secondary_rate_limit(fake):
    fake.add_repo("acme/shop")
    gh = client(fake)
    fake.secondary_rate_limit_next(retry_after=30)
    with pytest.raises(github.RateLimitExceededException) as ei:
        gh.get_repo("acme/shop")
    assert ei.value.status == 403 and ei.value.headers["retry-after"] == "30"
    assert ei.value.data["message"].startswith("You have exceeded a secondary rate limit")
    assert gh.get_repo("acme/shop").full_name == "acme/shop"


def test_exhausted_rate_limit_and_recovery(fake):
    fake.add_repo("acme/shop")
    gh = client(fake)
    gh.get_repo("acme/shop")
    fake.exhaust_rate_limit(reset_in=600)
    reset = int(fake.now().timestamp()) + 600
    with pytest.raises(github.RateLimitExceededException) as ei:
        gh.get_repo("acme/shop")
    h = ei.value.headers
    assert h["x-ratelimit-remaining"] == "0" and abs(int(h["x-ratelimit-reset"]) - reset) <= 1
    assert ei.value.data["message"].startswith("API rate limit exceeded")
    assert gh.rate_limiting == (0, 5000)
    fake.advance(300)
    with pytest.raises(github.RateLimitExceededException):
        gh.get_repo("acme/shop")
    fake.advance(301)
    assert gh.get_repo("acme/shop").name == "shop"
    assert gh.rate_limiting == (4999, 5000) and fake.rate_remaining == 4999


def test_rate_limit_counts_down_and_world_clock(fake):
    f = FakeGitHub(rate_limit=10).start()
    try:
        f.add_repo("acme/shop")
        gh = client(f)
        for i in range(10):
            gh.get_repo("acme/shop")
        assert f.rate_remaining == 0
        with pytest.raises(github.RateLimitExceededException):
            gh.get_repo("acme/shop")
        before = f.now()
        f.advance(3600)
        assert f.now() - before >= timedelta(seconds=3600)
        assert f.now().tzinfo is not None and f.rate_remaining == 10
        gh.get_repo("acme/shop")
        assert gh.get_rate_limit().resources.core.remaining == 9
    finally:
        f.stop()


def test_ghe_api_prefix():
    with FakeGitHub(api_prefix="/api/v3") as f:
        assert f.base_url.endswith("/api/v3")
        r = f.add_repo("corp/svc")
        shas = [r.add_commit(message=str(i)) for i in range(5)]
        gh = client(f, per_page=2)
        repo = gh.get_repo("corp/svc")
        assert [c.sha for c in repo.get_commits()] == shas[::-1]
        assert [q.path for q in f.requests] == ["/repos/corp/svc", "/repos/corp/svc/commits",
                                                f"/repositories/{r.id}/commits", f"/repositories/{r.id}/commits"]
        assert repo.url == f.base_url + "/repos/corp/svc"
        resp = requests.get(f"http://127.0.0.1:{f.port}/repos/corp/svc", headers={"Authorization": "token test-token"})
        assert resp.status_code == 404


def test_unknown_route_and_method(fake):
    fake.add_repo("acme/shop")
    s = requests.Session()
    s.headers["Authorization"] = "token test-token"
    resp = s.get(f"{fake.base_url}/nope")
    assert resp.status_code == 404 and resp.json()["message"] == "Not Found"
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    assert resp.headers["X-RateLimit-Resource"] == "core"
    assert s.post(f"{fake.base_url}/repos/acme/shop/pulls", json={}).status_code == 405


def test_concurrent_clients_with_latency():
    with FakeGitHub(latency=0.2) as f:
        f.add_repo("acme/shop")
        results = []

        def worker():
            results.append(client(f).get_repo("acme/shop").full_name)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        t = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        elapsed = time.perf_counter() - t
        assert results == ["acme/shop"] * 8
        assert elapsed < 1.0  # served in parallel (serially it would take >= 1.6 s)
        assert len(f.requests) == 8 and f.rate_remaining == 4992


def test_world_mutations_visible_between_polls(fake):
    r = fake.add_repo("acme/shop")
    r.add_commit(message="one")
    repo = client(fake).get_repo("acme/shop")
    assert [c.commit.message for c in repo.get_commits()] == ["one"]
    fake.advance(60)
    r.add_commit(message="two")
    commits = list(repo.get_commits())
    assert [c.commit.message for c in commits] == ["two", "one"]
    assert commits[0].commit.committer.date - commits[1].commit.committer.date >= timedelta(seconds=59)
    body = json.loads(requests.get(f"{fake.base_url}/repos/acme/shop/commits",
                                   headers={"Authorization": "token test-token"}).text)
    assert body[0]["commit"]["committer"]["date"].endswith("Z")


# ------------------------------------------------------------------------------------------ clock, merges, re-runs


@pytest.mark.parametrize("offset", [-3 * 3600, 3 * 3600])
def test_date_header_and_timestamps_follow_the_world_clock(offset):
    with FakeGitHub(clock_offset=offset) as f:
        r = f.add_repo("acme/shop")
        sha = r.add_commit(message="now")
        before = f.now().replace(microsecond=0)
        resp = requests.get(f.base_url + "/repos/acme/shop/commits", headers={"Authorization": "token test-token"})
        again = requests.get(f.base_url + "/repos/acme/shop/commits", headers={
            "Authorization": "token test-token", "If-None-Match": resp.headers["ETag"]})
        after = f.now()
    assert again.status_code == 304
    for answer in (resp, again):  # the server's clock, hours away from this host's
        server_time = parsedate_to_datetime(answer.headers["Date"])
        assert before <= server_time <= after
        assert abs(server_time - datetime.now(UTC)) > timedelta(hours=2)
    assert resp.json()[0]["sha"] == sha and before - timedelta(seconds=1) <= datetime.fromisoformat(
        resp.json()[0]["commit"]["committer"]["date"].replace("Z", "+00:00")) <= after


def test_merge_lists_merged_commits_first_with_two_parents(fake):
    r = fake.add_repo("acme/shop")
    base = r.add_commit(message="base", authored_at=T0)
    r.create_branch("old")
    old = [r.add_commit(branch="old", message=f"old {i}", authored_at=T0 + timedelta(hours=i)) for i in range(2)]
    new = r.add_commit(message="new", authored_at=T0 + timedelta(days=5))
    merge = r.merge("old", committed_at=T0 + timedelta(days=6))
    repo = client(fake).get_repo("acme/shop")
    assert [c.sha for c in repo.get_commits()] == [merge, old[1], old[0], new, base]  # not date order
    assert [p.sha for p in repo.get_commit(merge).parents] == [new, old[1]]
    assert [c.sha for c in repo.get_commits(sha=new)] == [new, base]
    assert [c.sha for c in repo.compare(new, "main").commits] == [*old, merge]


@pytest.mark.parametrize("keep_committer_dates", [False, True])
def test_rebase_replays_commits_with_new_shas(fake, keep_committer_dates):
    r = fake.add_repo("acme/shop")
    base = r.add_commit(message="base", authored_at=T0)
    r.create_branch("topic")
    topic = r.add_commit(branch="topic", message="topic", authored_at=T0 + timedelta(hours=1))
    main = r.add_commit(message="main", authored_at=T0 + timedelta(hours=2))
    [rebased] = r.rebase("topic", committed_at=T0 + timedelta(hours=3), keep_committer_dates=keep_committer_dates)
    repo = client(fake).get_repo("acme/shop")
    assert [c.sha for c in repo.get_commits(sha="topic")] == [rebased, main, base]
    commit = repo.get_commit(rebased).commit
    assert rebased != topic and commit.message == "topic" and commit.author.date == T0 + timedelta(hours=1)
    assert commit.committer.date == T0 + timedelta(hours=1 if keep_committer_dates else 3)
    assert [c.sha for c in repo.get_commits(sha=topic)] == [topic, base]  # the old commit still exists


def test_rerun_changes_the_etag_of_its_own_page_only(fake):
    r = fake.add_repo("acme/shop")
    r.add_commit()
    ids = [r.add_workflow_run(created_at=T0 + timedelta(minutes=i)) for i in range(250)]
    for run_id in ids:
        r.complete_run(run_id, at=T0 + timedelta(hours=5))
    gh = client(fake)
    url = f"{fake.base_url}/repos/acme/shop/actions/runs"

    def page(number, etag=None):
        params = {"created": "2026-11-24", "per_page": 100, "page": number}
        return gh.requester.requestJsonAndCheck("GET", url, params, headers={"If-None-Match": etag} if etag else None)

    etags = [page(n)[0]["etag"] for n in (1, 2, 3)]
    r.rerun(ids[10], at=T0 + timedelta(days=3))  # listed last: on page 3 (newest created first)
    assert [page(n, etags[n - 1])[1] is None for n in (1, 2)] == [True, True]
    headers, data = page(3, etags[2])
    [run] = [x for x in data["workflow_runs"] if x["id"] == ids[10]]
    assert headers["etag"] != etags[2]
    assert (run["run_attempt"], run["status"], run["updated_at"]) == (2, "queued", "2026-11-27T10:00:00Z")
    r.complete_run(ids[10], "failure", at=T0 + timedelta(days=3, minutes=4))
    headers2, data2 = page(3, headers["etag"])
    [run] = [x for x in data2["workflow_runs"] if x["id"] == ids[10]]
    assert headers2["etag"] != headers["etag"] and (run["run_attempt"], run["conclusion"]) == (2, "failure")
