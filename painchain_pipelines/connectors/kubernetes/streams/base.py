"""What every Kubernetes stream (one kind of event) shares: the cluster's memory (the saved state
that turns "the object now" into "what changed"), the context a handler runs in, and helpers.

A handler gets one object (from a watch event, a list or a relist) and compares it with the
memory: what differs is emitted, then the memory is updated. A relist after `410 Gone` is the
same comparison, so it emits only what changed during the gap. In `learn` mode (first start
without state) the memory is filled and only changes newer than `since` are emitted."""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from painchain_pipelines.connectors.base import Event, TimeWindow, iso, parse_time

CONNECTOR = "kubernetes"


@dataclass
class Tuning:
    # First start without state: only changes at or after now - first_lookback are emitted.
    first_lookback: dt.timedelta = dt.timedelta(0)
    # Every count increase of a Warning event (a repeat) and every crash of a crash loop is an
    # event (its id holds the count). With `summarize_repeats`, only counts reaching a power of two
    # (1, 2, 4, 8, …) or coming `repeat_quiet` after the last reported one are (a long crash loop
    # then makes a few events, not one per restart; counts in between are folded into the next).
    summarize_repeats: bool = False
    repeat_quiet: dt.timedelta = dt.timedelta(minutes=10)
    # Memory bounds per cluster (oldest entries go first).
    max_pods: int = 5000
    max_events: int = 5000
    max_pending: int = 500
    max_history: int = 10  # revisions remembered per workload (rollback detection)
    max_labels: int = 30
    # Watches: one request lasts this long (server side), then continues from the last version.
    watch_timeout_s: int = 300
    list_limit: int = 500
    read_timeout_s: float = 30.0
    # Reconnect backoff (doubling, capped) after a dropped watch; a refused token retries slowly.
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    refused_retry_s: float = 300.0
    # How often the integrations are re-read and the states checkpointed.
    integrations_every_s: float = 15.0
    checkpoint_every_s: float = 2.0
    # When only resourceVersions moved (status churn, bookmarks), the state is saved this often
    # (and at the end of a segment); a crash in between re-reads a little, deduplicated by ids.
    rv_checkpoint_every_s: float = 30.0
    # The observation clock (a change whose time the API does not record, e.g. a rollback).
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.timezone.utc))


def new_memory() -> dict[str, Any]:
    return {"rv": {}, "workloads": {}, "pending": {}, "pods": {}, "events": {}}


@dataclass
class Ctx:
    """One cluster as a handler sees it."""

    cluster: str
    memory: dict[str, Any]
    emit: Callable[[Event], None]
    tuning: Tuning
    learn: bool = False
    since: dt.datetime | None = None  # learn mode: emit only changes at/after this

    def now(self) -> dt.datetime:
        return self.tuning.clock()

    def wants(self, at: dt.datetime | None) -> bool:
        """Whether a change at `at` is reported (always, except in learn mode)."""
        if not self.learn:
            return True
        return at is not None and self.since is not None and at >= self.since

    def send(self, event: Event | None, at: dt.datetime | None = None) -> bool:
        if event is None or not self.wants(at if at is not None else event.timestamp):
            return False
        self.emit(event)
        return True


def meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def uid_of(obj: dict) -> str | None:
    return meta(obj).get("uid")


def labels_of(obj: dict, limit: int = 30) -> dict[str, str]:
    labels = meta(obj).get("labels") or {}
    return {str(k): str(v)[:200] for k, v in list(labels.items())[:limit]}


def controller_of(obj: dict) -> dict | None:
    refs = meta(obj).get("ownerReferences") or []
    for ref in refs:
        if ref.get("controller"):
            return ref
    return refs[0] if refs else None


def images_of(template: dict | None) -> dict[str, str]:
    """{container: image} of a pod template (init containers prefixed with `init:`)."""
    spec = (template or {}).get("spec") or {}
    images = {c.get("name"): c.get("image") for c in spec.get("containers") or [] if c.get("name")}
    images.update({f"init:{c.get('name')}": c.get("image") for c in spec.get("initContainers") or []
                   if c.get("name")})
    return images


def digest(image: str | None) -> str | None:
    if image and "@sha256:" in image:
        return "sha256:" + image.split("@sha256:", 1)[1]
    return None


def project(cluster: str, namespace: str | None) -> str:
    return f"{cluster}:{namespace or '-'}"


def make_event(ctx_cluster: str, namespace: str | None, title: str, timestamp: dt.datetime, external_id: str,
               data: dict) -> Event:
    return Event(title=title, connector=CONNECTOR, project=project(ctx_cluster, namespace), timestamp=timestamp,
                 external_id=external_id,
                 data={"cluster": ctx_cluster, "namespace": namespace, **{k: v for k, v in data.items()}})


def t(value: Any) -> dt.datetime | None:
    return parse_time(value)


def crossed_power_of_two(previous: int, current: int) -> bool:
    """Whether counting from `previous` to `current` reached a new power of two."""
    if current <= previous:
        return False
    return current.bit_length() > max(previous, 0).bit_length() or (current & (current - 1)) == 0


def should_repeat(previous_count: int, previous_at: str | None, count: int, at: dt.datetime | None,
                  quiet: dt.timedelta) -> bool:
    if count <= previous_count:
        return False
    if crossed_power_of_two(previous_count, count):
        return True
    last = parse_time(previous_at)
    return last is None or (at is not None and at - last >= quiet)


def bound(mapping: dict, limit: int, key: Callable[[Any], Any]) -> None:
    """Drop the oldest entries (by `key` of the value) beyond `limit`: once over it, down to
    `limit` less a tenth, so that the sort is paid once per `limit / 10` new entries and not for
    every one (a sort of 5,000 entries takes ~1.3 ms: on every Warning event of a full memory it
    capped a watch run at ~700-900 events/s, bench/kubernetes_watch.py)."""
    if len(mapping) <= limit:
        return
    keep = limit - limit // 10
    for k, _ in sorted(mapping.items(), key=lambda kv: key(kv[1]))[: len(mapping) - keep]:
        mapping.pop(k, None)


class Stream(ABC):
    """One kind of event: the resources it reads, its handler, its window reconstruction."""

    name: ClassVar[str]
    resources: ClassVar[tuple[str, ...]]

    @abstractmethod
    def handle(self, ctx: Ctx, resource: str, kind: str, obj: dict) -> None:
        """`kind` is what a watch says (ADDED, MODIFIED, DELETED) or LISTED for what a relist found."""
        ...

    def known(self, ctx: Ctx, resource: str, namespace: str | None) -> set[str]:
        """The uids remembered for `resource` (in `namespace`), to forget those a relist misses."""
        return set()

    def forget(self, ctx: Ctx, resource: str, uid: str) -> None:
        pass

    @abstractmethod
    def window(self, cluster: str, objects: dict[str, list[dict]], window: TimeWindow,
               tuning: Tuning) -> Iterator[Event]:
        ...


def in_namespace(entry: dict, namespace: str | None) -> bool:
    return namespace is None or entry.get("ns") == namespace


def first(values: Iterable[Any]) -> Any:
    return next((v for v in values if v), None)


__all__ = ["CONNECTOR", "Ctx", "Stream", "Tuning", "iso"]
