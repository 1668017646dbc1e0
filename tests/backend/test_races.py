"""Concurrent requests that used to race into 500s on PostgreSQL (unique violations,
StaleDataError, foreign-key errors): each must end in a defined answer (200/201/204, 404 or 409).

Every scenario starts 8 requests at once (a barrier) and is repeated ROUNDS times; the answers
are counted and the end state checked."""

from __future__ import annotations

import threading
import uuid
from collections import Counter

import pytest
import requests

from tests.conftest import create_integration, event_body, register_type

THREADS = 8
ROUNDS = 8


class Racer:
    """THREADS keep-alive sessions that send one request each at the same moment."""

    def __init__(self, backend):
        self.api_url = backend.api_url
        self.sessions = [requests.Session() for _ in range(THREADS)]

    def race(self, calls: list[tuple]) -> list[requests.Response]:
        """calls: (method, path, json body or None) per thread."""
        assert len(calls) <= THREADS
        barrier = threading.Barrier(len(calls))
        answers: list = [None] * len(calls)

        def run(index: int, method: str, path: str, body) -> None:
            barrier.wait()
            try:
                answers[index] = self.sessions[index].request(method, self.api_url + path, json=body, timeout=60)
            except requests.RequestException as exc:  # a dropped connection counts as a failure too
                answers[index] = exc

        threads = [threading.Thread(target=run, args=(i, *call)) for i, call in enumerate(calls)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return answers


def _codes(answers) -> list:
    return [a.status_code if isinstance(a, requests.Response) else type(a).__name__ for a in answers]


def _fail_on_server_errors(counts: Counter, answers_seen: list) -> None:
    errors = {code: n for code, n in counts.items() if not isinstance(code, int) or code >= 500}
    detail = [a.text[:300] for a in answers_seen if isinstance(a, requests.Response) and a.status_code >= 500][:3]
    assert not errors, f"server errors {errors} of {sum(counts.values())}: {detail}"


@pytest.fixture
def racer(backend) -> Racer:
    return Racer(backend)


def test_the_same_new_type_registered_at_once(api, racer):
    counts, seen = Counter(), []
    for _ in range(ROUNDS):
        type_id = "race-" + uuid.uuid4().hex[:8]
        body = {"id": type_id, "displayName": "Race", "configSchema": {"fields": []}}
        answers = racer.race([("POST", "/integrations/types/register", body)] * THREADS)
        seen += answers
        codes = _codes(answers)
        counts.update(codes)
        if all(isinstance(c, int) and c < 500 for c in codes):
            assert sorted(codes) == [200] * (THREADS - 1) + [201], codes  # exactly one created it
        assert api.get(f"/integrations/types/{type_id}").status_code == 200
    _fail_on_server_errors(counts, seen)


def test_the_first_sync_reports_at_once(api, racer):
    type_id = register_type(api)
    counts, seen = Counter(), []
    for _ in range(ROUNDS):
        integ = create_integration(api, type_id)
        calls = [("PUT", f"/integrations/{integ['id']}/sync", {"status": "success", "state": {"caller": n}})
                 for n in range(THREADS)]
        answers = racer.race(calls)
        seen += answers
        counts.update(_codes(answers))
        state = api.get(f"/integrations/{integ['id']}/sync").json()
        assert state["state"]["caller"] in range(THREADS) and state["lastSuccessAt"]
    _fail_on_server_errors(counts, seen)
    assert set(counts) == {200}, counts


def test_an_integration_updated_while_it_is_deleted(api, racer):
    type_id = register_type(api)
    counts, seen = Counter(), []
    for _ in range(ROUNDS):
        integ = create_integration(api, type_id)
        path = f"/integrations/{integ['id']}"
        update = {"config": {"name": "Renamed", "tags": ["prod"], "repositories": '["octo/x"]'}}
        calls = [("PUT", path, update)] * (THREADS - 2) + [("DELETE", path, None)] * 2
        answers = racer.race(calls)
        seen += answers
        codes = _codes(answers)
        counts.update(codes)
        if all(isinstance(c, int) and c < 500 for c in codes):
            assert set(codes[:-2]) <= {200, 404}, codes
            assert sorted(codes[-2:]) == [204, 404], codes  # one deleter deleted it
        assert api.get(path).status_code == 404
    _fail_on_server_errors(counts, seen)


def test_sync_reported_while_the_integration_is_deleted(api, racer):
    type_id = register_type(api)
    counts, seen = Counter(), []
    for round_number in range(ROUNDS):
        integ = create_integration(api, type_id)
        path = f"/integrations/{integ['id']}"
        if round_number % 2:  # half of the rounds with an existing sync record, half without
            assert api.put(path + "/sync", json={"state": {"first": True}}).status_code == 200
        calls = [("PUT", path + "/sync", {"status": "error", "error": "boom", "state": {"n": n}})
                 for n in range(THREADS - 1)] + [("DELETE", path, None)]
        answers = racer.race(calls)
        seen += answers
        codes = _codes(answers)
        counts.update(codes)
        if all(isinstance(c, int) and c < 500 for c in codes):
            assert set(codes[:-1]) <= {200, 404} and codes[-1] == 204, codes
        assert api.get(path + "/sync").status_code == 404
    _fail_on_server_errors(counts, seen)


def test_orchestrator_reports_while_integrations_are_deleted(api, racer, backend):
    counts, seen = Counter(), []
    for _ in range(ROUNDS):
        type_id = register_type(api)  # a new type: its heartbeat row is created by the race
        integrations = [create_integration(api, type_id) for _ in range(4)]
        ids = [i["id"] for i in integrations]
        report = {"checked": ids, "queued": list(reversed(ids)), "problem": None}
        calls = [("PUT", f"/integrations/types/{type_id}/orchestrator", report)] * 4
        calls += [("DELETE", f"/integrations/{i}", None) for i in ids]
        answers = racer.race(calls)
        seen += answers
        codes = _codes(answers)
        counts.update(codes)
        if all(isinstance(c, int) and c < 500 for c in codes):
            assert codes == [200] * 4 + [204] * 4, codes
            for answer in answers[:4]:
                assert 0 <= answer.json()["checked"] <= 4
        status = api.get("/integrations/status").json()
        assert not {s["id"] for s in status} & set(ids)
    _fail_on_server_errors(counts, seen)


def test_events_posted_while_their_integration_is_deleted(api, racer):
    type_id = register_type(api)
    counts, seen = Counter(), []
    for _ in range(ROUNDS):
        integ = create_integration(api, type_id)
        calls = [("POST", "/events", event_body(integ, n)) for n in range(3)]
        calls += [("POST", "/events/batch", {"events": [event_body(integ, 100 * (n + 1) + k) for k in range(50)]})
                  for n in range(4)]
        calls += [("DELETE", f"/integrations/{integ['id']}", None)]
        answers = racer.race(calls)
        seen += answers
        codes = _codes(answers)
        counts.update(codes)
        if all(isinstance(c, int) and c < 500 for c in codes):
            assert set(codes[:3]) <= {201, 404} and codes[3:7] == [200] * 4 and codes[7] == 204, codes
            for batch in answers[3:7]:
                outcome = batch.json()
                # all of a batch is stored before the deletion, or none of it after
                assert (outcome["created"], outcome["invalid"]) in ((50, 0), (0, 50)), outcome
        # nothing of it is left behind
        assert api.get("/events", params={"integrationId": integ["id"]}).json()["events"] == []
        histogram = api.get("/events/histogram", params={"integrationId": integ["id"], "since": "2026-01-01T00:00:00Z",
                                                         "until": "2026-01-02T00:00:00Z"}).json()
        assert histogram["total"] == 0
    _fail_on_server_errors(counts, seen)
