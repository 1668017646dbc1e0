"""Releases and pre-releases, dated when published; drafts are skipped until published.

`GET /repos/{r}/releases`, listed by creation: a draft made long ago may be published now, so up
to `Tuning.max_release_pages` pages are read. Live syncs keep only the list's ETag.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from painchain_pipelines.connectors.base import Event, TimeWindow, parse_time
from painchain_pipelines.connectors.github.client import GitHubReader, Page
from painchain_pipelines.connectors.github.streams.base import (
    CONNECTOR,
    LIST_PARAMS,
    FirstPage,
    LiveRead,
    Part,
    Repo,
    Stream,
    login,
)


class ReleasesStream(Stream):
    name = "releases"

    def read_window(self, reader: GitHubReader, repo: Repo, window: TimeWindow) -> Iterator[Part]:
        yield self.name, self._releases(reader, repo, None)

    def first_pages(self, repo: Repo) -> list[FirstPage]:
        return [self._first_page(repo)]

    def _first_page(self, repo: Repo) -> FirstPage:
        return FirstPage(self.name, f"{repo.path}/releases", LIST_PARAMS)

    def read_live(self, live: LiveRead, state: dict[str, Any]) -> Iterator[Part]:
        yield self.name, self._live_releases(live)

    def _live_releases(self, live: LiveRead) -> Iterator[Event]:
        page = live.first_page(self._first_page(live.repo))
        if page is not None:
            yield from (e for e in self._releases(live.reader, live.repo, page) if e.timestamp >= live.lower)

    def _releases(self, reader: GitHubReader, repo: Repo, first: Page | None) -> Iterator[Event]:
        for index, release in enumerate(reader.items(f"{repo.path}/releases", LIST_PARAMS, first=first)):
            if index >= self.tuning.max_release_pages * 100:
                break
            event = release_event(repo.name, release)
            if event is not None:
                yield event


# ---------------------------------------------------------------------------- transform


def release_event(repo: str, release: dict) -> Event | None:
    published_at = parse_time(release.get("published_at"))
    if release.get("draft") or published_at is None:
        return None
    label = release.get("name") or release.get("tag_name")
    kind = "Pre-release" if release.get("prerelease") else "Release"
    return Event(
        title=f"{kind} {label} published",
        connector=CONNECTOR, project=repo, timestamp=published_at,
        external_id=f"github:{repo}:release:{release['id']}",
        data={
            "type": "release",
            "url": release.get("html_url"),
            "releaseId": release["id"],
            "tag": release.get("tag_name"),
            "name": release.get("name"),
            "prerelease": bool(release.get("prerelease")),
            "author": login(release.get("author")),
            "targetCommitish": release.get("target_commitish"),
            "publishedAt": release.get("published_at"),
        },
    )
