"""A watch segment over the fake cluster (real client, real socket), driven by a MemorySession."""

from __future__ import annotations

import time
from collections import Counter

from tests.kubernetes.conftest import (
    M,
    MemorySession,
    caught_up,
    cluster_entry,
    k8s_integration,
    wait_until,
    watching,
)


def _start(fake, connector, world, **extra):
    integration = k8s_integration([cluster_entry(fake)], **extra)
    session = MemorySession([integration])
    return integration, session


def test_rollout_scale_pause_resume_stall_rollback(world, fake, connector):
    d = world.apply_deployment("shop", "api", image="reg/shop/api:1.4.0", replicas=3,
                               labels={"app": "api", "team": "shop"})
    world.warning(d, reason="OldWarning", message="before the watch started")
    world.advance(10 * M)
    integration, session = _start(fake, connector, world)
    with watching(connector, session):
        wait_until(lambda: caught_up(session, world), what="first listing")
        assert session.ids() == []  # history before the start is not reported
        world.advance(M)
        rollout_at = world.now
        world.rollout(d, image="reg/shop/api:1.5.0")
        world.advance(M)
        world.scale(d, 5)
        world.advance(M)
        world.pause(d)
        world.advance(M)
        world.resume(d)
        world.advance(M)
        world.stall(d)
        world.advance(M)
        rollback_at = world.now
        world.rollback(d, to_revision=1)
        wait_until(lambda: caught_up(session, world), what="changes")
        events = list(session.events["k8s-1"])
    kinds = Counter(e.data["type"] for e in events)
    assert session.duplicates() == []
    rollouts = [e for e in events if e.data["type"] == "rollout"]
    assert len(rollouts) == 1
    r = rollouts[0]
    assert r.timestamp == rollout_at
    assert r.data["images"] == {"api": "reg/shop/api:1.5.0"}
    assert r.data["previousImages"] == {"api": "reg/shop/api:1.4.0"}
    assert r.data["revision"] == 2 and r.data["labels"]["team"] == "shop"
    assert r.project == "prod-eu:shop"
    assert r.external_id == f"k8s:{d.uid}:rev:2"
    rollbacks = [e for e in events if e.data["type"] == "rollback"]
    assert len(rollbacks) == 1 and rollbacks[0].data["rollbackTo"] == 1
    assert rollbacks[0].data["images"] == {"api": "reg/shop/api:1.4.0"}
    assert rollbacks[0].timestamp == rollback_at
    assert kinds["scaled"] == 1 and kinds["paused"] == 1 and kinds["resumed"] == 1
    assert kinds["rollout_stuck"] == 1
    # The old pods each rollout deleted exited 143 or 0: not failures.
    assert kinds["container_exit"] == kinds["crash_loop"] == kinds["oom_killed"] == 0
    assert set(kinds) <= {"rollout", "rollback", "scaled", "paused", "resumed", "rollout_stuck", "rollout_finished"}


def test_pod_failures_and_warning_burst(world, fake, connector):
    d = world.apply_deployment("shop", "api", image="reg/shop/api:1.4.0", replicas=3)
    w2 = world.apply_deployment("shop", "web", image="reg/shop/web:2.0.0", replicas=2)
    integration, session = _start(fake, connector, world)
    with watching(connector, session):
        wait_until(lambda: caught_up(session, world), what="first listing")
        world.advance(M)
        crash_at = world.now
        crashing = world.crash_loop(d, restarts=3, exit_code=1)
        world.advance(M)
        oom_pod = world.oom_kill(w2)
        world.advance(M)
        world.rollout(w2, image="reg/shop/web:2.1.0", complete=False)
        pulling = world.image_pull_backoff(w2)
        world.advance(M)
        victim = world.pods_of(d)[-1]
        world.evict(victim, message="The node was low on resource: memory.")
        world.advance(M)
        burst = world.warning(d, reason="FailedCreate", message="quota exceeded", api="core")
        world.advance(M)
        world.repeat(burst, times=1)
        world.advance(M)
        world.repeat(burst, times=3)
        world.warning(d, reason="FailedScheduling", message="0/3 nodes", api="events.k8s.io",
                               series=True)
        world.normal(d, reason="ScalingReplicaSet", message="routine")
        wait_until(lambda: caught_up(session, world), what="changes")
        events = list(session.events["k8s-1"])
    assert session.duplicates() == []
    kinds = Counter(e.data["type"] for e in events)
    crashes = session.of_type("crash_loop")
    assert [e.data["restartCount"] for e in crashes] == [1, 2, 3]
    assert all(e.data["pod"] == crashing.name and e.data["exitCode"] == 1 for e in crashes)
    assert crashes[0].timestamp == crash_at
    assert crashes[0].data["workload"] == {"kind": "Deployment", "name": "api", "replicaSet": crashing.body[
        "metadata"]["ownerReferences"][0]["name"]}
    assert crashes[0].data["node"] == crashing.body["spec"]["nodeName"]
    [oom] = session.of_type("oom_killed")
    assert oom.data["pod"] == oom_pod.name and oom.data["exitCode"] == 137 and oom.data["reason"] == "OOMKilled"
    [pull] = session.of_type("image_pull")
    assert pull.data["pod"] == pulling.name and pull.data["image"] == "reg/shop/web:2.1.0"
    [evicted] = session.of_type("evicted")
    assert evicted.data["pod"] == victim.name and "low on resource" in evicted.data["message"]
    assert kinds["container_exit"] == 0  # the evicted pod's 137 and the rollout's 143/0 are not failures
    warnings = session.of_type("warning")
    fc = [e for e in warnings if e.data["reason"] == "FailedCreate"]
    assert [(e.data["repeat"], e.data["count"]) for e in fc] == [(False, 1), (True, 2), (True, 5)]
    assert fc[0].external_id == f"k8s:{burst.uid}" and fc[2].external_id == f"k8s:{burst.uid}:count:5"
    fs = [e for e in warnings if e.data["reason"] == "FailedScheduling"]
    assert [e.data["count"] for e in fs] == [1, 2] and fs[0].timestamp == world.now  # series: null timestamps
    assert not [e for e in warnings if e.data["reason"] in ("ScalingReplicaSet", "Pulled", "Killing")]
    assert {e.data["reason"] for e in warnings} >= {"BackOff", "Evicted", "Failed"}
    assert all(e.project == "prod-eu:shop" for e in events)


def test_statefulset_and_daemonset_rollouts(world, fake, connector):
    s = world.apply_statefulset("data", "db", image="reg/db:15.1", replicas=2)
    ds = world.apply_daemonset("kube-system", "agent", image="reg/agent:1.0")
    integration, session = _start(fake, connector, world)
    with watching(connector, session):
        wait_until(lambda: caught_up(session, world), what="first listing")
        world.advance(M)
        sts_at = world.now
        world.rollout(s, image="reg/db:15.2")
        world.advance(M)
        world.rollout(ds, image="reg/agent:1.1")
        world.advance(M)
        world.scale(s, 3)
        world.advance(M)
        world.rollback(s, to_revision=1)
        wait_until(lambda: caught_up(session, world), what="changes")
    assert session.duplicates() == []
    rollouts = session.of_type("rollout")
    by_name = {e.data["name"]: e for e in rollouts}
    assert by_name["db"].data["images"] == {"db": "reg/db:15.2"} and by_name["db"].timestamp == sts_at
    assert by_name["db"].data["previousImages"] == {"db": "reg/db:15.1"}
    assert by_name["agent"].data["kind"] == "DaemonSet" and by_name["agent"].data["revision"] == 2
    [rollback] = session.of_type("rollback")
    assert rollback.data["name"] == "db" and rollback.data["images"] == {"db": "reg/db:15.1"}
    assert rollback.data["rollbackTo"] == 1 and rollback.data["revision"] == 3
    [scaled] = session.of_type("scaled")
    assert (scaled.data["previousReplicas"], scaled.data["replicas"]) == (2, 3)


def test_resume_from_checkpoint_replays_nothing(world, fake, connector):
    d = world.apply_deployment("shop", "api", image="reg/shop/api:1.4.0", replicas=2)
    integration, session = _start(fake, connector, world)
    with watching(connector, session):
        wait_until(lambda: caught_up(session, world), what="first listing")
        world.advance(M)
        world.rollout(d, image="reg/shop/api:1.5.0")
        world.crash_loop(d, restarts=2)
        burst = world.warning(d, reason="FailedCreate", message="quota")
        wait_until(lambda: caught_up(session, world), what="changes")
    first = session.ids()
    assert first and session.duplicates() == []
    # The saved state holds resourceVersions and what "old → new" needs, not the Warning counts.
    [cluster_state] = session.states[integration.id]["clusters"].values()
    assert "events" not in cluster_state and cluster_state["rv"] and cluster_state["workloads"]
    # Stopped: while nobody watches, more happens; the next segment resumes from the state.
    world.advance(M)
    world.repeat(burst, times=1)
    world.scale(d, 4)
    again = MemorySession([integration], states=session.states)
    requests_before = len(fake.requests)
    with watching(connector, again):
        wait_until(lambda: caught_up(again, world), what="resume")
        world.advance(M)
        world.rollout(d, image="reg/shop/api:1.6.0")
        wait_until(lambda: caught_up(again, world), what="changes")
    ids = again.ids()
    assert not set(ids) & set(first)  # nothing replayed
    assert Counter(e.data["type"] for e in again.events["k8s-1"]) == {
        "warning": 1, "scaled": 1, "rollout": 1, "rollout_finished": 1}
    lists = [r for r in fake.requests[requests_before:] if not r.watch and "/namespaces/" not in r.path]
    assert lists == []  # resumed by watching from the saved resourceVersions, no listing


def test_410_gone_relists_without_loss_or_duplicates(world, fake, connector):
    d = world.apply_deployment("shop", "api", image="reg/shop/api:1.4.0", replicas=2)
    integration, session = _start(fake, connector, world)
    with watching(connector, session):
        wait_until(lambda: caught_up(session, world), what="first listing")
        burst = world.warning(d, reason="FailedCreate", message="quota")
        wait_until(lambda: caught_up(session, world), what="warning")
        fake.drop_watches()  # the watches reconnect only after the history expired: 410
        world.advance(M)
        world.rollout(d, image="reg/shop/api:1.5.0")
        world.repeat(burst, times=2)
        world.crash_loop(d, restarts=1)
        fake.expire_history()
        world.advance(M)
        world.scale(d, 3)
        wait_until(lambda: caught_up(session, world), what="relist")
    assert session.duplicates() == []
    kinds = Counter(e.data["type"] for e in session.events["k8s-1"])
    assert kinds["rollout"] == 1 and kinds["scaled"] == 1 and kinds["crash_loop"] == 1
    fc = [e for e in session.of_type("warning") if e.data["reason"] == "FailedCreate"]
    assert [e.data["count"] for e in fc] == [1, 3]
    stats = session.stats(integration)
    assert stats.counters.get("gone_410", 0) >= 1 and stats.counters.get("relists", 0) >= 1


def test_410_inside_the_watch_stream(world, fake, connector):
    """An ERROR event with code 410 in the stream (not an HTTP 410) also relists."""
    d = world.apply_deployment("shop", "api", image="reg/shop/api:1.4.0", replicas=1)
    integration, session = _start(fake, connector, world)
    with watching(connector, session):
        wait_until(lambda: caught_up(session, world), what="first listing")
        fake.expire_history()
        fake.drop_watches()
        world.advance(M)
        world.rollout(d, image="reg/shop/api:1.5.0")
        wait_until(lambda: caught_up(session, world), what="relist")
    assert [e.data["type"] for e in session.of_type("rollout")] == ["rollout"]
    assert session.duplicates() == []


def test_dropped_watches_reconnect_and_lose_nothing(world, fake, connector):
    d = world.apply_deployment("shop", "api", image="reg/shop/api:1.4.0", replicas=2)
    integration, session = _start(fake, connector, world)
    with watching(connector, session):
        wait_until(lambda: caught_up(session, world), what="first listing")
        for i in range(3):
            wait_until(lambda: fake.open_watches == 7, what="all watches open")
            assert fake.drop_watches() == 7
            world.advance(M)
            world.rollout(d, image=f"reg/shop/api:1.{5 + i}.0")
        wait_until(lambda: caught_up(session, world), what="reconnects")
    assert [e.data["images"]["api"] for e in session.of_type("rollout")] == [
        "reg/shop/api:1.5.0", "reg/shop/api:1.6.0", "reg/shop/api:1.7.0"]
    assert session.duplicates() == []
    assert session.stats(integration).counters.get("reconnects", 0) >= 3
    assert session.stats(integration).counters.get("gone_410", 0) == 0


def test_two_clusters_one_down_the_other_unaffected(world, fake):
    from painchain_pipelines.connectors.kubernetes import KubernetesConnector
    from tests.fakes.kubernetes_server import FakeKubernetes
    from tests.fakes.kubernetes_world import ClusterWorld
    from tests.kubernetes.conftest import NOW, TOKEN, fast_tuning

    other = ClusterWorld(name="prod-us", now=NOW)
    dead = other.apply_deployment("shop", "api", image="reg/shop/api:1.4.0")
    d = world.apply_deployment("shop", "api", image="reg/shop/api:1.4.0")
    connector = KubernetesConnector(tuning=fast_tuning(world))
    with FakeKubernetes(other, token=TOKEN, bookmark_interval_s=0.1) as down:
        down.down = True
        integration = k8s_integration([cluster_entry(down), cluster_entry(fake)])
        session = MemorySession([integration])
        with watching(connector, session):
            wait_until(lambda: caught_up(session, world), what="the healthy cluster")
            world.advance(M)
            world.rollout(d, image="reg/shop/api:1.5.0")
            wait_until(lambda: caught_up(session, world), what="the healthy cluster's rollout")
            wait_until(lambda: session.problems.get(("k8s-1", "prod-us")), what="the problem report")
            assert "prod-us" in session.problems[("k8s-1", "prod-us")]
            assert [e.project for e in session.of_type("rollout")] == ["prod-eu:shop"]
            # The cluster comes back: it starts (first listing), the problem is cleared.
            down.down = False
            wait_until(lambda: caught_up(session, other), timeout=15, what="the recovered cluster")
            assert session.problems[("k8s-1", "prod-us")] is None
            other.advance(M)
            other.rollout(dead, image="reg/shop/api:2.0.0")
            wait_until(lambda: caught_up(session, other), what="the recovered cluster's rollout")
        assert sorted(e.project for e in session.of_type("rollout")) == ["prod-eu:shop", "prod-us:shop"]
        assert session.stats(integration).counters.get("reconnects", 0) >= 1


def test_refused_token_is_reported_and_retried(world, fake, connector):
    d = world.apply_deployment("shop", "api", image="reg/shop/api:1.4.0")
    integration = k8s_integration([cluster_entry(fake, token="wrong-token-0000")])
    session = MemorySession([integration])
    with watching(connector, session):
        wait_until(lambda: session.problems.get(("k8s-1", "prod-eu")), what="the problem report")
        problem = session.problems[("k8s-1", "prod-eu")]
        assert "token refused" in problem and "wrong-token" not in problem
        # The token is fixed (an edit): the integration restarts and watches.
        session.set_integrations([k8s_integration([cluster_entry(fake)])])
        wait_until(lambda: caught_up(session, world), what="the edited integration")
        world.advance(M)
        world.rollout(d, image="reg/shop/api:1.5.0")
        wait_until(lambda: len(session.of_type("rollout")) == 1, what="the rollout")
    assert session.problems[("k8s-1", "prod-eu")] is None


def test_403_on_one_resource_is_reported_the_others_are_watched(world, fake, connector):
    d = world.apply_deployment("shop", "api", image="reg/shop/api:1.4.0")
    fake.fail(r"/pods", 403, times=1000)
    integration, session = _start(fake, connector, world)
    with watching(connector, session):
        wait_until(lambda: session.problems.get(("k8s-1", "prod-eu")), what="the problem report")
        world.advance(M)
        world.rollout(d, image="reg/shop/api:1.5.0")
        wait_until(lambda: len(session.of_type("rollout")) == 1, what="the rollout")
        time.sleep(1.0)  # retried (refused_retry_s) and still reported, not flapping
        problem = session.problems[("k8s-1", "prod-eu")]
        assert "403" in problem and "v1 pods" in problem
        assert [p for (_, source, p) in session.problem_log if source == "prod-eu" and p is None] == []
        fake._faults.clear()  # RBAC fixed: the pods watch learns, then works; the problem clears
        wait_until(lambda: session.problems[("k8s-1", "prod-eu")] is None, what="recovery")
        world.crash_loop(d, restarts=1)
        wait_until(lambda: len(session.of_type("crash_loop")) == 1, what="pods watched")


def test_integrations_added_and_removed_while_watching(world, fake, connector):
    d = world.apply_deployment("shop", "api", image="reg/shop/api:1.4.0")
    first = k8s_integration([cluster_entry(fake)])
    session = MemorySession([first])
    with watching(connector, session):
        wait_until(lambda: caught_up(session, world), what="first integration")
        second = k8s_integration([cluster_entry(fake)], integration_id="k8s-2", namespaces=["shop"])
        session.set_integrations([first, second])
        wait_until(lambda: caught_up(session, world, "k8s-2"), what="second integration")
        session.set_integrations([second])
        wait_until(lambda: fake.open_watches == 7, what="first integration's watches closed")
        world.advance(M)
        world.rollout(d, image="reg/shop/api:1.5.0")
        wait_until(lambda: len(session.of_type("rollout", "k8s-2")) == 1, what="rollout in k8s-2")
    assert session.of_type("rollout", "k8s-1") == []


def test_bad_config_is_reported_not_raised(world, fake, connector):
    bad = k8s_integration([{"name": "x", "server": "ftp://nowhere", "token": "t"}])
    session = MemorySession([bad])
    with watching(connector, session):
        wait_until(lambda: session.problems.get(("k8s-1", "config")), what="config problem")
    assert "clusters[0].server" in session.problems[("k8s-1", "config")]


def test_no_secret_in_state_events_problems_or_logs(world, fake, connector, caplog):
    from tests.kubernetes.conftest import TOKEN

    d = world.apply_deployment("shop", "api", image="reg/shop/api:1.4.0")
    integration, session = _start(fake, connector, world)
    caplog.set_level("DEBUG")
    with watching(connector, session):
        wait_until(lambda: caught_up(session, world), what="first listing")
        fake.drop_watches()
        world.rollout(d, image="reg/shop/api:1.5.0")
        wait_until(lambda: caught_up(session, world), what="changes")
    blob = repr(session.states) + repr(session.events) + repr(session.problem_log) + caplog.text
    assert TOKEN not in blob
    assert TOKEN not in repr(connector.validate(integration))
