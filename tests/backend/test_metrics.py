"""GET /metrics (docs/operations.md): counters that move with what the API does, labels of
bounded cardinality, per-integration sync gauges, and the same token and web-page rules as /api."""

import datetime as dt
import time
import uuid

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text, update

from painchain_pipelines.backend.auth import hash_token
from painchain_pipelines.backend.models import ApiToken, IntegrationSync
from tests.backend.test_query_limits import _fill as fill_events
from tests.conftest import create_integration, event_body, register_type

SERVICE_TOKEN = "pc_metrics_service_token_0123456789"


def scrape(server, **headers) -> list:
    response = requests.get(server.url + "/metrics", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return [s for family in text_string_to_metric_families(response.text) for s in family.samples]


def _matching(samples, name: str, labels: dict) -> list[float]:
    return [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]


def value(samples, name: str, **labels) -> float:
    """The value of the one sample of that name with those labels (it must be there)."""
    found = _matching(samples, name, labels)
    assert len(found) == 1, (name, labels, found)
    return found[0]


def count(samples, name: str, **labels) -> float:
    """A counter's (or histogram's) value; 0 when absent: it has not moved yet."""
    found = _matching(samples, name, labels)
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else 0.0


def label_values(samples, name: str, label: str) -> set[str]:
    return {s.labels[label] for s in samples if s.name == name}


def delta(before, after, name: str, **labels) -> float:
    return count(after, name, **labels) - count(before, name, **labels)


EVENTS = "painchain_events_received_total"
ANSWERS = "painchain_http_request_duration_seconds_count"


def test_event_counters_move_per_connector_and_outcome(backend, api, integration):
    connector = integration["type"]
    before = scrape(backend)
    assert api.post("/events", json=event_body(integration, 1)).status_code == 201
    assert api.post("/events", json=event_body(integration, 1)).status_code == 409
    assert api.post("/events", json=event_body(integration, 2, title="")).status_code == 422  # refused by the model
    assert api.post("/events", json=event_body(integration, 3, data={"x": "y" * 70_000})).status_code == 422
    assert api.post("/events", json=event_body(integration, 4, integrationId="nope")).status_code == 404
    bad_json = api.post("/events", data=b'{"connector": ', headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 422
    batch = api.post("/events/batch", json={"events": [
        event_body(integration, 10), event_body(integration, 11), event_body(integration, 12),
        event_body(integration, 1),  # stored above
        event_body(integration, 13, timestamp="yesterday"),
        "not an event",
    ]}).json()
    assert (batch["created"], batch["duplicates"], batch["invalid"]) == (3, 1, 2)
    after = scrape(backend)

    assert delta(before, after, EVENTS, connector=connector, outcome="created") == 4
    assert delta(before, after, EVENTS, connector=connector, outcome="duplicate") == 2
    assert delta(before, after, EVENTS, connector=connector, outcome="invalid") == 4
    assert delta(before, after, EVENTS, connector="unknown", outcome="invalid") == 2  # bad JSON, a string item
    # one POST /events per event, whatever became of it, timed under its route
    posted = sum(delta(before, after, ANSWERS, method="POST", route="/api/events", status=s)
                 for s in ("201", "409", "422", "404"))
    assert posted == 6
    assert delta(before, after, ANSWERS, method="POST", route="/api/events", status="422") == 3


def test_a_registered_connector_is_counted_from_zero(backend, api):
    # present before its first event: increase() cannot see the first count of a new series
    type_id = register_type(api)
    samples = scrape(backend)
    assert [value(samples, EVENTS, connector=type_id, outcome=o) for o in ("created", "duplicate", "invalid")] == [0] * 3
    assert value(samples, EVENTS, connector="unknown", outcome="invalid") >= 0


def test_junk_connectors_share_one_label_value(backend, api, integration):
    before = scrape(backend)
    junk = [f"junk-{uuid.uuid4().hex}" for _ in range(50)]
    for name in junk[:25]:
        assert api.post("/events", json=event_body(integration, 1, connector=name)).status_code == 422
    batch = api.post("/events/batch", json={"events": [event_body(integration, n, connector=name)
                                                       for n, name in enumerate(junk[25:])]}).json()
    assert batch["invalid"] == 25
    after = scrape(backend)
    new_labels = label_values(after, EVENTS, "connector") - label_values(before, EVENTS, "connector")
    assert new_labels <= {"unknown"}
    assert delta(before, after, EVENTS, connector="unknown", outcome="invalid") == 50
    text_after = requests.get(backend.url + "/metrics", timeout=30).text
    assert not any(name in text_after for name in junk)


def test_requests_are_timed_by_route_template_never_the_raw_path(backend, api):
    before = scrape(backend)
    for event_id in ("123456789", "987654321", "not-a-number"):
        assert api.get(f"/events/{event_id}").status_code == 404
    assert requests.get(backend.url + "/no/such/page-4242", timeout=10).status_code == 404
    assert api.get("/events", params={"limit": 1}).status_code == 200
    after = scrape(backend)

    route = "/api/events/{event_id}"
    histogram = "painchain_http_request_duration_seconds"
    assert delta(before, after, ANSWERS, method="GET", route=route, status="404") == 3
    assert delta(before, after, histogram + "_bucket", method="GET", route=route, status="404", le="+Inf") == 3
    assert delta(before, after, histogram + "_sum", method="GET", route=route, status="404") > 0
    assert delta(before, after, ANSWERS, method="GET", route="unmatched", status="404") == 1
    assert delta(before, after, ANSWERS, method="GET", route="/api/events", status="200") == 1
    routes = label_values(after, histogram + "_count", "route")
    assert not any(raw in r for r in routes for raw in ("123456789", "not-a-number", "page-4242"))


def test_integration_sync_gauges(backend, api):
    type_id = register_type(api)
    healthy = create_integration(api, type_id)
    failing = create_integration(api, type_id)
    never = create_integration(api, type_id)
    quiet = create_integration(api, type_id)
    stale = create_integration(api, type_id)
    tenant = create_integration(api.with_headers(**{"x-tenant-id": "acme"}), type_id)
    for integ in (healthy, failing, quiet, stale, tenant):
        assert api.put(f"/integrations/{integ['id']}/sync", json={"status": "success"}).status_code == 200
    error = api.put(f"/integrations/{failing['id']}/sync", json={"status": "error", "error": "HTTP 401 Bad credentials"})
    assert error.status_code == 200
    an_hour_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    with backend.app_db().write() as session:
        session.execute(update(IntegrationSync).where(IntegrationSync.integration_id.in_([quiet["id"], stale["id"]]))
                        .values(last_success_at=an_hour_ago, last_checked_at=an_hour_ago))
    # a change check that found nothing new counts: quiet integrations are not stale
    assert api.put(f"/integrations/types/{type_id}/orchestrator", json={"checked": [quiet["id"]]}).status_code == 200

    samples = scrape(backend)
    now = time.time()

    def gauge(name, integ):
        return value(samples, name, integration_id=integ["id"], connector=type_id)

    age = "painchain_integration_sync_age_seconds"
    assert 0 <= gauge(age, healthy) < 60 and 0 <= gauge(age, quiet) < 60
    assert 3600 - 5 < gauge(age, stale) < 3600 + 60
    assert 0 <= gauge(age, never) < 120  # since it was created
    assert {gauge("painchain_integration_failing", i) for i in (healthy, quiet, stale, never, tenant)} == {0}
    assert gauge("painchain_integration_failing", failing) == 1
    assert abs(gauge("painchain_integration_last_error_timestamp_seconds", failing) - now) < 60
    assert not [s for s in samples if s.name == "painchain_integration_last_error_timestamp_seconds"
                and s.labels["integration_id"] == healthy["id"]]
    assert gauge("painchain_integration_sync_interval_seconds", stale) == backend.settings.sync_interval
    assert value(samples, age, integration_id=tenant["id"], tenant="acme") > 0
    assert [s.labels["tenant"] for s in samples if s.name == age and s.labels["integration_id"] == healthy["id"]] == [""]
    assert value(samples, "painchain_integration_metrics_up") == 1
    # a success after the error: no longer failing
    api.put(f"/integrations/{failing['id']}/sync", json={"status": "success"})
    assert value(scrape(backend), "painchain_integration_failing", integration_id=failing["id"]) == 0


def test_no_secret_or_user_text_in_metrics(backend, api):
    secret = "s3cret-" + uuid.uuid4().hex
    name = "Payments " + uuid.uuid4().hex[:8]
    error = "could not reach " + uuid.uuid4().hex
    integ = create_integration(api, register_type(api), token=secret, name=name)
    api.put(f"/integrations/{integ['id']}/sync", json={"status": "error", "error": error})
    api.post("/events", json=event_body(integ, 1, title="title " + secret))
    body = requests.get(backend.url + "/metrics", timeout=30).text
    assert integ["id"] in body  # the integration is there...
    assert secret not in body and name not in body and error not in body  # ...and nothing it holds


@pytest.fixture(scope="module")
def secured(make_backend):
    return make_backend("sqlite", api_token=SERVICE_TOKEN, sync_interval=90.0)


def test_metrics_are_for_admins_only(secured):
    url = secured.url + "/metrics"
    missing = requests.get(url, timeout=10)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert requests.get(url, headers={"Authorization": "Bearer nope"}, timeout=10).status_code == 401
    tenant_token = "pct_metrics_" + uuid.uuid4().hex
    with secured.app_db().write() as session:
        session.add(ApiToken(name="t", token_sha256=hash_token(tenant_token), tenant_id="acme"))
    tenant = requests.get(url, headers={"Authorization": f"Bearer {tenant_token}"}, timeout=10)
    assert tenant.status_code == 403 and "service token" in tenant.json()["detail"]
    # the tenant token itself works on the API: the 403 is about metrics
    tenant_api = requests.get(secured.api_url + "/integrations",
                              headers={"Authorization": f"Bearer {tenant_token}"}, timeout=10)
    assert tenant_api.status_code == 200
    service = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
    samples = scrape(secured, **service)
    assert count(samples, ANSWERS, method="GET", route="/metrics", status="401") == 2
    assert count(samples, ANSWERS, method="GET", route="/metrics", status="403") == 1
    assert SERVICE_TOKEN not in requests.get(url, headers=service, timeout=10).text
    # OpenMetrics for whoever asks for it
    openmetrics = requests.get(url, headers={**service, "Accept": "application/openmetrics-text; version=1.0.0"},
                               timeout=10)
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.rstrip().endswith("# EOF")


def test_sync_interval_comes_from_the_settings(secured):
    service = secured.client(Authorization=f"Bearer {SERVICE_TOKEN}")
    integ = create_integration(service, register_type(service))
    samples = scrape(secured, Authorization=f"Bearer {SERVICE_TOKEN}")
    assert value(samples, "painchain_integration_sync_interval_seconds", integration_id=integ["id"]) == 90.0


def test_web_pages_cannot_read_metrics(backend):
    url = backend.url + "/metrics"
    assert requests.get(url, timeout=10).status_code == 200  # open mode: this machine's programs may
    assert requests.get(url, headers={"Origin": backend.url}, timeout=10).status_code == 200
    for origin in ("http://attacker.example", "null", "http://127.0.0.1:1"):
        refused = requests.get(url, headers={"Origin": origin}, timeout=10)
        assert refused.status_code == 403 and "painchain" not in refused.text, origin
    rebound = requests.get(url, headers={"Host": "rebind.attacker.example"}, timeout=10)
    assert rebound.status_code == 400 and "painchain_" not in rebound.text
    assert requests.post(url, json={}, headers={"Origin": "http://attacker.example"}, timeout=10).status_code == 403
    assert requests.post(url, json={}, timeout=10).status_code == 405


def test_database_errors_are_counted_by_kind(make_backend):
    # SQLite's progress handler stops a statement once its budget is spent: with a budget of a
    # microsecond, any query that reads a few thousand rows is stopped, and small ones finish.
    server = make_backend("sqlite", api_token=None, secret_key=None, query_timeout=1e-6)
    api = server.client()
    integ = create_integration(api, register_type(api))
    fill_events(server.app_db(), integ, 20_000)  # in the first 20 s of 2026-01-01
    before = scrape(server)
    assert value(before, "painchain_database_errors_total", kind="timeout") == 0
    # minute buckets are counted from the events themselves: a scan of all 20,000
    histogram = api.get("/events/histogram", params={"since": "2026-01-01T00:00:00Z",
                                                     "until": "2026-01-01T01:00:00Z", "interval": 60})
    assert histogram.status_code == 503, histogram.text
    # a broken database: the events table is gone, so storing an event fails (500)
    with server.app_db().write_connection() as conn:
        conn.execute(text("DROP TABLE events"))
    assert api.post("/events", json=event_body(integ, 1)).status_code == 500
    after = scrape(server)
    assert delta(before, after, "painchain_database_errors_total", kind="timeout") == 1
    assert delta(before, after, "painchain_database_errors_total", kind="other") == 1
    assert delta(before, after, ANSWERS, method="GET", route="/api/events/histogram", status="503") == 1
    assert delta(before, after, ANSWERS, method="POST", route="/api/events", status="500") == 1
