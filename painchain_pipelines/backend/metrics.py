"""Prometheus metrics for the people who run PainChain, served at GET /metrics (docs/operations.md).

* Each app has its own registry, so that several apps in one process (tests) keep their counts apart.
* Every label value is bounded whatever callers send: connectors are registered types or "unknown",
  routes are templates (`/api/events/{event_id}`) or "unmatched", methods are HTTP's or "other".
* Per-integration gauges are read from the database at scrape time: nothing to keep up to date.
"""

from __future__ import annotations

import logging
import time
from collections import Counter as Tally
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from starlette.routing import Mount

from painchain_pipelines.backend.database import Database, is_query_timeout
from painchain_pipelines.backend.models import ConnectorType, Integration, IntegrationSync

log = logging.getLogger(__name__)

UNKNOWN_CONNECTOR = "unknown"
UNMATCHED_ROUTE = "unmatched"
OTHER_METHOD = "other"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OUTCOMES = ("created", "duplicate", "invalid")
DATABASE_ERROR_KINDS = ("timeout", "other")
# A single POST takes about a millisecond, a batch of 1,000 tens of them, a slow query seconds.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SINGLE_EVENT_ROUTE = ("POST", "/api/events")
# Set on the request scope once POST /api/events has counted its event, so that the 422 it may
# raise afterwards is not counted again by the validation error handler.
_EVENT_COUNTED = "painchain.event_counted"


class Metrics:
    def __init__(self, db: Database, *, sync_interval: float):
        self.registry = CollectorRegistry()
        self._events = Counter(
            "painchain_events_received", "Events posted to the API (one by one or in batches), by what became of them",
            ("connector", "outcome"), registry=self.registry)
        # One histogram, its _count being the answers by status: an observation costs a few
        # microseconds, and a single POST must stay cheap.
        self._request_seconds = Histogram(
            "painchain_http_request_duration_seconds", "Time to answer HTTP requests, by route template and status",
            ("method", "route", "status"), buckets=DURATION_BUCKETS, registry=self.registry)
        self._database_errors = Counter(
            "painchain_database_errors", "Database errors that reached a request or a scrape "
            "(timeout: a query stopped by its time budget)", ("kind",), registry=self.registry)
        for kind in DATABASE_ERROR_KINDS:
            self._database_errors.labels(kind)  # present at 0, so that rate() sees the first one
        self.registry.register(IntegrationSyncCollector(db, sync_interval, self))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        # Connector types that may appear as a label value (registered ones: an admin decides).
        self._known_connectors: set[str] = set()
        # id(route object) -> route template; see learn_routes().
        self._route_templates: dict[int, str] = {}
        # Label children cached by key: labels() takes a lock and builds tuples on every call.
        self._event_children: dict[tuple[str, str], Any] = {}
        self._request_children: dict[tuple[str, str, int], Any] = {}
        self._count_events(UNKNOWN_CONNECTOR, "invalid", 0)

    # ------------------------------------------------------------------ exposition

    def render(self, accept_header: str | None) -> tuple[bytes, str]:
        encoder, content_type = choose_encoder(accept_header or "")
        return encoder(self.registry), content_type

    # ------------------------------------------------------------------ connectors

    def load_connectors(self, db: Database) -> None:
        try:
            with db.read() as session:
                self.connectors_known(session.scalars(select(ConnectorType.id)))
        except DBAPIError as exc:  # not fatal: labels read "unknown" until the next scrape
            log.warning("metrics: could not read the connector types: %s", str(exc).splitlines()[0])

    def connectors_known(self, connector_ids: Iterable[str]) -> None:
        for connector in connector_ids:
            if connector not in self._known_connectors:
                self._known_connectors.add(connector)
                # Series present at 0 from the start: increase() cannot see a series' first count.
                for outcome in OUTCOMES:
                    self._count_events(connector, outcome, 0)

    def _connector_label(self, connector: Any) -> str:
        if type(connector) is str and connector in self._known_connectors:
            return connector
        return UNKNOWN_CONNECTOR

    def _count_events(self, connector_label: str, outcome: str, count: int = 1) -> None:
        key = (connector_label, outcome)
        child = self._event_children.get(key)
        if child is None:
            child = self._event_children[key] = self._events.labels(connector_label, outcome)
        child.inc(count)

    # ------------------------------------------------------------------ events

    def count_single_event(self, scope: dict, connector: str, outcome: str) -> None:
        """POST /api/events, once the service has answered."""
        scope[_EVENT_COUNTED] = True
        self._count_events(self._connector_label(connector), outcome)

    def count_refused_single_event(self, scope: dict, body: Any) -> None:
        """A 422 of POST /api/events before the service saw the event (a missing field, bad JSON)."""
        if scope.get(_EVENT_COUNTED) or (scope.get("method"), self.route_template(scope)) != SINGLE_EVENT_ROUTE:
            return
        connector = body.get("connector") if type(body) is dict else None
        self._count_events(self._connector_label(connector), "invalid")

    def count_batch(self, items: Sequence[Any], results: Sequence[dict]) -> None:
        """POST /api/events/batch: `results[i]["status"]` is what became of `items[i]`."""
        connectors = [item.get("connector") if type(item) is dict else None for item in items]
        tally = Tally(zip([c if type(c) is str else None for c in connectors], [r["status"] for r in results]))
        labelled: Tally[tuple[str, str]] = Tally()
        for (connector, outcome), count in tally.items():
            labelled[(self._connector_label(connector), outcome)] += count
        for (connector_label, outcome), count in labelled.items():
            self._count_events(connector_label, outcome, count)

    # ------------------------------------------------------------------ database

    def count_database_error(self, exc: BaseException) -> None:
        self._database_errors.labels("timeout" if is_query_timeout(exc) else "other").inc()

    # ------------------------------------------------------------------ requests

    def learn_routes(self, app_routes: Sequence[Any], included: dict[str, Sequence[Any]]) -> None:
        """Route templates for labels. Recent FastAPI versions put the route object of the router
        itself in the request scope, without the prefix it was included with; mounted apps (the
        UI's static files) leave only their app there. `included`: prefix -> routers."""
        for prefix, routers in included.items():
            for router in routers:
                for route in router.routes:
                    if getattr(route, "path_format", None):
                        self._route_templates[id(route)] = prefix + route.path_format
        for route in app_routes:
            if isinstance(route, Mount):
                self._route_templates[id(route.app)] = route.path_format

    def route_template(self, scope: dict) -> str:
        route = scope.get("route")
        if route is None:
            return self._route_templates.get(id(scope.get("endpoint")), UNMATCHED_ROUTE)
        return self._route_templates.get(id(route)) or getattr(route, "path_format", None) or UNMATCHED_ROUTE

    def observe_request(self, scope: dict, status: int, seconds: float) -> None:
        method = scope.get("method", "")
        if method not in HTTP_METHODS:
            method = OTHER_METHOD
        key = (method, self.route_template(scope), status)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self._request_seconds.labels(key[0], key[1], str(status))
        child.observe(seconds)


class RequestMetrics:
    """Pure ASGI middleware: times every HTTP request and counts its answer (see Metrics)."""

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_noting_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        except Exception:
            status = status or 500  # what Starlette's ServerErrorMiddleware, outside us, answers
            raise
        finally:
            # status 0: the client left before any answer (cancelled); nothing was answered.
            if status:
                self.metrics.observe_request(scope, status, time.perf_counter() - started)


class IntegrationSyncCollector:
    """Per-integration sync gauges, read from the database at each scrape. Labels are ids, the
    connector type and the tenant: never names, configuration, errors' text or secrets."""

    LABELS = ("integration_id", "connector", "tenant")

    def __init__(self, db: Database, sync_interval: float, metrics: Metrics):
        self._db = db
        self._sync_interval = sync_interval
        self._metrics = metrics

    def _families(self) -> dict[str, GaugeMetricFamily]:
        return {
            "age": GaugeMetricFamily(
                "painchain_integration_sync_age_seconds",
                "Seconds since the integration's source was last synced or checked successfully "
                "(since it was created, if never)", labels=self.LABELS),
            "interval": GaugeMetricFamily(
                "painchain_integration_sync_interval_seconds",
                "How often the orchestrator checks the integration's source (POLLING_INTERVAL)", labels=self.LABELS),
            "failing": GaugeMetricFamily(
                "painchain_integration_failing",
                "1 when the integration's last sync attempt ended in an error, else 0", labels=self.LABELS),
            "last_error": GaugeMetricFamily(
                "painchain_integration_last_error_timestamp_seconds",
                "When the integration's last sync error happened (Unix time; absent if never)", labels=self.LABELS),
            "up": GaugeMetricFamily(
                "painchain_integration_metrics_up",
                "1 when this scrape could read the integrations' sync status from the database, else 0"),
        }

    def describe(self):
        return list(self._families().values())

    def collect(self):
        families = self._families()
        try:
            rows, connector_ids = self._read()
        except DBAPIError as exc:
            self._metrics.count_database_error(exc)
            log.warning("metrics: could not read the integrations' sync status: %s", str(exc).splitlines()[0])
            families["up"].add_metric([], 0)
            return [families["up"]]
        self._metrics.connectors_known(connector_ids)
        now = time.time()
        for row in rows:
            labels = [row.id, row.type, row.tenant_id or ""]
            looked_at = max((t for t in (row.last_success_at, row.last_checked_at) if t is not None),
                            default=row.created_at)
            families["age"].add_metric(labels, max(0.0, now - looked_at.timestamp()))
            families["interval"].add_metric(labels, self._sync_interval)
            # As the UI says "failing": an error after the last success (or with none yet).
            failing = row.last_error_at is not None and (
                row.last_success_at is None or row.last_error_at > row.last_success_at)
            families["failing"].add_metric(labels, 1 if failing else 0)
            if row.last_error_at is not None:
                families["last_error"].add_metric(labels, row.last_error_at.timestamp())
        families["up"].add_metric([], 1)
        return list(families.values())

    def _read(self):
        query = (
            select(Integration.id, Integration.type, Integration.tenant_id, Integration.created_at,
                   IntegrationSync.last_success_at, IntegrationSync.last_checked_at, IntegrationSync.last_error_at)
            .outerjoin(IntegrationSync, IntegrationSync.integration_id == Integration.id)
            .order_by(Integration.id)
        )
        with self._db.read() as session:
            return session.execute(query).all(), session.scalars(select(ConnectorType.id)).all()
