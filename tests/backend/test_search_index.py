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
from tests.support.databases import insert_github_integration

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
        "step 123": "a word in every event and a rare one: the rare one from the index, the term checked",
        "deploy #3": "two frequent words, a rare pair",
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
def test_postgresql_looks_up_only_the_rare_words_of_a_term(kind, make_backend, small_scan_window):
    """pg_trgm reads the posting lists of every trigram of a pattern: a word in nearly every event
    would make it read most of the index, so only the rare words go to the index."""
    server = make_backend(kind, api_token=None, secret_key=None)
    api = server.client()
    integration = create_integration(api, register_type(api))
    bodies = [event_body(integration, n, title=f"deploy to production {n}") for n in range(150)]
    assert api.post("/events/batch", json={"events": bodies}).status_code == 200
    with server.app_db().read() as session:
        # with the characters around them in the term: pg_trgm indexes where a word starts and ends
        assert service._index_words(session, "production 123") == [" 123"]
        assert service._index_words(session, "production  ab 77 123") == [" 123"]  # short words: not indexed
        assert service._index_words(session, "deploy to production") == ["deploy to production"]  # none rare
        assert service._index_words(session, "123 456") == ["123 456"]  # none frequent
        assert service._index_words(session, "production") == ["production"]
        if kind != "sqlite":
            assert len(service.text_candidates(session, "production 123")) == 1
            assert service.text_candidates(session, "production 1234") == []


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
        insert_github_integration(conn, "old", None, "2026-12-01 10:00:00")
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


@pytest.mark.parametrize("kind", DATABASE_KINDS)
def test_histograms_by_one_tag_read_the_tag_counts_and_agree_with_counting_events(kind, make_backend):
    server = make_backend(kind, api_token=None, secret_key=None)
    api = server.client()
    integration = create_integration(api, register_type(api), tags=["prod"])
    rng = random.Random(3)
    bodies = [event_body(integration, n, timestamp=f"2026-02-{1 + n % 27:02d}T{n % 24:02d}:{n % 60:02d}:07Z",
                         tags=rng.sample(["hotfix", "deploy", "ci"], rng.randrange(3)))
              for n in range(600)]
    assert api.post("/events/batch", json={"events": bodies}).status_code == 200
    db = server.app_db()
    for tags in ("hotfix", "prod", "ci,hotfix", "nosuch"):
        filters = service.EventFilter(integration_ids=[integration["id"]], tags=tags.split(","),
                                      since_ms=1769904000000 + 1234, until_ms=1772323200000 - 5678)
        for bucket_seconds in (3600, 86400, 86400 * 7):
            rolled = service.histogram(db, filters, bucket_seconds=bucket_seconds)
            counted = service.histogram(db, service.EventFilter(**vars(filters)), bucket_seconds=bucket_seconds,
                                        force_scan=True)
            assert rolled == counted, (tags, bucket_seconds)
        wanted = set(tags.split(","))
        expected = sum(1 for b in bodies if wanted <= {"prod", *b["tags"]}
                       and "2026-02-01T00:00:01.234" <= b["timestamp"] < "2026-02-28T23:59:54.322")
        assert rolled["total"] == expected and (expected > 0) == (tags != "nosuch")
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM event_tag_counts WHERE tag = 'hotfix'")).scalar() > 0


@pytest.mark.parametrize("kind", DATABASE_KINDS)
def test_upgrade_fills_the_tag_counts_from_stored_events(kind, make_database_url):
    db = Database(make_database_url(kind))
    upgrade(db, "0005")
    with db.write_connection() as conn:
        insert_github_integration(conn, "old", "acme", "2026-12-01 10:00:00")
        # before 1970 too: the hour rounds down
        for n, ts in enumerate([-1, 0, 3_599_999, 3_600_000, 1764547200000, 1764547200000 + 59_000]):
            event_id = conn.execute(text(
                "INSERT INTO events (tenant_id, integration_id, connector, project, title, external_id, ts,"
                " received_at, data, tags, search_text) VALUES ('acme', 'old', 'github', 'p', 't', :x, :ts, 0,"
                " '{}', '[\"a\"]', 't') RETURNING id"), {"x": f"x{n}", "ts": ts}).scalar()
            for tag in ("a", "b") if n % 2 else ("a",):
                conn.execute(text("INSERT INTO event_tags (event_id, tag) VALUES (:e, :t)"), {"e": event_id, "t": tag})
    upgrade(db)
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT tag, hour_ts, integration_id, tenant_id, connector, count"
                                 " FROM event_tag_counts ORDER BY tag, hour_ts")).all()
    assert [tuple(r) for r in rows] == [
        ("a", -3_600_000, "old", "acme", "github", 1), ("a", 0, "old", "acme", "github", 2),
        ("a", 3_600_000, "old", "acme", "github", 1), ("a", 1764547200000, "old", "acme", "github", 2),
        ("b", 0, "old", "acme", "github", 1), ("b", 3_600_000, "old", "acme", "github", 1),
        ("b", 1764547200000, "old", "acme", "github", 1)]
    db.dispose()
