"""POST /api/events on its hot path (backend/ingest.py): events of concurrent requests stored
together, integrations looked up from a cache, and every body the fast path does not take answered
by the route exactly as before."""

import json
import logging
import socket
import threading
import time
import uuid
from collections import Counter

import psycopg
import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from painchain_pipelines.backend.database import Database
from tests.conftest import create_integration, event_body, register_type


def test_an_edit_of_tags_and_a_deletion_take_effect_at_once(api):
    integ = create_integration(api, register_type(api), tags=["before"])
    first = api.post("/events", json=event_body(integ, 1))
    assert first.status_code == 201 and first.json()["tags"] == ["before"]

    edited = api.put(f"/integrations/{integ['id']}", json={
        "name": integ["name"], "config": {**integ["config"], "tags": ["after"], "token": ""}})
    assert edited.status_code == 200, edited.text
    single = api.post("/events", json=event_body(integ, 2, tags=["own"]))
    assert single.status_code == 201 and single.json()["tags"] == ["after", "own"]
    batch = api.post("/events/batch", json={"events": [event_body(integ, 3)]}).json()
    assert batch["created"] == 1
    assert api.get(f"/events/{batch['results'][0]['id']}").json()["tags"] == ["after"]

    assert api.delete(f"/integrations/{integ['id']}").status_code == 204
    gone = api.post("/events", json=event_body(integ, 4))
    assert gone.status_code == 404 and integ["id"] in gone.json()["detail"]


def test_concurrent_single_posts_each_get_their_own_answer(backend, api):
    integ = create_integration(api, register_type(api))
    other_type = create_integration(api, register_type(api))
    run = uuid.uuid4().hex[:8]
    threads, per_thread = 8, 25
    # Every thread posts the same external ids (racing duplicates), plus events of its own and
    # bad ones mixed in: each answer must be its own.
    plans = []
    for t in range(threads):
        plan = []
        for n in range(per_thread):
            if n % 5 == 0:
                plan.append(("shared", event_body(integ, n, externalId=f"{run}-shared-{n}")))
            elif n % 5 == 1:
                plan.append(("unknown", event_body(integ, n, externalId=f"{run}-x-{t}-{n}",
                                                   integrationId="no-such-integration")))
            elif n % 5 == 2:
                plan.append(("mismatch", event_body(integ, n, externalId=f"{run}-m-{t}-{n}",
                                                    connector=other_type["type"])))
            else:
                plan.append(("own", event_body(integ, n, externalId=f"{run}-own-{t}-{n}")))
        plans.append(plan)
    answers: list[list] = [[] for _ in range(threads)]
    barrier = threading.Barrier(threads)

    def post(t: int) -> None:
        session = requests.Session()
        barrier.wait()
        for kind, body in plans[t]:
            response = session.post(backend.api_url + "/events", json=body, timeout=60)
            answers[t].append((kind, body["externalId"], response.status_code, response.json()))

    workers = [threading.Thread(target=post, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    created: dict[str, int] = {}
    duplicates: list[tuple[str, int]] = []
    for kind, external_id, status, body in (a for per in answers for a in per):
        if kind == "unknown":
            assert status == 404 and "no-such-integration" in body["detail"]
        elif kind == "mismatch":
            assert status == 422 and body["detail"][0]["loc"] == ["body", "connector"]
        elif status == 201:
            assert external_id not in created and body["externalId"] == external_id
            created[external_id] = body["id"]
        else:
            assert kind == "shared" and status == 409, (kind, status, body)
            duplicates.append((external_id, body["existingId"]))
    shared = {f"{run}-shared-{n}" for n in range(0, per_thread, 5)}
    assert shared <= created.keys()
    assert Counter(e for e, _ in duplicates) == {e: threads - 1 for e in shared}
    assert all(created[e] == existing for e, existing in duplicates)
    stored = api.get("/events", params={"integrationId": integ["id"], "limit": 500}).json()["events"]
    assert sorted(e["externalId"] for e in stored) == sorted(created)


def test_bodies_left_to_the_route_are_answered_as_before(api, integration):
    deep: object = "x"
    for _ in range(70):
        deep = [deep]
    too_deep = api.post("/events", json={**event_body(integration, 1), "unused": deep})
    assert too_deep.status_code == 422 and "nested more than 64 levels" in too_deep.text
    huge = api.post("/events", json=event_body(integration, 2, data={"n": 2**64}))
    assert huge.status_code == 422 and huge.json()["detail"][0]["loc"][:3] == ["body", "data", "n"]
    exact = api.post("/events", json=event_body(integration, 3, data={"n": 2**64 - 1}))
    assert exact.status_code == 201 and exact.json()["data"]["n"] == 2**64 - 1
    assert api.get(f"/events/{exact.json()['id']}").json()["data"]["n"] == 2**64 - 1
    nul = api.post("/events", json=event_body(integration, 4, data={"note": "a\x00b"}))
    assert nul.status_code == 422 and nul.json()["detail"][0]["loc"][:2] == ["body", "data"]
    missing = api.post("/events", json={k: v for k, v in event_body(integration, 5).items() if k != "title"})
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "title"]


@pytest.mark.postgres
def test_postgresql_writer_connection_keeps_the_write_budget_and_survives_being_killed(make_backend, caplog):
    # The writer's connection runs in autocommit with the write budget set for its session
    # (Database.statement_writer_connect_args). No read budget here: if the writer's statements
    # ran without the write budget, the blocked post below would wait until the client gave up.
    caplog.set_level(logging.WARNING, logger="painchain_pipelines.backend.ingest")
    server = make_backend("postgresql", api_token=None, secret_key=None, query_timeout=0, write_timeout=0.5)
    api = server.client()
    integ = create_integration(api, register_type(api))
    assert api.post("/events", json=event_body(integ, 1, externalId="before")).status_code == 201

    engine = create_engine(server.app_db().url)
    try:
        with engine.connect() as blocker:
            blocker.execute(text("LOCK TABLE events IN EXCLUSIVE MODE"))
            blocked = api.post("/events", json=event_body(integ, 2, externalId="blocked"))
            assert blocked.status_code == 503, blocked.text
            assert "0.5 s" in blocked.json()["detail"]
            blocker.rollback()
        # The writer says why its group went to the route (the route then answered it).
        assert [r.getMessage() for r in caplog.records if r.name == "painchain_pipelines.backend.ingest"] == [
            "storing a group of 1 single events failed, the API stores them one by one: "
            "(psycopg.errors.QueryCanceled) canceling statement due to statement timeout"]
        assert api.post("/events", json=event_body(integ, 3, externalId="after-lock")).status_code == 201

        # Every connection of the backend killed (a restarted or failed-over server): the next
        # posts are stored all the same, through a new writer connection.
        with engine.connect() as admin:
            killed = admin.execute(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar()
        assert killed >= 1
        answers = [api.post("/events", json=event_body(integ, n, externalId=f"after-kill-{n}")).status_code
                   for n in range(4, 8)]
        assert answers == [201] * 4
    finally:
        engine.dispose()
    stored = api.get("/events", params={"integrationId": integ["id"], "limit": 50}).json()["events"]
    assert sorted(e["externalId"] for e in stored) == sorted(
        ["before", "after-lock"] + [f"after-kill-{n}" for n in range(4, 8)])


@pytest.mark.postgres
def test_postgresql_writer_connection_has_the_write_budget_and_the_pool_keeps_its_own(make_database_url):
    url = make_url(make_database_url("postgresql")).update_query_dict({"options": "-c lock_timeout=7s"})
    db = Database(url.render_as_string(hide_password=False), read_timeout=5, write_timeout=0.25)
    try:
        with psycopg.connect(**db.statement_writer_connect_args()) as writer:
            assert writer.autocommit
            assert writer.execute("SHOW statement_timeout").fetchone()[0] == "250ms"
            assert writer.execute("SHOW lock_timeout").fetchone()[0] == "7s"  # the URL's own options kept
        pooled = db.engine.raw_connection()
        try:
            assert not pooled.dbapi_connection.autocommit
            assert pooled.dbapi_connection.execute("SHOW statement_timeout").fetchone()[0] == "5s"
            assert pooled.dbapi_connection.execute("SHOW lock_timeout").fetchone()[0] == "7s"
        finally:
            pooled.dbapi_connection.rollback()
            pooled.close()
    finally:
        db.dispose()


def test_an_integration_deleted_by_another_process_is_answered_404(backend, api):
    # This process still has the integration in its cache: the insert fails its foreign key, and
    # the post is answered from fresh state.
    integ = create_integration(api, register_type(api))
    assert api.post("/events", json=event_body(integ, 1)).status_code == 201
    engine = create_engine(backend.app_db().url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM integrations WHERE id = :id"), {"id": integ["id"]})
    finally:
        engine.dispose()
    for n in (2, 3):
        gone = api.post("/events", json=event_body(integ, n))
        assert gone.status_code == 404 and integ["id"] in gone.json()["detail"], gone.text
    other = create_integration(api, register_type(api))
    assert api.post("/events", json=event_body(other, 1)).status_code == 201


def test_clients_that_leave_before_their_answer_do_not_disturb_the_others(backend, api):
    integ = create_integration(api, register_type(api))
    run = uuid.uuid4().hex[:8]
    bodies = [event_body(integ, n, externalId=f"{run}-left-{n}") for n in range(40)]
    for body in bodies:  # each request sent whole, its connection closed at once
        payload = json.dumps(body).encode()
        with socket.create_connection(("127.0.0.1", backend.port)) as raw:
            raw.sendall(b"POST /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload))
    steady = [api.post("/events", json=event_body(integ, 100 + n, externalId=f"{run}-stayed-{n}")) for n in range(5)]
    assert [r.status_code for r in steady] == [201] * 5
    # Each event of a client that left is stored once or not at all, and posting it again says which.
    stored, previous = _stored_ids(api, integ), None
    while stored != previous:  # until the last of those requests is through
        time.sleep(0.3)
        stored, previous = _stored_ids(api, integ), stored
    for body in bodies:
        again = api.post("/events", json=body)
        assert again.status_code == (409 if body["externalId"] in stored else 201), again.text


def _stored_ids(api, integ) -> set[str]:
    events = api.get("/events", params={"integrationId": integ["id"], "limit": 500}).json()["events"]
    return {e["externalId"] for e in events}
