"""Free-text search through the trigram index (migration 0005): the same answers as reading every
event, on both paths (ordered scan for frequent terms, index candidates for rare ones), kept in
step when events go, and built for events stored before the migration."""

import hashlib
import random

import pytest
from sqlalchemy import text

from painchain_pipelines.backend.database import Database
from painchain_pipelines.backend.migrate import head_revision, upgrade
from painchain_pipelines.backend.services import events as service
from tests.conftest import DATABASE_KINDS, create_integration, event_body, register_type

WORDS = ["deploy", "rollback", "hotfix", "release", "merge", "revert", "Ünïcode-ß", "50%_off", "a*b?[c]"]


def _sha(n: int) -> str:
    return hashlib.sha1(str(n).encode()).hexdigest()


def _post_world(api, integration, count: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    bodies = []
    for n in range(count):
        word = WORDS[n % len(WORDS)] if n % 3 else rng.choice(WORDS[:2])
        body = event_body(integration, n, title=f"{word} #{n}",
                          timestamp=f"2026-01-{1 + n % 28:02d}T{n % 24:02d}:{n % 60:02d}:00Z",
                          data={"sha": _sha(seed * 100_000 + n), "note": f"step {n}"})
        bodies.append(body)
    for start in range(0, count, 500):
        response = api.post("/events/batch", json={"events": bodies[start:start + 500]})
        assert response.status_code == 200, response.text
    return bodies


def _expected(bodies: list[dict], term: str) -> list[str]:
    """externalIds of the events containing `term`, newest first (what reading all would give)."""
    def searchable(b):
        return "\n".join([b["title"], b["project"], *map(str, b["data"].values())]).lower()

    hits = [b for b in bodies if term.lower() in searchable(b)]
    # ids grow with the posting order, which breaks timestamp ties like the API's (ts, id) order
    order = {b["externalId"]: i for i, b in enumerate(bodies)}
    hits.sort(key=lambda b: (b["timestamp"], order[b["externalId"]]), reverse=True)
    return [b["externalId"] for b in hits]


def _all_pages(api, params: dict, limit: int = 7) -> list[str]:
    seen, cursor = [], None
    while True:
        page = api.get("/events", params={**params, "limit": limit, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        body = page.json()
        seen.extend(e["externalId"] for e in body["events"])
        cursor = body["nextCursor"]
        if cursor is None:
            return seen


@pytest.fixture
def small_scan_window(monkeypatch):
    """A scan window and candidate cap small enough for a few hundred events to need all three
    paths (the backend runs in this process)."""
    monkeypatch.setattr(service, "TEXT_SCAN_ROWS", 20)
    monkeypatch.setattr(service, "TEXT_CANDIDATES", 40)


@pytest.mark.parametrize("kind", DATABASE_KINDS)
def test_every_path_answers_what_reading_every_event_answers(kind, make_backend, small_scan_window):
    server = make_backend(kind, api_token=None, secret_key=None)
    api = server.client()
    integration = create_integration(api, register_type(api))
    bodies = _post_world(api, integration, 400)
    terms = {
        "step": "in every event: found by the ordered scan",
        "deploy": "frequent",
        bodies[123]["data"]["sha"][5:17]: "a SHA substring: one event, from the index",
        "#12": "#12, #120-#129: a handful, from the index",
        "step 1": "step 1, 10-19, 100-199: more than the candidate cap, scanned throughout",
        "ünïcode-ß": "non-ASCII",
        "50%_off": "LIKE's wildcards taken literally",
        "a*b?[c]": "GLOB's wildcards taken literally",
        "zq": "shorter than a trigram: scanned",
        "nothing like this": "in no event",
    }
    for term, why in terms.items():
        expected = _expected(bodies, term)
        assert _all_pages(api, {"q": term, "integrationId": integration["id"]}) == expected, why
        assert _all_pages(api, {"q": term.upper(), "integrationId": integration["id"]}) == expected, why
        histogram = api.get("/events/histogram", params={
            "q": term, "integrationId": integration["id"], "since": "2026-01-01T00:00:00Z",
            "until": "2026-02-01T00:00:00Z", "interval": 86400}).json()
        assert histogram["total"] == len(expected), why
    # combined with a time range: the rare path applies the other filters to its candidates
    ranged = {"q": "#12", "since": "2026-01-05T00:00:00Z", "until": "2026-01-20T00:00:00Z",
              "integrationId": integration["id"]}
    expected = [x for x in _expected(bodies, "#12")
                if "2026-01-05" <= next(b["timestamp"] for b in bodies if b["externalId"] == x) < "2026-01-20"]
    assert expected and _all_pages(api, ranged, limit=2) == expected


@pytest.mark.parametrize("kind", DATABASE_KINDS)
def test_the_index_follows_deleted_events(kind, make_backend, small_scan_window):
    server = make_backend(kind, api_token=None, secret_key=None)
    api = server.client()
    type_id = register_type(api)
    kept, gone = create_integration(api, type_id), create_integration(api, type_id)
    _post_world(api, kept, 60, seed=1)
    gone_bodies = _post_world(api, gone, 60, seed=2)
    rare = gone_bodies[42]["data"]["sha"][3:15]
    assert [e["integrationId"] for e in api.get("/events", params={"q": rare}).json()["events"]] == [gone["id"]]

    assert api.delete(f"/integrations/{gone['id']}").status_code in (200, 204)
    assert api.get("/events", params={"q": rare}).json()["events"] == []
    db = server.app_db()
    with db.engine.connect() as conn:
        if db.is_sqlite:
            # FTS5 compares its index with the events table: raises if any entry is stale
            conn.execute(text("INSERT INTO events_search(events_search, rank) VALUES ('integrity-check', 1)"))
            indexed = conn.execute(text("SELECT count(*) FROM events_search WHERE search_text GLOB '*step*'")).scalar()
            assert indexed == conn.execute(text("SELECT count(*) FROM events")).scalar()


@pytest.mark.parametrize("kind", DATABASE_KINDS)
def test_upgrade_indexes_events_stored_before_it(kind, make_database_url):
    db = Database(make_database_url(kind))
    upgrade(db, "0004")
    with db.write_connection() as conn:
        conn.execute(text("INSERT INTO connector_types (id, display_name, description, color, logo, config_schema,"
                          " created_at, updated_at) VALUES ('github', 'GitHub', '', '', '', '{}', :t, :t)"),
                     {"t": "2026-12-01 10:00:00"})
        conn.execute(text("INSERT INTO integrations (id, tenant_id, type, name, config, created_at, updated_at)"
                          " VALUES ('old', NULL, 'github', 'old', '{}', :t, :t)"), {"t": "2026-12-01 10:00:00"})
        for n in range(50):
            conn.execute(text(
                "INSERT INTO events (tenant_id, integration_id, connector, project, title, external_id, ts,"
                " received_at, data, tags, search_text) VALUES (NULL, 'old', 'github', 'octo/old', :title, :x,"
                " :ts, :ts, '{}', '[]', :search)"),
                {"title": f"old {n}", "x": f"x{n}", "ts": 1764547200000 + n, "search": f"old {n}\n{_sha(n)}"})
    assert upgrade(db) == head_revision()
    with db.read() as session:
        assert service.text_candidates(session, _sha(31)[10:22]) is not None
        assert len(service.text_candidates(session, _sha(31)[10:22])) == 1
        assert len(service.text_candidates(session, "old ")) == 50
    filters = service.EventFilter(text=_sha(31)[4:14])
    events, _ = service.list_events(db, filters, limit=10, cursor=None)
    assert [e["externalId"] for e in events] == ["x31"]
    # new events are indexed as they come
    with db.write_connection() as conn:
        conn.execute(text(
            "INSERT INTO events (tenant_id, integration_id, connector, project, title, external_id, ts,"
            " received_at, data, tags, search_text) VALUES (NULL, 'old', 'github', 'p', 'new', 'new', 1, 1, '{}',"
            " '[]', 'brand new cafebabe')"))
    with db.read() as session:
        assert len(service.text_candidates(session, "cafebab")) == 1
    db.dispose()
