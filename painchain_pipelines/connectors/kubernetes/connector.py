"""The Kubernetes connector: watches (`watch(session)`) and window syncs (backfills).

Watching. One thread per integration × cluster starts the cluster (a first listing when there is
no saved state), then one thread per cluster × resource × namespace runs
`watch.Watch().stream(list_fn, resource_version=rv, allow_watch_bookmarks=True, timeout_seconds=…)`.
Every object a watch (or a relist) delivers goes through its stream's handler, which compares it
with the cluster's memory and emits what changed; the memory (resourceVersions, plus what "old →
new" needs) is the integration's state, checkpointed every ~2 s when it moved. A `410 Gone`
relists and compares (nothing lost, nothing repeated); a dropped connection reconnects with
backoff; a refused token is reported and retried slowly; a cluster that is down only delays its
own threads. The supervisor (the calling thread) re-reads the integrations every ~15 s: new ones
start, removed ones stop, edited ones restart from their memory.

Window syncs reconstruct what the cluster still shows: rollouts from ReplicaSets and
ControllerRevisions, Warning events within their TTL, pods' last terminations, evictions.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import logging
import threading
import time
from typing import Any

from kubernetes import watch as k8s_watch

from painchain_pipelines.connectors.base import (
    AuthError,
    ConfigError,
    Event,
    EventSink,
    Integration,
    SyncResult,
    SyncStats,
    TimeWindow,
    TransientError,
    WatchSession,
)
from painchain_pipelines.connectors.kubernetes.client import RESOURCES, ClusterClient, ClusterError, describe
from painchain_pipelines.connectors.kubernetes.config import ClusterConfig, KubernetesConfig, parse_config
from painchain_pipelines.connectors.kubernetes.streams import (
    STREAM_OF,
    STREAMS,
    Ctx,
    Tuning,
    new_memory,
    resources_for,
)

log = logging.getLogger(__name__)

STATE_VERSION = 1
# Kept by the run but not saved: the last count of each Warning event (up to max_events per
# cluster) made most of a saved state (~1.5 MiB at 50 changes/s, rewritten every 2 s). After a
# restart a repeat is posted with its first occurrence again, and the backend drops that
# duplicate (same externalId), so nothing is lost or stored twice.
RUN_ONLY_MEMORY = ("events",)
LISTED = "LISTED"  # what a relist hands the streams (a watch hands ADDED, MODIFIED, DELETED)
RELIST = "relist"  # a resourceVersion to relist from (after 410 Gone), not to watch from


class _Closed(Exception):
    """The integration's run was stopped: nothing more may be emitted."""


def _source_of(cluster: ClusterConfig) -> str:
    """Which cluster a memory belongs to (not the token): another server resets the memory."""
    if cluster.server:
        where = cluster.server
    elif cluster.context:
        where = f"context:{cluster.kubeconfig or ''}:{cluster.context}"
    else:
        where = "in-cluster"
    return hashlib.sha256(str(where).encode()).hexdigest()[:16]


def _fingerprint(integration: Integration) -> str:
    body = json.dumps({"config": dict(integration.config), "tenant": integration.tenant_id}, sort_keys=True,
                      default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def _takes_stream(session: WatchSession) -> bool:
    """Whether the session's emit takes `stream=` (the orchestration's does, and counts)."""
    try:
        return "stream" in inspect.signature(session.emit).parameters
    except (TypeError, ValueError):
        return False


def _rv_of(obj: dict) -> str | None:
    return ((obj or {}).get("metadata") or {}).get("resourceVersion")


class _ClusterRun:
    """One cluster of one integration: its memory, its client, its watch threads."""

    def __init__(self, run: _IntegrationRun, cluster: ClusterConfig, memory: dict[str, Any]):
        self.run = run
        self.cluster = cluster
        self.tuning = run.tuning
        self.memory = memory
        self.lock = threading.RLock()
        self.client: ClusterClient | None = None
        self.threads: list[threading.Thread] = []
        self.watches: list[k8s_watch.Watch] = []
        self.problem: str | None = ""  # unknown: the first outcome is reported (clears an old problem)
        self.problems: dict[str, str] = {}  # per watch (resource/namespace) or "list": what fails now
        self._problem_lock = threading.Lock()
        self.keys = [(r, ns) for r in resources_for(run.config.kinds) for ns in (run.config.namespaces or (None,))]

    # ------------------------------------------------------------ plumbing

    @property
    def stop(self) -> threading.Event:
        return self.run.stop

    def ctx(self, learn: bool = False) -> Ctx:
        since = self.tuning.clock() - self.tuning.first_lookback if learn else None
        return Ctx(self.cluster.name, self.memory, self.run.emit, self.tuning, learn=learn, since=since)

    def report(self, where: str, problem: str | None) -> None:
        """One watch's (or the first listing's) problem, or None when it works; the cluster's
        problem is what fails now, reported when it changes (None once everything works)."""
        with self._problem_lock:
            if problem is None:
                self.problems.pop(where, None)
            else:
                self.problems[where] = problem
            combined = "; ".join(dict.fromkeys(self.problems.values())) or None
            if combined == self.problem:
                return
            self.problem = combined
        self.run.report(self.cluster.name, combined)

    def start(self) -> None:
        thread = threading.Thread(target=self._main, name=f"k8s-{self.cluster.name}", daemon=True)
        self.threads.append(thread)
        thread.start()

    def sleep(self, seconds: float) -> bool:
        """True when stopping."""
        return self.stop.wait(seconds)

    # ------------------------------------------------------------ bootstrap

    def _main(self) -> None:
        backoff = self.tuning.backoff_initial_s
        while not self.stop.is_set():
            try:
                if self.client is None:
                    self.client = ClusterClient(self.cluster, None, list_limit=self.tuning.list_limit,
                                                read_timeout=self.tuning.read_timeout_s,
                                                pool_size=len(self.keys) + 4, on_request=self.run.add_request)
                self._bootstrap()
                break
            except _Closed:
                return
            except Exception as exc:  # noqa: BLE001 - a cluster never stops the others
                err = describe(exc, self.cluster.name, "the first listing")
                self.report("list", str(err))
                self.run.add("reconnects")
                if self.sleep(self.tuning.refused_retry_s if err.refused else backoff):
                    return
                backoff = min(backoff * 2, self.tuning.backoff_max_s)
        if self.stop.is_set():
            return
        for resource, namespace in self.keys:
            thread = threading.Thread(target=self._watch_loop, args=(resource, namespace), daemon=True,
                                      name=f"k8s-{self.cluster.name}-{resource}-{namespace or 'all'}")
            self.threads.append(thread)
            thread.start()

    def _bootstrap(self) -> None:
        """List (in order: workloads before their revision records) every resource that has no saved
        resourceVersion yet, learning the state without reporting history. A resource that cannot
        be listed (e.g. RBAC forbids it) is left to its watch thread, which keeps trying; only when
        nothing can be listed does this raise (and the whole cluster is retried with backoff)."""
        failed: list[BaseException] = []
        for resource, namespace in self.keys:
            key = _key(resource, namespace)
            if self.memory["rv"].get(key):
                continue
            try:
                self._list(resource, namespace, learn=True)
            except _Closed:
                raise
            except Exception as exc:  # noqa: BLE001
                failed.append(exc)
                err = describe(exc, self.cluster.name, RESOURCES[resource].path)
                if err.refused:
                    self.report(key, str(err))
        if failed and not any(self.memory["rv"].get(_key(r, ns)) for r, ns in self.keys):
            raise failed[0]
        self.report("list", None)

    def _check_open(self) -> None:
        if self.run.closed:
            raise _Closed()

    # ------------------------------------------------------------ watching

    def _list(self, resource: str, namespace: str | None, learn: bool) -> None:
        """List and compare with the memory: learning (first start: remember, report nothing older
        than the look-back) or relisting after 410 Gone (emit what changed, forget what is gone)."""
        items, rv = self.client.list(resource, namespace)
        if not learn:
            self.run.add("relists")
        stream = STREAM_OF[resource]
        with self.lock:
            ctx = self.ctx(learn=learn)
            known = set() if learn else stream.known(ctx, resource, namespace)
            seen = set()
            for obj in items:
                self._check_open()
                stream.handle(ctx, resource, "ADDED" if learn else LISTED, obj)
                uid = (obj.get("metadata") or {}).get("uid")
                if uid:
                    seen.add(uid)
            for uid in known - seen:
                stream.forget(ctx, resource, uid)
            self.memory["rv"][_key(resource, namespace)] = rv
            self.run.dirty = True

    def _watch_loop(self, resource: str, namespace: str | None) -> None:
        key = _key(resource, namespace)
        stream = STREAM_OF[resource]
        backoff = self.tuning.backoff_initial_s
        failures = 0
        while not self.stop.is_set():
            watcher = k8s_watch.Watch()
            started = time.monotonic()
            try:
                with self.lock:
                    rv = self.memory["rv"].get(key)
                if not rv or rv == RELIST:
                    self._list(resource, namespace, learn=not rv)  # never listed: learn; else relist
                    self.report(key, None)
                    continue
                self.watches.append(watcher)
                self.run.add("watches_started")
                received = False
                for event in self.client.stream(resource, namespace, rv, self.tuning.watch_timeout_s, watcher):
                    if self.stop.is_set():
                        break
                    if not received:
                        received, failures = True, 0
                        self.report(key, None)
                    kind, obj = event.get("type"), event.get("object") or event.get("raw_object") or {}
                    new_rv = _rv_of(obj)
                    with self.lock:
                        self._check_open()
                        if kind in ("ADDED", "MODIFIED", "DELETED"):
                            stream.handle(self.ctx(), resource, kind, obj)
                        if new_rv and kind != "ERROR":
                            self.memory["rv"][key] = new_rv
                            self.run.moved = True
                if self.stop.is_set():
                    return
                self.report(key, None)
                backoff, failures = self.tuning.backoff_initial_s, 0
                if time.monotonic() - started < self.tuning.watch_timeout_s * 0.9 and not received:
                    # Ended early without a word: a dropped connection (or a proxy cutting idle streams).
                    self.run.add("reconnects")
                    if self.sleep(min(backoff, 1.0)):
                        return
            except _Closed:
                return
            except Exception as exc:  # noqa: BLE001 - every failure of one watch is handled here
                if self.stop.is_set():
                    return
                err = describe(exc, self.cluster.name,
                               RESOURCES[resource].path + (f" in {namespace}" if namespace else ""))
                if err.gone:
                    self.run.add("gone_410")
                    with self.lock:
                        self.memory["rv"][key] = RELIST  # relist on the next turn (kept if the segment ends)
                    continue
                self.run.add("reconnects")
                failures += 1
                # A dropped stream just reconnects; a refused token or a second failure in a row is
                # a problem worth showing on the integration's card.
                if err.refused or failures >= 2:
                    self.report(key, str(err))
                wait = self.tuning.refused_retry_s if err.refused else backoff
                (log.warning if failures >= 2 else log.info)("kubernetes %s; retrying in %.1fs", err, wait)
                if self.sleep(wait):
                    return
                backoff = min(backoff * 2, self.tuning.backoff_max_s)
            finally:
                if watcher in self.watches:
                    self.watches.remove(watcher)

    def halt(self) -> None:
        for watcher in list(self.watches):
            try:
                watcher.stop()
            except Exception:  # noqa: BLE001
                pass

    def join(self, deadline: float) -> None:
        for thread in list(self.threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        if self.client is not None and not any(t.is_alive() for t in self.threads):
            self.client.close()


def _key(resource: str, namespace: str | None) -> str:
    return f"{resource}/{namespace or '*'}"


class _IntegrationRun:
    """One integration being watched: its clusters, the session plumbing (serialised by a lock)."""

    def __init__(self, connector: KubernetesConnector, session: WatchSession, integration: Integration,
                 config: KubernetesConfig, state: dict[str, Any] | None):
        self.connector = connector
        self.session = session
        self.integration = integration
        self.config = config
        self.tuning = connector.tuning
        self.fingerprint = _fingerprint(integration)
        # Session calls of this integration are serialised (the protocol promises no thread
        # safety); other integrations are not held up by this one's checkpoint.
        self.session_lock = threading.RLock()
        self.emit_takes_stream = _takes_stream(session)
        self.stop = threading.Event()
        self.closed = False
        self.dirty = False  # something was emitted or learnt: checkpoint within ~2 s
        self.moved = False  # only resourceVersions moved (watch traffic, bookmarks): checkpoint slowly
        self.saved_at = time.monotonic()
        saved = (state or {}).get("clusters") if (state or {}).get("version") == STATE_VERSION else {}
        self.clusters: list[_ClusterRun] = []
        for cluster in config.clusters:
            memory = copy.deepcopy((saved or {}).get(cluster.name) or {})
            if memory.get("source") != _source_of(cluster):
                memory = {}
            memory = {**new_memory(), **memory, "source": _source_of(cluster)}
            wanted = {_key(r, ns) for r in resources_for(config.kinds) for ns in (config.namespaces or (None,))}
            memory["rv"] = {k: v for k, v in (memory.get("rv") or {}).items() if k in wanted}
            self.clusters.append(_ClusterRun(self, cluster, memory))

    def start(self) -> None:
        for cluster in self.clusters:
            cluster.start()

    # ------------------------------------------------------------ session calls (serialised)

    def emit(self, event: Event) -> None:
        with self.session_lock:
            if self.closed:
                raise _Closed()
            stream = str(event.data.get("type") or "event")
            if self.emit_takes_stream:  # the orchestration's session counts per stream itself
                self.session.emit(self.integration, event, stream=stream)
            else:
                self.session.emit(self.integration, event)
                self.session.stats(self.integration).count(stream)
            self.dirty = True

    def add(self, counter: str, n: int = 1) -> None:
        with self.session_lock:
            if not self.closed:
                self.session.stats(self.integration).add(counter, n)

    def add_request(self) -> None:
        with self.session_lock:
            if not self.closed:
                self.session.stats(self.integration).api_requests += 1

    def report(self, source: str, problem: str | None) -> None:
        with self.session_lock:
            if self.closed:
                return
            try:
                self.session.report_problem(self.integration, source, problem)
            except Exception:  # noqa: BLE001
                log.exception("report_problem failed for %s", self.integration.id)

    def snapshot(self) -> dict[str, Any]:
        """The memory of every cluster (each copied under its lock; never under the session lock:
        handlers hold their cluster's lock while emitting, so the order is cluster, then session)."""
        clusters = {}
        for cluster in self.clusters:
            with cluster.lock:
                clusters[cluster.cluster.name] = copy.deepcopy(
                    {k: v for k, v in cluster.memory.items() if k not in RUN_ONLY_MEMORY})
        return {"version": STATE_VERSION, "clusters": clusters}

    def checkpoint(self) -> dict[str, Any] | None:
        """Save the state if something moved. Events are emitted before the memory changes, so a
        state never covers an event the session has not been given."""
        if self.closed:
            return None
        slow_due = self.moved and time.monotonic() - self.saved_at >= self.tuning.rv_checkpoint_every_s
        if not (self.dirty or slow_due):
            return None
        self.dirty = self.moved = False
        state = self.snapshot()
        self._save(state)
        return state

    def _save(self, state: dict[str, Any]) -> None:
        with self.session_lock:
            try:
                self.session.checkpoint(self.integration, state)
            except Exception:  # noqa: BLE001
                self.dirty = True
                log.exception("checkpoint failed for %s", self.integration.id)
                return
            self.saved_at = time.monotonic()
            stats = self.session.stats(self.integration)
            stats.gauges["watches_active"] = sum(len(c.watches) for c in self.clusters)
            stats.gauges["memory_entries"] = sum(len(m.get(k) or {}) for m in state["clusters"].values()
                                                 for k in ("workloads", "pods", "events", "pending"))
            stats.sources = [c.cluster.name for c in self.clusters]

    def shutdown(self, deadline: float) -> dict[str, Any]:
        """Stop the threads, close (nothing is emitted after this), then save the last state."""
        self.stop.set()
        for cluster in self.clusters:
            cluster.halt()
        for cluster in self.clusters:
            cluster.join(deadline)
        for cluster in self.clusters:
            cluster.lock.acquire()
        try:
            with self.session_lock:
                self.closed = True
            state = self.snapshot()
        finally:
            for cluster in reversed(self.clusters):
                cluster.lock.release()
        if self.dirty or self.moved:
            self.dirty = self.moved = False
            self._save(state)
        return state


class KubernetesConnector:
    id = "kubernetes"
    description = (
        "Kubernetes changes as PainChain events: rollouts of Deployments, StatefulSets and DaemonSets "
        "(images old → new, scaling, finished, stuck, rollbacks, pause/resume), pod failures "
        "(CrashLoopBackOff, OOMKilled, image pull failures, non-zero exits, evictions) and Warning events "
        "with their repeats, from one or more clusters. Watched continuously; backfills reconstruct what "
        "the clusters still show."
    )

    def __init__(self, tuning: Tuning | None = None):
        self.tuning = tuning or Tuning()

    def validate(self, integration: Integration) -> KubernetesConfig:
        return parse_config(integration.config)

    # ------------------------------------------------------------------ watching

    def watch(self, session: WatchSession) -> None:
        runs: dict[str, _IntegrationRun] = {}
        next_refresh = 0.0
        try:
            while not session.stopping():
                if time.monotonic() >= next_refresh:
                    self._refresh(session, runs)
                    next_refresh = time.monotonic() + self.tuning.integrations_every_s
                for run in list(runs.values()):
                    run.checkpoint()
                if session.wait(self.tuning.checkpoint_every_s):
                    break
        finally:
            deadline = time.monotonic() + 10.0
            for run in runs.values():
                run.stop.set()
                for cluster in run.clusters:
                    cluster.halt()
            for run in runs.values():
                run.shutdown(deadline)

    def _refresh(self, session: WatchSession, runs: dict[str, _IntegrationRun]) -> None:
        try:
            integrations = [i for i in session.integrations() if i.type in (self.id, None)]
        except Exception:  # noqa: BLE001 - keep watching what is known
            log.exception("integrations could not be read; keeping the current ones")
            return
        current = {i.id: i for i in integrations}
        for integration_id in list(runs):
            run = runs[integration_id]
            integration = current.get(integration_id)
            if integration is None or _fingerprint(integration) != run.fingerprint:
                runs.pop(integration_id)
                last = run.shutdown(time.monotonic() + 10.0)
                if integration is not None:  # edited: restart from the memory it had
                    self._start(session, runs, integration, last)
        for integration_id, integration in current.items():
            if integration_id not in runs:
                try:
                    state = session.saved_state(integration)
                except Exception:  # noqa: BLE001
                    log.exception("saved state of %s unreadable; starting fresh", integration_id)
                    state = None
                self._start(session, runs, integration, state)

    def _start(self, session: WatchSession, runs: dict[str, _IntegrationRun], integration: Integration,
               state: dict[str, Any] | None) -> None:
        try:
            config = self.validate(integration)
        except ConfigError as exc:
            session.report_problem(integration, "config", str(exc))
            return
        session.report_problem(integration, "config", None)
        run = _IntegrationRun(self, session, integration, config, state)
        runs[integration.id] = run
        run.start()

    # ------------------------------------------------------------------ window sync

    def window_sync(self, integration: Integration, window: TimeWindow, sink: EventSink) -> SyncResult:
        config = self.validate(integration)
        stats = SyncStats(sources=[c.name for c in config.clusters])
        refused: list[str] = []
        resources = resources_for(config.kinds)
        for cluster in config.clusters:
            client = None
            try:
                client = ClusterClient(cluster, stats, list_limit=self.tuning.list_limit,
                                       read_timeout=self.tuning.read_timeout_s)
                objects: dict[str, list[dict]] = {r: [] for r in resources}
                for resource in resources:
                    for namespace in config.namespaces or (None,):
                        items, _ = client.list(resource, namespace)
                        objects[resource].extend(items)
                for stream in STREAMS:
                    for event in stream.window(cluster.name, objects, window, self.tuning):
                        stats.count(str(event.data.get("type") or stream.name))
                        sink(event)
            except ClusterError as exc:
                stats.failed_sources[cluster.name] = str(exc)
                if exc.refused:
                    refused.append(cluster.name)
            finally:
                if client is not None:
                    client.close()
        if refused and len(refused) == len(config.clusters):
            raise AuthError(f"every cluster refused the token: {', '.join(refused)}", field_name="clusters")
        if stats.failed_sources and len(stats.failed_sources) == len(config.clusters):
            raise TransientError("no cluster could be read: " + "; ".join(stats.failed_sources.values()))
        covered = None if stats.failed_sources else window
        return SyncResult(stats=stats, state=None, window=window, covered=covered)


__all__ = ["KubernetesConnector", "Tuning"]
