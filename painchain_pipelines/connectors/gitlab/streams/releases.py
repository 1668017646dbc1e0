"""Releases, at their released_at (an upcoming release is reported with its future date, a
backdated one with its past date, both as soon as they are created).

Live syncs read the newest releases by creation only for projects whose activity moved
(creating a release is activity; it makes no project event), down to the last one known.
"""

from __future__ import annotations

from collections.abc import Iterator

from painchain_pipelines.connectors.base import Event, TimeWindow
from painchain_pipelines.connectors.gitlab.client import parse_ts
from painchain_pipelines.connectors.gitlab.streams.base import (
    PER_PAGE,
    Context,
    Live,
    Project,
    Stream,
    short,
    user_name,
)

MAX_KNOWN = 1000


def release_event(project: Project, release: dict, now=None) -> Event | None:
    tag = release.get("tag_name")
    released = parse_ts(release.get("released_at")) or parse_ts(release.get("created_at"))
    if not tag or released is None:
        return None
    created = parse_ts(release.get("created_at"))
    commit = release.get("commit") or {}
    upcoming = bool(release.get("upcoming_release"))
    name = release.get("name") or tag
    links = release.get("_links") or {}
    return project.event(
        title=f"Release {name}{' (upcoming)' if upcoming else ''}",
        timestamp=released,
        external_id=project.external_id("release", tag),
        data={
            "type": "release",
            "url": links.get("self") or f"{project.web_url}/-/releases/{tag}",
            "tag": tag,
            "ref": tag,
            "name": name,
            "sha": commit.get("id"),
            "shortSha": short(commit.get("id")),
            "author": user_name(release.get("author")),
            "releasedAt": release.get("released_at"),
            "createdAt": release.get("created_at"),
            "upcoming": upcoming,
            "backdated": bool(created and released < created),
            "description": (release.get("description") or "")[:4000],
        },
    )


class Releases(Stream):
    name = "releases"

    def window(self, ctx: Context, window: TimeWindow) -> Iterator[Event]:
        params = {"order_by": "released_at", "sort": "desc", "per_page": PER_PAGE}
        for release in ctx.client.items(f"{ctx.project.api}/releases", params, f"{ctx.project.path} releases"):
            event = release_event(ctx.project, release)
            if event is None:
                continue
            if event.timestamp < window.start:
                return
            if event.timestamp in window:
                yield event

    def live(self, ctx: Context, live: Live) -> Iterator[Event]:
        known: list[str] = live.state.setdefault("known", [])
        known_set = set(known)
        released = ctx.shared.get("released_tags")
        if released is not None and not live.first and released <= known_set:
            # The tags list (read just before) shows every release by its tag: none is new.
            return
        params = {"order_by": "created_at", "sort": "desc", "per_page": PER_PAGE}
        for release in ctx.client.items(f"{ctx.project.api}/releases", params, f"{ctx.project.path} releases"):
            created = parse_ts(release.get("created_at"))
            tag = release.get("tag_name")
            if created is not None and created < live.lower:
                break  # created before what this sync reports: so are the next ones
            if tag in known_set:
                continue
            event = release_event(ctx.project, release)
            known.append(tag)
            known_set.add(tag)
            if event is not None:
                yield event
        del known[:-MAX_KNOWN]
