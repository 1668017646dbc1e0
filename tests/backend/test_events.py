import datetime as dt
import random
import time

import pytest

from tests.conftest import create_integration, event_body, register_type


def _fields(response):
    return {tuple(e["loc"]) for e in response.json()["detail"]}


def test_post_event_then_duplicate_is_409(api, integration):
    body = event_body(integration, 1, tags=["deploy", "prod"])
    created = api.post("/events", json=body)
    assert created.status_code == 201, created.text
    event = created.json()
    assert event["title"] == "Commit 1" and event["externalId"] == "commit-1"
    assert event["timestamp"] == "2026-01-01T00:00:01.000Z"
    # event tags merged with the integration's tags, without repeats
    assert event["tags"] == ["prod", "deploy"]
    assert event["data"] == body["data"]
    duplicate = api.post("/events", json={**body, "title": "changed title"})
    assert duplicate.status_code == 409
    assert duplicate.json()["existingId"] == event["id"]
    assert api.get(f"/events/{event['id']}").json()["title"] == "Commit 1"


@pytest.mark.parametrize("missing", ["title", "connector", "project", "timestamp", "externalId", "integrationId"])
def test_each_required_field_is_named_when_missing(api, integration, missing):
    body = event_body(integration)
    del body[missing]
    response = api.post("/events", json=body)
    assert response.status_code == 422
    assert ("body", missing) in _fields(response)


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"timestamp": 1700000000}, "timestamp"),
        ({"timestamp": "0001-01-01T00:00:00Z"}, "timestamp"),
        ({"title": ""}, "title"),
        ({"title": "x" * 501}, "title"),
        ({"data": ["not", "an", "object"]}, "data"),
        ({"tags": "prod"}, "tags"),
        ({"tags": [""]}, "tags"),
        ({"externalId": "   "}, "externalId"),
    ],
)
def test_invalid_fields_are_named(api, integration, overrides, field):
    response = api.post("/events", json=event_body(integration, **overrides))
    assert response.status_code == 422, response.text
    assert any(loc[:2] == ("body", field) for loc in _fields(response)), response.text


def test_connector_must_match_integration_type(api, integration):
    response = api.post("/events", json=event_body(integration, connector="gitlab"))
    assert response.status_code == 422
    assert ("body", "connector") in _fields(response)


def test_unknown_integration_is_404_and_nothing_stored(api, integration):
    response = api.post("/events", json=event_body(integration, integrationId="nope"))
    assert response.status_code == 404
    assert "nope" in response.json()["detail"]


def test_oversized_data_is_rejected(api, integration):
    response = api.post("/events", json=event_body(integration, data={"blob": "x" * 70_000}))
    assert response.status_code == 422
    assert ("body", "data") in _fields(response)


def test_timestamp_offsets_are_normalised_to_utc(api, integration):
    created = api.post("/events", json=event_body(integration, 5, timestamp="2026-01-01T02:00:00+02:00"))
    assert created.json()["timestamp"] == "2026-01-01T00:00:00.000Z"
    naive = api.post("/events", json=event_body(integration, 6, timestamp="2026-01-01T03:00:00"))
    assert naive.json()["timestamp"] == "2026-01-01T03:00:00.000Z"


def test_batch_answers_per_item(api, integration):
    items = [event_body(integration, n) for n in range(5)]
    items.append(event_body(integration, 2))  # duplicate inside the batch
    items.append({**event_body(integration, 9), "timestamp": "nope"})
    items.append(event_body(integration, 10, integrationId="unknown"))
    items.append(event_body(integration, 11, connector="other"))
    response = api.post("/events/batch", json={"events": items})
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["created"], result["duplicates"], result["invalid"]) == (5, 1, 3)
    statuses = [r["status"] for r in result["results"]]
    assert statuses == ["created"] * 5 + ["duplicate", "invalid", "invalid", "invalid"]
    assert [r["index"] for r in result["results"]] == list(range(9))
    assert result["results"][6]["errors"][0]["loc"] == ["body", "timestamp"]
    assert result["results"][7]["errors"][0]["loc"] == ["body", "integrationId"]
    assert result["results"][8]["errors"][0]["loc"] == ["body", "connector"]
    ids = [r["id"] for r in result["results"][:5]]
    assert len(set(ids)) == 5
    again = api.post("/events/batch", json={"events": items[:5]}).json()
    assert (again["created"], again["duplicates"]) == (0, 5)
    stored = api.get("/events", params={"integrationId": integration["id"], "limit": 100}).json()["events"]
    assert sorted(e["externalId"] for e in stored) == [f"commit-{n}" for n in range(5)]


def test_batch_limits(api, integration):
    too_many = api.post("/events/batch", json={"events": [event_body(integration, n) for n in range(1001)]})
    assert too_many.status_code == 422
    assert ("body", "events") in _fields(too_many)
    assert api.post("/events/batch", json={"events": "nope"}).status_code == 422
    assert api.post("/events/batch", json={"events": []}).json()["created"] == 0


def test_filters(api):
    type_a, type_b = register_type(api), register_type(api)
    a = create_integration(api, type_a, tags='["prod"]')
    b = create_integration(api, type_b, tags='["staging"]')
    events = [
        event_body(a, 1, project="org/api", data={"sha": "abc123", "author": "alice"}, tags=["deploy"]),
        event_body(a, 2, project="org/web", title="Release v1.2"),
        event_body(b, 3, project="org/api", data={"message": "Fix Login bug"}),
        event_body(b, 4, project="org/api", timestamp="2026-02-01T00:00:00Z"),
    ]
    assert api.post("/events/batch", json={"events": events}).json()["created"] == 4
    scope = {"integrationId": [a["id"], b["id"]]}

    def ids(**params):
        page = api.get("/events", params={**scope, **params}).json()
        return [e["externalId"] for e in page["events"]]

    assert ids() == ["commit-4", "commit-3", "commit-2", "commit-1"]  # newest first
    assert ids(connector=type_a) == ["commit-2", "commit-1"]
    assert ids(connector=f"{type_a},{type_b}") == ["commit-4", "commit-3", "commit-2", "commit-1"]
    assert ids(project="org/api") == ["commit-4", "commit-3", "commit-1"]
    assert ids(integrationId=b["id"]) == ["commit-4", "commit-3"]
    assert ids(tags="prod") == ["commit-2", "commit-1"]
    assert ids(tags=["prod", "deploy"]) == ["commit-1"]
    assert ids(tags="staging") == ["commit-4", "commit-3"]
    assert ids(since="2026-01-01T00:00:02Z", until="2026-01-31T00:00:00Z") == ["commit-3", "commit-2"]
    assert ids(q="ABC12") == ["commit-1"]  # data value, case-insensitive
    assert ids(q="login") == ["commit-3"]
    assert ids(q="release v1") == ["commit-2"]  # title
    assert ids(q="100%") == []  # LIKE wildcards are literal


@pytest.mark.parametrize(
    "params, field",
    [
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"since": "nope"}, "since"),
        ({"until": "2026-13-01"}, "until"),
        ({"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until"),
        ({"cursor": "garbage!"}, "cursor"),
        ({"receivedSince": "yesterday"}, "receivedSince"),
    ],
)
def test_bad_query_parameters_are_named(api, params, field):
    response = api.get("/events", params=params)
    assert response.status_code == 422, response.text
    assert ("query", field) in _fields(response)


def test_received_since_finds_late_arrivals_whatever_their_timestamp(api, integration):
    first = api.post("/events", json=event_body(integration, 30, timestamp="2026-01-01T12:00:00Z")).json()
    time.sleep(0.01)
    # arrives later, but happened earlier: a commit pushed hours after it was authored
    late = api.post("/events", json=event_body(integration, 31, timestamp="2026-01-01T09:00:00Z")).json()
    assert late["receivedAt"] > first["receivedAt"]
    page = api.get("/events", params={"receivedSince": late["receivedAt"], "since": "2026-01-01T00:00:00Z"}).json()
    assert [e["id"] for e in page["events"]] == [late["id"]]
    both = api.get("/events", params={"receivedSince": first["receivedAt"]}).json()
    assert [e["id"] for e in both["events"]] == [first["id"], late["id"]]  # still newest first by timestamp


def test_cursor_pagination_returns_every_event_exactly_once(api):
    type_id = register_type(api)
    integ = create_integration(api, type_id)
    rng = random.Random(7)
    # Many events share a timestamp: the (timestamp, id) keyset must still not skip or repeat.
    base = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
    items = [
        event_body(integ, n, timestamp=(base + dt.timedelta(seconds=rng.randint(0, 20))).isoformat())
        for n in range(437)
    ]
    for start in range(0, len(items), 200):
        assert api.post("/events/batch", json={"events": items[start:start + 200]}).json()["invalid"] == 0
    seen, cursor, pages = [], None, 0
    while True:
        params = {"integrationId": integ["id"], "limit": 50}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/events", params=params).json()
        seen.extend(page["events"])
        pages += 1
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert pages == 9
    assert len(seen) == 437
    assert len({e["id"] for e in seen}) == 437
    keys = [(e["timestamp"], e["id"]) for e in seen]
    assert keys == sorted(keys, reverse=True)


def test_get_event_404(api):
    assert api.get("/events/999999999").status_code == 404
    assert api.get("/events/not-a-number").status_code == 404


def test_histogram_counts_match_the_events(api):
    type_a, type_b = register_type(api), register_type(api)
    a, b = create_integration(api, type_a), create_integration(api, type_b)
    start = dt.datetime(2026, 4, 1, tzinfo=dt.timezone.utc)
    rng = random.Random(3)
    items, expected = [], {}
    for n in range(300):
        integ = a if n % 3 else b
        at = start + dt.timedelta(minutes=rng.randint(0, 24 * 60 - 1))
        items.append(event_body(integ, n, timestamp=at.isoformat().replace("+00:00", "Z")))
        hour = at.replace(minute=0, second=0).isoformat().replace("+00:00", ".000Z")
        expected.setdefault(hour, {}).setdefault(integ["type"], 0)
        expected[hour][integ["type"]] += 1
    api.post("/events/batch", json={"events": items})
    hist = api.get("/events/histogram", params={
        "integrationId": [a["id"], b["id"]], "since": "2026-04-01T00:00:00Z",
        "until": "2026-04-02T00:00:00Z", "interval": 3600}).json()
    assert hist["bucketSeconds"] == 3600
    assert len(hist["buckets"]) == 24
    assert hist["total"] == 300
    assert sorted(hist["connectors"]) == sorted([type_a, type_b])
    got = {b["start"]: b["counts"] for b in hist["buckets"] if b["total"]}
    assert got == expected
    # automatic bucket size: a round size giving at most `buckets` buckets
    auto = api.get("/events/histogram", params={
        "integrationId": a["id"], "since": "2026-04-01T00:00:00Z", "until": "2026-04-02T00:00:00Z",
        "buckets": 10}).json()
    assert auto["bucketSeconds"] == 10800 and len(auto["buckets"]) == 8
    assert auto["total"] == sum(1 for n in range(300) if n % 3)
    bad = api.get("/events/histogram", params={"since": "2026-04-02T00:00:00Z", "until": "2026-04-01T00:00:00Z"})
    assert bad.status_code == 422
    too_fine = api.get("/events/histogram", params={
        "since": "2026-01-01T00:00:00Z", "until": "2026-04-01T00:00:00Z", "interval": 1})
    assert too_fine.status_code == 422 and ("query", "interval") in _fields(too_fine)


def test_deleting_an_integration_deletes_its_events(api):
    type_id = register_type(api)
    integ = create_integration(api, type_id)
    created = api.post("/events", json=event_body(integ, 1)).json()
    api.delete(f"/integrations/{integ['id']}")
    assert api.get(f"/events/{created['id']}").status_code == 404
    assert api.get("/events", params={"integrationId": integ["id"]}).json()["events"] == []


def test_request_body_size_is_limited(api, integration):
    huge = b'{"events": [' + b'"' + b"x" * (17 * 1024 * 1024) + b'"]}'
    response = api.post("/events/batch", data=huge, headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_histogram_from_hourly_counts_equals_counting_events(backend, api):
    """The hourly rollup (used for long ranges) and a scan of the events give identical answers,
    for aligned and unaligned ranges, with and without filters."""
    from painchain_pipelines.backend.database import Database
    from painchain_pipelines.backend.services.events import EventFilter, histogram

    type_a, type_b = register_type(api), register_type(api)
    a = create_integration(api.with_headers(**{"x-tenant-id": "hist"}), type_a)
    b = create_integration(api, type_b)
    rng = random.Random(11)
    start = dt.datetime(2026, 5, 1, tzinfo=dt.timezone.utc)
    items = []
    for n in range(600):
        integ = a if n % 2 else b
        at = start + dt.timedelta(seconds=rng.randint(0, 5 * 24 * 3600))
        items.append(event_body(integ, n, timestamp=at.isoformat()))
    assert api.post("/events/batch", json={"events": items}).json()["created"] == 600
    # duplicates must not be counted twice
    assert api.post("/events/batch", json={"events": items[:100]}).json()["duplicates"] == 100
    db = Database(backend.settings.database_url)
    base_ms = int(start.timestamp() * 1000)
    for _ in range(25):
        since = base_ms + rng.randint(-3600_000, 4 * 24 * 3600_000)
        until = since + rng.randint(1, 3 * 24 * 3600_000)
        for filters in (
            EventFilter(integration_ids=[a["id"], b["id"]]),
            EventFilter(connectors=[type_a]),
            EventFilter(tenant_id="hist"),
        ):
            filters.since_ms, filters.until_ms = since, until
            for bucket in (3600, 7200, 86400):
                fast = histogram(db, filters, bucket_seconds=bucket)
                slow = histogram(db, filters, bucket_seconds=bucket, force_scan=True)
                assert fast == slow
    whole = EventFilter(integration_ids=[a["id"], b["id"]], since_ms=base_ms - 3600_000,
                        until_ms=base_ms + 6 * 24 * 3600_000)
    assert histogram(db, whole, bucket_seconds=86400)["total"] == 600
    db.dispose()


def test_nul_characters_are_refused_with_the_field_named(api, integration):
    """PostgreSQL cannot store NUL; every database refuses it the same way, never with a 500."""
    for field in ("title", "project", "externalId"):
        response = api.post("/events", json=event_body(integration, 1, **{field: "a\u0000b"}))
        assert response.status_code == 422, (field, response.text)
        assert ("body", field) in _fields(response)
    response = api.post("/events", json=event_body(integration, 2, data={"k": ["x\u0000"]}))
    assert response.status_code == 422 and ("body", "data", "k", 0) in _fields(response)
    # the text "\u0000" (backslash, u, zeros) is just text
    assert api.post("/events", json=event_body(integration, 3, title="fix \\u0000 parsing")).status_code == 201
    assert api.get("/events", params={"project": "a\u0000"}).status_code == 422
    assert api.get("/integrations/a%00b").status_code == 422
    bad_config = api.post("/integrations", json={"type": integration["type"], "config": {
        "name": "n", "tags": [], "token": "t\u0000", "repositories": "[]"}})
    assert bad_config.status_code == 422
    assert api.post("/integrations", json={"type": "x\u0000", "config": {}}).status_code == 422


def test_facets_count_projects_and_tags_of_the_newest_events(api):
    type_id = register_type(api)
    integ = create_integration(api, type_id, tags='["prod"]')
    items = [event_body(integ, n, project=f"org/p{n % 3}", tags=["deploy"] if n % 2 else []) for n in range(30)]
    api.post("/events/batch", json={"events": items})
    facets = api.get("/events/facets", params={"integrationId": integ["id"]}).json()
    assert facets["sample"] == 30
    assert facets["projects"] == [{"value": "org/p0", "count": 10}, {"value": "org/p1", "count": 10},
                                  {"value": "org/p2", "count": 10}]
    assert facets["tags"] == [{"value": "prod", "count": 30}, {"value": "deploy", "count": 15}]
    assert api.get("/events/facets", params={"since": "bad"}).status_code == 422
