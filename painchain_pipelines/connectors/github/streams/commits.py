"""Commits of the default branch and of the configured branches, one part per branch.

Window: `GET /repos/{r}/commits?sha=<branch>&since&until`. Live: per branch the head SHA is kept
(`heads`); new commits are exactly `compare/<old head>...<new head>`, whatever their dates. The
first sync of a branch, or one whose history was rewritten, walks the list back from the head.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from painchain_pipelines.connectors.base import Event, TimeWindow, iso, parse_time
from painchain_pipelines.connectors.github.client import GitHubReader, Page, SourceUnavailable
from painchain_pipelines.connectors.github.streams.base import (
    CONNECTOR,
    LIST_PARAMS,
    FirstPage,
    LiveRead,
    Part,
    Repo,
    Stream,
    login,
    short_sha,
)

log = logging.getLogger(__name__)


class CommitsStream(Stream):
    name = "commits"

    @staticmethod
    def part(branch: str) -> str:
        """The branch's part name, also its first page's ETag key."""
        return f"commits:{branch}"

    def read_window(self, reader: GitHubReader, repo: Repo, window: TimeWindow) -> Iterator[Part]:
        for branch in repo.branches:
            yield self.part(branch), self._window_commits(reader, repo, branch, window)

    def _window_commits(self, reader: GitHubReader, repo: Repo, branch: str, window: TimeWindow):
        params = {"sha": branch, "since": iso(window.start), "until": iso(window.end)}
        for item in reader.items(f"{repo.path}/commits", params):
            yield commit_event(repo.name, branch, item)

    def first_pages(self, repo: Repo) -> list[FirstPage]:
        return [self._first_page(repo, branch) for branch in repo.branches]

    def _first_page(self, repo: Repo, branch: str) -> FirstPage:
        return FirstPage(self.part(branch), f"{repo.path}/commits", {"sha": branch, **LIST_PARAMS})

    def live_state(self, repo_state: dict[str, Any]) -> dict[str, Any]:
        return {"heads": dict(repo_state.get("heads", {}))}

    def read_live(self, live: LiveRead, state: dict[str, Any]) -> Iterator[Part]:
        for branch in live.repo.branches:
            yield self.part(branch), self._live_commits(live, branch, state["heads"])

    def _live_commits(self, live: LiveRead, branch: str, heads: dict[str, str]) -> Iterator[Event]:
        reader, repo = live.reader, live.repo
        page = live.first_page(self._first_page(repo, branch))
        if page is None or not page.data:
            return
        head, previous = page.data[0]["sha"], heads.get(branch)
        if head == previous:
            return
        if previous:
            # Exactly the commits that reached the branch since we last looked, whatever their
            # dates: a commit authored hours before it was pushed is still new here.
            try:
                for item in reader.items(f"{repo.path}/compare/{previous}...{head}", list_item="commits"):
                    yield commit_event(repo.name, branch, item)
                heads[branch] = head
                return
            except SourceUnavailable:
                log.info("%s: cannot compare %s...%s on %s (history rewritten?); walking back from the head",
                         repo.name, previous[:7], head[:7], branch)
        yield from self._branch_commits_since(live, branch, page)
        heads[branch] = head

    def _branch_commits_since(self, live: LiveRead, branch: str, first: Page) -> Iterator[Event]:
        """Every commit reachable from the branch head dated at or after `live.lower` (first sync
        of a branch, or after its history was rewritten).

        The list is in `git log` order, not date order: a merged branch's old commits can come
        before newer ones. So it is walked as a graph: the parents of in-window commits are
        wanted until seen. A listing ends after a page without an in-window commit; wanted
        commits it did not reach are listed from themselves (one request brings a commit and
        up to 99 of its ancestors). Exact whenever no commit is dated before its parents."""
        reader, repo, lower = live.reader, live.repo, live.lower
        path = f"{repo.path}/commits"
        seen: set[str] = set()
        wanted: dict[str, None] = {}  # an ordered set: resolved in the order they were found
        listings = 0  # started from wanted commits
        start, number, page = branch, 1, first
        while True:
            if page is None:
                if start != branch and number == 1:
                    if listings >= self.tuning.max_commit_resolve_listings:
                        log.warning("%s: walking back %s stopped after %d listings with %d commits behind older "
                                    "ones unresolved: some commits of the look-back may be missing (raise "
                                    "Tuning.max_commit_resolve_listings)", repo.name, branch, listings,
                                    len(wanted) + 1)
                        return
                    listings += 1
                try:
                    page = reader.get(path, {"sha": start, **LIST_PARAMS, "page": number})
                except SourceUnavailable:
                    if start == branch:
                        raise
                    log.info("%s: commit %s cannot be listed; skipped", repo.name, start[:7])
                    page = Page(200, [], {})
            in_window = False
            for item in page.data:
                sha = item["sha"]
                if sha in seen:
                    continue
                seen.add(sha)
                wanted.pop(sha, None)
                event = commit_event(repo.name, branch, item)
                if event.timestamp >= lower:
                    in_window = True
                    wanted.update((p["sha"], None) for p in item.get("parents") or [] if p["sha"] not in seen)
                    yield event
            if in_window and page.has_next:
                number, page = number + 1, None
                continue
            if not wanted:
                return
            start, number, page = next(iter(wanted)), 1, None
            del wanted[start]  # listed from now on: seen, or dropped if the listing cannot show it


# ---------------------------------------------------------------------------- transform


def _subject(message: str | None) -> str:
    return (message or "").strip().splitlines()[0][:200] if message and message.strip() else "(no message)"


def commit_event(repo: str, branch: str, item: dict) -> Event:
    commit = item.get("commit") or {}
    committer, author = commit.get("committer") or {}, commit.get("author") or {}
    when = parse_time(committer.get("date")) or parse_time(author.get("date"))
    sha = item["sha"]
    return Event(
        title=f"Commit to {branch}: {_subject(commit.get('message'))}",
        connector=CONNECTOR,
        project=repo,
        timestamp=when,
        external_id=f"github:{repo}:commit:{sha}",
        data={
            "type": "commit",
            "url": item.get("html_url"),
            "sha": sha,
            "shortSha": short_sha(sha),
            "branch": branch,
            "message": (commit.get("message") or "")[:4000],
            "author": login(item.get("author")) or author.get("name"),
            "authorName": author.get("name"),
            "committer": login(item.get("committer")) or committer.get("name"),
            "authoredAt": author.get("date"),
            "committedAt": committer.get("date"),
            "parents": [p.get("sha") for p in item.get("parents") or []],
        },
    )
