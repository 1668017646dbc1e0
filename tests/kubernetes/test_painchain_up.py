"""Kubernetes through `painchain up` as a user runs it: the integration created through the API
before the daemon's first tick, changes in the cluster stored within seconds by the watch runs,
a segment hand-off with changes made right across it, and a restart with changes made while
PainChain was down. Every change once, nothing replayed, no failed tick, one segment watching
at a time, the token never printed."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter

import dagster as dg
import pytest
import requests

from painchain_pipelines.connectors.base import utcnow
from tests.fakes.kubernetes_server import FakeKubernetes
from tests.fakes.kubernetes_world import ClusterWorld
from tests.support.dagster_ticks import assert_no_failed_ticks
from tests.support.painchain_up import PainchainUp, user_env

pytestmark = pytest.mark.slow

TOKEN = "up-k8s-token-never-printed-5e4d3c2b1a09"
SEGMENT_S = 30
ARRIVES_WITHIN_S = 20
WATCHES = 7  # deployments, replicasets, statefulsets, daemonsets, controllerrevisions, pods, events
WATCH_RUNS = """{ runsOrError(filter: {tags: [{key: "painchain/watch", value: "true"}],
    statuses: [QUEUED, NOT_STARTED, STARTING, STARTED, CANCELING]}) {
    __typename ... on Runs { results { runId status tags { key value } } } } }"""


def real_now() -> dt.datetime:
    return utcnow().replace(microsecond=0)


class Sampler:
    """Samples Dagster's active watch runs (GraphQL) every half second while PainChain runs."""

    def __init__(self, up: PainchainUp):
        self.up = up
        self.samples: list[list[dict]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sample-runs", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            try:
                answer = requests.post(self.up.dagster_url + "/graphql", json={"query": WATCH_RUNS}, timeout=5).json()
                runs = answer["data"]["runsOrError"]["results"]
            except (requests.RequestException, ValueError, KeyError, TypeError):
                continue  # Dagster not up yet (or stopping)
            self.samples.append([{"id": r["runId"], "status": r["status"],
                                  "tags": {t["key"]: t["value"] for t in r["tags"]}} for r in runs])

    def current_until(self) -> tuple[str, dt.datetime] | None:
        """The run watching now and the end of its segment (from its latest sample)."""
        for sample in reversed(self.samples):
            watching = [r for r in sample if r["status"] == "STARTED" and "painchain/watch_until" in r["tags"]]
            if watching:
                run = max(watching, key=lambda r: r["tags"]["painchain/watch_until"])
                return run["id"], dt.datetime.fromisoformat(run["tags"]["painchain/watch_until"])
            break
        return None

    def stop(self) -> list[list[dict]]:
        self._stop.set()
        self._thread.join(10)
        return self.samples


def sync_stats(up: PainchainUp, integration: dict) -> dict:
    """The figures of the integration's latest watch segment (saved with each checkpoint)."""
    record = requests.get(f"{up.api}/integrations/{integration['id']}/sync", timeout=10).json()
    return record["lastStats"]


def stop_cleanly(up: PainchainUp, sampler: Sampler, samples: list[list[dict]]) -> str:
    samples.extend(sampler.stop())
    assert up.stop() == 0, up.output()[-3000:]
    output = up.output()
    assert TOKEN not in output
    return output


def test_changes_stream_in_within_seconds_across_a_handoff_and_a_restart(tmp_path):
    world = ClusterWorld(name="prod-eu", now=real_now() - dt.timedelta(hours=2))
    api = world.apply_deployment("shop", "api", image="reg/shop/api:1.4.0", replicas=2)
    web = world.apply_deployment("shop", "web", image="reg/shop/web:2.0.0", replicas=2)
    world.set_now(real_now())
    env = user_env(PAINCHAIN_WATCH_SEGMENT_SECONDS=str(SEGMENT_S))
    samples: list[list[dict]] = []
    latency: dict[str, float] = {}

    def now() -> dt.datetime:
        with world.lock:
            return world.set_now(max(world.now, real_now()))

    with FakeKubernetes(world, token=TOKEN) as fake:
        cluster = {"name": "prod-eu", "server": fake.url, "token": TOKEN}

        def change_arrives(name: str, change) -> list[str]:
            """Make the change (it returns the externalIds it should give); how long until stored."""
            now()
            expected = change()
            changed = time.monotonic()
            up.wait_for(lambda: set(expected) <= set(up.stored()), name, ARRIVES_WITHIN_S + 10, every=0.2)
            latency[name] = time.monotonic() - changed
            return expected

        up = PainchainUp(tmp_path, env=env)
        sampler = Sampler(up)
        try:
            up.wait_for_api()
            # At once, as a user who opens the UI: before the daemon has ticked.
            up.wait_for(lambda: requests.post(up.api + "/integrations", timeout=10, json={
                "type": "kubernetes", "config": {"name": "Production", "tags": ["prod"], "clusters": [cluster]}},
            ).status_code == 201, "the integration to be created", 30, 0.1)
            created_at = time.monotonic()
            up.wait_for(lambda: fake.open_watches >= WATCHES, "the first segment to watch", 150, every=0.2)
            first_watch_s = time.monotonic() - created_at
            assert up.stored() == {}  # the first listing learns; nothing older is reported

            change_arrives("rollout", lambda: [f"k8s:{api.uid}:rev:{world.rollout(api, image='reg/shop/api:1.5.0').revision}"])
            crash_ids = change_arrives("crash loop", lambda: [
                f"k8s:{pod.uid}:api:exit:{n}" for pod in [world.crash_loop(api, restarts=2)] for n in (0, 1)])

            # The segment hand-off: changes 2 s before the segment's end, at it, and while the
            # next one takes over.
            up.wait_for(lambda: sampler.current_until() is not None, "a watching run", 30, every=0.2)
            current, until = sampler.current_until()
            handoff: list[str] = []
            for offset in (-2, 0, 2, 4):
                delay = (until + dt.timedelta(seconds=offset) - utcnow()).total_seconds()
                time.sleep(max(0.0, delay))
                now()
                event = world.warning(web, reason="FailedCreate", message=f"quota exceeded (at end {offset:+d} s)")
                handoff.append(f"k8s:{event.uid}")
            up.wait_for(lambda: set(handoff) <= set(up.stored()), "the changes across the hand-off", 40, every=0.5)
            up.wait_for(lambda: (sampler.current_until() or (current,))[0] != current, "the next segment", 30)
            stored = up.stored()
            integration = requests.get(up.api + "/integrations", timeout=10).json()[0]
            # The segment after the hand-off resumed where the previous one stopped: nothing re-posted.
            assert sync_stats(up, integration)["duplicates"] == 0
        finally:
            stop_cleanly(up, sampler, samples)
        running_s = time.monotonic() - created_at
        assert running_s >= 35
        assert set(crash_ids) <= set(stored)

        # While PainChain is stopped: web rolls out and api is OOM-killed.
        now()
        world.rollout(web, image="reg/shop/web:2.1.0")
        oom = world.oom_kill(api)
        while_down = [f"k8s:{web.uid}:rev:2", f"k8s:{oom.uid}:api:exit:{oom.body['status']['containerStatuses'][0]['restartCount'] - 1}"]
        restart_sampler = None
        up = PainchainUp(tmp_path, env=env)
        try:
            restart_sampler = Sampler(up)
            up.wait_for_api()
            restarted = time.monotonic()
            up.wait_for(lambda: set(while_down) <= set(up.stored()), "the changes made while down", 150, every=0.5)
            catch_up_s = time.monotonic() - restarted
            up.wait_for(lambda: fake.open_watches >= WATCHES, "a segment watching after the restart", 60, every=0.2)
            change_arrives("rollout after the restart", lambda: [
                f"k8s:{api.uid}:rev:{world.rollout(api, image='reg/shop/api:1.6.0').revision}"])
            # Long enough for a retry of the segment killed by the stop to have shown up.
            up.wait_for(lambda: time.monotonic() - restarted >= 30, "30 s after the restart", 60)
            final = up.stored()
            after_restart = sync_stats(up, integration)
        finally:
            stop_cleanly(up, restart_sampler, samples)

    # Once each, nothing old replayed: what was stored before the restart is unchanged, and the
    # restart added exactly what changed meanwhile (plus the rollout after it and its side-effects).
    assert {k: stored[k] for k in stored} == {k: final[k] for k in stored}
    added = set(final) - set(stored)
    # The segment after the restart resumed from the state saved before the stop: it posted what
    # changed meanwhile and after, never an event stored before.
    assert after_restart["duplicates"] == 0 and after_restart["created"] == len(added), after_restart
    assert set(while_down) <= added and f"k8s:{api.uid}:rev:3" in added
    kinds = Counter(final[k]["data"]["type"] for k in added)
    assert set(kinds) <= {"rollout", "rollout_finished", "oom_killed"}, kinds
    assert kinds["rollout"] == 2 and kinds["oom_killed"] == 1
    assert all(e["project"] == "prod-eu:shop" for e in final.values())
    for external_id in handoff:  # each Warning once, and no repeat made up by the hand-off
        assert [k for k in final if k.startswith(external_id)] == [external_id]
    for name, seconds in latency.items():
        assert seconds <= ARRIVES_WITHIN_S, f"{name} took {seconds:.1f} s"
    # One segment watching at any sampled moment (the next may be starting, waiting for its turn).
    assert samples, "Dagster's runs were never sampled"
    watching = [len([r for r in s if r["status"] == "STARTED" and "painchain/watch_until" in r["tags"]])
                for s in samples]
    assert max(watching) == 1, watching
    assert max(len(s) for s in samples) <= 2
    # The segment the first stop killed is not retried (a retry would watch alongside the
    # segment the sensor starts after the restart).
    with dg.DagsterInstance.from_config(str(up.dagster_home)) as instance:
        runs = [r.dagster_run for r in instance.get_run_records(filters=dg.RunsFilter(tags={"painchain/watch": "true"}))]
    assert runs and not [r.run_id for r in runs if "dagster/parent_run_id" in r.tags]
    started = Counter(len([r for r in s if r["status"] == "STARTED"]) for s in samples)
    # The token is nowhere in clear: not in the output, Dagster's storage and logs, nor the database.
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
    assert_no_failed_ticks(up.dagster_home, ("kubernetes_integrations_sensor", "kubernetes_watch_sensor"))
    print(f"first watch after {first_watch_s:.1f} s, latencies {latency}, caught up after the restart in "
          f"{catch_up_s:.1f} s, STARTED watch runs per sample {dict(started)}")
