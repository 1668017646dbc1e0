"""Pod failures: crash loops, OOM kills, image pull failures, non-zero exits, evictions.

A container's terminations are numbered: the one in `state.terminated` is number `restartCount`,
the one in `lastState.terminated` number `restartCount - 1`. Each number is judged once
(externalId `k8s:<pod uid>:<container>:exit:<n>`): OOMKilled; a crash followed by
CrashLoopBackOff (or by a restart we saw running); a non-zero exit of a container that is not
restarted (restartPolicy Never, pod Failed). A crash that is just there (`state.terminated`,
non-zero) waits for the next update to tell which it is. Exits of pods being deleted (a rollout
replacing them: 0, 137, 143, …) and exit 0 are never events.

Crash loops are summarised: the restart counts 1, 2, 4, 8, … are reported, or a restart at least
`repeat_quiet` after the last reported one; an OOM kill after a different failure always is.
Image pull failures: `k8s:<pod uid>:<container>:pull:<image>`; evictions: `k8s:<pod uid>:evicted`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from painchain_pipelines.connectors.base import Event, TimeWindow, iso
from painchain_pipelines.connectors.kubernetes.streams.base import (
    Ctx,
    Stream,
    Tuning,
    bound,
    controller_of,
    in_namespace,
    make_event,
    meta,
    should_repeat,
    t,
    uid_of,
)

PULL_REASONS = {"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull"}
EVICTION_REASONS = {"EvictionByEvictionAPI", "TerminationByKubelet", "PreemptionByScheduler",
                    "DeletionByTaintManager"}


def workload_of(pod: dict) -> dict | None:
    owner = controller_of(pod)
    if not owner:
        return None
    kind, name = owner.get("kind"), owner.get("name") or ""
    if kind == "ReplicaSet":
        template_hash = (meta(pod).get("labels") or {}).get("pod-template-hash")
        if template_hash and name.endswith("-" + template_hash):
            return {"kind": "Deployment", "name": name[: -len(template_hash) - 1], "replicaSet": name}
        return {"kind": "ReplicaSet", "name": name}
    return {"kind": kind, "name": name}


def _statuses(pod: dict) -> list[tuple[dict, bool]]:
    status = pod.get("status") or {}
    return ([(cs, False) for cs in status.get("containerStatuses") or []]
            + [(cs, True) for cs in status.get("initContainerStatuses") or []])


def termination(cs: dict) -> tuple[dict | None, int, bool]:
    """(terminated state, its number, whether it is the current state)."""
    restarts = cs.get("restartCount") or 0
    state, last = cs.get("state") or {}, cs.get("lastState") or {}
    if state.get("terminated"):
        return state["terminated"], restarts, True
    if last.get("terminated"):
        return last["terminated"], max(restarts - 1, 0), False
    return None, -1, False


def eviction(pod: dict) -> tuple[bool, str | None, dt.datetime | None]:
    status = pod.get("status") or {}
    for c in status.get("conditions") or []:
        if c.get("type") == "DisruptionTarget" and c.get("status") == "True" and c.get("reason") in EVICTION_REASONS:
            return True, status.get("message") or c.get("message"), t(c.get("lastTransitionTime"))
    if status.get("reason") == "Evicted":
        return True, status.get("message"), None
    return False, None, None


def pull_time(pod: dict) -> dt.datetime | None:
    status = pod.get("status") or {}
    times = [t(c.get("lastTransitionTime")) for c in status.get("conditions") or []
             if c.get("type") in ("ContainersReady", "Ready") and c.get("status") == "False"]
    times = [x for x in times if x] or [t(status.get("startTime"))]
    return max((x for x in times if x), default=None)


class _Pod:
    """One pod observation: shared data for its events."""

    def __init__(self, cluster: str, pod: dict):
        m, spec, status = meta(pod), pod.get("spec") or {}, pod.get("status") or {}
        self.cluster, self.uid, self.ns, self.name = cluster, m.get("uid"), m.get("namespace"), m.get("name")
        self.node = spec.get("nodeName")
        self.workload = workload_of(pod)
        self.restart_policy = spec.get("restartPolicy") or "Always"
        self.phase = status.get("phase")
        self.deleting = bool(m.get("deletionTimestamp"))
        self.pull_at = pull_time(pod)
        self.evicted = eviction(pod)[0]
        self.images = {c.get("name"): c.get("image") for c in (spec.get("containers") or [])
                       + (spec.get("initContainers") or [])}

    def data(self, kind: str, **extra) -> dict:
        return {"type": kind, "kind": "Pod", "name": self.name, "pod": self.name, "uid": self.uid, "node": self.node,
                "workload": self.workload, **extra}

    def where(self) -> str:
        owner = f" ({self.workload['kind']} {self.workload['name']})" if self.workload else ""
        return f"{self.ns}/{self.name}{owner}"


def failure_event(p: _Pod, cs: dict, term: dict, number: int, verdict: str, init: bool) -> Event:
    name, restarts = cs.get("name"), cs.get("restartCount") or 0
    code, reason = term.get("exitCode"), term.get("reason")
    at = t(term.get("finishedAt")) or t(term.get("startedAt"))
    container = f"{'init container' if init else 'container'} {name}"
    if verdict == "oom_killed":
        title = f"OOMKilled: {p.where()} {container} ({restarts} restarts)"
    elif verdict == "crash_loop":
        title = f"CrashLoopBackOff: {p.where()} {container} exited {code} ({restarts} restarts)"
    else:
        title = f"Container exited with code {code}: {p.where()} {container}"
    return make_event(p.cluster, p.ns, title, at, f"k8s:{p.uid}:{name}:exit:{number}", p.data(
        verdict, container=name, initContainer=init, exitCode=code, reason=reason,
        message=(term.get("message") or "")[:500] or None, signal=term.get("signal"), restartCount=restarts,
        image=cs.get("image") or p.images.get(name), imageID=cs.get("imageID"),
        startedAt=term.get("startedAt") and iso(t(term.get("startedAt"))), finishedAt=at and iso(at),
        waiting=((cs.get("state") or {}).get("waiting") or {}).get("reason")))


def judge(p: _Pod, cs: dict, term: dict, current: bool, deleted: bool) -> str | None:
    """What a termination is: oom_killed, crash_loop, container_exit, ignore, or None (not known yet)."""
    code, reason = term.get("exitCode"), term.get("reason")
    waiting = ((cs.get("state") or {}).get("waiting") or {}).get("reason")
    if current and (p.deleting or deleted or p.evicted):
        return "ignore"  # a pod being deleted or evicted (rollout, scale-down, drain): not a failure
    if reason == "OOMKilled":
        return "oom_killed"
    if code == 0 or reason == "Completed":
        return "ignore"
    if not current:
        return "crash_loop" if waiting == "CrashLoopBackOff" else "container_exit"
    if p.restart_policy == "Never" or p.phase in ("Failed", "Succeeded"):
        return "container_exit"
    return None


class Pods(Stream):
    name = "pods"
    resources = ("pods",)

    def known(self, ctx: Ctx, resource: str, namespace: str | None) -> set[str]:
        return {uid for uid, e in ctx.memory["pods"].items() if in_namespace(e, namespace)}

    def forget(self, ctx: Ctx, resource: str, uid: str) -> None:
        ctx.memory["pods"].pop(uid, None)

    def handle(self, ctx: Ctx, resource: str, kind: str, obj: dict) -> None:
        uid = uid_of(obj)
        if not uid:
            return
        pods = ctx.memory["pods"]
        p = _Pod(ctx.cluster, obj)
        entry = pods.get(uid) or {"ns": p.ns, "c": {}}
        deleted = kind == "DELETED"
        for cs, init in _statuses(obj):
            name = cs.get("name")
            if not name:
                continue
            c = entry["c"].get(name) or {"t": -1, "e": 0}
            self._container(ctx, p, cs, init, c, deleted)
            if c != {"t": -1, "e": 0}:
                entry["c"][name] = c
        evicted, message, at = eviction(obj)
        if evicted and not entry.get("ev"):
            when = at or ctx.now()
            if ctx.learn and not ctx.wants(at):
                entry["ev"] = True
            elif ctx.send(make_event(ctx.cluster, p.ns, f"Evicted: {p.where()}" + (f": {message}" if message else ""),
                                     when, f"k8s:{uid}:evicted", p.data("evicted", message=message, phase=p.phase,
                                                                          reason=(obj.get("status") or {}).get("reason")))):
                entry["ev"] = True
        if deleted:
            pods.pop(uid, None)
            return
        if entry["c"] or entry.get("ev"):
            entry["at"] = iso(ctx.now())
            pods[uid] = entry
            bound(pods, ctx.tuning.max_pods, key=lambda e: e.get("at") or "")

    def _container(self, ctx: Ctx, p: _Pod, cs: dict, init: bool, c: dict, deleted: bool) -> None:
        name = cs.get("name")
        waiting = ((cs.get("state") or {}).get("waiting") or {})
        image = cs.get("image") or p.images.get(name)
        if waiting.get("reason") in PULL_REASONS and c.get("pull") != image and not deleted:
            at = p.pull_at or ctx.now()
            if ctx.learn and not ctx.wants(p.pull_at):
                c["pull"] = image
            elif ctx.send(make_event(ctx.cluster, p.ns, f"{waiting.get('reason')}: {p.where()} container {name} "
                                     f"cannot pull {image}", at, f"k8s:{p.uid}:{name}:pull:{image}",
                                     p.data("image_pull", container=name, image=image, reason=waiting.get("reason"),
                                            message=(waiting.get("message") or "")[:500] or None))):
                c["pull"] = image
        term, number, current = termination(cs)
        if term is None or number <= c.get("t", -1):
            return
        verdict = judge(p, cs, term, current, deleted)
        if verdict is None:
            return  # not known yet: the next update (restart, back-off) tells
        finished = t(term.get("finishedAt"))
        restarts = cs.get("restartCount") or 0
        if verdict == "ignore" or (ctx.learn and not ctx.wants(finished)):
            c["t"] = number
            if verdict != "ignore":
                c["e"], c["et"], c["r"] = max(restarts, 1), finished and iso(finished), term.get("reason")
            return
        report = True
        if ctx.tuning.summarize_repeats and p.restart_policy != "Never":
            count = max(restarts, number + 1)
            report = should_repeat(c.get("e", 0), c.get("et"), count, finished, ctx.tuning.repeat_quiet) or (
                verdict == "oom_killed" and c.get("r") != "OOMKilled")
        if report:
            ctx.send(failure_event(p, cs, term, number, verdict, init))
            c["e"], c["et"], c["r"] = max(restarts, number + 1), finished and iso(finished), term.get("reason")
        c["t"] = number

    def window(self, cluster: str, objects: dict[str, list[dict]], window: TimeWindow,
               tuning: Tuning) -> Iterator[Event]:
        """The pods' last terminations and evictions (what the cluster still shows)."""
        for pod in objects.get("pods") or []:
            p = _Pod(cluster, pod)
            for cs, init in _statuses(pod):
                term, number, current = termination(cs)
                if term is None:
                    continue
                verdict = judge(p, cs, term, current, False)
                if verdict in ("oom_killed", "crash_loop", "container_exit") and t(term.get("finishedAt")) in window:
                    yield failure_event(p, cs, term, number, verdict, init)
            evicted, message, at = eviction(pod)
            if evicted and at in window:
                yield make_event(cluster, p.ns, f"Evicted: {p.where()}" + (f": {message}" if message else ""), at,
                                 f"k8s:{p.uid}:evicted", p.data("evicted", message=message, phase=p.phase,
                                                               reason=(pod.get("status") or {}).get("reason")))
