"""Kubernetes end to end, in process: the real backend on a socket, the product's wiring
(`build_connector_defs(KubernetesConnector())`, a short watch segment), the official client
against fake clusters on real sockets whose worlds change while segments watch and between them.
Every change is stored exactly once, with its time and `<cluster>:<namespace>`; noise never is."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Callable

import dagster as dg
import pytest

from painchain_pipelines.connectors.backend_client import BackendClient
from painchain_pipelines.connectors.base import utcnow
from painchain_pipelines.connectors.kubernetes import KubernetesConnector
from painchain_pipelines.connectors.registration import register
from painchain_pipelines.orchestration import build_connector_defs
from painchain_pipelines.orchestration.partitions import partition_key
from painchain_pipelines.orchestration.resources import PainChainBackend
from painchain_pipelines.orchestration.settings import OrchestrationSettings
from painchain_pipelines.orchestration.tags import MODE_TAG, WATCH_TAG
from tests.fakes.kubernetes_server import FakeKubernetes
from tests.fakes.kubernetes_world import ClusterWorld

TOKEN_EU = "e2e-k8s-token-prod-eu-never-logged-7f6e5d4c"
TOKEN_US = "e2e-k8s-token-prod-us-never-logged-3b2a1f0e"
SERVICE_TOKEN = "pc_service_token_k8s_e2e_1a2b3c4d"
SEGMENT = dt.timedelta(seconds=12)
PARTITIONS = "kubernetes_integrations"
H, D = dt.timedelta(hours=1), dt.timedelta(days=1)
WATCHES_PER_CLUSTER = 7  # deployments, replicasets, statefulsets, daemonsets, controllerrevisions, pods, events

DEFS = build_connector_defs(KubernetesConnector(),
                            dataclasses.replace(OrchestrationSettings.from_env(), watch_segment=SEGMENT))
ASSET = DEFS.get_assets_def("kubernetes_events")
SENSORS = {s.name: s for s in DEFS.sensors}


def real_now() -> dt.datetime:
    return utcnow().replace(microsecond=0)


def at(moment: dt.datetime) -> str:
    """A moment as the events API shows it."""
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class E2E:
    def __init__(self, backend, instance: dg.DagsterInstance, fakes: dict[str, FakeKubernetes]):
        self.backend, self.instance, self.fakes = backend, instance, fakes
        self.api = backend.client(Authorization=f"Bearer {SERVICE_TOKEN}")
        self.resources = {"painchain": PainChainBackend(api_url=backend.api_url, api_token=SERVICE_TOKEN)}
        self.repository = dg.Definitions.merge(DEFS, dg.Definitions(resources=self.resources)).get_repository_def()
        self.run_ids: list[str] = []

    def world(self, name: str) -> ClusterWorld:
        return self.fakes[name].world

    def now(self, name: str = "prod-eu") -> dt.datetime:
        """Move the cluster's clock to the wall clock (changes are stamped with it) and return it."""
        world = self.world(name)
        with world.lock:
            return world.set_now(max(world.now, real_now()))

    def create_integration(self, clusters: list[str], name: str = "Production clusters") -> dict:
        entries = [{"name": c, "server": self.fakes[c].url, "token": self.fakes[c].token} for c in clusters]
        response = self.api.post("/integrations", json={"type": "kubernetes", "config": {
            "name": name, "tags": ["prod"], "clusters": entries, "namespaces": []}})
        assert response.status_code == 201, response.text
        # The integrations sensor adds the integration's partition, as the daemon would.
        with dg.build_sensor_context(instance_ref=self.instance.get_ref(), resources=self.resources,
                                     repository_def=self.repository) as context:
            data = SENSORS["kubernetes_integrations_sensor"].evaluate_tick(context)
        for request in data.dynamic_partitions_requests or []:
            self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        assert response.json()["id"] in self.instance.get_dynamic_partitions(PARTITIONS)
        return response.json()

    def next_segment(self) -> dg.RunRequest:
        with dg.build_sensor_context(instance=self.instance) as context:
            data = SENSORS["kubernetes_watch_sensor"].evaluate_tick(context)
        [request] = data.run_requests
        assert request.tags[MODE_TAG] == "watch" and request.tags[WATCH_TAG] == "true"
        return request

    def segment(self, during: Callable[[], None] | None = None) -> dg.ExecuteInProcessResult:
        """One watch run as the watch sensor asks for it; `during` runs meanwhile (in a thread)
        and must be done before the segment ends."""
        request = self.next_segment()
        errors: list[BaseException] = []
        done = threading.Event()

        def script():
            try:
                if during is not None:
                    during()
            except BaseException as exc:  # noqa: BLE001 - raised below, in the test
                errors.append(exc)
            finally:
                done.set()

        thread = threading.Thread(target=script, name="cluster-changes", daemon=True)
        thread.start()
        started = time.monotonic()
        result = dg.materialize([ASSET], instance=self.instance, resources=self.resources,
                                tags=dict(request.tags), raise_on_error=False)
        thread.join(30)
        if errors:
            raise errors[0]
        assert done.is_set(), "the changes were still being made when the segment ended"
        assert result.success
        assert time.monotonic() - started >= SEGMENT.total_seconds()
        self.run_ids.append(result.run_id)
        return result

    def watching(self, cluster: str = "prod-eu", watches: int = WATCHES_PER_CLUSTER) -> None:
        wait_until(lambda: self.fakes[cluster].open_watches >= watches, f"the watches of {cluster}")

    def events(self, integration_id: str) -> dict[str, dict]:
        page = self.api.get("/events", params={"integrationId": integration_id, "limit": 500}).json()
        assert page["nextCursor"] is None
        ids = [e["externalId"] for e in page["events"]]
        assert len(ids) == len(set(ids))
        return {e["externalId"]: e for e in page["events"]}

    def arrived(self, integration_id: str, *external_ids: str, timeout: float = 6.0) -> dict[str, dict]:
        wait_until(lambda: set(external_ids) <= set(self.events(integration_id)),
                   f"{external_ids} in the events API", timeout)
        return self.events(integration_id)

    def sync_record(self, integration_id: str) -> dict:
        return self.api.get(f"/integrations/{integration_id}/sync").json()

    def card(self, integration_id: str) -> dict:
        [card] = [c for c in self.api.get("/integrations/status").json() if c["id"] == integration_id]
        return card

    def run_text(self, run_id: str) -> str:
        """Everything a run shows in the Dagster UI: its log and every materialization's metadata."""
        return "\n".join(str(record) for record in self.instance.all_logs(run_id))


@pytest.fixture
def e2e(make_backend, tmp_path):
    backend = make_backend("sqlite", api_token=SERVICE_TOKEN)
    register(BackendClient(backend.api_url, SERVICE_TOKEN), ["kubernetes"])
    # Mid-morning, so that the test's "an hour later" stays on the same day whatever the wall clock says.
    start = (real_now() - 2 * D).replace(hour=10, minute=0)
    eu = ClusterWorld(name="prod-eu", now=start)
    us = ClusterWorld(name="prod-us", now=start)
    home = tmp_path / "dagster"
    home.mkdir()
    with FakeKubernetes(eu, token=TOKEN_EU) as fake_eu, FakeKubernetes(us, token=TOKEN_US) as fake_us, \
            dg.instance_for_test(temp_dir=str(home)) as instance:
        yield E2E(backend, instance, {"prod-eu": fake_eu, "prod-us": fake_us})


def failing(card: dict) -> bool:
    """As the integrations page decides it (static/js/integrations.js)."""
    error, success = card["lastErrorAt"], card["lastSuccessAt"]
    return bool(error) and (not success or dt.datetime.fromisoformat(error) > dt.datetime.fromisoformat(success))


def materialization(result: dg.ExecuteInProcessResult, integration_id: str) -> dg.AssetMaterialization:
    [m] = [m for m in result.asset_materializations_for_node("kubernetes_events")
           if m.partition.endswith(integration_id)]
    return m


def test_every_change_once_across_segments_410s_dropped_watches_and_a_backfill(e2e):
    eu = e2e.world("prod-eu")
    fake = e2e.fakes["prod-eu"]
    # Two days ago: api is created with 1.3.0 and rolled out to 1.4.0 an hour later.
    past = eu.now
    api = eu.apply_deployment("shop", "api", image="reg/shop/api:1.3.0", replicas=3, labels={"app": "api"})
    web = eu.apply_deployment("shop", "web", image="reg/shop/web:2.0.0", replicas=2)
    eu.set_now(past + H)
    eu.rollout(api, image="reg/shop/api:1.4.0")
    e2e.now()  # the present: the cluster has been quiet since
    integration = e2e.create_integration(["prod-eu"])
    iid = integration["id"]
    uid = api.uid
    moments: dict[str, dt.datetime] = {}

    # Segment 1: the first listing learns the cluster (nothing older is reported); then a rollout
    # and a rollback while it watches.
    def first():
        e2e.watching()
        assert e2e.events(iid) == {}
        moments["rollout"] = e2e.now()
        eu.rollout(api, image="reg/shop/api:1.5.0")
        e2e.arrived(iid, f"k8s:{uid}:rev:3")
        time.sleep(1.1)  # the rollback happens a second later
        moments["rollback"] = e2e.now()
        eu.rollback(api, to_revision=2)
        e2e.arrived(iid, f"k8s:{uid}:rev:4")

    first_run = e2e.segment(first)
    stored = e2e.events(iid)
    rollout = stored[f"k8s:{uid}:rev:3"]
    assert rollout["data"]["type"] == "rollout"
    assert rollout["timestamp"] == at(moments["rollout"])
    new_rs = max(eu.replicasets_of(api), key=lambda r: r.body["metadata"]["creationTimestamp"])
    assert new_rs.body["metadata"]["creationTimestamp"] == moments["rollout"].strftime("%Y-%m-%dT%H:%M:%SZ")
    assert rollout["project"] == "prod-eu:shop"
    assert rollout["data"]["previousImages"] == {"api": "reg/shop/api:1.4.0"}
    assert rollout["data"]["images"] == {"api": "reg/shop/api:1.5.0"}
    assert "reg/shop/api:1.4.0 → reg/shop/api:1.5.0" in rollout["title"]
    rollback = stored[f"k8s:{uid}:rev:4"]
    assert rollback["data"]["type"] == "rollback" and rollback["data"]["rollbackTo"] == 2
    assert rollback["data"]["images"] == {"api": "reg/shop/api:1.4.0"}
    assert rollback["timestamp"] == at(moments["rollback"])
    # Nothing from before the integration existed; no exits of the pods the rollouts replaced.
    assert not [k for k in stored if k in (f"k8s:{uid}:rev:1", f"k8s:{uid}:rev:2")]
    assert set(Counter(e["data"]["type"] for e in stored.values())) <= {"rollout", "rollback", "rollout_finished"}
    m1 = materialization(first_run, iid).metadata
    assert m1["mode"].value == "watch" and m1["events_created"].value == len(stored)
    assert m1["watches_started"].value >= WATCHES_PER_CLUSTER
    assert 0 <= m1["lag_p50_seconds"].value <= m1["lag_p95_seconds"].value < 5.0
    state = e2e.sync_record(iid)["state"]
    assert len(state["clusters"]["prod-eu"]["rv"]) == WATCHES_PER_CLUSTER

    # Between segments (nothing watches): api's container crash-loops.
    moments["crash"] = e2e.now()
    crashing = eu.crash_loop(api, restarts=3, exit_code=1)

    # Segment 2 resumes from the saved resourceVersions. Mid-segment, the connections drop
    # while an OOM kill happens; then the history is compacted (410 Gone) while a pod is evicted.
    def second():
        e2e.watching()
        crashes = [f"k8s:{crashing.uid}:api:exit:{n}" for n in (0, 1, 2)]
        e2e.arrived(iid, *crashes)
        moments["oom"] = e2e.now()
        with eu.lock:
            assert fake.drop_watches() >= WATCHES_PER_CLUSTER
            oom_pod = eu.oom_kill(web)
        moments["oom_pod"] = oom_pod.uid
        e2e.arrived(iid, f"k8s:{oom_pod.uid}:web:exit:0")
        e2e.watching()
        moments["evict"] = e2e.now()
        victim = [p for p in eu.pods_of(api) if p.uid != crashing.uid][0]
        with eu.lock:
            fake.drop_watches()
            eu.evict(victim, message="The node was low on resource: memory.")
            fake.expire_history()  # every watch resumes from before the eviction: 410, relist
        moments["victim"] = victim.uid
        e2e.arrived(iid, f"k8s:{victim.uid}:evicted", timeout=10)

    second_run = e2e.segment(second)

    # Segment 3: a Warning burst: the event, then repeats (one write per repeat, and one of three).
    def third():
        e2e.watching()
        moments["warning"] = e2e.now()
        burst = eu.warning(web, reason="FailedCreate", message="exceeded quota: compute-resources")
        moments["burst"] = burst.uid
        e2e.arrived(iid, f"k8s:{burst.uid}")
        time.sleep(1.1)
        moments["repeat"] = e2e.now()
        eu.repeat(burst, times=1)
        eu.repeat(burst, times=3)
        eu.normal(web, reason="ScalingReplicaSet", message="Scaled up replica set web-x to 2")
        e2e.arrived(iid, f"k8s:{burst.uid}:count:2", f"k8s:{burst.uid}:count:5")

    third_run = e2e.segment(third)
    stored = e2e.events(iid)
    crashes = sorted((e for e in stored.values() if e["data"]["type"] == "crash_loop"),
                     key=lambda e: e["data"]["restartCount"])
    assert [e["data"]["restartCount"] for e in crashes] == [1, 2, 3]
    assert all(e["timestamp"] == at(moments["crash"]) and e["project"] == "prod-eu:shop" for e in crashes)
    assert all(e["data"]["pod"] == crashing.name and e["data"]["exitCode"] == 1 for e in crashes)
    [oom] = [e for e in stored.values() if e["data"]["type"] == "oom_killed"]
    assert oom["externalId"] == f"k8s:{moments['oom_pod']}:web:exit:0"
    assert oom["timestamp"] == at(moments["oom"]) and oom["data"]["exitCode"] == 137
    [evicted] = [e for e in stored.values() if e["data"]["type"] == "evicted"]
    assert evicted["externalId"] == f"k8s:{moments['victim']}:evicted"
    assert evicted["timestamp"] == at(moments["evict"]) and evicted["project"] == "prod-eu:shop"
    burst = sorted((e for e in stored.values() if e["data"].get("eventUid") == moments["burst"]),
                   key=lambda e: e["data"]["count"])
    assert [(e["data"]["repeat"], e["data"]["count"]) for e in burst] == [(False, 1), (True, 2), (True, 5)]
    assert burst[0]["timestamp"] == at(moments["warning"])
    assert burst[1]["timestamp"] == burst[2]["timestamp"] == at(moments["repeat"])
    # Noise: no Normal event, no exit of a replaced or evicted pod, nothing twice (events() checks).
    # (the cluster wrote Normal events for every pod: Scheduled, Pulled, Created, Started, Killing…)
    assert {e["data"]["reason"] for e in stored.values() if e["data"]["type"] == "warning"} == {
        "FailedCreate", "BackOff", "Evicted"}
    assert not [e for e in stored.values() if e["data"]["type"] == "container_exit"]
    kinds = Counter(e["data"]["type"] for e in stored.values())
    assert set(kinds) <= {"rollout", "rollback", "rollout_finished", "crash_loop", "oom_killed", "evicted", "warning"}
    assert kinds["rollout"] == kinds["rollback"] == kinds["oom_killed"] == kinds["evicted"] == 1
    m2 = materialization(second_run, iid).metadata
    assert m2["events_duplicate"].value == 0  # the relist reported only what changed in the gap
    m3 = materialization(third_run, iid).metadata
    assert m2["events_created"].value + m3["events_created"].value == len(stored) - m1["events_created"].value
    assert m3["events_duplicate"].value == 0
    assert m2["gone_410"].value >= 1 and m2["relists"].value >= 1 and m2["reconnects"].value >= 1
    assert m2["watches_started"].value >= 3 * WATCHES_PER_CLUSTER
    assert 0 <= m2["lag_p50_seconds"].value <= m2["lag_p95_seconds"].value
    assert m2["lag_p95_seconds"].value < 15

    # Segment 4: nothing happens; it resumes without replaying anything.
    idle = e2e.segment(lambda: e2e.watching())
    m4 = materialization(idle, iid).metadata
    assert m4["events_posted"].value == 0 and m4["events_fetched"].value == 0
    assert e2e.events(iid) == stored

    # A backfill of two days ago (window mode: one partition, no watch tag) rebuilds that day's
    # rollouts from the ReplicaSets, with the ids a watch would have given them.
    past_day = past.date()
    backfill = dg.materialize([ASSET], partition_key=str(partition_key(past_day, iid)), instance=e2e.instance,
                              resources=e2e.resources)
    assert backfill.success
    e2e.run_ids.append(backfill.run_id)
    after = e2e.events(iid)
    created, rolled = after[f"k8s:{uid}:rev:1"], after[f"k8s:{uid}:rev:2"]
    assert created["timestamp"] == at(past) and created["data"]["previousImages"] == {}
    assert rolled["timestamp"] == at(past + H) and rolled["data"]["previousImages"] == {"api": "reg/shop/api:1.3.0"}
    assert rolled["data"]["images"] == {"api": "reg/shop/api:1.4.0"}
    web_created = [e for e in after.values() if e["data"]["type"] == "rollout" and e["data"]["name"] == "web"
                   and e["timestamp"] == at(past)]
    assert len(web_created) == 1
    new = {k: e for k, e in after.items() if k not in stored}
    assert {k for k, e in new.items() if e["data"]["type"] in ("rollout", "rollback")} == {
        created["externalId"], rolled["externalId"], web_created[0]["externalId"]}
    assert {e["data"]["type"] for e in new.values()} <= {"rollout", "rollout_finished"}  # web finished then
    assert all(e["timestamp"][:10] == str(past_day) for e in new.values())
    # Today's backfill finds the watched rollouts again, under the same ids: nothing new.
    today = dg.materialize([ASSET], partition_key=str(partition_key(utcnow().date(), iid)),
                           instance=e2e.instance, resources=e2e.resources)
    assert today.success
    e2e.run_ids.append(today.run_id)
    final = e2e.events(iid)
    assert {k for k, e in final.items() if e["data"]["type"] in ("rollout", "rollback")} == {
        k for k, e in after.items() if e["data"]["type"] in ("rollout", "rollback")}

    record = e2e.sync_record(iid)
    assert not failing(e2e.card(iid))  # the dropped watches were back: the card is green again
    for run_id in e2e.run_ids:
        assert TOKEN_EU not in e2e.run_text(run_id)
    assert TOKEN_EU not in str(record) and TOKEN_EU not in str(final)


def test_a_cluster_that_goes_down_is_reported_and_the_other_keeps_streaming(e2e):
    eu, us = e2e.world("prod-eu"), e2e.world("prod-us")
    api = eu.apply_deployment("shop", "api", image="reg/shop/api:1.4.0", replicas=2)
    pay = us.apply_deployment("payments", "ledger", image="reg/pay/ledger:3.0.0", replicas=2)
    e2e.now("prod-eu"), e2e.now("prod-us")
    integration = e2e.create_integration(["prod-eu", "prod-us"], name="Two regions")
    iid = integration["id"]

    def both_up():
        e2e.watching("prod-eu")
        e2e.watching("prod-us")

    first = e2e.segment(both_up)
    assert materialization(first, iid).metadata["sources"].value == ["prod-eu", "prod-us"]

    # prod-us goes down; prod-eu rolls out while it is.
    e2e.fakes["prod-us"].down = True
    moments = {}

    def one_down():
        e2e.watching("prod-eu")
        moments["rollout"] = e2e.now("prod-eu")
        eu.rollout(api, image="reg/shop/api:1.5.0")
        e2e.arrived(iid, f"k8s:{api.uid}:rev:2")
        wait_until(lambda: "prod-us" in str(e2e.sync_record(iid)["lastError"]), "prod-us on the card")

    down = e2e.segment(one_down)
    stored = e2e.events(iid)
    assert stored[f"k8s:{api.uid}:rev:2"]["timestamp"] == at(moments["rollout"])
    assert stored[f"k8s:{api.uid}:rev:2"]["project"] == "prod-eu:shop"
    # The card lists prod-us as a source that cannot be read (prod-eu's checkpoints keep the
    # integration itself successful) and its last error names it.
    card = e2e.card(iid)
    assert "prod-us" in card["lastError"] and "cannot reach the API server" in card["lastError"]
    assert "prod-eu" not in card["lastError"]
    assert "prod-us" in card["failedSources"] and "prod-eu" not in card["failedSources"]
    checks = {c.check_name: c for c in down.get_asset_check_evaluations()}
    assert not checks["sources_accessible"].passed
    assert set(checks["sources_accessible"].metadata["failed_sources"].value) == {"prod-us"}
    assert checks["integrations_synced"].passed
    assert not down.asset_materializations_for_node("kubernetes_events")  # the segment did not cover it all

    # While it is down its world moves on; back up, the next segment catches up, once.
    us.set_now(max(us.now, real_now()))
    crashing = us.crash_loop(pay, restarts=2)
    e2e.fakes["prod-us"].down = False

    def back_up():
        both_up()
        e2e.arrived(iid, *(f"k8s:{crashing.uid}:ledger:exit:{n}" for n in (0, 1)), timeout=10)

    up = e2e.segment(back_up)
    checks = {c.check_name: c for c in up.get_asset_check_evaluations()}
    assert checks["sources_accessible"].passed
    assert materialization(up, iid).metadata["failed_sources"].value == {}
    assert e2e.card(iid)["failedSources"] == {}
    final = e2e.events(iid)
    assert {e["project"] for e in final.values()} == {"prod-eu:shop", "prod-us:payments"}
    for run_id in e2e.run_ids:
        text = e2e.run_text(run_id)
        assert TOKEN_EU not in text and TOKEN_US not in text
    record = e2e.sync_record(iid)
    assert TOKEN_EU not in str(record) and TOKEN_US not in str(record)
