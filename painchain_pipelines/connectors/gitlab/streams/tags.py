"""Tags, at their creation (annotated tags carry created_at; a lightweight tag is dated by its
commit). Live syncs read the tags list only for projects where the events feed shows a tag push,
and report the names not seen before.
"""

from __future__ import annotations

from collections.abc import Iterator

from painchain_pipelines.connectors.base import Event, TimeWindow, parse_time
from painchain_pipelines.connectors.gitlab.streams.base import PER_PAGE, Context, Live, Project, Stream, short

MAX_KNOWN = 2000
MAX_PAGES = 20


def tag_event(project: Project, tag: dict) -> Event | None:
    name = tag.get("name")
    commit = tag.get("commit") or {}
    at = parse_time(tag.get("created_at")) or parse_time(commit.get("committed_date")) or parse_time(commit.get("created_at"))
    if not name or at is None:
        return None
    sha = commit.get("id") or tag.get("target")
    return project.event(
        title=f"Tag {name} created ({short(sha)})",
        timestamp=at,
        external_id=project.external_id("tag", name),
        data={
            "type": "tag",
            "url": f"{project.web_url}/-/tags/{name}",
            "tag": name,
            "ref": name,
            "sha": sha,
            "shortSha": short(sha),
            "message": (tag.get("message") or "")[:4000],
            "annotated": bool(tag.get("created_at") or tag.get("message")),
            "release": (tag.get("release") or {}).get("tag_name"),
            "createdAt": tag.get("created_at"),
        },
    )


class Tags(Stream):
    name = "tags"

    def _tags(self, ctx: Context) -> Iterator[dict]:
        params = {"order_by": "updated", "sort": "desc", "per_page": PER_PAGE}
        for number, page in enumerate(ctx.client.pages(f"{ctx.project.api}/repository/tags", params,
                                                       f"{ctx.project.path} tags")):
            yield from page.data
            if number + 1 >= MAX_PAGES:
                return

    def window(self, ctx: Context, window: TimeWindow) -> Iterator[Event]:
        for tag in self._tags(ctx):
            event = tag_event(ctx.project, tag)
            if event is not None and event.timestamp in window:
                yield event

    def live(self, ctx: Context, live: Live) -> Iterator[Event]:
        known: list[str] = live.state.setdefault("known", [])
        known_set = set(known)
        released: set[str] = set()
        for tag in self._tags(ctx):
            name = tag.get("name")
            if name and tag.get("release"):
                released.add(name)
            if not name or name in known_set:
                continue
            known.append(name)
            known_set.add(name)
            event = tag_event(ctx.project, tag)
            if event is not None and (not live.first or event.timestamp >= live.lower):
                yield event
        del known[:-MAX_KNOWN]
        # The releases stream reads releases only if a tag shows one it does not know.
        ctx.shared["released_tags"] = released
