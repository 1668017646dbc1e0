"""The Kubernetes connector's tests: an in-memory WatchSession, the fake cluster on a real
socket (tests.fakes.kubernetes_server), and helpers to run a watch segment in a thread."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator

import pytest

from painchain_pipelines.connectors.base import Event, Integration, SyncStats
from painchain_pipelines.connectors.kubernetes import KubernetesConnector
from painchain_pipelines.connectors.kubernetes.streams import Tuning
from tests.fakes.kubernetes_server import FakeKubernetes
from tests.fakes.kubernetes_world import ClusterWorld

TOKEN = "k8s-test-token-never-logged-0123456789abcdef"
NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)
M = dt.timedelta(minutes=1)


class MemorySession:
    """A WatchSession kept in memory: events per integration, saved states, problems, stats."""

    def __init__(self, integrations: list[Integration], states: dict[str, dict] | None = None):
        self._integrations = list(integrations)
        self.states: dict[str, dict] = copy.deepcopy(states or {})
        self.events: dict[str, list[Event]] = defaultdict(list)
        self.problems: dict[tuple[str, str], str | None] = {}
        self.problem_log: list[tuple[str, str, str | None]] = []
        self.checkpoints = 0
        self._stats: dict[str, SyncStats] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()

    # the protocol
    def integrations(self) -> list[Integration]:
        with self._lock:
            return list(self._integrations)

    def saved_state(self, integration: Integration) -> dict | None:
        with self._lock:
            return copy.deepcopy(self.states.get(integration.id))

    def emit(self, integration: Integration, event: Event) -> None:
        with self._lock:
            self.events[integration.id].append(event)

    def checkpoint(self, integration: Integration, state: dict) -> None:
        with self._lock:
            self.states[integration.id] = copy.deepcopy(state)
            self.checkpoints += 1

    def stats(self, integration: Integration) -> SyncStats:
        return self._stats.setdefault(integration.id, SyncStats())

    def report_problem(self, integration: Integration, source: str, problem: str | None) -> None:
        with self._lock:
            self.problems[(integration.id, source)] = problem
            self.problem_log.append((integration.id, source, problem))

    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait(self, seconds: float) -> bool:
        return self._stop.wait(seconds)

    # test controls
    def stop(self) -> None:
        self._stop.set()

    def set_integrations(self, integrations: list[Integration]) -> None:
        with self._lock:
            self._integrations = list(integrations)

    def ids(self, integration_id: str = "k8s-1") -> list[str]:
        with self._lock:
            return [e.external_id for e in self.events[integration_id]]

    def of_type(self, kind: str, integration_id: str = "k8s-1") -> list[Event]:
        with self._lock:
            return [e for e in self.events[integration_id] if e.data.get("type") == kind]

    def duplicates(self, integration_id: str = "k8s-1") -> list[str]:
        return [k for k, n in Counter(self.ids(integration_id)).items() if n > 1]


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def caught_up(session: MemorySession, world: ClusterWorld, integration_id: str = "k8s-1",
              cluster: str | None = None, keys: int = 7) -> bool:
    """Every watch of the cluster has checkpointed the world's current resourceVersion."""
    state = session.states.get(integration_id) or {}
    memory = (state.get("clusters") or {}).get(cluster or world.name) or {}
    rvs = memory.get("rv") or {}
    return len(rvs) >= keys and all(v == str(world.resource_version) for v in rvs.values())


@contextlib.contextmanager
def watching(connector: KubernetesConnector, session: MemorySession) -> Iterator[MemorySession]:
    errors: list[BaseException] = []

    def run():
        try:
            connector.watch(session)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    thread = threading.Thread(target=run, name="watch-segment", daemon=True)
    thread.start()
    try:
        yield session
    finally:
        session.stop()
        thread.join(20)
        assert not thread.is_alive(), "watch() did not return after stopping"
        assert not errors, errors


def k8s_integration(clusters: list[dict], integration_id: str = "k8s-1", **extra) -> Integration:
    config = {"name": "Kubernetes", "tags": ["prod"], "clusters": clusters, **extra}
    return Integration(id=integration_id, name="Kubernetes", type="kubernetes", config=config, tenant_id=None)


def cluster_entry(fake: FakeKubernetes, name: str | None = None, token: str = TOKEN) -> dict:
    return {"name": name or fake.world.name, "server": fake.url, "token": token}


def fast_tuning(world: ClusterWorld | None = None, **changes) -> Tuning:
    clock = (lambda: world.now) if world is not None else (lambda: dt.datetime.now(dt.timezone.utc))
    base = dict(checkpoint_every_s=0.1, rv_checkpoint_every_s=0.1, integrations_every_s=0.3, backoff_initial_s=0.05, backoff_max_s=0.4,
                refused_retry_s=0.4, watch_timeout_s=20, clock=clock)
    base.update(changes)
    return Tuning(**base)


@pytest.fixture
def world() -> ClusterWorld:
    return ClusterWorld(name="prod-eu", now=NOW)


@pytest.fixture
def fake(world) -> Iterator[FakeKubernetes]:
    with FakeKubernetes(world, token=TOKEN, bookmark_interval_s=0.1) as server:
        yield server


@pytest.fixture
def connector(world) -> KubernetesConnector:
    return KubernetesConnector(tuning=fast_tuning(world))
