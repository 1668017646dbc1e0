"""Releases, at their released_at (an upcoming release is reported with its future date, a
backdated one with its past date, both as soon as they are created).

Releases make no event in GitLab's events feed. Live syncs learn of new ones three ways:
- the newest releases of the project's top-level group (`GET /groups/:id/releases`, by
  released_at, one request per group per poll, read by the connector): every release created
  with the default released_at (now) or an upcoming one;
- the tags list, read when the feed shows a tag push: each tag shows its release, so the
  releases list is read when a tag shows one not known yet (a release created with a new tag,
  backdated ones included);
- the release sweep: once per `Tuning.release_sweep` (default daily) the project's releases by
  creation, which also catches a release backdated onto an existing tag (no tag push, not at the
  top by released_at).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from painchain_pipelines.connectors.base import Event, TimeWindow, parse_time
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
    released = parse_time(release.get("released_at")) or parse_time(release.get("created_at"))
    if not tag or released is None:
        return None
    created = parse_time(release.get("created_at"))
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
        # Newest releases read by the connector from the group's list (or the project's).
        for release in ctx.shared.get("new_releases") or ():
            tag = release.get("tag_name")
            if not tag or tag in known_set:
                continue
            known.append(tag)
            known_set.add(tag)
            event = release_event(ctx.project, release)
            if event is not None:
                yield event
        since: dt.datetime | None = ctx.shared.get("releases_since")  # periodic check by creation
        released = ctx.shared.get("released_tags")
        if live.first or (released is not None and not released <= known_set):
            since = min(since or live.lower, live.lower)
        if since is not None:
            params = {"order_by": "created_at", "sort": "desc", "per_page": PER_PAGE}
            for release in ctx.client.items(f"{ctx.project.api}/releases", params,
                                            f"{ctx.project.path} releases"):
                created = parse_time(release.get("created_at"))
                tag = release.get("tag_name")
                if created is not None and created < since:
                    break  # created before what this read reports: so are the next ones
                if tag in known_set:
                    continue
                event = release_event(ctx.project, release)
                known.append(tag)
                known_set.add(tag)
                if event is not None:
                    yield event
        del known[:-MAX_KNOWN]


def release_project_path(release: dict) -> str | None:
    """The path of a release's project (group lists mix projects): from `tag_path`
    (`/group/project/-/tags/v1`) or `commit_path`."""
    for key in ("tag_path", "commit_path"):
        value = release.get(key) or ""
        if "/-/" in value:
            return value.split("/-/", 1)[0].strip("/")
    return None
