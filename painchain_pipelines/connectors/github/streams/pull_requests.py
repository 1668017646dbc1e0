"""Pull requests: opened, merged and closed-without-merging changes.

`GET /repos/{r}/pulls` sorted by last update, newest first, read down to the lower bound. Live
syncs keep only the list's ETag; the list's order makes any change come first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from painchain_pipelines.connectors.base import Event, TimeWindow, parse_time
from painchain_pipelines.connectors.github.client import GitHubReader, Page
from painchain_pipelines.connectors.github.streams.base import (
    CONNECTOR,
    FirstPage,
    LiveRead,
    Part,
    Repo,
    Stream,
    login,
)

PULLS_PARAMS = {"state": "all", "sort": "updated", "direction": "desc", "per_page": 100}


class PullRequestsStream(Stream):
    name = "pulls"

    def read_window(self, reader: GitHubReader, repo: Repo, window: TimeWindow) -> Iterator[Part]:
        yield self.name, self._pull_changes(reader, repo, None, window.start)

    def first_pages(self, repo: Repo) -> list[FirstPage]:
        return [self._first_page(repo)]

    def _first_page(self, repo: Repo) -> FirstPage:
        return FirstPage(self.name, f"{repo.path}/pulls", PULLS_PARAMS)

    def read_live(self, live: LiveRead, state: dict[str, Any]) -> Iterator[Part]:
        yield self.name, self._live_changes(live)

    def _live_changes(self, live: LiveRead) -> Iterator[Event]:
        page = live.first_page(self._first_page(live.repo))
        if page is not None:
            yield from self._pull_changes(live.reader, live.repo, page, live.lower)

    @staticmethod
    def _pull_changes(reader: GitHubReader, repo: Repo, first: Page | None, lower: dt.datetime) -> Iterator[Event]:
        """Every PR change at or after `lower`: PRs sorted by last update, stop below `lower`."""
        for pr in reader.items(f"{repo.path}/pulls", PULLS_PARAMS, first=first):
            if (parse_time(pr.get("updated_at")) or lower) < lower:
                break
            for at, event in pull_request_events(repo.name, pr):
                if at >= lower:
                    yield event


# ---------------------------------------------------------------------------- transform


def pull_request_events(repo: str, pr: dict) -> list[tuple[dt.datetime, Event]]:
    """The PR's opened / merged / closed changes, each with the moment it happened."""
    number = pr["number"]
    head, base = pr.get("head") or {}, pr.get("base") or {}
    merged_at = parse_time(pr.get("merged_at"))
    closed_at = parse_time(pr.get("closed_at"))
    merge_sha = pr.get("merge_commit_sha")
    common = {
        "type": "pull_request",
        "url": pr.get("html_url"),
        "number": number,
        "prTitle": pr.get("title"),
        "author": login(pr.get("user")),
        "headRef": head.get("ref"),
        "baseRef": base.get("ref"),
        "headSha": head.get("sha"),
        "draft": bool(pr.get("draft")),
        "createdAt": pr.get("created_at"),
    }
    changes = []
    created_at = parse_time(pr.get("created_at"))
    if created_at:
        changes.append((created_at, Event(
            title=f"PR #{number} opened: {pr.get('title')}",
            connector=CONNECTOR, project=repo, timestamp=created_at,
            external_id=f"github:{repo}:pr:{number}:opened",
            data={**common, "action": "opened", "sha": head.get("sha")},
        )))
    if merged_at:
        changes.append((merged_at, Event(
            title=f"PR #{number} merged into {base.get('ref')}: {pr.get('title')}",
            connector=CONNECTOR, project=repo, timestamp=merged_at,
            external_id=f"github:{repo}:pr:{number}:merged",
            data={**common, "action": "merged", "sha": merge_sha or head.get("sha"),
                  "mergeCommitSha": merge_sha, "mergedAt": pr.get("merged_at")},
        )))
    elif closed_at and pr.get("state") == "closed":
        # A PR can be closed, reopened and closed again: each closing is its own change.
        changes.append((closed_at, Event(
            title=f"PR #{number} closed without merging: {pr.get('title')}",
            connector=CONNECTOR, project=repo, timestamp=closed_at,
            external_id=f"github:{repo}:pr:{number}:closed:{int(closed_at.timestamp())}",
            data={**common, "action": "closed", "sha": head.get("sha"), "closedAt": pr.get("closed_at")},
        )))
    return changes
