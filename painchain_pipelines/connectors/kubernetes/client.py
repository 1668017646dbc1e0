"""One `kubernetes.client.ApiClient` per cluster (never the global default configuration: several
clusters are watched at once), raw JSON lists with limit/continue, and watch streams of raw objects.

Objects are read as plain dicts (`_preload_content=False`, `Watch.stream(deserialize=False)`): the
transforms work on the API's JSON, the same shape as the fixtures, and a field the model classes
reject (e.g. a series event whose timestamps are null) cannot break a watch."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException

from painchain_pipelines.connectors.base import ConnectorError, SyncStats, TransientError
from painchain_pipelines.connectors.kubernetes.config import ClusterConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resource:
    """A resource the connector reads: its API class and list methods."""

    key: str  # deployments, replicasets, …
    api: str  # "apps" | "core" | "events"
    namespaced: str  # list method for one namespace
    everywhere: str  # list method for all namespaces
    path: str  # for messages and RBAC: "apps/v1 deployments"


RESOURCES: dict[str, Resource] = {r.key: r for r in (
    Resource("deployments", "apps", "list_namespaced_deployment", "list_deployment_for_all_namespaces",
             "apps/v1 deployments"),
    Resource("replicasets", "apps", "list_namespaced_replica_set", "list_replica_set_for_all_namespaces",
             "apps/v1 replicasets"),
    Resource("statefulsets", "apps", "list_namespaced_stateful_set", "list_stateful_set_for_all_namespaces",
             "apps/v1 statefulsets"),
    Resource("daemonsets", "apps", "list_namespaced_daemon_set", "list_daemon_set_for_all_namespaces",
             "apps/v1 daemonsets"),
    Resource("controllerrevisions", "apps", "list_namespaced_controller_revision",
             "list_controller_revision_for_all_namespaces", "apps/v1 controllerrevisions"),
    Resource("pods", "core", "list_namespaced_pod", "list_pod_for_all_namespaces", "v1 pods"),
    Resource("events", "core", "list_namespaced_event", "list_event_for_all_namespaces", "v1 events"),
)}


class ClusterError(ConnectorError):
    """A request to one cluster failed; `status` is the HTTP status (None: no answer)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status

    @property
    def gone(self) -> bool:
        return self.status == 410

    @property
    def refused(self) -> bool:
        return self.status in (401, 403)


def describe(exc: BaseException, cluster: str, what: str) -> ClusterError:
    """A failure as a message without secrets (no headers, no request, no body beyond the reason)."""
    if isinstance(exc, ClusterError):
        return exc
    if isinstance(exc, ApiException):
        status = exc.status
        reason = str(exc.reason or "").splitlines()[0][:200] if exc.reason else ""
        if status == 401:
            return ClusterError(f"{cluster}: token refused (401 Unauthorized) reading {what}", 401)
        if status == 403:
            return ClusterError(f"{cluster}: token refused (403 Forbidden: RBAC must allow get/list/watch on "
                                f"{what})", 403)
        return ClusterError(f"{cluster}: HTTP {status} {reason} reading {what}".rstrip(), status)
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        cause = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason else exc
        if isinstance(cause, urllib3.exceptions.SSLError) or "SSL" in type(cause).__name__:
            return ClusterError(f"{cluster}: TLS verification failed reading {what} ({type(cause).__name__}); set "
                                "the cluster's certificate (certificate-authority-data)")
        return ClusterError(f"{cluster}: cannot reach the API server reading {what} ({type(cause).__name__})")
    return ClusterError(f"{cluster}: {type(exc).__name__} reading {what}")


def build_api_client(cluster: ClusterConfig, pool_size: int = 16) -> k8s.ApiClient:
    """An ApiClient of its own for the cluster (several clusters are read at once: never the
    global default configuration). `pool_size` keeps a connection per concurrent watch."""
    if cluster.server:
        configuration = k8s.Configuration(host=cluster.server)
        configuration.api_key = {"authorization": cluster.token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
        configuration.verify_ssl = not cluster.skip_tls_verify
        if cluster.ca_pem:
            configuration.ca_cert_data = cluster.ca_pem
    elif cluster.context:
        from kubernetes import config as k8s_config

        configuration = k8s.Configuration()
        try:
            k8s_config.load_kube_config(config_file=cluster.kubeconfig, context=cluster.context,
                                        client_configuration=configuration, persist_config=False)
        except Exception as exc:  # noqa: BLE001 - the message may quote the file; keep only the kind
            raise ClusterError(f"{cluster.name}: kubeconfig context {cluster.context!r} cannot be loaded "
                               f"({type(exc).__name__})") from None
        if cluster.skip_tls_verify:
            configuration.verify_ssl = False
    else:
        from kubernetes import config as k8s_config

        configuration = k8s.Configuration()
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
        except Exception as exc:  # noqa: BLE001
            raise ClusterError(f"{cluster.name}: not running in a cluster (no service account: "
                               f"{type(exc).__name__})") from None
    configuration.retries = 0  # reconnects are the watcher's (counted, with backoff)
    configuration.connection_pool_maxsize = max(pool_size, 4)
    return k8s.ApiClient(configuration)


class ClusterClient:
    """Reads of one cluster. Thread-safe: each call makes its own request on the shared pool."""

    def __init__(self, cluster: ClusterConfig, stats: SyncStats | None = None, *,
                 list_limit: int = 500, read_timeout: float = 30.0, pool_size: int = 16,
                 on_request: Callable[[], None] | None = None):
        self.cluster = cluster
        self.stats = stats
        self.on_request = on_request
        self.list_limit = list_limit
        self.read_timeout = read_timeout
        self._lock = threading.Lock()
        self.api_client = build_api_client(cluster, pool_size)
        self._apis = {"apps": k8s.AppsV1Api(self.api_client), "core": k8s.CoreV1Api(self.api_client)}

    def __repr__(self) -> str:
        return f"ClusterClient({self.cluster!r})"

    def close(self) -> None:
        try:
            self.api_client.close()
        except Exception:  # noqa: BLE001
            pass

    def _count(self) -> None:
        if self.on_request is not None:
            self.on_request()
        if self.stats is not None:
            with self._lock:
                self.stats.api_requests += 1

    def list_function(self, resource: str, namespace: str | None) -> Callable[..., Any]:
        res = RESOURCES[resource]
        api = self._apis[res.api]
        method = getattr(api, res.namespaced if namespace else res.everywhere)

        def list_objects(**kwargs):  # no docstring: Watch must not look for a model type
            self._count()
            return method(namespace, **kwargs) if namespace else method(**kwargs)

        return list_objects

    def list(self, resource: str, namespace: str | None) -> tuple[list[dict], str]:
        """Every object (limit/continue pages) and the list's resourceVersion."""
        fn = self.list_function(resource, namespace)
        items: list[dict] = []
        token: str | None = None
        rv = ""
        what = f"{RESOURCES[resource].path}" + (f" in {namespace}" if namespace else "")
        while True:
            kwargs: dict[str, Any] = {"limit": self.list_limit, "_preload_content": False,
                                      "_request_timeout": (10, self.read_timeout)}
            if token:
                kwargs["_continue"] = token
            try:
                resp = fn(**kwargs)
                body = json.loads(resp.data)
            except Exception as exc:  # noqa: BLE001
                raise describe(exc, self.cluster.name, what) from None
            items.extend(body.get("items") or [])
            meta = body.get("metadata") or {}
            token = meta.get("continue")
            if not rv or not token:
                rv = meta.get("resourceVersion") or rv
            if not token:
                return items, rv

    def stream(self, resource: str, namespace: str | None, resource_version: str, timeout_seconds: int,
               watcher: k8s_watch.Watch) -> Iterator[dict]:
        """One watch request (ends after `timeout_seconds`); yields raw events {"type", "object"}.
        ERROR events raise ApiException(code) (410: history expired). The list function has no
        return type, so the client keeps objects as dicts (its `deserialize=False` path would fail
        on ERROR events: no `raw_object`)."""
        fn = self.list_function(resource, namespace)
        return watcher.stream(fn, resource_version=resource_version, allow_watch_bookmarks=True,
                              timeout_seconds=timeout_seconds,
                              _request_timeout=(10, timeout_seconds + 30))


__all__ = ["RESOURCES", "ClusterClient", "ClusterError", "TransientError", "build_api_client", "describe"]
