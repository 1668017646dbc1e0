"""The world behind the fake Kubernetes API server (``tests.fakes.kubernetes_server.FakeKubernetes``).

A ``ClusterWorld`` is one cluster: workloads (Deployments with their ReplicaSets, StatefulSets and
DaemonSets with their ControllerRevisions), Pods, Events, a world clock and a cluster-wide
resourceVersion.  Every write bumps the resourceVersion (one per object written, as etcd does) and
is recorded as a watch event (ADDED / MODIFIED / DELETED) in ``world.history``::

    w = ClusterWorld(name="prod-eu", now=datetime(2026, 12, 1, 12, tzinfo=timezone.utc))
    d = w.apply_deployment("shop", "api", image="registry.example.com/shop/api:1.4.0", replicas=3)
    w.advance(timedelta(minutes=5))
    w.rollout(d, image="registry.example.com/shop/api:1.5.0")
    w.crash_loop(d, restarts=3)

Objects are copies of objects exported from real clusters (``tests/fixtures/kubernetes``, see
SOURCES.md there) with names, uids, images, timestamps and resourceVersions substituted.
ReplicaSets, StatefulSets, DaemonSets and ControllerRevisions have no recorded fixture: they are
built from the Deployment fixture's pod template and the apps/v1 field set.

Events live in one store, as in a real cluster, and are served through both APIs: core/v1
(``/api/v1/events``) and events.k8s.io/v1 (``/apis/events.k8s.io/v1/events``), with the
apiserver's field conversion (message<->note, involvedObject<->regarding, count<->deprecatedCount,
...).  ``api="core"`` writes an old-style event (count/firstTimestamp/lastTimestamp), ``api=
"events.k8s.io"`` a new-style one (eventTime, series, deprecated* empty).  Events expire ``event_ttl``
(default 1 h, as kube-apiserver's --event-ttl) after their last write when the clock passes that:
DELETED watch events; ``ClusterWorld(event_ttl=None)`` keeps them.

Noise written for every pod (``pod_events=True``): SuccessfulCreate (ReplicaSet / StatefulSet /
DaemonSet), Scheduled (events.k8s.io style, default-scheduler), Pulled / Created / Started (kubelet),
Killing on termination, ScalingReplicaSet on the Deployment.

``build_bench_world(now, seed=...)`` builds a busy cluster with hours of activity.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import json
import math
import random
import threading
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

__all__ = [
    "ClusterWorld", "ObjectRef", "Change", "RESOURCES", "FIXTURES_DIR", "ktime", "kmicrotime",
    "render_event", "event_to_events_v1", "build_bench_world",
]

UTC = timezone.utc
FIXTURES_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "kubernetes"

# resource -> (apiVersion, kind, namespaced)
RESOURCES: dict[str, tuple[str, str]] = {
    "pods": ("v1", "Pod"),
    "events": ("v1", "Event"),
    "deployments": ("apps/v1", "Deployment"),
    "replicasets": ("apps/v1", "ReplicaSet"),
    "statefulsets": ("apps/v1", "StatefulSet"),
    "daemonsets": ("apps/v1", "DaemonSet"),
    "controllerrevisions": ("apps/v1", "ControllerRevision"),
}
KIND_TO_RESOURCE = {kind: res for res, (_, kind) in RESOURCES.items()}
_SAFE = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand alphanumerics


def ktime(dt: datetime | None) -> str | None:
    """metav1.Time: ``2026-12-01T12:00:00Z`` (second resolution)."""
    if dt is None:
        return None
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def kmicrotime(dt: datetime | None) -> str | None:
    """metav1.MicroTime: ``2026-12-01T12:00:00.000000Z``."""
    if dt is None:
        return None
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


try:  # orjson is a project dependency; plain json as a fallback
    import orjson as _orjson

    def _clone(obj: Any) -> Any:
        """Deep copy of JSON data (much faster than copy.deepcopy)."""
        return _orjson.loads(_orjson.dumps(obj))
except ImportError:  # pragma: no cover
    def _clone(obj: Any) -> Any:
        return json.loads(json.dumps(obj))


def _aware(dt: datetime) -> datetime:
    if not isinstance(dt, datetime):
        raise TypeError(f"expected datetime, got {dt!r}")
    if dt.tzinfo is None:
        raise ValueError(f"naive datetime not allowed (use timezone.utc): {dt!r}")
    return dt.astimezone(UTC)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_jsonable(v) for v in x]
    if isinstance(x, datetime):
        return ktime(x if x.tzinfo else x.replace(tzinfo=UTC))
    if isinstance(x, date):
        return x.isoformat()
    return x


# --------------------------------------------------------------------------------------------
# fixture templates


class _Templates:
    def __init__(self, root: Path = FIXTURES_DIR):
        import yaml

        def y(name: str) -> dict:
            return _jsonable(yaml.safe_load((root / "gitops-engine" / name).read_text()))

        self.deployment = y("deployment-progressing.yaml")
        self.deployment_degraded = y("deployment-degraded.yaml")
        self.deployment_suspended = y("deployment-suspended.yaml")
        self.pod = y("pod-running-not-ready.yaml")
        self.pod_crashloop = y("pod-crashloop.yaml")
        self.pod_imagepull = y("pod-imagepullbackoff.yaml")
        self.event = json.loads((root / "k9s" / "ev.json").read_text())


_TEMPLATES: _Templates | None = None
_TLOCK = threading.Lock()


def templates() -> _Templates:
    global _TEMPLATES
    with _TLOCK:
        if _TEMPLATES is None:
            _TEMPLATES = _Templates()
        return _TEMPLATES


# --------------------------------------------------------------------------------------------
# events: one store, two API renderings


def event_to_events_v1(ev: dict) -> dict:
    """core/v1 Event -> events.k8s.io/v1 Event (the apiserver's conversion)."""
    out: dict[str, Any] = {"kind": "Event", "apiVersion": "events.k8s.io/v1", "metadata": ev["metadata"]}
    out["eventTime"] = ev.get("eventTime")
    if ev.get("series"):
        out["series"] = ev["series"]
    if ev.get("reportingComponent"):
        out["reportingController"] = ev["reportingComponent"]
    if ev.get("reportingInstance"):
        out["reportingInstance"] = ev["reportingInstance"]
    if ev.get("action"):
        out["action"] = ev["action"]
    out["reason"] = ev.get("reason")
    out["regarding"] = ev.get("involvedObject")
    if ev.get("related"):
        out["related"] = ev["related"]
    out["note"] = ev.get("message")
    out["type"] = ev.get("type")
    src = ev.get("source") or {}
    if src:
        out["deprecatedSource"] = src
    out["deprecatedFirstTimestamp"] = ev.get("firstTimestamp")
    out["deprecatedLastTimestamp"] = ev.get("lastTimestamp")
    if ev.get("count"):
        out["deprecatedCount"] = ev["count"]
    return out


def render_event(ev: dict, api: str) -> dict:
    return ev if api == "core" else event_to_events_v1(ev)


# --------------------------------------------------------------------------------------------


@dataclass
class Change:
    """One write: ``obj`` is the object after the write (for DELETED: its last state with the
    deletion resourceVersion); ``prev`` the object before it (None for ADDED)."""
    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    resource: str
    key: tuple[str, str]  # (namespace, name)
    obj: dict
    prev: dict | None


class ObjectRef:
    """A handle on one object of the world (survives its modifications; ``body`` is a copy of the
    current state, or of the last state once deleted)."""

    __slots__ = ("world", "resource", "namespace", "name", "uid")

    def __init__(self, world: "ClusterWorld", resource: str, namespace: str, name: str, uid: str):
        self.world = world
        self.resource = resource
        self.namespace = namespace
        self.name = name
        self.uid = uid

    @property
    def kind(self) -> str:
        return RESOURCES[self.resource][1]

    @property
    def api_version(self) -> str:
        return RESOURCES[self.resource][0]

    @property
    def body(self) -> dict:
        return _clone(self.world._current(self))

    @property
    def exists(self) -> bool:
        cur = self.world._store[self.resource].get((self.namespace, self.name))
        return cur is not None and cur["metadata"]["uid"] == self.uid

    @property
    def resource_version(self) -> str:
        return self.world._current(self)["metadata"]["resourceVersion"]

    @property
    def generation(self) -> int | None:
        return self.world._current(self)["metadata"].get("generation")

    @property
    def revision(self) -> int | None:
        """Deployment / ReplicaSet: the deployment.kubernetes.io/revision annotation;
        ControllerRevision: .revision."""
        cur = self.world._current(self)
        if self.resource == "controllerrevisions":
            return cur["revision"]
        v = (cur["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision")
        return int(v) if v is not None else None

    def __getitem__(self, k: str) -> Any:
        return self.body[k]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectRef) and (self.resource, self.uid) == (other.resource, other.uid)

    def __hash__(self) -> int:
        return hash((self.resource, self.uid))

    def __repr__(self) -> str:
        return f"<{self.kind} {self.namespace}/{self.name} uid={self.uid[:8]}>"


def _owner_ref(obj: dict, api_version: str, kind: str) -> dict:
    return {"apiVersion": api_version, "kind": kind, "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def _controller_uid(obj: dict) -> str | None:
    for o in obj["metadata"].get("ownerReferences") or ():
        if o.get("controller"):
            return o["uid"]
    return None


def _cond(conds: list[dict], type_: str) -> dict | None:
    for c in conds:
        if c.get("type") == type_:
            return c
    return None


def _pod_ready(pod: dict) -> bool:
    c = _cond((pod.get("status") or {}).get("conditions") or [], "Ready")
    return bool(c and c.get("status") == "True")


def _pod_live(pod: dict) -> bool:
    """Counted by its controller: not terminating, not Failed/Succeeded."""
    return (not pod["metadata"].get("deletionTimestamp")
            and (pod.get("status") or {}).get("phase") not in ("Failed", "Succeeded"))


# --------------------------------------------------------------------------------------------


class ClusterWorld:
    """One cluster.  All mutations are thread-safe (``world.lock``); ``world.changed`` (a Condition
    on that lock) is notified after every write."""

    def __init__(self, name: str = "cluster", now: datetime | None = None, *, seed: int | None = None,
                 nodes: int = 3, start_rv: int = 1000, pod_events: bool = True,
                 event_ttl: timedelta | None = timedelta(hours=1)):
        self.name = name
        # kube-apiserver --event-ttl (default 1h): an Event is deleted (watch DELETED) that long after its
        # last write, when the clock passes it (checked by advance / set_now).  None: events never expire.
        self.event_ttl = event_ttl
        self._ev_expiry: dict[tuple[str, str], datetime] = {}
        self._ev_heap: list[tuple[datetime, tuple[str, str]]] = []
        self._now = _aware(now or datetime(2026, 12, 1, 12, tzinfo=UTC)).replace(microsecond=0)
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._rng = random.Random(seed if seed is not None else f"k8s:{name}")
        self._store: dict[str, dict[tuple[str, str], dict]] = {r: {} for r in RESOURCES}
        self._last: dict[tuple[str, str], dict] = {}  # (resource, uid) -> last state (incl. deleted)
        # indexes, maintained by _write
        self._keys: dict[str, list[tuple[str, str]]] = {r: [] for r in RESOURCES}  # sorted (ns, name)
        self._children: dict[tuple[str, str], set[tuple[str, str]]] = {}  # (resource, owner uid) -> keys
        self._by_uid: dict[str, tuple[str, tuple[str, str]]] = {}  # uid -> (resource, key), live objects
        self._ev_by_uid: dict[str, list[tuple[str, str]]] = {}  # involvedObject.uid -> event keys
        self.history: list[Change] = []
        self._rv = int(start_rv)
        self.start_rv = int(start_rv)
        self.pod_events = pod_events
        self.nodes = [f"{name}-pool-a-{i}" for i in range(1, nodes + 1)]
        self._node_ip = {n: f"10.0.0.{10 + i}" for i, n in enumerate(self.nodes)}
        self._ip_seq = 0
        self._ev_seq = 0
        self._node_rr = 0
        self._pending_template: dict[str, dict] = {}  # paused deployment uid -> nothing (marker)
        self.t = templates()

    # ------------------------------------------------------------------ clock / rv
    @property
    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        with self.lock:
            if delta < timedelta(0):
                raise ValueError("the world clock only moves forward")
            self._now = self._now + delta
            self._expire_events()
            return self._now

    def set_now(self, when: datetime) -> datetime:
        with self.lock:
            when = _aware(when)
            if when < self._now:
                raise ValueError("the world clock only moves forward")
            self._now = when
            self._expire_events()
            return self._now

    def _expire_events(self) -> None:
        while self._ev_heap and self._ev_heap[0][0] <= self._now:
            exp, key = heapq.heappop(self._ev_heap)
            if self._ev_expiry.get(key) != exp:
                continue  # rewritten since (the TTL restarts on every write) or already deleted
            obj = self._store["events"].get(key)
            if obj is not None:
                self._remove(self._ref("events", obj))

    @property
    def resource_version(self) -> int:
        return self._rv

    # ------------------------------------------------------------------ ids
    def _uid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _suffix(self, n: int = 5) -> str:
        return "".join(self._rng.choice(_SAFE) for _ in range(n))

    @staticmethod
    def _hash(obj: Any) -> str:
        h = int.from_bytes(hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).digest()[:8], "big")
        out = ""
        for _ in range(10):
            h, r = divmod(h, len(_SAFE))
            out += _SAFE[r]
        return out

    def _hex(self, n: int) -> str:
        return "".join(self._rng.choice("0123456789abcdef") for _ in range(n))

    # ------------------------------------------------------------------ store
    def _ref(self, resource: str, obj: dict) -> ObjectRef:
        m = obj["metadata"]
        return ObjectRef(self, resource, m.get("namespace", ""), m["name"], m["uid"])

    def _current(self, ref: ObjectRef) -> dict:
        cur = self._store[ref.resource].get((ref.namespace, ref.name))
        if cur is not None and cur["metadata"]["uid"] == ref.uid:
            return cur
        last = self._last.get((ref.resource, ref.uid))
        if last is None:
            raise KeyError(f"unknown object {ref!r}")
        return last

    def _live(self, ref: ObjectRef) -> dict:
        cur = self._store[ref.resource].get((ref.namespace, ref.name))
        if cur is None or cur["metadata"]["uid"] != ref.uid:
            raise KeyError(f"{ref!r} does not exist (deleted)")
        return cur

    def _write(self, resource: str, obj: dict, type_: str) -> dict:
        """Store ``obj`` (a fresh dict, never mutated afterwards) with a new resourceVersion."""
        with self.lock:
            self._rv += 1
            obj["metadata"]["resourceVersion"] = str(self._rv)
            key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
            store = self._store[resource]
            prev = store.get(key)
            uid = obj["metadata"]["uid"]
            owner = _controller_uid(obj)
            if type_ == "DELETED":
                store.pop(key, None)
                keys = self._keys[resource]
                i = bisect.bisect_left(keys, key)
                if i < len(keys) and keys[i] == key:
                    del keys[i]
                self._by_uid.pop(uid, None)
                if owner:
                    self._children.get((resource, owner), set()).discard(key)
                if resource == "events":
                    lst = self._ev_by_uid.get((obj.get("involvedObject") or {}).get("uid"), [])
                    if key in lst:
                        lst.remove(key)
            else:
                store[key] = obj
                if prev is None:
                    bisect.insort(self._keys[resource], key)
                    self._by_uid[uid] = (resource, key)
                    if owner:
                        self._children.setdefault((resource, owner), set()).add(key)
                    if resource == "events":
                        self._ev_by_uid.setdefault((obj.get("involvedObject") or {}).get("uid"), []).append(key)
            self._last[(resource, obj["metadata"]["uid"])] = obj
            self.history.append(Change(self._rv, type_, resource, key, obj, prev))
            if resource == "events" and self.event_ttl is not None:
                if type_ == "DELETED":
                    self._ev_expiry.pop(key, None)
                else:
                    exp = self._now + self.event_ttl
                    self._ev_expiry[key] = exp
                    heapq.heappush(self._ev_heap, (exp, key))
            self.changed.notify_all()
            return obj

    def _add(self, resource: str, obj: dict) -> ObjectRef:
        key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if key in self._store[resource]:
            raise ValueError(f"{resource} {key[0]}/{key[1]} already exists")
        self._write(resource, obj, "ADDED")
        return self._ref(resource, obj)

    def _modify(self, ref: ObjectRef, fn: Callable[[dict], Any]) -> dict:
        with self.lock:
            orig = self._live(ref)
            obj = _clone(orig)
            fn(obj)
            if obj == orig:
                return self._live(ref)  # nothing changed: no write, no event
            return self._write(ref.resource, obj, "MODIFIED")

    def _remove(self, ref: ObjectRef) -> dict:
        with self.lock:
            obj = _clone(self._live(ref))
            return self._write(ref.resource, obj, "DELETED")

    # public read helpers
    def get(self, resource: str, namespace: str, name: str) -> ObjectRef | None:
        o = self._store[resource].get((namespace, name))
        return self._ref(resource, o) if o is not None else None

    def by_uid(self, uid: str) -> ObjectRef | None:
        hit = self._by_uid.get(uid)
        if hit is None:
            return None
        return self._ref(hit[0], self._store[hit[0]][hit[1]])

    def objects(self, resource: str, namespace: str | None = None) -> list[ObjectRef]:
        with self.lock:
            st = self._store[resource]
            return [self._ref(resource, st[k]) for k in self._keys[resource] if namespace is None or k[0] == namespace]

    def snapshot(self, resource: str) -> list[dict]:
        """Current objects of a resource, ordered like etcd keys (namespace/name)."""
        with self.lock:
            st = self._store[resource]
            return [st[k] for k in self._keys[resource]]

    def state_at(self, resource: str, rv: int) -> list[dict]:
        """The objects of ``resource`` as they were at resourceVersion ``rv`` (history undone)."""
        with self.lock:
            state = dict(self._store[resource])
            i = bisect.bisect_right(_RvView(self.history), rv)
            for c in reversed(self.history[i:]):
                if c.resource != resource:
                    continue
                if c.prev is None:
                    state.pop(c.key, None)
                else:
                    state[c.key] = c.prev
            return [o for _, o in sorted(state.items())]

    def changes_since(self, rv: int) -> list[Change]:
        with self.lock:
            lo = bisect.bisect_right(_RvView(self.history), rv)
            return self.history[lo:]

    def owned(self, owner: ObjectRef, resource: str) -> list[ObjectRef]:
        with self.lock:
            st = self._store[resource]
            return [self._ref(resource, st[k]) for k in sorted(self._children.get((resource, owner.uid), ()))]

    def pods_of(self, ref: ObjectRef, live_only: bool = True) -> list[ObjectRef]:
        """Pods of a Pod (itself), ReplicaSet, StatefulSet, DaemonSet, or Deployment (all its RSs)."""
        with self.lock:
            if ref.resource == "pods":
                return [ref]
            owners = [ref]
            if ref.resource == "deployments":
                owners = self.owned(ref, "replicasets")
            st = self._store["pods"]
            keys = sorted(k for o in owners for k in self._children.get(("pods", o.uid), ()))
            return [self._ref("pods", st[k]) for k in keys if not live_only or _pod_live(st[k])]

    def replicasets_of(self, d: ObjectRef) -> list[ObjectRef]:
        return sorted(self.owned(d, "replicasets"), key=lambda r: r.revision or 0)

    def revisions_of(self, ref: ObjectRef) -> list[ObjectRef]:
        return sorted(self.owned(ref, "controllerrevisions"), key=lambda r: r.revision)

    def events_for(self, ref: ObjectRef) -> list[ObjectRef]:
        with self.lock:
            st = self._store["events"]
            return [self._ref("events", st[k]) for k in self._ev_by_uid.get(ref.uid, ()) if k in st]

    # ------------------------------------------------------------------ events
    def _component_for(self, obj: dict, kind: str) -> tuple[str, str]:
        if kind == "Pod":
            return "kubelet", obj.get("spec", {}).get("nodeName") or self.nodes[0]
        comp = {"Deployment": "deployment-controller", "ReplicaSet": "replicaset-controller",
                "StatefulSet": "statefulset-controller", "DaemonSet": "daemonset-controller"}.get(
            kind, "kube-controller-manager")
        return comp, ""

    def _event(self, involved: ObjectRef, type_: str, reason: str, message: str, *, count: int = 1,
               series: bool = False, api: str = "core", component: str | None = None, host: str | None = None,
               field_path: str | None = None, action: str | None = None) -> ObjectRef:
        if api not in ("core", "events.k8s.io"):
            raise ValueError("api must be 'core' or 'events.k8s.io'")
        with self.lock:
            inv = self._current(involved)
            dcomp, dhost = self._component_for(inv, involved.kind)
            component = component or dcomp
            host = dhost if host is None else host
            ev = _clone(self.t.event)
            self._ev_seq += 1
            stamp = int(self._now.timestamp() * 1e9) + self._ev_seq
            name = f"{involved.name}.{stamp:x}"
            ev["metadata"] = {"name": name, "namespace": involved.namespace or "default", "uid": self._uid(),
                              "resourceVersion": "", "creationTimestamp": ktime(self._now)}
            io = {"apiVersion": involved.api_version, "kind": involved.kind, "name": involved.name,
                  "namespace": involved.namespace, "uid": involved.uid,
                  "resourceVersion": inv["metadata"]["resourceVersion"]}
            if field_path:
                io["fieldPath"] = field_path
            elif involved.kind == "Pod" and inv.get("spec", {}).get("containers"):
                pass
            ev["involvedObject"] = io
            ev["reason"] = reason
            ev["message"] = message
            ev["type"] = type_
            if api == "core":
                # old-style recorder (kubelet, most controllers): count + first/lastTimestamp
                ev["count"] = max(1, int(count))
                ev["firstTimestamp"] = ktime(self._now)
                ev["lastTimestamp"] = ktime(self._now)
                ev["eventTime"] = None
                ev["source"] = {"component": component, **({"host": host} if host else {})}
                ev["reportingComponent"] = component
                ev["reportingInstance"] = host or ""
            else:
                # new-style recorder (k8s.io/client-go/tools/events): eventTime + series, deprecated* empty
                ev.pop("count", None)
                ev["firstTimestamp"] = None
                ev["lastTimestamp"] = None
                ev["eventTime"] = kmicrotime(self._now)
                ev["source"] = {}
                ev["reportingComponent"] = component
                ev["reportingInstance"] = f"{component}-{host or self.name}"
                ev["action"] = action or reason
                if series or count > 1:
                    ev["series"] = {"count": max(2, int(count)), "lastObservedTime": kmicrotime(self._now)}
            self._write("events", ev, "ADDED")
            return self._ref("events", ev)

    def warning(self, involved_obj: ObjectRef, reason: str = "FailedScheduling", message: str = "", count: int = 1,
                series: bool = False, api: str = "core", **kw) -> ObjectRef:
        """A Warning event about ``involved_obj``; with ``series=True`` (or count>1) on events.k8s.io the
        event carries ``series {count, lastObservedTime}``; on core, ``count``."""
        return self._event(involved_obj, "Warning", reason, message, count=count, series=series, api=api, **kw)

    def normal(self, involved_obj: ObjectRef, reason: str = "Pulled", message: str = "", count: int = 1,
               series: bool = False, api: str = "core", **kw) -> ObjectRef:
        return self._event(involved_obj, "Normal", reason, message, count=count, series=series, api=api, **kw)

    def repeat(self, event: ObjectRef, times: int = 1) -> ObjectRef:
        """The same event observed ``times`` more times (one write)."""
        def fn(ev):
            if ev.get("eventTime") and not ev.get("firstTimestamp"):  # new style
                s = ev.get("series")
                if s:
                    s["count"] += times
                    s["lastObservedTime"] = kmicrotime(self._now)
                else:
                    ev["series"] = {"count": 1 + times, "lastObservedTime": kmicrotime(self._now)}
            else:
                ev["count"] = int(ev.get("count") or 1) + times
                ev["lastTimestamp"] = ktime(self._now)
        self._modify(event, fn)
        return event

    def _pod_event(self, pod: ObjectRef, type_: str, reason: str, message: str, container: str | None = None,
                   api: str = "core", **kw) -> ObjectRef:
        fp = f"spec.containers{{{container}}}" if container else None
        return self._event(pod, type_, reason, message, api=api, field_path=fp, **kw)

    def _find_event(self, involved: ObjectRef, reason: str, message: str | None = None) -> ObjectRef | None:
        for e in reversed(self.events_for(involved)):
            b = self._current(e)
            if b["reason"] == reason and (message is None or b["message"] == message):
                return e
        return None

    def _event_or_repeat(self, involved: ObjectRef, type_: str, reason: str, message: str,
                         container: str | None = None) -> ObjectRef:
        e = self._find_event(involved, reason, message)
        if e is not None:
            return self.repeat(e)
        return self._pod_event(involved, type_, reason, message, container) if involved.kind == "Pod" \
            else self._event(involved, type_, reason, message)

    # ------------------------------------------------------------------ templates
    def _pod_template(self, selector: dict, labels: dict, containers: dict[str, str]) -> dict:
        tpl = _clone(self.t.deployment["spec"]["template"])
        c0 = tpl["spec"]["containers"][0]
        tpl["metadata"]["labels"] = {**labels, **selector}
        tpl["spec"]["containers"] = [{**_clone(c0), "name": n, "image": img} for n, img in containers.items()]
        return tpl

    @staticmethod
    def _containers(name: str, image: str | None, containers: dict[str, str] | None) -> dict[str, str]:
        if containers:
            return dict(containers)
        if not image:
            raise ValueError("image or containers is required")
        return {name: image}

    def _meta(self, namespace: str, name: str, labels: dict | None, annotations: dict | None = None,
              generation: int | None = None) -> dict:
        m: dict[str, Any] = {"name": name, "namespace": namespace, "uid": self._uid(), "resourceVersion": "",
                             "creationTimestamp": ktime(self._now)}
        if generation is not None:
            m["generation"] = generation
        if labels:
            m["labels"] = dict(labels)
        if annotations:
            m["annotations"] = dict(annotations)
        return m

    @staticmethod
    def _last_applied(api_version: str, kind: str, namespace: str, name: str, labels: dict, spec: dict) -> str:
        return json.dumps({"apiVersion": api_version, "kind": kind, "metadata": {
            "annotations": {}, "labels": labels, "name": name, "namespace": namespace}, "spec": spec},
            separators=(",", ":"), sort_keys=True) + "\n"

    # ------------------------------------------------------------------ pods
    def _new_pod(self, namespace: str, name: str, template: dict, owner: dict | None, owner_kind: str | None,
                 extra_labels: dict, node: str | None = None, generate_name: str | None = None) -> dict:
        t = self.t.pod
        pod: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod"}
        meta = self._meta(namespace, name, {**template["metadata"].get("labels", {}), **extra_labels})
        if generate_name:
            meta = {"generateName": generate_name, **meta}
        if owner is not None:
            meta["ownerReferences"] = [_owner_ref(owner, "apps/v1", owner_kind)]
        pod["metadata"] = meta
        spec = _clone(t["spec"])
        vol = f"kube-api-access-{self._suffix(5)}"
        vm = _clone(spec["containers"][0]["volumeMounts"][0])
        vm["name"] = vol
        spec["containers"] = []
        for c in template["spec"]["containers"]:
            c = _clone(c)
            c["volumeMounts"] = [dict(vm)]
            spec["containers"].append(c)
        spec["volumes"] = [{"name": vol, "secret": {"defaultMode": 420, "secretName": vol}}]
        if node is None:
            node = self.nodes[self._node_rr % len(self.nodes)]
            self._node_rr += 1
        spec["nodeName"] = node
        for k in ("dnsPolicy", "restartPolicy", "schedulerName", "securityContext", "terminationGracePeriodSeconds"):
            if k in template["spec"]:
                spec[k] = _clone(template["spec"][k])
        pod["spec"] = spec
        self._ip_seq += 1
        st = _clone(t["status"])
        now = ktime(self._now)
        st["phase"] = "Pending"
        st["hostIP"] = self._node_ip.get(node, "10.0.0.9")
        st["podIP"] = f"10.244.{self._ip_seq // 250}.{self._ip_seq % 250 + 2}"
        st["startTime"] = now
        conds = []
        for c in st["conditions"]:
            c = dict(c, lastTransitionTime=now)
            if c["type"] == "Ready":
                c["message"] = f"containers with unready status: [{' '.join(x['name'] for x in spec['containers'])}]"
            conds.append(c)
        cr = dict(_cond(conds, "Ready"), type="ContainersReady")
        conds.insert(2, cr)
        st["conditions"] = conds
        st["containerStatuses"] = [{
            "image": c["image"], "imageID": "", "lastState": {}, "name": c["name"], "ready": False,
            "restartCount": 0, "started": False,
            "state": {"waiting": {"reason": "ContainerCreating"}}} for c in spec["containers"]]
        pod["status"] = st
        return pod

    def _image_id(self, image: str, digest: str | None = None) -> str:
        if "@sha256:" in image:
            return image
        repo = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
        d = digest or ("sha256:" + hashlib.sha256(image.encode()).hexdigest())
        if not d.startswith("sha256:"):
            d = "sha256:" + d
        return f"{repo}@{d}"

    def _start_pod(self, pod: ObjectRef, digests: dict[str, str] | None = None, ready: bool = True) -> None:
        """kubelet: pull, create, start the containers (Running, Ready)."""
        def fn(p):
            now = ktime(self._now)
            p["status"]["phase"] = "Running"
            for cs in p["status"]["containerStatuses"]:
                cs["containerID"] = "containerd://" + self._hex(64)
                cs["imageID"] = self._image_id(cs["image"], (digests or {}).get(cs["name"]))
                cs["state"] = {"running": {"startedAt": now}}
                cs["ready"] = ready
                cs["started"] = True
            self._set_ready(p, ready)
        self._modify(pod, fn)
        if self.pod_events:
            b = self._current(pod)
            for c in b["spec"]["containers"]:
                self._pod_event(pod, "Normal", "Pulled",
                                f'Container image "{c["image"]}" already present on machine', c["name"])
                self._pod_event(pod, "Normal", "Created", f"Created container {c['name']}", c["name"])
                self._pod_event(pod, "Normal", "Started", f"Started container {c['name']}", c["name"])

    def _set_ready(self, p: dict, ready: bool) -> None:
        now = ktime(self._now)
        not_ready = [cs["name"] for cs in p["status"].get("containerStatuses", []) if not cs.get("ready")]
        for c in p["status"]["conditions"]:
            if c["type"] in ("Ready", "ContainersReady"):
                want = "True" if ready and not not_ready else "False"
                if c["status"] != want:
                    c["lastTransitionTime"] = now
                c["status"] = want
                if want == "True":
                    c.pop("message", None)
                    c.pop("reason", None)
                else:
                    c["reason"] = "ContainersNotReady"
                    c["message"] = f"containers with unready status: [{' '.join(not_ready)}]"

    def _create_pod(self, namespace: str, name: str, template: dict, owner: dict | None, owner_kind: str | None,
                    extra_labels: dict, ready: bool = True, start: bool = True, node: str | None = None,
                    generate_name: str | None = None, digests: dict | None = None) -> ObjectRef:
        pod = self._new_pod(namespace, name, template, owner, owner_kind, extra_labels, node, generate_name)
        ref = self._add("pods", pod)
        if owner is not None and self.pod_events:
            oref = self._ref(KIND_TO_RESOURCE[owner_kind], owner)
            msg = (f"create Pod {name} in StatefulSet {owner['metadata']['name']} successful"
                   if owner_kind == "StatefulSet" else f"Created pod: {name}")
            self._event(oref, "Normal", "SuccessfulCreate", msg)
        if self.pod_events:
            self._pod_event(ref, "Normal", "Scheduled",
                            f"Successfully assigned {namespace}/{name} to {pod['spec']['nodeName']}",
                            api="events.k8s.io", component="default-scheduler", action="Binding")
        if start:
            self._start_pod(ref, digests, ready)
        return ref

    def _terminate_pod(self, pod: ObjectRef, exit_code: int | None = None, reason_event: bool = True) -> None:
        """Graceful deletion: deletionTimestamp, containers terminated (143 or 0), then DELETED."""
        if not pod.exists:
            return
        b = self._current(pod)
        if reason_event and self.pod_events:
            for c in b["spec"]["containers"]:
                self._pod_event(pod, "Normal", "Killing", f"Stopping container {c['name']}", c["name"])
        grace = b["spec"].get("terminationGracePeriodSeconds", 30)

        def mark(p):
            p["metadata"]["deletionTimestamp"] = ktime(self._now + timedelta(seconds=grace))
            p["metadata"]["deletionGracePeriodSeconds"] = grace
        self._modify(pod, mark)
        code = exit_code
        if code is None:
            code = 143 if self._rng.random() < 0.5 else 0

        def term(p):
            now = ktime(self._now)
            for cs in p["status"].get("containerStatuses", []):
                started = (cs.get("state", {}).get("running") or {}).get("startedAt", now)
                cs["state"] = {"terminated": {"containerID": cs.get("containerID", ""), "exitCode": code,
                                              "finishedAt": now, "reason": "Completed" if code == 0 else "Error",
                                              "startedAt": started}}
                cs["ready"] = False
                cs["started"] = False
            self._set_ready(p, False)
        self._modify(pod, term)
        self._remove(pod)

    # ------------------------------------------------------------------ Deployments
    def apply_deployment(self, namespace: str, name: str, image: str | None = None, replicas: int = 1,
                         labels: dict | None = None, containers: dict[str, str] | None = None,
                         annotations: dict | None = None, digest: str | None = None) -> ObjectRef:
        """Create a Deployment with its ReplicaSet (revision 1) and Ready pods.  On an existing
        Deployment: updates labels/replicas and rolls out when the images changed (like kubectl apply)."""
        with self.lock:
            cs = self._containers(name, image, containers)
            labels = dict(labels or {"app": name})
            existing = self.get("deployments", namespace, name)
            if existing is not None:
                cur = self._current(existing)
                if replicas != cur["spec"]["replicas"]:
                    self.scale(existing, replicas)
                cur_cs = {c["name"]: c["image"] for c in cur["spec"]["template"]["spec"]["containers"]}
                if cur_cs != cs:
                    self._rollout_deployment(existing, cs, {c: digest for c in cs} if digest else None)
                return existing
            selector = {"app": labels.get("app", name)}
            tpl = self._pod_template(selector, labels, cs)
            t = self.t.deployment
            d: dict[str, Any] = {"apiVersion": "apps/v1", "kind": "Deployment"}
            spec = _clone(t["spec"])
            spec["replicas"] = replicas
            spec["selector"] = {"matchLabels": selector}
            spec["template"] = tpl
            spec.pop("paused", None)
            ann = {"deployment.kubernetes.io/revision": "1",
                   "kubectl.kubernetes.io/last-applied-configuration": self._last_applied(
                       "apps/v1", "Deployment", namespace, name, labels,
                       {"replicas": replicas, "selector": spec["selector"],
                        "template": {"metadata": {"labels": tpl["metadata"]["labels"]},
                                     "spec": {"containers": [{"name": n, "image": i} for n, i in cs.items()]}}}),
                   **(annotations or {})}
            d["metadata"] = self._meta(namespace, name, labels, ann, generation=1)
            d["spec"] = spec
            d["status"] = {}
            dref = self._add("deployments", d)
            self._new_replicaset(dref, tpl, revision=1, replicas=replicas,
                                 digests={c: digest for c in cs} if digest else None)
            self._refresh_deployment(dref, progressing=("True", "NewReplicaSetAvailable"))
            return dref

    def _rs_name(self, d: dict, h: str) -> str:
        return f"{d['metadata']['name']}-{h}"

    def _new_replicaset(self, dref: ObjectRef, tpl: dict, revision: int, replicas: int, *,
                        ready: bool = True, start: bool = True, digests: dict | None = None,
                        pods: bool = True) -> ObjectRef:
        d = self._current(dref)
        h = self._hash(tpl)
        name = self._rs_name(d, h)
        rtpl = _clone(tpl)
        rtpl["metadata"]["labels"] = {**tpl["metadata"]["labels"], "pod-template-hash": h}
        rs: dict[str, Any] = {"apiVersion": "apps/v1", "kind": "ReplicaSet"}
        rs["metadata"] = self._meta(d["metadata"]["namespace"], name, rtpl["metadata"]["labels"], {
            "deployment.kubernetes.io/desired-replicas": str(d["spec"]["replicas"]),
            "deployment.kubernetes.io/max-replicas": str(d["spec"]["replicas"] + self._surge(d["spec"]["replicas"])),
            "deployment.kubernetes.io/revision": str(revision)}, generation=1)
        rs["metadata"]["ownerReferences"] = [_owner_ref(d, "apps/v1", "Deployment")]
        rs["spec"] = {"replicas": replicas, "selector": {"matchLabels": {**d["spec"]["selector"]["matchLabels"],
                                                                         "pod-template-hash": h}},
                      "template": rtpl}
        rs["status"] = {"replicas": 0}
        rsref = self._add("replicasets", rs)  # the controller creates it at its initial size
        if replicas:
            self._event(dref, "Normal", "ScalingReplicaSet", f"Scaled up replica set {name} from 0 to {replicas}")
        if pods:
            self._scale_rs(rsref, replicas, ready=ready, start=start, digests=digests)
        return rsref

    @staticmethod
    def _surge(replicas: int) -> int:
        return max(1, math.ceil(replicas * 0.25))

    @staticmethod
    def _max_unavailable(replicas: int) -> int:
        return math.floor(replicas * 0.25)

    def _scale_rs(self, rsref: ObjectRef, replicas: int, *, ready: bool = True, start: bool = True,
                  digests: dict | None = None, exit_code: int | None = None) -> None:
        rs = self._current(rsref)
        old = rs["spec"]["replicas"]
        d_uid = _controller_uid(rs)
        dref = self.by_uid(d_uid) if d_uid else None
        if old != replicas:
            def fn(o):
                o["spec"]["replicas"] = replicas
                o["metadata"]["generation"] = o["metadata"].get("generation", 1) + 1
                if dref is not None:
                    dd = self._current(dref)
                    o["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] = str(dd["spec"]["replicas"])
            self._modify(rsref, fn)
            if dref is not None:
                verb = "up" if replicas > old else "down"
                self._event(dref, "Normal", "ScalingReplicaSet",
                            f"Scaled {verb} replica set {rsref.name} from {old} to {replicas}")
        pods = self.pods_of(rsref)
        if len(pods) < replicas:
            rs = self._current(rsref)
            for _ in range(replicas - len(pods)):
                name = f"{rsref.name}-{self._suffix(5)}"
                self._create_pod(rsref.namespace, name, rs["spec"]["template"], rs, "ReplicaSet", {},
                                 ready=ready, start=start, generate_name=f"{rsref.name}-", digests=digests)
        elif len(pods) > replicas:
            for p in pods[replicas:]:
                if self.pod_events:
                    self._event(rsref, "Normal", "SuccessfulDelete", f"Deleted pod: {p.name}")
                self._terminate_pod(p, exit_code)
        self._refresh_rs(rsref)

    def _refresh_rs(self, rsref: ObjectRef) -> None:
        pods = [self._current(p) for p in self.pods_of(rsref)]
        ready = sum(1 for p in pods if _pod_ready(p))

        def fn(o):
            st: dict[str, Any] = {"replicas": len(pods)}
            if pods:
                st["fullyLabeledReplicas"] = len(pods)
            if ready:
                st["readyReplicas"] = ready
                st["availableReplicas"] = ready
            st["observedGeneration"] = o["metadata"].get("generation", 1)
            o["status"] = st
        self._modify(rsref, fn)

    def _current_rs(self, dref: ObjectRef) -> ObjectRef | None:
        d = self._current(dref)
        h = self._hash(self._strip_hash(d["spec"]["template"]))
        for rs in self.owned(dref, "replicasets"):
            if self._current(rs)["metadata"]["labels"].get("pod-template-hash") == h:
                return rs
        return None

    @staticmethod
    def _strip_hash(tpl: dict) -> dict:
        t = _clone(tpl)
        t["metadata"].get("labels", {}).pop("pod-template-hash", None)
        return t

    def _refresh_deployment(self, dref: ObjectRef, progressing: tuple[str, str] | None = None,
                            message: str | None = None) -> None:
        """Recompute status counts from the ReplicaSets/pods; optionally set the Progressing condition."""
        d = self._current(dref)
        rss = [self._current(r) for r in self.owned(dref, "replicasets")]
        cur = self._current_rs(dref)
        cur_name = cur.name if cur else None
        total = sum(r["status"].get("replicas", 0) for r in rss)
        ready = sum(r["status"].get("readyReplicas", 0) for r in rss)
        avail = sum(r["status"].get("availableReplicas", 0) for r in rss)
        updated = next((r["status"].get("replicas", 0) for r in rss if r["metadata"]["name"] == cur_name), 0)
        want = d["spec"]["replicas"]
        now = ktime(self._now)

        def fn(o):
            st = o.setdefault("status", {})
            old_conds = st.get("conditions") or []
            new: dict[str, Any] = {"observedGeneration": o["metadata"]["generation"], "replicas": total,
                                   "updatedReplicas": updated, "readyReplicas": ready, "availableReplicas": avail}
            unavailable = max(0, max(want, total) - avail)
            if unavailable:
                new["unavailableReplicas"] = unavailable
            new = {k: v for k, v in new.items() if v or k in ("observedGeneration",)}
            conds = [dict(c) for c in old_conds]

            def setc(type_, status, reason, msg):
                c = _cond(conds, type_)
                if c is None:
                    c = {"lastTransitionTime": now, "lastUpdateTime": now, "message": msg, "reason": reason,
                         "status": status, "type": type_}
                    conds.append(c)
                    return
                if c["status"] != status:
                    c["lastTransitionTime"] = now
                if (c["status"], c["reason"], c["message"]) != (status, reason, msg):
                    c["lastUpdateTime"] = now
                c.update(status=status, reason=reason, message=msg)

            if avail >= want - self._max_unavailable(want):
                setc("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
            else:
                setc("Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
            if progressing is not None:
                status, reason = progressing
                msgs = {"NewReplicaSetAvailable": f'ReplicaSet "{cur_name}" has successfully progressed.',
                        "ReplicaSetUpdated": f'ReplicaSet "{cur_name}" is progressing.',
                        "NewReplicaSetCreated": f'Created new replica set "{cur_name}"',
                        "FoundNewReplicaSet": f'Found new replica set "{cur_name}"',
                        "ProgressDeadlineExceeded": f'ReplicaSet "{cur_name}" has timed out progressing.',
                        "DeploymentPaused": "Deployment is paused",
                        "DeploymentResumed": "Deployment is resumed"}
                setc("Progressing", status, reason, message or msgs.get(reason, reason))
            # Available first, then Progressing (as the controller orders them)
            conds.sort(key=lambda c: {"Available": 0, "Progressing": 1}.get(c["type"], 2))
            new["conditions"] = conds
            o["status"] = new
        self._modify(dref, fn)

    def rollout(self, ref: ObjectRef, image: str | None = None, container: str | None = None,
                digest: str | None = None, *, containers: dict[str, str] | None = None,
                complete: bool = True) -> ObjectRef:
        """Change the pod template's image(s) (generation+1) and roll out.

        Deployment: new ReplicaSet with revision n+1 (or the matching old one, its revision bumped),
        Progressing ReplicaSetUpdated, then (``complete=True``) new pods Ready, old RS scaled to 0, old
        pods terminated (exit 143 or 0) and deleted, Progressing NewReplicaSetAvailable.  With
        ``complete=False`` the rollout stops after the first surge pod (not Ready yet): finish with
        ``complete_rollout``, or break it with ``image_pull_backoff`` / ``crash_loop`` / ``stall``.
        StatefulSet / DaemonSet: new ControllerRevision, pods replaced, status.updateRevision.
        ``digest`` (``sha256:...``) is the resolved digest shown in the new pods' ``imageID``.
        """
        with self.lock:
            cur = self._current(ref)
            cs = {c["name"]: c["image"] for c in cur["spec"]["template"]["spec"]["containers"]}
            if containers:
                cs.update(containers)
            if image is not None:
                target = container or next(iter(cs))
                if target not in cs:
                    raise KeyError(f"no container {target!r} in {ref!r}")
                cs[target] = image
            digests = {c: digest for c in cs} if digest else None
            if container and digest:
                digests = {container: digest}
            if ref.resource == "deployments":
                return self._rollout_deployment(ref, cs, digests, complete=complete)
            if ref.resource in ("statefulsets", "daemonsets"):
                return self._rollout_revisioned(ref, cs, digests, complete=complete)
            raise TypeError(f"cannot roll out a {ref.kind}")

    def _with_images(self, tpl: dict, cs: dict[str, str]) -> dict:
        t = _clone(tpl)
        by = {c["name"]: c for c in t["spec"]["containers"]}
        base = t["spec"]["containers"][0]
        t["spec"]["containers"] = [dict(by.get(n) or _clone(base), name=n, image=img) for n, img in cs.items()]
        return t

    def _set_template(self, dref: ObjectRef, tpl: dict) -> None:
        def fn(o):
            o["spec"]["template"] = tpl
            o["metadata"]["generation"] += 1
            la = o["metadata"].get("annotations", {}).get("kubectl.kubernetes.io/last-applied-configuration")
            if la:
                spec = {**({"replicas": o["spec"]["replicas"]} if "replicas" in o["spec"] else {}),
                        "selector": o["spec"]["selector"],
                        "template": {"metadata": {"labels": tpl["metadata"]["labels"]},
                                     "spec": {"containers": [{"name": c["name"], "image": c["image"]}
                                                             for c in tpl["spec"]["containers"]]}}}
                o["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = \
                    self._last_applied(o["apiVersion"], o["kind"], o["metadata"]["namespace"],
                                       o["metadata"]["name"], o["metadata"].get("labels", {}), spec)
        self._modify(dref, fn)

    def _rollout_deployment(self, dref: ObjectRef, cs: dict[str, str], digests: dict | None, *,
                            complete: bool = True, template: dict | None = None) -> ObjectRef:
        d = self._current(dref)
        tpl = template if template is not None else self._with_images(d["spec"]["template"], cs)
        self._set_template(dref, tpl)
        if self._current(dref)["spec"].get("paused"):
            self._refresh_deployment(dref)  # generation bumped, nothing rolls while paused
            return dref
        self._start_rollout(dref, digests, complete=complete)
        return dref

    def _start_rollout(self, dref: ObjectRef, digests: dict | None, complete: bool = True) -> None:
        d = self._current(dref)
        tpl = self._strip_hash(d["spec"]["template"])
        h = self._hash(tpl)
        rss = self.owned(dref, "replicasets")
        max_rev = max([r.revision or 0 for r in rss] or [0])
        cur_rev = int(d["metadata"].get("annotations", {}).get("deployment.kubernetes.io/revision", "0"))
        existing = next((r for r in rss if self._current(r)["metadata"]["labels"].get("pod-template-hash") == h), None)
        if existing is not None and existing.revision == cur_rev and self._current(existing)["spec"]["replicas"] == d["spec"]["replicas"] \
                and all(self._current(r)["spec"]["replicas"] == 0 for r in rss if r != existing):
            self._refresh_deployment(dref)
            return  # template unchanged
        new_rev = max_rev + 1
        if existing is not None and existing.revision == max_rev:
            new_rev = max_rev  # the newest RS is already current (e.g. resume)
        want = d["spec"]["replicas"]
        first = want if complete else min(want, self._surge(want))

        def bump_d(o):
            o["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = str(new_rev)
        self._modify(dref, bump_d)
        if existing is not None:
            old_rev = existing.revision

            def bump(o):
                a = o["metadata"]["annotations"]
                if old_rev != new_rev:
                    hist = [x for x in a.get("deployment.kubernetes.io/revision-history", "").split(",") if x]
                    a["deployment.kubernetes.io/revision-history"] = ",".join(hist + [str(old_rev)])
                a["deployment.kubernetes.io/revision"] = str(new_rev)
            self._modify(existing, bump)
            new_rs = existing
            self._refresh_deployment(dref, progressing=("True", "ReplicaSetUpdated"))
            self._scale_rs(new_rs, first, ready=complete, digests=digests)
        else:
            new_rs = self._new_replicaset(dref, tpl, new_rev, first, ready=complete, digests=digests, pods=False)
            self._refresh_deployment(dref, progressing=("True", "ReplicaSetUpdated"))
            self._scale_rs(new_rs, first, ready=complete, digests=digests)
        self._refresh_deployment(dref)
        if complete:
            self.complete_rollout(dref, _digests=digests)

    def complete_rollout(self, ref: ObjectRef, _digests: dict | None = None) -> ObjectRef:
        """Finish an in-progress rollout: every new pod Ready, old ReplicaSets scaled to 0."""
        with self.lock:
            if ref.resource in ("statefulsets", "daemonsets"):
                return self._complete_revisioned(ref)
            d = self._current(ref)
            new_rs = self._current_rs(ref)
            if new_rs is None:
                self._start_rollout(ref, _digests, complete=True)
                return ref
            for p in self.pods_of(new_rs):
                pb = self._current(p)
                if not _pod_ready(pb):
                    self._heal_pod(p)
            self._scale_rs(new_rs, d["spec"]["replicas"], digests=_digests)
            for rs in self.owned(ref, "replicasets"):
                if rs != new_rs and (self._current(rs)["spec"]["replicas"] or self.pods_of(rs)):
                    self._scale_rs(rs, 0)
            self._refresh_deployment(ref, progressing=("True", "NewReplicaSetAvailable"))
            return ref

    def _heal_pod(self, pod: ObjectRef) -> None:
        """Containers running and Ready (e.g. the image became pullable)."""
        def fn(p):
            now = ktime(self._now)
            p["status"]["phase"] = "Running"
            for cs in p["status"]["containerStatuses"]:
                if "running" not in cs.get("state", {}):
                    cs["containerID"] = "containerd://" + self._hex(64)
                    cs["imageID"] = cs.get("imageID") or self._image_id(cs["image"])
                    cs["state"] = {"running": {"startedAt": now}}
                cs["ready"] = True
                cs["started"] = True
            self._set_ready(p, True)
        self._modify(pod, fn)

    def scale(self, ref: ObjectRef, replicas: int) -> ObjectRef:
        with self.lock:
            def fn(o):
                o["spec"]["replicas"] = replicas
                o["metadata"]["generation"] += 1
            if ref.resource == "deployments":
                self._modify(ref, fn)
                rs = self._current_rs(ref)
                if rs is not None and not self._current(ref)["spec"].get("paused"):
                    self._scale_rs(rs, replicas)
                self._refresh_deployment(ref)
            elif ref.resource == "statefulsets":
                self._modify(ref, fn)
                self._sts_reconcile(ref)
            elif ref.resource == "replicasets":
                self._scale_rs(ref, replicas)
            else:
                raise TypeError(f"cannot scale a {ref.kind}")
            return ref

    def rollback(self, ref: ObjectRef, to_revision: int | None = None) -> ObjectRef:
        """``kubectl rollout undo``: the ReplicaSet (ControllerRevision) of ``to_revision`` (default: the
        previous one) becomes current and its revision is bumped to n+1."""
        with self.lock:
            if ref.resource == "deployments":
                rss = self.replicasets_of(ref)
                cur_rev = self._current(ref)["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                if to_revision is None:
                    older = [r for r in rss if (r.revision or 0) < int(cur_rev)]
                    if not older:
                        raise ValueError("no rollout history found")
                    target = older[-1]
                else:
                    target = next((r for r in rss if r.revision == to_revision), None)
                    if target is None:
                        raise ValueError(f"unable to find specified revision {to_revision} in history")
                tpl = self._strip_hash(self._current(target)["spec"]["template"])
                d = self._current(ref)
                if self._hash(tpl) == self._hash(self._strip_hash(d["spec"]["template"])):
                    return ref  # "skipped rollback (current template already matches revision N)"
                self._set_template(ref, tpl)
                self._start_rollout(ref, None, complete=True)
                return ref
            if ref.resource in ("statefulsets", "daemonsets"):
                crs = self.revisions_of(ref)
                cur = self._current(ref)
                if to_revision is None:
                    cur_name = cur["status"].get("updateRevision") or cur["status"].get("_updateRevision")
                    older = [c for c in crs if c.name != cur_name]
                    if not older:
                        raise ValueError("no rollout history found")
                    target = older[-1]
                else:
                    target = next((c for c in crs if c.revision == to_revision), None)
                    if target is None:
                        raise ValueError(f"unable to find specified revision {to_revision} in history")
                tpl = _clone(self._current(target)["data"]["spec"]["template"])
                tpl.pop("$patch", None)
                return self._rollout_revisioned(ref, None, None, template=tpl)
            raise TypeError(f"cannot roll back a {ref.kind}")

    def pause(self, ref: ObjectRef) -> ObjectRef:
        with self.lock:
            def fn(o):
                o["spec"]["paused"] = True
                o["metadata"]["generation"] += 1
            self._modify(ref, fn)
            self._refresh_deployment(ref, progressing=("Unknown", "DeploymentPaused"))
            return ref

    def resume(self, ref: ObjectRef, complete: bool = True) -> ObjectRef:
        with self.lock:
            def fn(o):
                o["spec"].pop("paused", None)
                o["metadata"]["generation"] += 1
            self._modify(ref, fn)
            self._refresh_deployment(ref, progressing=("Unknown", "DeploymentResumed"))
            self._start_rollout(ref, None, complete=complete)
            return ref

    def stall(self, ref: ObjectRef) -> ObjectRef:
        """The rollout exceeded progressDeadlineSeconds: Progressing=False ProgressDeadlineExceeded."""
        with self.lock:
            self._refresh_deployment(ref, progressing=("False", "ProgressDeadlineExceeded"))
            return ref

    # ------------------------------------------------------------------ StatefulSets / DaemonSets
    def apply_statefulset(self, namespace: str, name: str, image: str | None = None, replicas: int = 1,
                          labels: dict | None = None, containers: dict[str, str] | None = None,
                          service_name: str | None = None) -> ObjectRef:
        return self._apply_revisioned("statefulsets", namespace, name, image, replicas, labels, containers,
                                      service_name=service_name or name)

    def apply_daemonset(self, namespace: str, name: str, image: str | None = None,
                        labels: dict | None = None, containers: dict[str, str] | None = None) -> ObjectRef:
        return self._apply_revisioned("daemonsets", namespace, name, image, None, labels, containers)

    def _apply_revisioned(self, resource: str, namespace: str, name: str, image, replicas, labels, containers,
                          service_name: str | None = None) -> ObjectRef:
        with self.lock:
            cs = self._containers(name, image, containers)
            existing = self.get(resource, namespace, name)
            if existing is not None:
                if replicas is not None and replicas != self._current(existing)["spec"].get("replicas"):
                    self.scale(existing, replicas)
                return self._rollout_revisioned(existing, cs, None)
            labels = dict(labels or {"app": name})
            selector = {"app": labels.get("app", name)}
            tpl = self._pod_template(selector, labels, cs)
            kind = RESOURCES[resource][1]
            o: dict[str, Any] = {"apiVersion": "apps/v1", "kind": kind}
            spec: dict[str, Any] = {}
            if resource == "statefulsets":
                spec = {"podManagementPolicy": "OrderedReady", "replicas": replicas,
                        "revisionHistoryLimit": 10, "selector": {"matchLabels": selector},
                        "serviceName": service_name, "template": tpl,
                        "updateStrategy": {"rollingUpdate": {"partition": 0}, "type": "RollingUpdate"},
                        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"}}
            else:
                spec = {"revisionHistoryLimit": 10, "selector": {"matchLabels": selector}, "template": tpl,
                        "updateStrategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
                                           "type": "RollingUpdate"}}
            ann = {"kubectl.kubernetes.io/last-applied-configuration": self._last_applied(
                "apps/v1", kind, namespace, name, labels,
                {"selector": spec["selector"], "template": {"metadata": {"labels": tpl["metadata"]["labels"]},
                 "spec": {"containers": [{"name": n, "image": i} for n, i in cs.items()]}}})}
            o["metadata"] = self._meta(namespace, name, labels, ann, generation=1)
            o["spec"] = spec
            o["status"] = {"replicas": 0} if resource == "statefulsets" else {
                "currentNumberScheduled": 0, "desiredNumberScheduled": 0, "numberMisscheduled": 0, "numberReady": 0}
            ref = self._add(resource, o)
            cr = self._new_revision(ref, tpl, 1)
            self._set_update_revision(ref, cr)
            self._reconcile_revisioned(ref)
            return ref

    def _cr_hash(self, ref: ObjectRef, tpl: dict) -> str:
        return self._hash({"owner": ref.uid, "template": tpl})

    def _new_revision(self, ref: ObjectRef, tpl: dict, revision: int) -> ObjectRef:
        o = self._current(ref)
        h = self._cr_hash(ref, tpl)
        cr: dict[str, Any] = {"apiVersion": "apps/v1", "kind": "ControllerRevision"}
        cr["metadata"] = self._meta(ref.namespace, f"{ref.name}-{h}",
                                    {**o["spec"]["selector"]["matchLabels"], "controller-revision-hash": h})
        cr["metadata"]["ownerReferences"] = [_owner_ref(o, "apps/v1", ref.kind)]
        cr["data"] = {"spec": {"template": {**_clone(tpl), "$patch": "replace"}}}
        cr["revision"] = revision
        return self._add("controllerrevisions", cr)

    def _set_update_revision(self, ref: ObjectRef, cr: ObjectRef) -> None:
        # StatefulSetStatus has updateRevision/currentRevision; DaemonSetStatus has neither, so the
        # DaemonSet's target revision is kept out of the served object (in the world only).
        self._upd_rev[ref.uid] = cr

    @property
    def _upd_rev(self) -> dict:
        d = self.__dict__.get("_upd_rev_d")
        if d is None:
            d = self.__dict__["_upd_rev_d"] = {}
        return d

    def _rev_label(self, ref: ObjectRef, cr: ObjectRef) -> str:
        # StatefulSet pods: controller-revision-hash = CR name; DaemonSet pods: the hash alone
        return cr.name if ref.resource == "statefulsets" else cr.name[len(ref.name) + 1:]

    def _rollout_revisioned(self, ref: ObjectRef, cs: dict | None, digests: dict | None, *,
                            complete: bool = True, template: dict | None = None) -> ObjectRef:
        o = self._current(ref)
        tpl = template if template is not None else self._with_images(o["spec"]["template"], cs)
        crs = self.revisions_of(ref)
        h = self._cr_hash(ref, tpl)
        max_rev = max(c.revision for c in crs)
        existing = next((c for c in crs if c.name == f"{ref.name}-{h}"), None)
        if existing is not None and existing == self._upd_rev.get(ref.uid):
            return ref  # unchanged
        self._set_template(ref, tpl)
        if existing is not None:
            self._modify(existing, lambda c: c.__setitem__("revision", max_rev + 1))
            cr = existing
        else:
            cr = self._new_revision(ref, tpl, max_rev + 1)
        self._set_update_revision(ref, cr)
        self._reconcile_revisioned(ref, digests=digests, limit=None if complete else 1)
        return ref

    def _complete_revisioned(self, ref: ObjectRef) -> ObjectRef:
        for p in self.pods_of(ref):
            if not _pod_ready(self._current(p)):
                self._heal_pod(p)
        self._reconcile_revisioned(ref)
        return ref

    def _reconcile_revisioned(self, ref: ObjectRef, digests: dict | None = None, limit: int | None = None) -> None:
        if ref.resource == "statefulsets":
            self._sts_reconcile(ref, digests, limit)
        else:
            self._ds_reconcile(ref, digests, limit)

    def _sts_reconcile(self, ref: ObjectRef, digests: dict | None = None, limit: int | None = None) -> None:
        o = self._current(ref)
        cr = self._upd_rev[ref.uid]
        label = self._rev_label(ref, cr)
        tpl = o["spec"]["template"]
        want = o["spec"]["replicas"]
        pods = {p.name: p for p in self.pods_of(ref, live_only=False)}

        def create(i):
            n = f"{ref.name}-{i}"
            self._create_pod(ref.namespace, n, tpl, o, "StatefulSet",
                             {"controller-revision-hash": label, "statefulset.kubernetes.io/pod-name": n,
                              "apps.kubernetes.io/pod-index": str(i)}, digests=digests)

        for i in range(want):
            if f"{ref.name}-{i}" not in pods:
                create(i)
        for i in sorted((int(n.rsplit("-", 1)[1]) for n in pods), reverse=True):
            if i >= want:
                p = pods[f"{ref.name}-{i}"]
                self._event(ref, "Normal", "SuccessfulDelete", f"delete Pod {p.name} in StatefulSet {ref.name} successful")
                self._terminate_pod(p)
        replaced = 0
        for i in reversed(range(want)):  # rolling update: highest ordinal first
            p = self.get("pods", ref.namespace, f"{ref.name}-{i}")
            if p is None or self._current(p)["metadata"]["labels"].get("controller-revision-hash") == label:
                continue
            if limit is not None and replaced >= limit:
                break
            self._event(ref, "Normal", "SuccessfulDelete", f"delete Pod {p.name} in StatefulSet {ref.name} successful")
            self._terminate_pod(p)
            create(i)
            replaced += 1
        self._refresh_sts(ref)

    def _refresh_sts(self, ref: ObjectRef) -> None:
        cr = self._upd_rev[ref.uid]
        label = self._rev_label(ref, cr)
        pods = [self._current(p) for p in self.pods_of(ref)]
        ready = sum(1 for p in pods if _pod_ready(p))
        updated = sum(1 for p in pods if p["metadata"]["labels"].get("controller-revision-hash") == label)
        o = self._current(ref)
        cur_rev = o["status"].get("currentRevision")
        if updated == len(pods) == o["spec"]["replicas"]:
            cur_rev = cr.name
        current = sum(1 for p in pods if p["metadata"]["labels"].get("controller-revision-hash") == cur_rev)

        def fn(x):
            st: dict[str, Any] = {"availableReplicas": ready, "collisionCount": 0, "currentReplicas": current,
                                  "currentRevision": cur_rev or cr.name, "observedGeneration": x["metadata"]["generation"],
                                  "readyReplicas": ready, "replicas": len(pods), "updateRevision": cr.name,
                                  "updatedReplicas": updated}
            x["status"] = {k: v for k, v in st.items() if v or k in ("replicas", "availableReplicas", "collisionCount")}
        self._modify(ref, fn)

    def _ds_reconcile(self, ref: ObjectRef, digests: dict | None = None, limit: int | None = None) -> None:
        o = self._current(ref)
        cr = self._upd_rev[ref.uid]
        label = self._rev_label(ref, cr)
        tpl = o["spec"]["template"]
        by_node = {self._current(p)["spec"]["nodeName"]: p for p in self.pods_of(ref)}
        replaced = 0
        for node in self.nodes:
            p = by_node.get(node)
            if p is not None and self._current(p)["metadata"]["labels"].get("controller-revision-hash") == label:
                continue
            if p is not None:
                if limit is not None and replaced >= limit:
                    continue
                self._event(ref, "Normal", "SuccessfulDelete", f"Deleted pod: {p.name}")
                self._terminate_pod(p)
                replaced += 1
            n = f"{ref.name}-{self._suffix(5)}"
            self._create_pod(ref.namespace, n, tpl, o, "DaemonSet",
                             {"controller-revision-hash": label, "pod-template-generation": str(o["metadata"]["generation"])},
                             node=node, generate_name=f"{ref.name}-", digests=digests)
        self._refresh_ds(ref)

    def _refresh_ds(self, ref: ObjectRef) -> None:
        cr = self._upd_rev[ref.uid]
        label = self._rev_label(ref, cr)
        pods = [self._current(p) for p in self.pods_of(ref)]
        ready = sum(1 for p in pods if _pod_ready(p))
        updated = sum(1 for p in pods if p["metadata"]["labels"].get("controller-revision-hash") == label)

        def fn(x):
            st = {"currentNumberScheduled": len(pods), "desiredNumberScheduled": len(self.nodes),
                  "numberAvailable": ready, "numberMisscheduled": 0, "numberReady": ready,
                  "observedGeneration": x["metadata"]["generation"], "updatedNumberScheduled": updated}
            if len(self.nodes) - ready:
                st["numberUnavailable"] = len(self.nodes) - ready
            if not ready:
                st.pop("numberAvailable")
            x["status"] = st
        self._modify(ref, fn)

    # ------------------------------------------------------------------ standalone pods
    def apply_pod(self, namespace: str, name: str, image: str, labels: dict | None = None,
                  node: str | None = None) -> ObjectRef:
        with self.lock:
            labels = dict(labels or {"run": name})
            tpl = self._pod_template({}, labels, {name: image})
            return self._create_pod(namespace, name, tpl, None, None, {}, node=node)

    # ------------------------------------------------------------------ failures
    def _target_pod(self, ref: ObjectRef, prefer_not_ready: bool = False) -> ObjectRef:
        if ref.resource == "pods":
            return ref
        pool = self.pods_of(ref)
        if ref.resource == "deployments":
            rs = self._current_rs(ref)
            if rs is not None and self.pods_of(rs):
                pool = self.pods_of(rs)
        if not pool:
            raise ValueError(f"{ref!r} has no pods")
        if prefer_not_ready:
            nr = [p for p in pool if not _pod_ready(self._current(p))]
            if nr:
                return nr[0]
        return pool[0]

    def _container_name(self, pod: dict, container: str | None) -> str:
        names = [c["name"] for c in pod["spec"]["containers"]]
        if container is None:
            return names[0]
        if container not in names:
            raise KeyError(f"no container {container!r} in pod {pod['metadata']['name']}")
        return container

    def _refresh_owner(self, pod: ObjectRef) -> None:
        p = self._current(pod)
        ouid = _controller_uid(p)
        if not ouid:
            return
        oref = self.by_uid(ouid)
        if oref is None:
            return
        if oref.resource == "replicasets":
            self._refresh_rs(oref)
            dref = self.by_uid(_controller_uid(self._current(oref)) or "")
            if dref is not None:
                self._refresh_deployment(dref)
        elif oref.resource == "statefulsets":
            self._refresh_sts(oref)
        elif oref.resource == "daemonsets":
            self._refresh_ds(oref)

    def crash_loop(self, ref: ObjectRef, restarts: int = 3, exit_code: int = 1, container: str | None = None) -> ObjectRef:
        """A container exits ``restarts`` times (one pod MODIFIED per restart): lastState.terminated
        (Error, exitCode, finishedAt), state.waiting CrashLoopBackOff, restartCount; Warning BackOff
        events (one event, count bumped per restart).  Returns the pod."""
        with self.lock:
            pod = self._target_pod(ref)
            pb = self._current(pod)
            cname = self._container_name(pb, container)
            for _ in range(restarts):
                def fn(p):
                    now = ktime(self._now)
                    cs = next(c for c in p["status"]["containerStatuses"] if c["name"] == cname)
                    run = cs.get("state", {}).get("running") or {}
                    cs["lastState"] = {"terminated": {
                        "containerID": cs.get("containerID") or "containerd://" + self._hex(64),
                        "exitCode": exit_code, "finishedAt": now,
                        "reason": "Completed" if exit_code == 0 else "Error",
                        "startedAt": run.get("startedAt", now)}}
                    cs["restartCount"] = cs.get("restartCount", 0) + 1
                    backoff = min(300, 10 * 2 ** (cs["restartCount"] - 1))
                    cs["state"] = {"waiting": {
                        "message": f"back-off {backoff // 60}m{backoff % 60}s restarting failed container={cname} "
                                   f"pod={p['metadata']['name']}_{p['metadata']['namespace']}({p['metadata']['uid']})"
                        if backoff >= 60 else
                        f"back-off {backoff}s restarting failed container={cname} "
                        f"pod={p['metadata']['name']}_{p['metadata']['namespace']}({p['metadata']['uid']})",
                        "reason": "CrashLoopBackOff"}}
                    cs["ready"] = False
                    cs["started"] = False
                    cs["containerID"] = "containerd://" + self._hex(64)
                    p["status"]["phase"] = "Running"
                    self._set_ready(p, False)
                self._modify(pod, fn)
                self._event_or_repeat(pod, "Warning", "BackOff",
                                      f"Back-off restarting failed container {cname} in pod "
                                      f"{pod.name}_{pod.namespace}({pod.uid})", cname)
            self._refresh_owner(pod)
            return pod

    def oom_kill(self, ref: ObjectRef, container: str | None = None) -> ObjectRef:
        """The container is OOM-killed and restarted: lastState.terminated OOMKilled exitCode 137."""
        with self.lock:
            pod = self._target_pod(ref)
            cname = self._container_name(self._current(pod), container)

            def fn(p):
                now = ktime(self._now)
                cs = next(c for c in p["status"]["containerStatuses"] if c["name"] == cname)
                run = cs.get("state", {}).get("running") or {}
                cs["lastState"] = {"terminated": {
                    "containerID": cs.get("containerID") or "containerd://" + self._hex(64), "exitCode": 137,
                    "finishedAt": now, "reason": "OOMKilled", "startedAt": run.get("startedAt", now)}}
                cs["restartCount"] = cs.get("restartCount", 0) + 1
                cs["containerID"] = "containerd://" + self._hex(64)
                cs["state"] = {"running": {"startedAt": now}}
                cs["ready"] = True
                cs["started"] = True
                p["status"]["phase"] = "Running"
                self._set_ready(p, True)
            self._modify(pod, fn)
            if self.pod_events:
                self._event_or_repeat(pod, "Normal", "Pulled",
                                      f'Container image "{self._current_image(pod, cname)}" already present on machine', cname)
                self._event_or_repeat(pod, "Normal", "Created", f"Created container {cname}", cname)
                self._event_or_repeat(pod, "Normal", "Started", f"Started container {cname}", cname)
            self._refresh_owner(pod)
            return pod

    def _current_image(self, pod: ObjectRef, cname: str) -> str:
        return next(c["image"] for c in self._current(pod)["spec"]["containers"] if c["name"] == cname)

    def image_pull_backoff(self, ref: ObjectRef, container: str | None = None) -> ObjectRef:
        """The image cannot be pulled: waiting ErrImagePull, then ImagePullBackOff (two MODIFIED), pod
        Pending / not Ready; Warning Failed events and a Normal BackOff.  On a workload: its newest pod
        that is not Ready (e.g. after ``rollout(..., complete=False)``), else its first pod."""
        with self.lock:
            pod = self._target_pod(ref, prefer_not_ready=True)
            cname = self._container_name(self._current(pod), container)
            image = self._current_image(pod, cname)
            err = (f'failed to pull and unpack image "{image}": failed to resolve reference "{image}": '
                   f'{image}: not found')
            self._pod_event(pod, "Normal", "Pulling", f'Pulling image "{image}"', cname)

            def errpull(p):
                cs = next(c for c in p["status"]["containerStatuses"] if c["name"] == cname)
                cs["state"] = {"waiting": {"message": f"rpc error: code = NotFound desc = {err}",
                                           "reason": "ErrImagePull"}}
                cs["ready"] = False
                cs["started"] = False
                cs["imageID"] = ""
                cs.pop("containerID", None)
                if p["status"].get("phase") != "Running" or all(
                        "running" not in c.get("state", {}) for c in p["status"]["containerStatuses"]):
                    p["status"]["phase"] = "Pending"
                self._set_ready(p, False)
            self._modify(pod, errpull)
            self._pod_event(pod, "Warning", "Failed", f'Failed to pull image "{image}": rpc error: code = NotFound '
                                                      f"desc = {err}", cname)
            self._pod_event(pod, "Warning", "Failed", "Error: ErrImagePull", cname)

            def backoff(p):
                cs = next(c for c in p["status"]["containerStatuses"] if c["name"] == cname)
                cs["state"] = {"waiting": {"message": f'Back-off pulling image "{image}"', "reason": "ImagePullBackOff"}}
            self._modify(pod, backoff)
            self._pod_event(pod, "Normal", "BackOff", f'Back-off pulling image "{image}"', cname)
            self._pod_event(pod, "Warning", "Failed", "Error: ImagePullBackOff", cname)
            self._refresh_owner(pod)
            return pod

    def evict(self, pod: ObjectRef, message: str = "The node was low on resource: memory.",
              replace: bool = True) -> ObjectRef:
        """kubelet eviction: phase Failed, reason Evicted, containers terminated, DisruptionTarget
        condition, Warning Evicted event; the controller (if any) creates a replacement pod."""
        with self.lock:
            pod = self._target_pod(pod)

            def fn(p):
                now = ktime(self._now)
                st = p["status"]
                st["phase"] = "Failed"
                st["reason"] = "Evicted"
                st["message"] = message
                for cs in st.get("containerStatuses", []):
                    run = cs.get("state", {}).get("running") or {}
                    cs["state"] = {"terminated": {"containerID": cs.get("containerID", ""), "exitCode": 137,
                                                  "finishedAt": now, "reason": "Error",
                                                  "startedAt": run.get("startedAt", now)}}
                    cs["ready"] = False
                    cs["started"] = False
                self._set_ready(p, False)
                st["conditions"].insert(0, {"lastProbeTime": None, "lastTransitionTime": now,
                                            "message": message, "reason": "TerminationByKubelet",
                                            "status": "True", "type": "DisruptionTarget"})
            self._modify(pod, fn)
            self._pod_event(pod, "Warning", "Evicted", message)
            if replace:
                self._replace_pod(pod)
            else:
                self._refresh_owner(pod)
            return pod

    def _replace_pod(self, pod: ObjectRef) -> None:
        p = self._current(pod)
        ouid = _controller_uid(p)
        if not ouid:
            return
        oref = self.by_uid(ouid)
        if oref is None:
            return
        if oref.resource == "replicasets":
            self._scale_rs(oref, self._current(oref)["spec"]["replicas"])
            dref = self.by_uid(_controller_uid(self._current(oref)) or "")
            if dref is not None:
                self._refresh_deployment(dref)
        elif oref.resource in ("statefulsets", "daemonsets"):
            self._reconcile_revisioned(oref)

    def delete(self, obj: ObjectRef) -> None:
        """Delete an object (pods gracefully; owned objects cascade, as the garbage collector does).
        A deleted pod of a live controller is replaced."""
        with self.lock:
            if not obj.exists:
                return
            if obj.resource == "pods":
                self._terminate_pod(obj)
                self._replace_pod(obj)
                return
            for res in ("replicasets", "controllerrevisions"):
                for child in self.owned(obj, res):
                    self.delete(child)
            for p in self.pods_of(obj, live_only=False) if obj.resource != "deployments" else ():
                self._terminate_pod(p)
            self._remove(obj)


class _RvView:
    """A sequence view of history rvs for bisect (no copy)."""

    def __init__(self, history: list[Change]):
        self.h = history

    def __len__(self) -> int:
        return len(self.h)

    def __getitem__(self, i: int) -> int:
        return self.h[i].rv


# --------------------------------------------------------------------------------------------
# benchmark world


def build_bench_world(now: datetime, *, name: str = "bench", seed: int = 0, namespaces: int = 5,
                      deployments: int = 40, statefulsets: int = 4, daemonsets: int = 2, hours: int = 24,
                      step: timedelta = timedelta(minutes=10)) -> ClusterWorld:
    """A busy cluster: workloads created ``hours`` before ``now``, then ``hours`` of activity in
    ``step``s (rollouts, scales, rollbacks, crash loops, OOM kills, image-pull failures, evictions,
    warnings); the world clock ends at ``now``.  Deterministic for a seed."""
    rng = random.Random(seed)
    w = ClusterWorld(name=name, now=_aware(now) - timedelta(hours=hours), seed=seed)
    nss = [f"team-{i}" for i in range(namespaces)]
    deps = [w.apply_deployment(nss[i % namespaces], f"svc-{i}", image=f"registry.example.com/svc-{i}:1.0.0",
                               replicas=rng.randint(1, 4),
                               labels={"app": f"svc-{i}", "app.kubernetes.io/version": "1.0.0"})
            for i in range(deployments)]
    stss = [w.apply_statefulset(nss[i % namespaces], f"db-{i}", image=f"registry.example.com/db:{14 + i}.0",
                                replicas=rng.randint(1, 3)) for i in range(statefulsets)]
    dss = [w.apply_daemonset("kube-system", f"agent-{i}", image=f"registry.example.com/agent-{i}:1.0")
           for i in range(daemonsets)]
    version: dict[str, int] = {}
    end = _aware(now)
    while w.now + step <= end:
        w.advance(step)
        for _ in range(rng.randint(0, 3)):
            r = rng.random()
            d = rng.choice(deps)
            if r < 0.45:
                v = version[d.name] = version.get(d.name, 0) + 1
                w.rollout(d, image=f"registry.example.com/{d.name}:1.{v}.0")
            elif r < 0.55:
                w.scale(d, rng.randint(1, 5))
            elif r < 0.6 and len(w.replicasets_of(d)) > 1:
                w.rollback(d)
            elif r < 0.68:
                w.crash_loop(d, restarts=rng.randint(1, 5), exit_code=rng.choice([1, 2, 137]))
            elif r < 0.72:
                w.oom_kill(d)
            elif r < 0.76:
                w.rollout(d, image=f"registry.example.com/{d.name}:does-not-exist", complete=False)
                w.image_pull_backoff(d)
                w.stall(d)
            elif r < 0.8 and w.pods_of(d):
                w.evict(w.pods_of(d)[0])
            elif r < 0.85 and stss:
                s = rng.choice(stss)
                v = version[s.name] = version.get(s.name, 0) + 1
                w.rollout(s, image=f"registry.example.com/db:{14 + v}.1")
            elif r < 0.87 and dss:
                s = rng.choice(dss)
                v = version[s.name] = version.get(s.name, 0) + 1
                w.rollout(s, image=f"registry.example.com/{s.name}:1.{v}")
            elif r < 0.95:
                e = w.warning(d, reason="FailedScheduling", message="0/3 nodes are available: 3 Insufficient cpu.",
                              api="events.k8s.io", series=rng.random() < 0.5)
                for _ in range(rng.randint(0, 3)):
                    w.repeat(e)
            else:
                w.normal(d, reason="ScalingReplicaSet", message="noise")
        # a stuck rollout gets fixed sooner or later
        for d in deps:
            if rng.random() < 0.05:
                b = d.body
                prog = next((c for c in b["status"].get("conditions", []) if c["type"] == "Progressing"), None)
                if prog and prog["reason"] == "ProgressDeadlineExceeded":
                    w.rollback(d)
    return w
