"""No request can tie up the database: list filters are capped (422 naming the parameter), tag
filters plan in constant time, and a query that outlives its time budget is stopped by the
database and answered with a 503 that says how to narrow it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import create_engine, text

from painchain_pipelines.backend.config import BackendSettings, SettingsError
from tests.conftest import DATABASE_KINDS, create_integration, event_body, register_type


def _loc(response) -> set[tuple]:
    return {tuple(e["loc"]) for e in response.json()["detail"]}


@pytest.mark.parametrize("count", [21, 200, 2000])
def test_too_many_tags_is_a_422_naming_the_parameter(api, count):
    tags = ",".join(f"t{n}" for n in range(count))
    for path in ("/events", "/events/histogram"):
        response = api.get(path, params={"tags": tags})
        assert response.status_code == 422, response.text[:300]
        assert ("query", "tags") in _loc(response)
        assert "at most 20" in response.json()["detail"][0]["msg"]
    response = api.get("/events/facets", params={"integrationId": tags.replace("t", "i")})
    if count > 50:
        assert response.status_code == 422 and ("query", "integrationId") in _loc(response)


def test_other_list_filters_are_capped_at_50(api):
    for name in ("connector", "project", "integrationId"):
        assert api.get("/events", params={name: [f"v{n}" for n in range(50)]}).status_code == 200
        response = api.get("/events", params={name: [f"v{n}" for n in range(51)]})
        assert response.status_code == 422 and ("query", name) in _loc(response)
    # repeated and comma-separated values count together; repeats count once; and no more
    # parameters than values may be sent (the OpenAPI document's maxItems)
    assert api.get("/events", params={"tags": ["a,b"] * 5 + [f"t{n}" for n in range(15)]}).status_code == 200
    response = api.get("/events", params={"tags": ["a"] * 21})
    assert response.status_code == 422 and ("query", "tags") in _loc(response)
    response = api.get("/events", params={"tags": ["a,b"] + [f"t{n}" for n in range(19)]})
    assert response.status_code == 422 and ("query", "tags") in _loc(response)


def test_every_tag_must_match_up_to_the_cap(api):
    """The query form changes past three tags (the rarest three get their own EXISTS, the rest one
    per-row count): results stay exact for every number of tags, in any order, on every page."""
    integ = create_integration(api, register_type(api), tags="[]")
    all_tags = [f"tag{n}" for n in range(20)]
    # event n carries the first n % 21 of the tags
    events = [event_body(integ, n, tags=all_tags[: n % 21]) for n in range(84)]
    assert api.post("/events/batch", json={"events": events}).json()["created"] == 84
    for wanted in (1, 2, 3, 4, 5, 12, 19, 20):
        expected = sorted(n for n in range(84) if n % 21 >= wanted)
        for order in (all_tags[:wanted], list(reversed(all_tags[:wanted]))):
            params = {"integrationId": integ["id"], "tags": ",".join(order), "limit": 7}
            found, cursor = [], None
            while True:
                page = api.get("/events", params={**params, **({"cursor": cursor} if cursor else {})}).json()
                found += [int(e["externalId"].split("-")[1]) for e in page["events"]]
                cursor = page["nextCursor"]
                if not cursor:
                    break
            assert sorted(found) == expected, (wanted, found)
            histogram = api.get("/events/histogram", params={**params, "since": "2026-01-01T00:00:00Z",
                                                             "until": "2026-01-01T01:00:00Z"}).json()
            assert histogram["total"] == len(expected)
            facets = api.get("/events/facets", params={"integrationId": integ["id"]}).json()
            assert facets["sample"] == 84
    # a tag no event carries: nothing, whatever else is asked
    for tags in ("tag0,nosuch", "nosuch,tag0,tag1,tag2,tag3", ",".join(all_tags[:19] + ["nosuch"])):
        assert api.get("/events", params={"integrationId": integ["id"], "tags": tags}).json()["events"] == []
        histogram = api.get("/events/histogram", params={"integrationId": integ["id"], "tags": tags,
                                                         "since": "2026-01-01T00:00:00Z",
                                                         "until": "2026-01-01T01:00:00Z"}).json()
        assert histogram["total"] == 0


def _fill(db, integration: dict, count: int) -> None:
    """`count` events straight into the database (the API would take minutes)."""
    columns = ("tenant_id, integration_id, connector, project, title, external_id, ts, received_at, data, "
               "tags, search_text")
    if db.is_sqlite:
        sql = (f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count) "
               f"INSERT INTO events ({columns}) SELECT NULL, :iid, :connector, 'p', 'title ' || i, 'x' || i, "
               f"1767225600000 + i, 1767225600000, '{{}}', '[]', "
               f"replace(hex(zeroblob(150)), '00', 'ab') || i FROM n")
    else:
        sql = (f"INSERT INTO events ({columns}) SELECT NULL, :iid, :connector, 'p', 'title ' || i, 'x' || i, "
               f"1767225600000 + i, 1767225600000, '{{}}'::jsonb, '[]'::jsonb, repeat('ab', 150) || i "
               f"FROM generate_series(1, :count) AS i")
    with db.write_connection() as conn:
        conn.execute(text(sql), {"count": count, "iid": integration["id"], "connector": integration["type"]})


@pytest.mark.parametrize("kind", DATABASE_KINDS)
def test_a_query_past_its_time_budget_is_stopped_and_answered_503(kind, make_backend):
    # Test-only: a 10 ms budget for reads, and a table that no search can scan that fast.
    server = make_backend(kind, api_token=None, secret_key=None, query_timeout=0.01)
    api = server.client()
    integ = create_integration(api, register_type(api))
    db = server.app_db()
    assert db.read_timeout == 0.01
    _fill(db, integ, 300_000)

    # A term shorter than a trigram cannot use the search index: every event is read.
    response = api.get("/events", params={"q": "zq"})
    assert response.status_code == 503, response.text
    detail = response.json()["detail"]
    assert "0.01 s" in detail and "narrow" in detail and "since/until" in detail
    assert response.headers["retry-after"]
    histogram = api.get("/events/histogram", params={"q": "zq", "since": "2026-01-01T00:00:00Z",
                                                     "until": "2026-01-05T00:00:00Z", "interval": 3600})
    assert histogram.status_code == 503, histogram.text

    if kind != "sqlite":
        # stopped by the server itself: nothing of it is still running
        engine = create_engine(db.url)
        with engine.connect() as conn:
            running = conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state = 'active' AND query LIKE '%search_text LIKE%' AND pid <> pg_backend_pid()")).scalar()
        engine.dispose()
        assert running == 0
    # the connections stay usable, and writes are not held to the read budget
    assert api.get("/health").status_code == 200
    more = [event_body(integ, n, externalId=f"after-{n}") for n in range(200)]
    assert api.post("/events/batch", json={"events": more}).json()["created"] == 200
    assert api.get("/events", params={"q": "zq"}).status_code == 503


@pytest.mark.parametrize("name", ["PAINCHAIN_QUERY_TIMEOUT_SECONDS", "PAINCHAIN_WRITE_TIMEOUT_SECONDS"])
@pytest.mark.parametrize("raw", ["-1", "abc", "inf", "nan", "-inf", "1e9", "2147484"])
def test_a_time_budget_the_database_cannot_take_is_a_clear_error(monkeypatch, name, raw):
    # inf used to pass and fail every request (500), 1e9 failed every write on PostgreSQL.
    monkeypatch.setenv(name, raw)
    with pytest.raises(SettingsError, match=f"{name}='{raw}' must be a number of seconds from 0 to 2,147,483"):
        BackendSettings.from_env()


def test_time_budgets_at_their_bounds_are_accepted(monkeypatch):
    monkeypatch.setenv("PAINCHAIN_QUERY_TIMEOUT_SECONDS", "0")
    monkeypatch.setenv("PAINCHAIN_WRITE_TIMEOUT_SECONDS", "2147483")
    settings = BackendSettings.from_env()
    assert (settings.query_timeout, settings.write_timeout) == (0, 2_147_483)


@pytest.mark.postgres
def test_the_largest_write_budget_works_on_postgresql(make_backend):
    server = make_backend("postgresql", api_token=None, secret_key=None, write_timeout=2_147_483)
    api = server.client()
    integ = create_integration(api, register_type(api))
    assert api.post("/events", json=event_body(integ, 1)).status_code == 201
    assert api.post("/events/batch", json={"events": [event_body(integ, 2)]}).json()["created"] == 1


def test_the_backend_refuses_to_start_with_a_bad_time_budget(tmp_path):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PAINCHAIN_")}
    environment.update(PAINCHAIN_WRITE_TIMEOUT_SECONDS="inf", PAINCHAIN_DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}")
    out = subprocess.run([sys.executable, "-m", "painchain_pipelines", "backend", "--port", "1"], env=environment,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "painchain: error: environment variable PAINCHAIN_WRITE_TIMEOUT_SECONDS='inf' must be a number" in out.stderr
    assert "Traceback" not in out.stderr
