"""The first live sync of a branch reads exactly its commits of the look-back, although the
commits list is in `git log` order, not date order."""

import datetime as dt
import logging

from painchain_pipelines.connectors.github import GitHubConnector
from painchain_pipelines.connectors.github.connector import Tuning
from tests.github.conftest import collect, github_integration

MINUTE = dt.timedelta(minutes=1)
H = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
LOOKBACK = dt.timedelta(days=7)


def commits_on(events, branch="main"):
    return {e.data["sha"] for e in events if e.data["type"] == "commit" and e.data["branch"] == branch}


def commit_list_requests(fake):
    return [r for r in fake.requests if r.canonical_path.endswith("/commits")]


def test_commits_behind_a_merged_branch_of_old_commits_are_read(fake):
    repo = fake.add_repo("octo/app")
    now = fake.now()
    repo.add_commit(message="base", authored_at=now - 30 * DAY)
    repo.create_branch("legacy")
    for n in range(350):  # three and a half pages older than the look-back, listed first
        repo.add_commit(branch="legacy", message=f"legacy {n}", authored_at=now - 20 * DAY + n * 10 * MINUTE)
    recent = [repo.add_commit(message=f"main {n}", authored_at=now - 6 * DAY + n * DAY) for n in range(5)]
    merge = repo.merge("legacy", committed_at=now - H)
    fake.reset_requests()
    events, _ = collect(GitHubConnector().live_sync, github_integration(fake, ["octo/app"]), None, lookback=LOOKBACK)
    assert commits_on(events) == {merge, *recent}
    # the list until a page without a commit of the look-back (2), then one from main's head
    assert [r.query.get("sha", "")[:7] for r in commit_list_requests(fake)] == ["main", "main", recent[-1][:7]]


def test_late_pushed_commits_authored_days_earlier_are_read(fake):
    repo = fake.add_repo("octo/app")
    now = fake.now()
    repo.add_commit(message="base", authored_at=now - 20 * DAY)
    repo.create_branch("laptop")
    stale = repo.add_commit(branch="laptop", message="written offline", authored_at=now - 9 * DAY)
    late = repo.add_commit(branch="laptop", message="finished offline", authored_at=now - 5 * DAY)
    main = [repo.add_commit(message=f"main {n}", authored_at=now - 4 * DAY + n * H) for n in range(3)]
    merge = repo.merge("laptop", committed_at=now - 2 * H)  # pushed today
    direct = repo.add_commit(message="pushed today, authored 6 days ago", authored_at=now - 6 * DAY)
    events, _ = collect(GitHubConnector().live_sync, github_integration(fake, ["octo/app"]), None, lookback=LOOKBACK)
    assert commits_on(events) == {direct, merge, late, *main}
    assert stale not in commits_on(events)  # authored before the look-back


def test_rebased_branch_keeping_committer_dates_is_read_exactly(fake):
    repo = fake.add_repo("octo/app")
    now = fake.now()
    repo.add_commit(message="base", authored_at=now - 20 * DAY)
    repo.create_branch("release")
    repo.add_commit(branch="release", message="old fix", authored_at=now - 9 * DAY)
    repo.add_commit(branch="release", message="new fix", authored_at=now - 2 * DAY)
    main = [repo.add_commit(message=f"main {n}", authored_at=now - 6 * DAY + n * DAY) for n in range(3)]
    # git rebase --committer-date-is-author-date: the 9-day-old commit now sits above main's
    old_fix, new_fix = repo.rebase("release", keep_committer_dates=True)
    integration = github_integration(fake, ["octo/app"], branches=["release"])
    events, _ = collect(GitHubConnector().live_sync, integration, None, lookback=LOOKBACK)
    assert commits_on(events, "release") == {new_fix, *main}


def test_a_rewritten_history_is_walked_back_from_the_new_head(fake):
    repo = fake.add_repo("octo/app")
    now = fake.now()
    repo.add_commit(message="base", authored_at=now - 20 * DAY)
    repo.create_branch("topic")
    repo.add_commit(branch="topic", message="topic", authored_at=now - 3 * DAY)
    integration = github_integration(fake, ["octo/app"], branches=["topic"])
    connector = GitHubConnector()
    _, result = collect(connector.live_sync, integration, None, lookback=LOOKBACK)
    old_head = repo.head("topic")
    repo.create_branch("legacy", from_branch="topic")
    for n in range(150):
        repo.add_commit(branch="legacy", message=f"legacy {n}", authored_at=now - 15 * DAY + n * H)
    fake.advance(60)
    main = repo.add_commit(message="main")
    [rebased] = repo.rebase("topic")  # force-pushed: the saved head is no longer on the branch
    merge = repo.merge("legacy", into="topic")
    # as GitHub answers when the saved head is gone (garbage-collected after the force-push)
    fake.fail_next(1, status=404, path_contains=f"/compare/{old_head}")
    events, _ = collect(connector.live_sync, integration, result.state)
    # since the last sync: the new commits, not the old ones the merge brought in
    assert commits_on(events, "topic") == {merge, main, rebased}


def test_the_walk_stops_at_its_listing_cap_and_says_so(fake, caplog):
    repo = fake.add_repo("octo/app")
    now = fake.now()
    repo.add_commit(message="base", authored_at=now - 30 * DAY)
    repo.create_branch("legacy")
    for n in range(250):
        repo.add_commit(branch="legacy", message=f"legacy {n}", authored_at=now - 20 * DAY + n * H)
    recent = repo.add_commit(message="main", authored_at=now - DAY)
    merge = repo.merge("legacy", committed_at=now - H)
    connector = GitHubConnector(Tuning(max_commit_resolve_listings=0))
    with caplog.at_level(logging.WARNING):
        events, _ = collect(connector.live_sync, github_integration(fake, ["octo/app"]), None, lookback=LOOKBACK)
    assert commits_on(events) == {merge}
    assert recent not in commits_on(events)
    assert "octo/app: walking back main stopped after 0 listings with 1 commits behind older ones" in caplog.text
