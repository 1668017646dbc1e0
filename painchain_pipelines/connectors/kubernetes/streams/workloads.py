"""Rollouts of Deployments, StatefulSets and DaemonSets.

Two sources: the workload objects (spec: replicas, paused; status: finished, stuck) and their
revision records, ReplicaSets (Deployments) and ControllerRevisions (StatefulSets, DaemonSets).
A rollout is a revision number the workload has not reached yet: a new record (its
creationTimestamp is when the rollout happened; images from its template) or an old record
given a new number (a rollback: `kubectl rollout undo` reuses the earlier record).

externalIds: `k8s:<workload uid>:rev:<n>` (rollout/rollback), `…:rev:<n>:complete`,
`…:rev:<n>:stuck`, `k8s:<uid>:gen:<generation>:scaled|paused|resumed`. The same revision gives
the same id in the watch, after a relist and in a window sync."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

from painchain_pipelines.connectors.base import Event, TimeWindow, iso
from painchain_pipelines.connectors.kubernetes.streams.base import (
    Ctx,
    Stream,
    Tuning,
    bound,
    controller_of,
    digest,
    images_of,
    in_namespace,
    labels_of,
    make_event,
    meta,
    t,
    uid_of,
)

KIND_OF = {"deployments": "Deployment", "statefulsets": "StatefulSet", "daemonsets": "DaemonSet"}
RESOURCE_OF = {v: k for k, v in KIND_OF.items()}
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
HISTORY_ANNOTATION = "deployment.kubernetes.io/revision-history"


# ---------------------------------------------------------------- reading objects


def deployment_revision(obj: dict) -> int:
    try:
        return int((meta(obj).get("annotations") or {}).get(REVISION_ANNOTATION) or 0)
    except ValueError:
        return 0


def revision_record(resource: str, obj: dict) -> dict | None:
    """A ReplicaSet or ControllerRevision as {owner, kind, rev, images, created, history}."""
    owner = controller_of(obj)
    if not owner or owner.get("kind") not in RESOURCE_OF:
        return None
    if resource == "replicasets":
        if owner.get("kind") != "Deployment":
            return None
        rev = deployment_revision(obj)
        template = (obj.get("spec") or {}).get("template")
        history = [int(x) for x in ((meta(obj).get("annotations") or {}).get(HISTORY_ANNOTATION) or "").split(",")
                   if x.strip().isdigit()]
    else:
        try:
            rev = int(obj.get("revision") or 0)
        except (TypeError, ValueError):
            rev = 0
        data = obj.get("data") or {}
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError:
                data = {}
        template = ((data.get("spec") or {}).get("template")) if isinstance(data, dict) else None
        history = []
    if rev <= 0:
        return None
    return {"owner": owner.get("uid"), "kind": owner.get("kind"), "ownerName": owner.get("name"),
            "rev": rev, "images": images_of(template), "created": iso(t(meta(obj).get("creationTimestamp")))
            if t(meta(obj).get("creationTimestamp")) else None, "history": history, "name": meta(obj).get("name")}


def condition(obj: dict, kind: str) -> dict:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return c
    return {}


def condition_time(c: dict) -> dt.datetime | None:
    return t(c.get("lastUpdateTime")) or t(c.get("lastTransitionTime"))


def is_stuck(obj: dict) -> bool:
    c = condition(obj, "Progressing")
    return c.get("status") == "False" and c.get("reason") == "ProgressDeadlineExceeded"


def is_complete(kind: str, obj: dict) -> bool:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if (status.get("observedGeneration") or 0) < (meta(obj).get("generation") or 0):
        return False
    if kind == "Deployment":
        replicas = spec.get("replicas", 1)
        progressing = condition(obj, "Progressing")
        return (not spec.get("paused") and progressing.get("reason") == "NewReplicaSetAvailable"
                and (status.get("updatedReplicas") or 0) == replicas and (status.get("replicas") or 0) == replicas
                and (status.get("availableReplicas") or 0) >= replicas)
    if kind == "StatefulSet":
        replicas = spec.get("replicas", 1)
        return (bool(status.get("updateRevision")) and status.get("updateRevision") == status.get("currentRevision")
                and (status.get("updatedReplicas") or 0) == replicas and (status.get("readyReplicas") or 0) == replicas)
    desired = status.get("desiredNumberScheduled") or 0
    return ((status.get("updatedNumberScheduled") or 0) == desired
            and (status.get("numberAvailable") or 0) == desired)


def complete_time(kind: str, obj: dict) -> dt.datetime | None:
    if kind == "Deployment":
        return condition_time(condition(obj, "Progressing"))
    return None


def describe_images(previous: dict[str, str], images: dict[str, str]) -> str:
    parts = []
    for name, image in images.items():
        old = previous.get(name)
        if old and old != image:
            parts.append(f"{name} {old} → {image}")
        elif not old:
            parts.append(f"{name} {image}")
    return ", ".join(parts)


# ---------------------------------------------------------------- events


def _wl_data(w: dict, kind: str, **extra: Any) -> dict:
    return {"kind": w["k"], "name": w["n"], "type": kind, "labels": w.get("l") or {}, "replicas": w.get("r"),
            "generation": w.get("g"), "uid": w["uid"], **extra}


def rollout_event(cluster: str, w: dict, record: dict, at: dt.datetime, rollback_to: int | None,
                  rollback: bool, previous: dict[str, str] | None = None) -> Event:
    previous = (w.get("img") or {}) if previous is None else previous
    images = record["images"]
    changed = {c: i for c, i in images.items() if previous.get(c) != i}
    what = describe_images(previous, images) or "same images (configuration change)"
    if rollback:
        title = f"Rolled back {w['k']} {w['ns']}/{w['n']} to revision {rollback_to or '?'}: {what}"
    elif not previous:
        title = f"Rolled out {w['k']} {w['ns']}/{w['n']} (revision {record['rev']}): {what}"
    else:
        title = f"Rolled out {w['k']} {w['ns']}/{w['n']}: {what}"
    return make_event(cluster, w["ns"], title, at, f"k8s:{w['uid']}:rev:{record['rev']}", _wl_data(
        w, "rollback" if rollback else "rollout", revision=record["rev"], images=images, previousImages=previous,
        changedContainers=sorted(changed), digests={c: digest(i) for c, i in images.items() if digest(i)},
        rollbackTo=rollback_to, revisionName=record.get("name")))


def _record_time(record: dict) -> dt.datetime | None:
    return t(record.get("created"))


def progress_time_for(progressing: dict, record: dict, not_before: dt.datetime | None = None) -> dt.datetime | None:
    """When the Deployment's Progressing condition started talking about this ReplicaSet (its
    message names it: "ReplicaSet \"x\" is progressing.", "Found new replica set \"x\"", …): the
    time of a rollback, whose reused ReplicaSet keeps its old creationTimestamp."""
    if record.get("name") and f'"{record["name"]}"' in (progressing.get("message") or ""):
        at = t(progressing.get("lastUpdateTime")) or t(progressing.get("lastTransitionTime"))
        # Older than the revision it replaces: the condition of the record's first life.
        if at is not None and (not_before is None or at >= not_before):
            return at
    return None


class Workloads(Stream):
    name = "workloads"
    resources = ("deployments", "statefulsets", "daemonsets", "replicasets", "controllerrevisions")

    # ------------------------------------------------------------ watch / relist

    def handle(self, ctx: Ctx, resource: str, kind: str, obj: dict) -> None:
        if resource in KIND_OF:
            self._workload(ctx, resource, kind, obj)
        else:
            self._revision(ctx, resource, kind, obj)

    def known(self, ctx: Ctx, resource: str, namespace: str | None) -> set[str]:
        if resource not in KIND_OF:
            return set()
        return {uid for uid, w in ctx.memory["workloads"].items()
                if w.get("k") == KIND_OF[resource] and in_namespace(w, namespace)}

    def forget(self, ctx: Ctx, resource: str, uid: str) -> None:
        if resource in KIND_OF:
            ctx.memory["workloads"].pop(uid, None)
            ctx.memory["pending"].pop(uid, None)

    def _workload(self, ctx: Ctx, resource: str, kind: str, obj: dict) -> None:
        uid = uid_of(obj)
        if not uid:
            return
        if kind == "DELETED":
            self.forget(ctx, resource, uid)
            return
        wk = KIND_OF[resource]
        m, spec = meta(obj), obj.get("spec") or {}
        workloads = ctx.memory["workloads"]
        w = workloads.get(uid)
        generation = m.get("generation") or 0
        replicas = spec.get("replicas") if wk != "DaemonSet" else None
        paused = bool(spec.get("paused")) if wk == "Deployment" else False
        new = w is None
        if new:
            w = {"uid": uid, "k": wk, "ns": m.get("namespace"), "n": m.get("name"), "g": generation, "r": replicas,
                 "p": paused, "rev": 0, "img": {}, "h": {}, "done": 0, "stuck": None}
            workloads[uid] = w
            if ctx.learn:
                w["img"] = images_of(spec.get("template"))
                if wk == "Deployment":
                    w["rev"] = deployment_revision(obj)
        w["l"] = labels_of(obj, ctx.tuning.max_labels)
        rev = w["rev"] if wk != "Deployment" else max(deployment_revision(obj), 0)
        # Spec changes (compared with what was seen before; a new workload has none).
        if not new and generation > (w.get("g") or 0):
            at = ctx.now()
            if replicas is not None and w.get("r") is not None and replicas != w.get("r"):
                ctx.send(make_event(ctx.cluster, w["ns"], f"Scaled {wk} {w['ns']}/{w['n']} {w['r']} → {replicas}",
                                    at, f"k8s:{uid}:gen:{generation}:scaled",
                                    _wl_data(w, "scaled", previousReplicas=w["r"], replicas=replicas)))
            if paused != w.get("p"):
                word = "paused" if paused else "resumed"
                progressing = condition(obj, "Progressing")
                when = (condition_time(progressing) if progressing.get("reason") in
                        ("DeploymentPaused", "DeploymentResumed") else None) or at
                ctx.send(make_event(ctx.cluster, w["ns"], f"{word.capitalize()} rollout of {wk} {w['ns']}/{w['n']}",
                                    when, f"k8s:{uid}:gen:{generation}:{word}", _wl_data(w, word)))
        w["g"], w["r"], w["p"] = max(generation, w.get("g") or 0), replicas, paused
        # Status: stuck / finished, once per revision.
        # (A stuck condition is reported once: the same condition still shown after a newer revision
        # started, before the controller rewrote it, is not a new stall.)
        if wk == "Deployment" and rev and is_stuck(obj):
            c = condition(obj, "Progressing")
            since = c.get("lastTransitionTime") or c.get("lastUpdateTime")
            if w.get("stuck") != since:
                at = condition_time(c) or ctx.now()
                if not (ctx.learn and not ctx.wants(at)):
                    ctx.send(make_event(ctx.cluster, w["ns"], f"Rollout of {wk} {w['ns']}/{w['n']} stuck "
                                        f"(revision {rev}): {c.get('message') or 'ProgressDeadlineExceeded'}",
                                        at, f"k8s:{uid}:rev:{rev}:stuck",
                                        _wl_data(w, "rollout_stuck", revision=rev,
                                                 images=images_of(spec.get("template")), reason=c.get("reason"),
                                                 message=c.get("message"))))
                w["stuck"] = since
        if rev and is_complete(wk, obj) and w.get("done", 0) < rev:
            at = complete_time(wk, obj) or ctx.now()
            if not ctx.learn or ctx.wants(at):
                ctx.send(make_event(ctx.cluster, w["ns"], f"Rollout of {wk} {w['ns']}/{w['n']} finished "
                                    f"(revision {rev})", at, f"k8s:{uid}:rev:{rev}:complete",
                                    _wl_data(w, "rollout_finished", revision=rev, images=w.get("img") or
                                             images_of(spec.get("template")))))
            w["done"] = rev
        if wk == "Deployment":
            progressing = condition(obj, "Progressing")
            w["pc"] = {"message": (progressing.get("message") or "")[:300],
                       "lastUpdateTime": progressing.get("lastUpdateTime")}
            stash = w.get("rb")
            at = stash and progress_time_for(w["pc"], stash["record"], t(stash.get("after")))
            if stash and at:
                w.pop("rb")
                ctx.send(rollout_event(ctx.cluster, w, stash["record"], at, stash["to"], True, stash["previous"]))
        # Revisions seen before their workload.
        for record in ctx.memory["pending"].pop(uid, []):
            self._apply_revision(ctx, w, record)

    def _revision(self, ctx: Ctx, resource: str, kind: str, obj: dict) -> None:
        if kind == "DELETED":
            return
        record = revision_record(resource, obj)
        if record is None or not record["owner"]:
            return
        w = ctx.memory["workloads"].get(record["owner"])
        if w is None:
            if ctx.learn:
                return
            pending = ctx.memory["pending"]
            queue = [r for r in pending.get(record["owner"], []) if r["rev"] != record["rev"]]
            pending[record["owner"]] = sorted([*queue, record], key=lambda r: r["rev"])[-ctx.tuning.max_history:]
            bound(pending, ctx.tuning.max_pending, key=lambda rs: rs[-1].get("created") or "")
            return
        self._apply_revision(ctx, w, record)

    def _apply_revision(self, ctx: Ctx, w: dict, record: dict) -> None:
        rev = record["rev"]
        history: dict[str, str | None] = w.setdefault("h", {})
        if ctx.learn:
            # The state when watching starts: remembered, not reported (window syncs backfill).
            if rev >= w.get("rev", 0):
                w["rev"], w["img"] = rev, record["images"]
            history[str(rev)] = record.get("created")
            self._trim(ctx, w)
            return
        if rev <= w.get("rev", 0):
            history.setdefault(str(rev), record.get("created"))
            return
        created = _record_time(record)
        current_created = t(history.get(str(w.get("rev")))) if w.get("rev") else None
        # An older record given a new number is a rollback (kubectl rollout undo reuses it).
        earlier = [int(r) for r, c in history.items() if c and c == record.get("created") and int(r) < rev]
        rollback = bool(record.get("history")) or bool(earlier) or (
            created is not None and current_created is not None and created < current_created)
        rollback_to = (record["history"][-1] if record.get("history") else max(earlier) if earlier else None)
        stash = w.pop("rb", None)
        if stash:  # an earlier rollback whose time never showed: reported with the observation time
            ctx.send(rollout_event(ctx.cluster, w, stash["record"], ctx.now(), stash["to"], True, stash["previous"]))
        if not rollback:
            ctx.send(rollout_event(ctx.cluster, w, record, created or ctx.now(), None, False))
        elif w["k"] != "Deployment":
            ctx.send(rollout_event(ctx.cluster, w, record, ctx.now(), rollback_to, True))
        else:
            # The reused ReplicaSet does not date the rollback; the Deployment's Progressing
            # condition does once it names that ReplicaSet (now, or in a coming update).
            after = history.get(str(w.get("rev")))
            at = progress_time_for(w.get("pc") or {}, record, t(after))
            if at is not None:
                ctx.send(rollout_event(ctx.cluster, w, record, at, rollback_to, True))
            else:
                w["rb"] = {"record": record, "to": rollback_to, "previous": w.get("img") or {}, "after": after}
        w["rev"], w["img"] = rev, record["images"]
        history[str(rev)] = record.get("created")
        self._trim(ctx, w)

    @staticmethod
    def _trim(ctx: Ctx, w: dict) -> None:
        history = w.get("h") or {}
        if len(history) > ctx.tuning.max_history:
            w["h"] = {k: history[k] for k in sorted(history, key=int)[-ctx.tuning.max_history:]}

    # ------------------------------------------------------------ window sync

    def window(self, cluster: str, objects: dict[str, list[dict]], window: TimeWindow,
               tuning: Tuning) -> Iterator[Event]:
        """Rollouts the revision records still show (creationTimestamp of each new record; a
        reused record, i.e. a rollback, only when it is the workload's current revision and its
        Progressing condition dates it), plus finished/stuck rollouts of the current revision."""
        workloads: dict[str, tuple[str, dict]] = {}
        for resource, wk in KIND_OF.items():
            for obj in objects.get(resource) or []:
                if uid_of(obj):
                    workloads[uid_of(obj)] = (wk, obj)
        records: dict[str, list[dict]] = {}
        for resource in ("replicasets", "controllerrevisions"):
            for obj in objects.get(resource) or []:
                record = revision_record(resource, obj)
                if record and record["owner"] in workloads:
                    records.setdefault(record["owner"], []).append(record)
        for uid, (wk, obj) in workloads.items():
            m, spec = meta(obj), obj.get("spec") or {}
            w = {"uid": uid, "k": wk, "ns": m.get("namespace"), "n": m.get("name"), "g": m.get("generation"),
                 "r": spec.get("replicas") if wk != "DaemonSet" else None, "l": labels_of(obj, tuning.max_labels),
                 "img": {}}
            ordered = sorted(records.get(uid, []), key=lambda r: r["rev"])
            current = deployment_revision(obj) if wk == "Deployment" else (ordered[-1]["rev"] if ordered else 0)
            previous_created: dt.datetime | None = None
            by_created: dict[str | None, int] = {}
            # Images per revision number, including the numbers a reused record had before.
            by_rev: dict[int, dict[str, str]] = {}
            for record in ordered:
                by_rev[record["rev"]] = record["images"]
                for old in record.get("history") or []:
                    by_rev.setdefault(old, record["images"])
            for record in ordered:
                earlier = [r for r in by_rev if r < record["rev"]]
                w["img"] = by_rev[max(earlier)] if earlier else {}
                created = _record_time(record)
                rollback = bool(record.get("history")) or (
                    created is not None and previous_created is not None and created < previous_created)
                if rollback:
                    at = None
                    if record["rev"] == current and wk == "Deployment":
                        at = progress_time_for(condition(obj, "Progressing"), record, previous_created)
                    to = record["history"][-1] if record.get("history") else by_created.get(record.get("created"))
                else:
                    at, to = created, None
                if at is not None and at in window:
                    yield rollout_event(cluster, w, record, at, to, rollback)
                if record.get("history") and created is not None and created in window:
                    # A reused ReplicaSet was first a rollout of its own (its first number), at its
                    # creation: the watch reported it then, under that number.
                    first = min(record["history"])
                    before = [r for r in by_rev if r < first]
                    yield rollout_event(cluster, w, {**record, "rev": first}, created, None, False,
                                        previous=by_rev[max(before)] if before else {})
                by_created.setdefault(record.get("created"), record["rev"])
                previous_created = max(previous_created, created) if previous_created and created else created
            if current:
                if wk == "Deployment" and is_stuck(obj):
                    c = condition(obj, "Progressing")
                    at = condition_time(c)
                    if at in window:
                        yield make_event(cluster, w["ns"], f"Rollout of {wk} {w['ns']}/{w['n']} stuck (revision "
                                         f"{current}): {c.get('message') or 'ProgressDeadlineExceeded'}", at,
                                         f"k8s:{uid}:rev:{current}:stuck",
                                         _wl_data(w, "rollout_stuck", revision=current,
                                                  images=images_of(spec.get("template")), reason=c.get("reason"),
                                                  message=c.get("message")))
                if is_complete(wk, obj):
                    at = complete_time(wk, obj)
                    if at in window:
                        yield make_event(cluster, w["ns"], f"Rollout of {wk} {w['ns']}/{w['n']} finished "
                                         f"(revision {current})", at, f"k8s:{uid}:rev:{current}:complete",
                                         _wl_data(w, "rollout_finished", revision=current,
                                                  images=images_of(spec.get("template"))))
