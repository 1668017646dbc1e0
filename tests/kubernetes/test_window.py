"""Window syncs (backfills): what the cluster still shows, with the watch's externalIds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from painchain_pipelines.connectors.base import AuthError, TimeWindow, TransientError
from tests.kubernetes.conftest import (
    NOW,
    M,
    MemorySession,
    caught_up,
    cluster_entry,
    k8s_integration,
    wait_until,
    watching,
)


def _history(world):
    d = world.apply_deployment("shop", "api", image="reg/shop/api:1.4.0", replicas=2, labels={"app": "api"})
    s = world.apply_statefulset("data", "db", image="reg/db:15.1", replicas=1)
    return d, s


def _changes(world, d, s):
    world.advance(M)
    world.rollout(d, image="reg/shop/api:1.5.0")
    world.advance(M)
    world.rollout(d, image="reg/shop/api:1.6.0")
    world.advance(M)
    world.rollout(s, image="reg/db:15.2")
    world.advance(M)
    burst = world.warning(d, reason="FailedCreate", message="quota")
    world.advance(M)
    world.repeat(burst, times=2)
    world.advance(M)
    world.rollback(d, to_revision=1)
    world.advance(M)
    world.crash_loop(d, restarts=1)  # after the rollback: its pods are still there to be read
    world.oom_kill(s)
    world.advance(M)


def test_window_sync_reconstructs_rollouts_with_the_watch_ids(world, fake, connector):
    d, s = _history(world)
    integration = k8s_integration([cluster_entry(fake)])
    session = MemorySession([integration])
    with watching(connector, session):
        wait_until(lambda: caught_up(session, world), what="first listing")
        _changes(world, d, s)
        wait_until(lambda: caught_up(session, world), what="changes")
    watched = {e.external_id: e for e in session.events["k8s-1"]}

    events = []
    result = connector.window_sync(integration, TimeWindow(NOW + M // 2, world.now), events.append)
    synced = {e.external_id: e for e in events}
    assert len(synced) == len(events)
    rollout_ids = {i for i, e in watched.items() if e.data["type"] in ("rollout", "rollback")}
    assert len(rollout_ids) == 4  # api 1.5.0, 1.6.0, db 15.2, api rollback to revision 1
    assert rollout_ids <= set(synced)
    for i in rollout_ids:
        assert synced[i].timestamp == watched[i].timestamp
        assert synced[i].data["images"] == watched[i].data["images"]
        assert synced[i].data["previousImages"] == watched[i].data["previousImages"]
    # Warning events (first + latest count), crash and OOM: the same ids as the watch.
    for kind in ("crash_loop", "oom_killed"):
        assert {i for i, e in watched.items() if e.data["type"] == kind} <= set(synced)
    warnings = [e for e in events if e.data["type"] == "warning" and e.data["reason"] == "FailedCreate"]
    assert sorted(e.data["count"] for e in warnings) == [1, 3]
    assert {e.external_id for e in warnings} <= set(watched)
    assert result.covered == TimeWindow(NOW + M // 2, world.now)
    assert result.stats.events_fetched == len(events)


def test_window_sync_keeps_to_the_window(world, fake, connector):
    d, s = _history(world)
    _changes(world, d, s)
    integration = k8s_integration([cluster_entry(fake)])
    events = []
    window = TimeWindow(NOW + M, NOW + 2 * M)  # only the first rollout (at NOW + 1 min)
    connector.window_sync(integration, window, events.append)
    assert [e.data.get("images") for e in events if e.data["type"] == "rollout"] == [{"api": "reg/shop/api:1.5.0"}]
    assert all(e.timestamp in window for e in events)


def test_window_sync_failures(world, fake, connector):
    world.apply_deployment("shop", "api", image="reg/shop/api:1.4.0")
    refused = k8s_integration([cluster_entry(fake, token="nope-000")])
    with pytest.raises(AuthError) as info:
        connector.window_sync(refused, TimeWindow(NOW, world.now + M), lambda e: None)
    assert "nope-000" not in str(info.value)
    fake.down = True
    with pytest.raises(TransientError):
        connector.window_sync(k8s_integration([cluster_entry(fake)]), TimeWindow(NOW, world.now + M), lambda e: None)


def test_a_kubeconfig_context_cluster(world, fake, connector, tmp_path):
    from tests.kubernetes.conftest import TOKEN

    d = world.apply_deployment("shop", "api", image="reg/shop/api:1.4.0")
    world.advance(M)
    world.rollout(d, image="reg/shop/api:1.5.0")
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "other",
        "clusters": [{"name": "fake", "cluster": {"server": fake.url}}],
        "users": [{"name": "me", "user": {"token": TOKEN}}],
        "contexts": [{"name": "kind-dev", "context": {"cluster": "fake", "user": "me"}},
                     {"name": "other", "context": {"cluster": "fake", "user": "nobody"}}]}))
    integration = k8s_integration([{"name": "laptop", "context": "kind-dev", "kubeconfig": str(kubeconfig)}])
    events = []
    connector.window_sync(integration, TimeWindow(NOW, world.now + M), events.append)
    [rollout] = [e for e in events if e.data["type"] == "rollout" and e.data["revision"] == 2]
    assert rollout.project == "laptop:shop"
    missing = k8s_integration([{"name": "laptop", "context": "nope", "kubeconfig": str(kubeconfig)}])
    with pytest.raises(TransientError) as info:
        connector.window_sync(missing, TimeWindow(NOW, world.now + M), events.append)
    assert "context 'nope'" in str(info.value)


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # skipTLSVerify, on purpose
def test_tls_with_the_cluster_ca(world):
    import base64

    from painchain_pipelines.connectors.kubernetes import KubernetesConnector
    from tests.fakes.kubernetes_server import FakeKubernetes
    from tests.kubernetes.conftest import TOKEN, fast_tuning

    world.apply_deployment("shop", "api", image="reg/shop/api:1.4.0")
    connector = KubernetesConnector(tuning=fast_tuning(world))
    with FakeKubernetes(world, token=TOKEN, tls=True) as fake:
        ca = base64.b64encode(Path(fake.ca_path).read_bytes()).decode()
        window = TimeWindow(NOW - M, world.now + M)
        events = []
        connector.window_sync(k8s_integration([{**cluster_entry(fake), "certificate": ca}]), window, events.append)
        assert [e.data["type"] for e in events] == ["rollout", "rollout_finished"]
        with pytest.raises(TransientError) as info:
            connector.window_sync(k8s_integration([cluster_entry(fake)]), window, events.append)
        assert "TLS verification failed" in str(info.value)
        events = []
        connector.window_sync(k8s_integration([{**cluster_entry(fake), "skipTLSVerify": True}]), window, events.append)
        assert len(events) == 2
