"""Transforms on objects exported from real clusters (tests/fixtures/kubernetes, see SOURCES.md):
what is an event, what is noise, and the externalIds."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path

import pytest
import yaml

from painchain_pipelines.connectors.base import Event, TimeWindow
from painchain_pipelines.connectors.kubernetes.streams import EVENTS, PODS, WORKLOADS, Ctx, Tuning, new_memory
from painchain_pipelines.connectors.kubernetes.streams.events import normalize
from tests.fakes.kubernetes_world import event_to_events_v1

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "kubernetes"
OBSERVED = dt.datetime(2026, 12, 1, 12, tzinfo=dt.timezone.utc)


def load(name: str) -> dict:
    path = FIXTURES / name
    if path.suffix == ".json":
        return json.loads(path.read_text())
    return json.loads(json.dumps(yaml.safe_load(path.read_text()), default=lambda v: v.isoformat()))


class Harness:
    def __init__(self, learn: bool = False):
        self.events: list[Event] = []
        self.memory = new_memory()
        self.learn = learn

    def ctx(self) -> Ctx:
        ctx = Ctx("minikube", self.memory, self.events.append, Tuning(clock=lambda: OBSERVED), learn=self.learn,
                  since=OBSERVED if self.learn else None)
        return ctx

    def feed(self, stream, resource: str, obj: dict, kind: str = "MODIFIED") -> list[Event]:
        before = len(self.events)
        stream.handle(self.ctx(), resource, kind, copy.deepcopy(obj))
        return self.events[before:]


def t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


# ---------------------------------------------------------------- pods


def test_crashloop_pod_is_one_event_with_container_exit_code_restarts_node():
    pod = load("gitops-engine/pod-crashloop.yaml")
    h = Harness()
    [event] = h.feed(PODS, "pods", pod)
    assert event.data["type"] == "crash_loop"
    assert event.external_id == "k8s:63674389-f613-11e8-a057-fe5f49266390:main:exit:2"
    assert event.timestamp == t("2018-12-02T09:20:25Z")  # lastState.terminated.finishedAt
    assert event.project == "minikube:argocd"
    assert (event.data["container"], event.data["exitCode"], event.data["restartCount"], event.data["node"]) == (
        "main", 1, 3, "minikube")
    assert event.data["reason"] == "Error" and event.data["waiting"] == "CrashLoopBackOff"
    assert "CrashLoopBackOff" in event.title and "argocd/my-pod" in event.title
    assert h.feed(PODS, "pods", pod) == []  # the same state again (a relist, a replay): nothing
    # The next crash: restartCount 4, a new termination.
    later = copy.deepcopy(pod)
    cs = later["status"]["containerStatuses"][0]
    cs["restartCount"] = 4
    cs["lastState"]["terminated"]["finishedAt"] = "2018-12-02T09:21:30Z"
    [again] = h.feed(PODS, "pods", later)
    assert again.external_id.endswith(":main:exit:3") and again.data["restartCount"] == 4


def test_first_listing_learns_without_reporting_history():
    pod = load("gitops-engine/pod-crashloop.yaml")
    h = Harness(learn=True)
    assert h.feed(PODS, "pods", pod, "ADDED") == []
    h.learn = False
    assert h.feed(PODS, "pods", pod) == []
    later = copy.deepcopy(pod)
    later["status"]["containerStatuses"][0]["restartCount"] = 4
    assert [e.data["restartCount"] for e in h.feed(PODS, "pods", later)] == [4]


def test_image_pull_backoff_is_one_event_per_image():
    pod = load("gitops-engine/pod-imagepullbackoff.yaml")
    h = Harness()
    [event] = h.feed(PODS, "pods", pod)
    assert event.data["type"] == "image_pull"
    cs = pod["status"]["containerStatuses"][0]
    assert event.external_id == f"k8s:{pod['metadata']['uid']}:{cs['name']}:pull:{cs['image']}"
    assert event.data["reason"] == cs["state"]["waiting"]["reason"]
    assert event.data["workload"]["kind"] in ("Deployment", "ReplicaSet")
    errimage = copy.deepcopy(pod)  # ErrImagePull <-> ImagePullBackOff flips: still the one event
    errimage["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] = "ErrImagePull"
    assert h.feed(PODS, "pods", errimage) == []


def test_readiness_flips_and_routine_updates_are_not_events():
    pod = load("gitops-engine/pod-running-not-ready.yaml")
    h = Harness()
    assert h.feed(PODS, "pods", pod) == []
    ready = copy.deepcopy(pod)
    for c in ready["status"]["conditions"]:
        c["status"] = "True"
    assert h.feed(PODS, "pods", ready) == []
    assert h.memory["pods"] == {}  # nothing to remember about a healthy pod


def _terminated(pod: dict, code: int, reason: str = "Error", deleting: bool = False, policy: str = "Always") -> dict:
    pod = copy.deepcopy(pod)
    pod["spec"]["restartPolicy"] = policy
    if deleting:
        pod["metadata"]["deletionTimestamp"] = "2018-12-02T09:30:00Z"
    cs = pod["status"]["containerStatuses"][0]
    cs["restartCount"], cs["lastState"] = 0, {}
    cs["state"] = {"terminated": {"exitCode": code, "reason": reason, "finishedAt": "2018-12-02T09:29:30Z"}}
    return pod


@pytest.mark.parametrize("code, reason, deleting, policy, expected", [
    (143, "Error", True, "Always", []),  # a rollout deleting the old pod
    (0, "Completed", True, "Always", []),
    (137, "Error", True, "Always", []),
    (0, "Completed", False, "Never", []),  # a finished job
    (2, "Error", False, "Never", ["container_exit"]),  # a failed one
    (137, "OOMKilled", False, "Always", ["oom_killed"]),
    (1, "Error", False, "Always", []),  # not known yet: a crash loop or a restart will tell
])
def test_exits(code, reason, deleting, policy, expected):
    pod = load("gitops-engine/pod-running-not-ready.yaml")
    h = Harness()
    events = h.feed(PODS, "pods", _terminated(pod, code, reason, deleting, policy))
    assert [e.data["type"] for e in events] == expected
    if expected:
        assert events[0].data["exitCode"] == code and events[0].timestamp == t("2018-12-02T09:29:30Z")


def test_a_crash_then_a_restart_without_back_off_is_one_exit_event():
    pod = load("gitops-engine/pod-running-not-ready.yaml")
    h = Harness()
    assert h.feed(PODS, "pods", _terminated(pod, 1)) == []
    restarted = copy.deepcopy(pod)
    cs = restarted["status"]["containerStatuses"][0]
    cs["restartCount"] = 1
    cs["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": "2018-12-02T09:29:30Z"}}
    cs["state"] = {"running": {"startedAt": "2018-12-02T09:29:31Z"}}
    [event] = h.feed(PODS, "pods", restarted)
    assert event.data["type"] == "container_exit" and event.external_id.endswith(":exit:0")


def test_eviction():
    pod = load("gitops-engine/pod-running-not-ready.yaml")
    evicted = _terminated(pod, 137)
    evicted["status"].update(phase="Failed", reason="Evicted", message="The node was low on resource: memory.")
    h = Harness()
    [event] = h.feed(PODS, "pods", evicted)
    assert event.data["type"] == "evicted" and event.external_id == f"k8s:{pod['metadata']['uid']}:evicted"
    assert "low on resource" in event.title
    assert h.feed(PODS, "pods", evicted, "DELETED") == []


# ---------------------------------------------------------------- deployments


def test_stuck_rollout_from_progressing_to_degraded():
    progressing = load("gitops-engine/deployment-progressing.yaml")
    degraded = load("gitops-engine/deployment-degraded.yaml")
    h = Harness(learn=True)
    assert h.feed(WORKLOADS, "deployments", progressing, "ADDED") == []
    h.learn = False
    [event] = h.feed(WORKLOADS, "deployments", degraded)
    assert event.data["type"] == "rollout_stuck"
    assert event.external_id == "k8s:bb9af0c7-8a44-11e8-9e23-42010aa80010:rev:4:stuck"
    assert event.timestamp == t("2018-07-18T06:29:23Z")
    assert event.data["images"] == {"guestbook-ui": "gcr.io/heptio-images/ks-guestbook-demo:0.3"}
    assert event.data["labels"] == {"app.kubernetes.io/instance": "guestbook-default"}
    assert event.project == "minikube:default"
    assert h.feed(WORKLOADS, "deployments", degraded) == []
    relabelled = copy.deepcopy(degraded)  # a metadata-only update
    relabelled["metadata"]["labels"]["team"] = "web"
    relabelled["metadata"]["resourceVersion"] = "13700"
    assert h.feed(WORKLOADS, "deployments", relabelled) == []


def test_pause_is_a_generation_bump_with_spec_paused():
    progressing = load("gitops-engine/deployment-progressing.yaml")
    suspended = load("gitops-engine/deployment-suspended.yaml")
    suspended["metadata"]["generation"] = 5
    h = Harness(learn=True)
    h.feed(WORKLOADS, "deployments", progressing, "ADDED")
    h.learn = False
    [event] = h.feed(WORKLOADS, "deployments", suspended)
    assert event.data["type"] == "paused" and event.external_id.endswith(":gen:5:paused")
    assert event.timestamp == OBSERVED  # the condition does not date it (not DeploymentPaused)
    resumed = copy.deepcopy(progressing)
    resumed["metadata"]["generation"] = 6
    [event] = h.feed(WORKLOADS, "deployments", resumed)
    assert event.data["type"] == "resumed"


def _replicaset(deployment: dict, revision: int, image: str, created: str, name: str, uid: str) -> dict:
    return {"metadata": {"name": name, "namespace": "default", "uid": uid, "creationTimestamp": created,
                         "annotations": {"deployment.kubernetes.io/revision": str(revision)},
                         "ownerReferences": [{"kind": "Deployment", "name": deployment["metadata"]["name"],
                                              "uid": deployment["metadata"]["uid"], "controller": True}]},
            "spec": {"template": {"spec": {"containers": [{"name": "guestbook-ui", "image": image}]}}}}


def test_rollout_from_a_new_replicaset_dated_by_its_creation():
    d = load("gitops-engine/deployment-progressing.yaml")
    h = Harness(learn=True)
    h.feed(WORKLOADS, "deployments", d, "ADDED")
    old = _replicaset(d, 4, "gcr.io/heptio-images/ks-guestbook-demo:0.3", "2018-07-18T06:19:00Z", "gb-1", "rs-1")
    h.feed(WORKLOADS, "replicasets", old, "ADDED")
    h.learn = False
    new = _replicaset(d, 5, "gcr.io/heptio-images/ks-guestbook-demo:0.4", "2018-07-18T07:00:00Z", "gb-2", "rs-2")
    [event] = h.feed(WORKLOADS, "replicasets", new, "ADDED")
    assert event.data["type"] == "rollout" and event.timestamp == t("2018-07-18T07:00:00Z")
    assert event.data["images"] == {"guestbook-ui": "gcr.io/heptio-images/ks-guestbook-demo:0.4"}
    assert event.data["previousImages"] == {"guestbook-ui": "gcr.io/heptio-images/ks-guestbook-demo:0.3"}
    assert event.external_id == "k8s:bb9af0c7-8a44-11e8-9e23-42010aa80010:rev:5"
    assert "0.3 → gcr.io/heptio-images/ks-guestbook-demo:0.4" in event.title
    assert h.feed(WORKLOADS, "replicasets", new) == []  # status updates of the ReplicaSet
    # The same images applied again make no new ReplicaSet, no generation change: nothing.
    assert h.feed(WORKLOADS, "deployments", d) == []
    # Window sync: the same id and time from the ReplicaSets alone.
    window = list(WORKLOADS.window("minikube", {"deployments": [d], "replicasets": [old, new]},
                                   TimeWindow(t("2018-07-18T06:30:00Z"), t("2018-07-18T08:00:00Z")), Tuning()))
    assert [(e.external_id, e.timestamp) for e in window if e.data["type"] == "rollout"] == [
        (event.external_id, event.timestamp)]


def test_revision_seen_before_its_deployment_waits_for_it():
    d = load("gitops-engine/deployment-progressing.yaml")
    h = Harness()
    rs = _replicaset(d, 1, "gcr.io/x:1", "2018-07-18T04:40:44Z", "gb-1", "rs-1")
    assert h.feed(WORKLOADS, "replicasets", rs, "ADDED") == []
    fresh = copy.deepcopy(d)
    fresh["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "1"
    events = h.feed(WORKLOADS, "deployments", fresh, "ADDED")
    assert [e.data["type"] for e in events] == ["rollout"]
    assert events[0].data["previousImages"] == {} and events[0].data["revision"] == 1


# ---------------------------------------------------------------- events


def test_normal_event_is_ignored_warning_is_one_event_plus_repeats():
    ev = load("k9s/ev.json")
    h = Harness()
    assert h.feed(EVENTS, "events", ev) == []
    warning = dict(ev, type="Warning", reason="BackOff", message="Back-off restarting failed container")
    [first] = h.feed(EVENTS, "events", warning)
    assert first.external_id == "k8s:c443d4b3-cb66-11e9-990f-42010a800218"
    assert first.timestamp == t("2019-08-30T20:43:05Z") and first.data["count"] == 1
    assert first.project == "minikube:default" and first.data["involvedObject"]["kind"] == "Pod"
    assert h.feed(EVENTS, "events", warning) == []
    repeated = dict(warning, count=4, lastTimestamp="2019-08-30T20:45:00Z")
    [repeat] = h.feed(EVENTS, "events", repeated)
    assert repeat.external_id == "k8s:c443d4b3-cb66-11e9-990f-42010a800218:count:4"
    assert repeat.timestamp == t("2019-08-30T20:45:00Z") and repeat.data["repeat"]
    assert h.feed(EVENTS, "events", repeated) == []


def test_series_events_of_events_k8s_io_have_null_first_and_last_timestamps():
    ev = load("k9s/ev.json")
    series = dict(ev, type="Warning", reason="FailedMount", firstTimestamp=None, lastTimestamp=None,
                  eventTime="2019-08-30T20:43:05.123456Z",
                  series={"count": 3, "lastObservedTime": "2019-08-30T20:50:00.000000Z"})
    series.pop("count")
    for shape in (series, event_to_events_v1(series)):
        n = normalize(shape)
        assert n["count"] == 3 and n["first"] == t("2019-08-30T20:43:05.123456Z")
        assert n["last"] == t("2019-08-30T20:50:00Z") and n["involved"]["kind"] == "Pod"
        h = Harness()
        events = h.feed(EVENTS, "events", shape, "ADDED")  # first seen already repeated (a relist too)
        assert [(e.data["repeat"], e.data["count"]) for e in events] == [(False, 1), (True, 3)]
        # A watch resumed after a restart sees it MODIFIED: it existed before the saved
        # resourceVersion, so its first occurrence was reported then; only the repeat is new.
        resumed = Harness()
        events = resumed.feed(EVENTS, "events", shape, "MODIFIED")
        assert [(e.data["repeat"], e.data["count"]) for e in events] == [(True, 3)]


def test_deleted_event_is_forgotten():
    ev = dict(load("k9s/ev.json"), type="Warning")
    h = Harness()
    h.feed(EVENTS, "events", ev)
    assert h.memory["events"]
    h.feed(EVENTS, "events", ev, "DELETED")
    assert h.memory["events"] == {}


def test_memory_is_bounded():
    ev = dict(load("k9s/ev.json"), type="Warning")
    h = Harness()
    h.tuning = Tuning(clock=lambda: OBSERVED, max_events=3)
    for i in range(6):
        e = copy.deepcopy(ev)
        e["metadata"]["uid"] = f"uid-{i}"
        e["lastTimestamp"] = f"2019-08-30T20:4{i}:00Z"
        EVENTS.handle(Ctx("minikube", h.memory, h.events.append, h.tuning), "events", "ADDED", e)
    assert len(h.events) == 6
    assert sorted(h.memory["events"]) == ["uid-3", "uid-4", "uid-5"]  # the newest kept


def test_summarized_repeats_report_powers_of_two():
    ev = dict(load("k9s/ev.json"), type="Warning")
    h = Harness()
    tuning = Tuning(clock=lambda: OBSERVED, summarize_repeats=True)
    counts = []
    for count in range(1, 10):
        e = dict(ev, count=count, lastTimestamp=f"2019-08-30T20:43:{count:02d}Z")
        before = len(h.events)
        EVENTS.handle(Ctx("minikube", h.memory, h.events.append, tuning), "events", "MODIFIED", e)
        counts += [x.data["count"] for x in h.events[before:]]
    assert counts == [1, 2, 4, 8]
