"""Tests of the fake Kubernetes API server itself, with the real ``kubernetes`` client."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
import urllib3
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from tests.fakes.kubernetes_server import FakeKubernetes, decode_continue
from tests.fakes.kubernetes_world import ClusterWorld

UTC = timezone.utc
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
TOKEN = "kube-test-token"
IMG = "registry.example.com/shop/api"


@pytest.fixture
def world() -> ClusterWorld:
    return ClusterWorld(name="prod-eu", now=NOW)


@pytest.fixture
def fake(world):
    with FakeKubernetes(world, token=TOKEN) as f:
        yield f


def apis(fake: FakeKubernetes, token: str = TOKEN, retries: int | None = None):
    cfg = fake.configuration(token)
    if retries is not None:
        cfg.retries = retries
    ac = client.ApiClient(cfg)
    return client.CoreV1Api(ac), client.AppsV1Api(ac), client.EventsV1Api(ac)


def raw(resp) -> dict:
    """Body of a call made with ``_preload_content=False``."""
    return json.loads(resp.data)


def api_deployment(world, replicas=3, version="1.4.0"):
    return world.apply_deployment("shop", "api", image=f"{IMG}:{version}", replicas=replicas,
                                  labels={"app": "api", "app.kubernetes.io/version": version})


# ------------------------------------------------------------------------------------ lists


def test_list_pagination_limit_continue_is_a_consistent_snapshot(world, fake):
    api_deployment(world, replicas=5)
    world.apply_deployment("shop", "web", image=f"{IMG}-web:2.0", replicas=4)
    core, _, _ = apis(fake)
    all_names = sorted(p.name for p in world.objects("pods"))
    assert len(all_names) == 9
    page = core.list_pod_for_all_namespaces(limit=4)
    rv = page.metadata.resource_version
    assert rv == str(world.resource_version)
    assert len(page.items) == 4 and page.metadata.remaining_item_count == 5
    names = [p.metadata.name for p in page.items]
    # a change between pages is not visible in the continued pages (snapshot at the list's RV)
    world.apply_deployment("shop", "zzz", image="x:1", replicas=2)
    tok = page.metadata._continue
    while tok:
        page = core.list_pod_for_all_namespaces(limit=4, _continue=tok)
        assert page.metadata.resource_version == rv
        names += [p.metadata.name for p in page.items]
        tok = page.metadata._continue
    assert names == all_names
    assert decode_continue(core.list_pod_for_all_namespaces(limit=1).metadata._continue)[0] == world.resource_version
    # namespaced + selectors
    pods = core.list_namespaced_pod("shop", label_selector="app=api").items
    assert len(pods) == 5 and all(p.metadata.labels["app"] == "api" for p in pods)
    assert core.list_namespaced_pod("other").items == []
    assert len(core.list_pod_for_all_namespaces(label_selector="app in (api,web)").items) == 9
    one = pods[0].metadata.name
    assert [p.metadata.name for p in core.list_pod_for_all_namespaces(
        field_selector=f"metadata.namespace=shop,metadata.name={one}").items] == [one]
    with pytest.raises(ApiException) as ei:
        core.list_pod_for_all_namespaces(field_selector="spec.bogus=1")
    assert ei.value.status == 400


def test_objects_have_real_field_sets_and_owner_chain(world, fake):
    d = api_deployment(world)
    core, apps, _ = apis(fake)
    dep = apps.read_namespaced_deployment("api", "shop")
    assert dep.metadata.generation == 1 and dep.metadata.uid == d.uid
    assert dep.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    assert dep.metadata.managed_fields is None
    assert dep.spec.template.spec.containers[0].image == f"{IMG}:1.4.0"
    assert dep.status.observed_generation == 1 and dep.status.ready_replicas == 3
    assert {c.type: c.reason for c in dep.status.conditions} == {
        "Available": "MinimumReplicasAvailable", "Progressing": "NewReplicaSetAvailable"}
    rs = apps.list_namespaced_replica_set("shop").items
    assert len(rs) == 1
    assert rs[0].metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    assert rs[0].metadata.owner_references[0].uid == d.uid
    h = rs[0].metadata.labels["pod-template-hash"]
    pods = core.list_namespaced_pod("shop").items
    assert len(pods) == 3
    for p in pods:
        assert p.metadata.owner_references[0].kind == "ReplicaSet"
        assert p.metadata.owner_references[0].uid == rs[0].metadata.uid
        assert p.metadata.labels["pod-template-hash"] == h
        assert p.status.phase == "Running" and p.status.container_statuses[0].ready
        assert p.status.container_statuses[0].image_id.startswith(f"{IMG}@sha256:")
    # list items carry no kind/apiVersion; single GETs and watch objects do
    body = raw(core.list_namespaced_pod("shop", _preload_content=False))
    assert body["kind"] == "PodList" and "kind" not in body["items"][0]
    assert raw(core.read_namespaced_pod(pods[0].metadata.name, "shop", _preload_content=False))["kind"] == "Pod"
    with pytest.raises(ApiException) as ei:
        core.read_namespaced_pod("nope", "shop")
    assert ei.value.status == 404 and json.loads(ei.value.body)["reason"] == "NotFound"


# ------------------------------------------------------------------------------------ watches


def test_watch_resumes_from_rv_and_replays_exactly_the_later_changes(world, fake):
    d = api_deployment(world)
    _, apps, _ = apis(fake)
    rv = apps.list_replica_set_for_all_namespaces().metadata.resource_version
    world.advance(timedelta(minutes=3))
    world.rollout(d, image=f"{IMG}:1.5.0")
    expected = [(c.type, c.obj["metadata"]["name"], c.obj["metadata"]["resourceVersion"])
                for c in world.changes_since(int(rv)) if c.resource == "replicasets"]
    assert expected
    got = [(e["type"], e["object"].metadata.name, e["object"].metadata.resource_version)
           for e in watch.Watch().stream(apps.list_replica_set_for_all_namespaces, resource_version=rv,
                                         timeout_seconds=1)]
    assert got == expected
    # without a resourceVersion: synthetic ADDED for the current objects
    first = [e for e in watch.Watch().stream(apps.list_namespaced_replica_set, "shop", timeout_seconds=1)]
    assert [e["type"] for e in first] == ["ADDED", "ADDED"]


def test_rollout_new_replicaset_revision_and_deployment_generation(world, fake):
    d = api_deployment(world)
    _, apps, _ = apis(fake)
    rv = apps.list_deployment_for_all_namespaces().metadata.resource_version
    w = watch.Watch()
    events: list = []

    def consume():
        for e in w.stream(apps.list_namespaced_deployment, "shop", resource_version=rv, timeout_seconds=3):
            events.append(e)
            st = e["object"].status
            if st and st.conditions and any(c.reason == "NewReplicaSetAvailable" for c in st.conditions) \
                    and st.observed_generation == 2:
                w.stop()

    t = threading.Thread(target=consume)
    t.start()
    time.sleep(0.2)
    world.advance(timedelta(minutes=1))
    world.rollout(d, image=f"{IMG}:1.5.0", digest="sha256:" + "ab" * 32)
    t.join(5)
    assert not t.is_alive()
    assert all(e["type"] == "MODIFIED" for e in events)
    gens = [e["object"].metadata.generation for e in events]
    assert gens[0] == 2 and gens[-1] == 2
    # the spec change is seen first (generation 2, status still for generation 1), then the controller
    assert events[0]["object"].status.observed_generation == 1
    reasons = [next(c.reason for c in e["object"].status.conditions if c.type == "Progressing") for e in events]
    assert "ReplicaSetUpdated" in reasons and reasons[-1] == "NewReplicaSetAvailable"
    last = events[-1]["object"]
    assert last.metadata.annotations["deployment.kubernetes.io/revision"] == "2"
    assert last.spec.template.spec.containers[0].image == f"{IMG}:1.5.0"
    rss = {r.metadata.annotations["deployment.kubernetes.io/revision"]: r
           for r in apps.list_namespaced_replica_set("shop").items}
    assert set(rss) == {"1", "2"}
    assert rss["1"].spec.replicas == 0 and rss["2"].spec.replicas == 3
    assert rss["2"].metadata.creation_timestamp == NOW + timedelta(minutes=1)
    pods = client.CoreV1Api(apps.api_client).list_namespaced_pod("shop").items
    assert len(pods) == 3 and all(p.metadata.owner_references[0].name == rss["2"].metadata.name for p in pods)
    assert all(p.status.container_statuses[0].image_id.endswith("ab" * 32) for p in pods)
    # the old pods were terminated with 143 / 0 (not failures) before being deleted
    old_terms = [c.obj for c in world.history if c.resource == "pods" and c.type == "MODIFIED"
                 and c.obj["metadata"]["labels"]["pod-template-hash"] == rss["1"].metadata.labels["pod-template-hash"]
                 and "terminated" in c.obj["status"]["containerStatuses"][0]["state"]]
    assert old_terms and {p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"]
                          for p in old_terms} <= {0, 143}


def test_rollback_bumps_the_old_replicaset_revision(world, fake):
    d = api_deployment(world)
    world.rollout(d, image=f"{IMG}:1.5.0")
    world.rollout(d, image=f"{IMG}:1.6.0")
    first = next(r for r in world.replicasets_of(d) if r.revision == 1)
    world.rollback(d, to_revision=1)
    _, apps, _ = apis(fake)
    dep = apps.read_namespaced_deployment("api", "shop")
    assert dep.metadata.annotations["deployment.kubernetes.io/revision"] == "4"
    assert dep.metadata.generation == 4
    assert dep.spec.template.spec.containers[0].image == f"{IMG}:1.4.0"
    rs = apps.read_namespaced_replica_set(first.name, "shop")
    assert rs.metadata.annotations["deployment.kubernetes.io/revision"] == "4"
    assert rs.metadata.annotations["deployment.kubernetes.io/revision-history"] == "1"
    assert rs.spec.replicas == 3
    revs = sorted(int(r.metadata.annotations["deployment.kubernetes.io/revision"])
                  for r in apps.list_namespaced_replica_set("shop").items)
    assert revs == [2, 3, 4]


def test_bookmarks(world, fake):
    api_deployment(world, replicas=1)
    fake.bookmark_interval_s = 0.2
    core, _, _ = apis(fake)
    rv = core.list_pod_for_all_namespaces().metadata.resource_version
    w = watch.Watch()
    types = []
    for e in w.stream(core.list_pod_for_all_namespaces, resource_version=rv, allow_watch_bookmarks=True,
                      timeout_seconds=1):
        types.append(e["type"])
        if e["type"] == "BOOKMARK":
            assert e["raw_object"]["metadata"]["resourceVersion"] == rv
    assert types.count("BOOKMARK") >= 3 and set(types) == {"BOOKMARK"}
    assert w.resource_version == rv
    # no bookmarks unless asked
    assert [e for e in watch.Watch().stream(core.list_pod_for_all_namespaces, resource_version=rv,
                                            timeout_seconds=1)] == []


def test_410_on_continue_and_as_error_inside_a_watch(world, fake):
    d = api_deployment(world, replicas=4)
    core, apps, _ = apis(fake)
    page = core.list_pod_for_all_namespaces(limit=2)
    old_rv = page.metadata.resource_version
    world.scale(d, 5)
    fake.expire_history()
    with pytest.raises(ApiException) as ei:
        core.list_pod_for_all_namespaces(limit=2, _continue=page.metadata._continue)
    assert ei.value.status == 410
    st = json.loads(ei.value.body)
    assert st["reason"] == "Expired" and st["code"] == 410 and st["metadata"]["continue"]
    # the inconsistent continuation offered in the Status works
    assert core.list_pod_for_all_namespaces(limit=2, _continue=st["metadata"]["continue"]).items
    # watch: HTTP 200, then an ERROR event carrying a 410 Status, then the stream ends
    resp = core.list_pod_for_all_namespaces(watch=True, resource_version=old_rv, timeout_seconds=5,
                                            _preload_content=False)
    assert resp.status == 200
    events = [json.loads(x) for x in resp.data.decode().splitlines() if x]
    assert len(events) == 1 and events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 410 and events[0]["object"]["reason"] == "Expired"
    # the client raises ApiException(410) (immediately when timeout_seconds is set)
    with pytest.raises(ApiException) as ei:
        list(watch.Watch().stream(apps.list_deployment_for_all_namespaces, resource_version=old_rv,
                                  timeout_seconds=5))
    assert ei.value.status == 410 and "Expired" in ei.value.reason
    # without timeout_seconds it silently retries once from the same RV, then raises
    n = fake.request_count(r"/deployments$", watch=True)
    with pytest.raises(ApiException) as ei:
        list(watch.Watch().stream(apps.list_deployment_for_all_namespaces, resource_version=old_rv))
    assert ei.value.status == 410
    assert fake.request_count(r"/deployments$", watch=True) == n + 2
    # the current RV is still fine; exact list at an expired RV gives HTTP 410
    now_rv = str(world.resource_version)
    assert list(watch.Watch().stream(apps.list_deployment_for_all_namespaces, resource_version=now_rv,
                                     timeout_seconds=1)) == []
    with pytest.raises(ApiException) as ei:
        core.list_pod_for_all_namespaces(resource_version=old_rv, resource_version_match="Exact")
    assert ei.value.status == 410


def test_history_window(world, fake):
    core, _, _ = apis(fake)
    rv0 = str(world.resource_version)
    world.apply_deployment("shop", "api", image="x:1", replicas=2)
    fake.history_window = 5
    resp = core.list_pod_for_all_namespaces(watch=True, resource_version=rv0, timeout_seconds=1,
                                            _preload_content=False)
    assert json.loads(resp.data.decode().splitlines()[0])["type"] == "ERROR"
    fake.history_window = 1000
    evs = list(watch.Watch().stream(core.list_pod_for_all_namespaces, resource_version=rv0, timeout_seconds=1))
    assert evs and evs[0]["type"] == "ADDED"


def test_drop_watches_ends_the_stream(world, fake):
    api_deployment(world, replicas=1)
    core, _, _ = apis(fake)
    rv = core.list_pod_for_all_namespaces().metadata.resource_version
    out: dict = {}

    def consume():
        try:
            # no timeout_seconds: the client would reconnect after a clean end; after an abrupt
            # close urllib3 raises ProtocolError
            for e in watch.Watch().stream(core.list_pod_for_all_namespaces, resource_version=rv,
                                          timeout_seconds=30):
                out.setdefault("events", []).append(e)
            out["ended"] = True
        except Exception as e:  # noqa: BLE001
            out["error"] = e

    t = threading.Thread(target=consume)
    t.start()
    deadline = time.time() + 5
    while fake.open_watches == 0 and time.time() < deadline:
        time.sleep(0.02)
    assert fake.open_watches == 1
    t0 = time.monotonic()
    assert fake.drop_watches() == 1
    t.join(5)
    assert not t.is_alive() and time.monotonic() - t0 < 2
    assert "ended" in out or isinstance(out.get("error"), (urllib3.exceptions.ProtocolError, OSError))
    assert "events" not in out


def test_timeout_seconds_closes_cleanly(world, fake):
    core, _, _ = apis(fake)
    t0 = time.monotonic()
    assert list(watch.Watch().stream(core.list_pod_for_all_namespaces,
                                     resource_version=str(world.resource_version), timeout_seconds=1)) == []
    assert 0.9 <= time.monotonic() - t0 < 2.5
    rec = [r for r in fake.requests if r.watch][-1]
    assert rec.status == 200 and rec.query["timeoutSeconds"] == "1" and 0.9 <= rec.duration < 2


def test_concurrent_watches_from_many_threads(world, fake):
    d = api_deployment(world, replicas=2)
    _, apps, _ = apis(fake)
    rv = apps.list_deployment_for_all_namespaces().metadata.resource_version
    results: dict[int, list] = {}

    def consume(i):
        w = watch.Watch()
        got = []
        for e in w.stream(apps.list_deployment_for_all_namespaces, resource_version=rv, timeout_seconds=4):
            got.append(e["object"].metadata.resource_version)
            if e["object"].metadata.generation == 3 and e["object"].status.observed_generation == 3:
                w.stop()
        results[i] = got

    ts = [threading.Thread(target=consume, args=(i,)) for i in range(12)]
    for t in ts:
        t.start()
    time.sleep(0.3)
    world.rollout(d, image=f"{IMG}:2")
    world.scale(d, 4)
    for t in ts:
        t.join(6)
    expected = [c.obj["metadata"]["resourceVersion"] for c in world.changes_since(int(rv))
                if c.resource == "deployments"]
    assert len(results) == 12
    assert all(r == expected for r in results.values())


# ------------------------------------------------------------------------------------ failures


def test_crash_loop_fields_and_backoff_events(world, fake):
    d = api_deployment(world)
    pod = world.crash_loop(d, restarts=3, exit_code=1)
    core, apps, _ = apis(fake)
    p = core.read_namespaced_pod(pod.name, "shop")
    cs = p.status.container_statuses[0]
    assert cs.restart_count == 3 and cs.ready is False
    assert cs.state.waiting.reason == "CrashLoopBackOff"
    assert "restarting failed container=api" in cs.state.waiting.message
    t = cs.last_state.terminated
    assert (t.reason, t.exit_code, t.finished_at) == ("Error", 1, NOW)
    assert next(c for c in p.status.conditions if c.type == "Ready").status == "False"
    evs = core.list_namespaced_event("shop", field_selector=f"involvedObject.uid={pod.uid},reason=BackOff").items
    assert len(evs) == 1
    e = evs[0]
    assert (e.type, e.count, e.source.component) == ("Warning", 3, "kubelet")
    assert e.involved_object.field_path == "spec.containers{api}"
    assert e.first_timestamp == NOW and e.last_timestamp == NOW
    dep = apps.read_namespaced_deployment("api", "shop")
    assert dep.status.ready_replicas == 2 and dep.status.unavailable_replicas == 1
    # the watch saw restartCount climb 1, 2, 3
    counts = [c.obj["status"]["containerStatuses"][0]["restartCount"] for c in world.history
              if c.resource == "pods" and c.key[1] == pod.name and c.type == "MODIFIED"]
    assert counts[-3:] == [1, 2, 3]


def test_oom_kill(world, fake):
    d = world.apply_deployment("shop", "worker", containers={"worker": "w:1", "sidecar": "s:1"}, replicas=1)
    pod = world.oom_kill(d, container="worker")
    core, _, _ = apis(fake)
    p = core.read_namespaced_pod(pod.name, "shop")
    cs = {c.name: c for c in p.status.container_statuses}
    t = cs["worker"].last_state.terminated
    assert (t.reason, t.exit_code, t.finished_at) == ("OOMKilled", 137, NOW)
    assert cs["worker"].restart_count == 1 and cs["worker"].state.running is not None
    assert cs["sidecar"].restart_count == 0 and cs["sidecar"].last_state.terminated is None


def test_image_pull_backoff_on_a_stuck_rollout_and_stall(world, fake):
    d = api_deployment(world)
    world.rollout(d, image=f"{IMG}:9.9.9-missing", complete=False)
    pod = world.image_pull_backoff(d)
    world.advance(timedelta(minutes=10))
    world.stall(d)
    core, apps, _ = apis(fake)
    p = core.read_namespaced_pod(pod.name, "shop")
    assert p.status.phase == "Pending"
    assert p.status.container_statuses[0].state.waiting.reason == "ImagePullBackOff"
    assert p.spec.containers[0].image.endswith("9.9.9-missing")
    waits = [c.obj["status"]["containerStatuses"][0]["state"].get("waiting", {}).get("reason")
             for c in world.history if c.resource == "pods" and c.key[1] == pod.name]
    assert "ErrImagePull" in waits and waits[-1] == "ImagePullBackOff"
    warn = core.list_namespaced_event("shop", field_selector=f"involvedObject.name={pod.name},type=Warning").items
    assert {e.message for e in warn} >= {"Error: ErrImagePull", "Error: ImagePullBackOff"}
    dep = apps.read_namespaced_deployment("api", "shop")
    prog = next(c for c in dep.status.conditions if c.type == "Progressing")
    assert (prog.status, prog.reason) == ("False", "ProgressDeadlineExceeded")
    assert dep.status.updated_replicas == 1 and dep.status.available_replicas == 3
    world.complete_rollout(d)  # fixed (e.g. the image was pushed): rollout completes
    dep = apps.read_namespaced_deployment("api", "shop")
    assert next(c for c in dep.status.conditions if c.type == "Progressing").reason == "NewReplicaSetAvailable"


def test_eviction(world, fake):
    d = api_deployment(world, replicas=2)
    victim = world.pods_of(d)[0]
    world.evict(victim, message="The node was low on resource: memory.")
    core, _, _ = apis(fake)
    p = core.read_namespaced_pod(victim.name, "shop")
    assert (p.status.phase, p.status.reason) == ("Failed", "Evicted")
    assert p.status.message == "The node was low on resource: memory."
    assert p.status.conditions[0].type == "DisruptionTarget"
    evs = core.list_namespaced_event("shop", field_selector=f"involvedObject.name={victim.name},reason=Evicted").items
    assert len(evs) == 1 and evs[0].type == "Warning"
    running = [x for x in core.list_namespaced_pod("shop").items if x.status.phase == "Running"]
    assert len(running) == 2  # the ReplicaSet replaced it


def test_warning_series_on_events_k8s_io(world, fake):
    d = api_deployment(world, replicas=1)
    pod = world.pods_of(d)[0]
    e = world.warning(pod, reason="FailedScheduling", message="0/3 nodes are available", series=True,
                      api="events.k8s.io", component="default-scheduler")
    world.advance(timedelta(seconds=30))
    world.repeat(e, times=2)
    _, _, ev1 = apis(fake)
    got = ev1.list_namespaced_event("shop", field_selector="reason=FailedScheduling").items
    assert len(got) == 1
    g = got[0]
    assert (g.type, g.note, g.regarding.uid, g.reporting_controller) == (
        "Warning", "0/3 nodes are available", pod.uid, "default-scheduler")
    assert g.series.count == 4 and g.series.last_observed_time == NOW + timedelta(seconds=30)
    assert g.event_time == NOW
    assert g.deprecated_first_timestamp is None and g.deprecated_last_timestamp is None
    assert not g.deprecated_count
    # the same event through core/v1: no count, null first/lastTimestamp, series kept
    core = client.CoreV1Api(ev1.api_client)
    c = core.list_namespaced_event("shop", field_selector="reason=FailedScheduling").items[0]
    assert c.count is None and c.first_timestamp is None and c.last_timestamp is None
    assert c.series.count == 4 and c.message == "0/3 nodes are available"
    # core-style repeat: count + lastTimestamp
    old = world.warning(d, reason="FailedCreate", message="quota exceeded")
    world.advance(timedelta(seconds=10))
    world.repeat(old, 4)
    c2 = core.list_namespaced_event("shop", field_selector="reason=FailedCreate").items[0]
    assert c2.count == 5 and c2.first_timestamp == NOW + timedelta(seconds=30)
    assert c2.last_timestamp == NOW + timedelta(seconds=40) and c2.event_time is None
    # quirk: old-style events have eventTime null on events.k8s.io/v1, which the typed client rejects
    body = raw(ev1.list_namespaced_event("shop", _preload_content=False))
    assert any(i["eventTime"] is None for i in body["items"])
    with pytest.raises(ValueError, match="eventTime"):  # pydantic ValidationError
        ev1.list_namespaced_event("shop")


# ------------------------------------------------------------------------------------ workloads


def test_statefulset_and_daemonset_controller_revisions(world, fake):
    s = world.apply_statefulset("db", "pg", image="postgres:16.4", replicas=3)
    ds = world.apply_daemonset("kube-system", "agent", image="agent:1")
    world.rollout(s, image="postgres:16.5")
    world.rollout(ds, image="agent:2")
    core, apps, _ = apis(fake)
    sts = apps.read_namespaced_stateful_set("pg", "db")
    crs = {c.revision: c for c in apps.list_namespaced_controller_revision("db").items}
    assert set(crs) == {1, 2}
    assert sts.status.update_revision == crs[2].metadata.name == sts.status.current_revision
    assert sts.metadata.generation == 2 and sts.status.updated_replicas == 3
    assert crs[2].metadata.owner_references[0].uid == s.uid
    pods = core.list_namespaced_pod("db").items
    assert sorted(p.metadata.name for p in pods) == ["pg-0", "pg-1", "pg-2"]
    assert {p.metadata.labels["controller-revision-hash"] for p in pods} == {crs[2].metadata.name}
    assert all(p.metadata.owner_references[0].kind == "StatefulSet" for p in pods)
    d = apps.read_namespaced_daemon_set("agent", "kube-system")
    assert d.status.desired_number_scheduled == 3 and d.status.updated_number_scheduled == 3
    dcrs = apps.list_namespaced_controller_revision("kube-system").items
    assert sorted(c.revision for c in dcrs) == [1, 2]
    world.rollback(s, to_revision=1)
    crs = {c.revision: c.metadata.name for c in apps.list_namespaced_controller_revision("db").items}
    assert set(crs) == {2, 3}
    assert apps.read_namespaced_stateful_set("pg", "db").status.update_revision == crs[3]


def test_pause_resume_and_scale(world, fake):
    d = api_deployment(world)
    world.pause(d)
    world.rollout(d, image=f"{IMG}:1.5.0")
    _, apps, _ = apis(fake)
    dep = apps.read_namespaced_deployment("api", "shop")
    assert dep.spec.paused and dep.metadata.generation == 3
    assert next(c for c in dep.status.conditions if c.type == "Progressing").reason == "DeploymentPaused"
    assert len(apps.list_namespaced_replica_set("shop").items) == 1
    world.resume(d)
    dep = apps.read_namespaced_deployment("api", "shop")
    assert not dep.spec.paused and dep.metadata.annotations["deployment.kubernetes.io/revision"] == "2"
    world.scale(d, 5)
    dep = apps.read_namespaced_deployment("api", "shop")
    assert dep.spec.replicas == 5 and dep.status.available_replicas == 5
    assert dep.metadata.annotations["deployment.kubernetes.io/revision"] == "2"


def test_delete_emits_deleted_watch_events(world, fake):
    d = api_deployment(world, replicas=2)
    core, _, _ = apis(fake)
    rv = core.list_pod_for_all_namespaces().metadata.resource_version
    world.delete(d)
    evs = list(watch.Watch().stream(core.list_pod_for_all_namespaces, resource_version=rv, timeout_seconds=1))
    assert [e["type"] for e in evs].count("DELETED") == 2
    assert core.list_pod_for_all_namespaces().items == []


# ------------------------------------------------------------------------------------ faults


def test_token_refused_and_injected_faults(world, fake):
    api_deployment(world, replicas=1)
    core, _, _ = apis(fake, token="wrong")
    with pytest.raises(ApiException) as ei:
        core.list_pod_for_all_namespaces()
    assert ei.value.status == 401 and json.loads(ei.value.body)["reason"] == "Unauthorized"
    core, _, _ = apis(fake, retries=0)
    fake.fail(r"/pods", status=403)
    with pytest.raises(ApiException) as ei:
        core.list_pod_for_all_namespaces()
    assert ei.value.status == 403 and "forbidden" in json.loads(ei.value.body)["message"]
    fake.fail(r"/pods", status=500, times=2)
    for _ in range(2):
        with pytest.raises(ApiException) as ei:
            core.list_pod_for_all_namespaces()
        assert ei.value.status == 500
    assert core.list_pod_for_all_namespaces().items
    fake.fail(r"watch=true", status=0)
    with pytest.raises(urllib3.exceptions.HTTPError):
        list(watch.Watch().stream(core.list_pod_for_all_namespaces, timeout_seconds=1))
    assert [r.status for r in fake.requests[-5:]] == [403, 500, 500, 200, 0]


def test_down(world, fake):
    core, _, _ = apis(fake, retries=0)
    assert core.list_pod_for_all_namespaces().items == []
    fake.down = True
    with pytest.raises(urllib3.exceptions.HTTPError):
        core.list_pod_for_all_namespaces(_request_timeout=2)
    fake.down = False
    assert core.list_pod_for_all_namespaces().items == []


def test_discovery_and_version(world, fake):
    core, _, _ = apis(fake)
    v = client.VersionApi(core.api_client).get_code()
    assert v.git_version.startswith("v1.")
    assert "v1" in client.CoreApi(core.api_client).get_api_versions().versions
    groups = {g.name for g in client.ApisApi(core.api_client).get_api_versions().groups}
    assert {"apps", "events.k8s.io"} <= groups
    res = {r.name for r in client.AppsV1Api(core.api_client).get_api_resources().resources}
    assert {"deployments", "statefulsets", "daemonsets", "replicasets", "controllerrevisions"} <= res


def test_tls(world):
    api_deployment(world, replicas=1)
    with FakeKubernetes(world, token=TOKEN, tls=True) as fake:
        assert fake.url.startswith("https://") and fake.ca_path
        core = client.CoreV1Api(client.ApiClient(fake.configuration()))
        assert len(core.list_pod_for_all_namespaces().items) == 1


def test_watch_selectors_single_object_initial_events_and_namespaces(world, fake):
    d = api_deployment(world, replicas=2)
    world.apply_deployment("web", "front", image="f:1", replicas=1)
    core, apps, ev1 = apis(fake)
    rv = str(world.resource_version)
    world.rollout(d, image=f"{IMG}:2")
    world.scale(world.get("deployments", "web", "front"), 2)
    # namespaced watch + label selector
    got = {e["object"].metadata.namespace for e in watch.Watch().stream(
        core.list_namespaced_pod, "web", resource_version=rv, label_selector="app=front", timeout_seconds=1)}
    assert got == {"web"}
    # one object: the client's field selector metadata.name
    evs = list(watch.Watch().stream(apps.list_namespaced_deployment, "shop", field_selector="metadata.name=api",
                                    resource_version=rv, timeout_seconds=1))
    assert evs and {e["object"].metadata.name for e in evs} == {"api"}
    # events of one object, as the connector would filter them
    pod = world.pods_of(d)[0]
    world.warning(pod, reason="Unhealthy", message="Readiness probe failed: HTTP probe failed with statuscode: 503")
    evs = [e["object"] for e in watch.Watch().stream(
        core.list_event_for_all_namespaces, resource_version=rv, timeout_seconds=1,
        field_selector=f"involvedObject.uid={pod.uid},type=Warning")]
    assert [e.reason for e in evs] == ["Unhealthy"]
    # sendInitialEvents: ADDED for the current state, then a BOOKMARK marking the end
    resp = apps.list_deployment_for_all_namespaces(watch=True, send_initial_events=True, allow_watch_bookmarks=True,
                                                   resource_version_match="NotOlderThan", timeout_seconds=1,
                                                   _preload_content=False)
    lines = [json.loads(x) for x in resp.data.decode().splitlines() if x]
    assert [x["type"] for x in lines[:3]] == ["ADDED", "ADDED", "BOOKMARK"]
    assert lines[2]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert {n.metadata.name for n in core.list_namespace().items} == {"shop", "web"}
    first = core.list_namespace(limit=1)
    assert [n.metadata.name for n in first.items] == ["shop"]
    assert [n.metadata.name for n in core.list_namespace(limit=1, _continue=first.metadata._continue).items] == ["web"]
    # typed events.k8s.io watch chokes on old-style events (eventTime null): use deserialize=False
    raw_evs = list(watch.Watch().stream(ev1.list_event_for_all_namespaces, resource_version=rv, timeout_seconds=1,
                                        deserialize=False))
    assert raw_evs and all("regarding" in e["object"] and "note" in e["object"] for e in raw_evs)


def test_rate_limited_429(world, fake):
    core, _, _ = apis(fake, retries=0)
    fake.fail(r"/api/v1/pods", status=429)
    with pytest.raises(ApiException) as ei:
        core.list_pod_for_all_namespaces()
    assert ei.value.status == 429 and ei.value.headers["Retry-After"] == "1"
    assert "Server" not in ei.value.headers


def test_events_expire_after_the_event_ttl(world, fake):
    d = api_deployment(world, replicas=1)
    core, _, _ = apis(fake)
    n_noise = len(core.list_event_for_all_namespaces().items)
    assert n_noise > 0
    world.advance(timedelta(minutes=40))
    e = world.warning(d, reason="FailedCreate", message="quota exceeded")
    rv = str(world.resource_version)
    world.advance(timedelta(minutes=25))  # the noise is 65 min old: gone; the warning is 25 min old
    assert [x.reason for x in core.list_event_for_all_namespaces().items] == ["FailedCreate"]
    world.repeat(e)  # each write restarts the TTL
    world.advance(timedelta(minutes=50))
    assert len(core.list_event_for_all_namespaces().items) == 1
    world.advance(timedelta(minutes=11))
    assert core.list_event_for_all_namespaces().items == []
    types = [x["type"] for x in watch.Watch().stream(core.list_event_for_all_namespaces, resource_version=rv,
                                                    timeout_seconds=1)]
    assert types == ["DELETED"] * n_noise + ["MODIFIED", "DELETED"]


def test_bench_world_is_deterministic_and_consistent():
    from tests.fakes.kubernetes_world import build_bench_world

    a = build_bench_world(NOW, seed=7, hours=3, deployments=12)
    b = build_bench_world(NOW, seed=7, hours=3, deployments=12)
    assert a.now == NOW and a.resource_version == b.resource_version
    assert [(c.type, c.key) for c in a.history] == [(c.type, c.key) for c in b.history]
    rvs = [c.rv for c in a.history]
    assert rvs == sorted(set(rvs))
    for d in a.objects("deployments"):
        body = d.body
        assert body["status"]["observedGeneration"] <= body["metadata"]["generation"]
        revs = [r.revision for r in a.replicasets_of(d)]
        assert len(revs) == len(set(revs)) and str(max(revs)) == body["metadata"]["annotations"][
            "deployment.kubernetes.io/revision"]
    for p in a.objects("pods"):
        owner = p.body["metadata"]["ownerReferences"][0]["uid"]
        assert a.by_uid(owner) is not None
