"""Warning Events (core/v1, which serves every event of the cluster's one event store: those
written through events.k8s.io/v1 too, with `eventTime` and `series` and null first/lastTimestamp).

The first sight of an event is one PainChain event (externalId `k8s:<event uid>`); each later
increase of its count (`count`, or `series.count` for series events) is a repeat
(`k8s:<event uid>:count:<n>`): a burst is the event plus its repeats. Normal events are ignored."""

from __future__ import annotations

from collections.abc import Iterator

from painchain_pipelines.connectors.base import Event, TimeWindow, iso
from painchain_pipelines.connectors.kubernetes.streams.base import (
    Ctx,
    Stream,
    Tuning,
    bound,
    in_namespace,
    make_event,
    meta,
    should_repeat,
    t,
    uid_of,
)


def normalize(ev: dict) -> dict:
    """Both shapes (core/v1 and events.k8s.io/v1) as one: count, first, last, involved, message…"""
    m = meta(ev)
    series = ev.get("series") or {}
    try:
        count = int(series.get("count") or ev.get("count") or ev.get("deprecatedCount") or 1)
    except (TypeError, ValueError):
        count = 1
    first = (t(ev.get("firstTimestamp")) or t(ev.get("deprecatedFirstTimestamp")) or t(ev.get("eventTime"))
             or t(m.get("creationTimestamp")))
    last = (t(series.get("lastObservedTime")) or t(ev.get("lastTimestamp")) or t(ev.get("deprecatedLastTimestamp"))
            or t(ev.get("eventTime")) or first)
    involved = ev.get("involvedObject") or ev.get("regarding") or {}
    source = ev.get("source") or ev.get("deprecatedSource") or {}
    return {
        "uid": m.get("uid"), "name": m.get("name"), "namespace": m.get("namespace") or involved.get("namespace"),
        "type": ev.get("type"), "reason": ev.get("reason"),
        "message": (ev.get("message") or ev.get("note") or "")[:1000],
        "count": max(count, 1), "first": first, "last": last or first,
        "involved": {k: involved.get(k) for k in ("kind", "name", "namespace", "uid", "fieldPath") if involved.get(k)},
        "component": source.get("component") or ev.get("reportingComponent") or ev.get("reportingController"),
        "host": source.get("host"), "series": bool(series),
    }


def warning_event(cluster: str, n: dict, repeat: bool) -> Event:
    inv = n["involved"]
    what = f"{inv.get('kind', '?')} {inv.get('namespace') or n['namespace']}/{inv.get('name', '?')}"
    title = f"Warning {n['reason']} on {what}: {n['message']}"
    if repeat:
        title = f"Warning {n['reason']} on {what} (×{n['count']}): {n['message']}"
    at = (n["last"] if repeat else n["first"]) or n["last"]
    external_id = f"k8s:{n['uid']}:count:{n['count']}" if repeat else f"k8s:{n['uid']}"
    return make_event(cluster, n["namespace"], title, at, external_id, {
        "type": "warning", "repeat": repeat, "kind": inv.get("kind"), "name": inv.get("name"),
        "reason": n["reason"], "message": n["message"], "count": n["count"], "involvedObject": inv,
        "firstTimestamp": n["first"] and iso(n["first"]), "lastTimestamp": n["last"] and iso(n["last"]),
        "component": n["component"], "host": n["host"], "series": n["series"], "eventUid": n["uid"],
        "eventName": n["name"]})


class Events(Stream):
    name = "events"
    resources = ("events",)

    def known(self, ctx: Ctx, resource: str, namespace: str | None) -> set[str]:
        return {uid for uid, e in ctx.memory["events"].items() if in_namespace(e, namespace)}

    def forget(self, ctx: Ctx, resource: str, uid: str) -> None:
        ctx.memory["events"].pop(uid, None)

    def handle(self, ctx: Ctx, resource: str, kind: str, obj: dict) -> None:
        uid = uid_of(obj)
        if not uid:
            return
        if kind == "DELETED":  # expired (TTL): nothing more can come from it
            self.forget(ctx, resource, uid)
            return
        if obj.get("type") != "Warning":
            return
        n = normalize(obj)
        events = ctx.memory["events"]
        entry = events.get(uid)
        if entry is None and kind == "MODIFIED" and n["count"] > 1:
            # Changed, not added, in a watch resumed from a saved resourceVersion: the event
            # existed before it, so its first occurrence was reported then (the counts memory is
            # not saved, see RUN_ONLY_MEMORY): only the repeat is new.
            ctx.send(warning_event(ctx.cluster, n, repeat=True))
            events[uid] = {"ns": n["namespace"], "c": n["count"], "t": n["last"] and iso(n["last"])}
        elif entry is None:
            if not (ctx.learn and not ctx.wants(n["last"])):
                # Seen for the first time already repeated: the event and its repeats so far.
                ctx.send(warning_event(ctx.cluster, {**n, "count": 1}, repeat=False), at=n["last"])
                if n["count"] > 1:
                    ctx.send(warning_event(ctx.cluster, n, repeat=True), at=n["last"])
            events[uid] = {"ns": n["namespace"], "c": n["count"], "t": n["last"] and iso(n["last"])}
        elif n["count"] > entry.get("c", 0):
            if not ctx.tuning.summarize_repeats or should_repeat(entry.get("c", 0), entry.get("t"), n["count"],
                                                                 n["last"], ctx.tuning.repeat_quiet):
                ctx.send(warning_event(ctx.cluster, n, repeat=True))
                entry["c"], entry["t"] = n["count"], n["last"] and iso(n["last"])
        else:
            return
        bound(events, ctx.tuning.max_events, key=lambda e: e.get("t") or "")

    def window(self, cluster: str, objects: dict[str, list[dict]], window: TimeWindow,
               tuning: Tuning) -> Iterator[Event]:
        """Warning events still within their TTL: the first occurrence (at its first time) and,
        when repeated, the latest count (at its last time)."""
        for obj in objects.get("events") or []:
            if obj.get("type") != "Warning" or not uid_of(obj):
                continue
            n = normalize(obj)
            if n["first"] in window:
                yield warning_event(cluster, {**n, "count": 1 if n["count"] > 1 else n["count"]}, repeat=False)
            if n["count"] > 1 and n["last"] in window:
                yield warning_event(cluster, n, repeat=True)
