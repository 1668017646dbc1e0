import threading
from collections import Counter

import requests

from tests.conftest import create_integration, event_body, register_type


def test_simultaneous_duplicates_store_each_event_once(backend, api):
    integ = create_integration(api, register_type(api))
    events = [event_body(integ, n) for n in range(200)]
    statuses: Counter = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def worker():
        session = requests.Session()
        barrier.wait()
        local = Counter()
        for body in events:
            local[session.post(backend.api_url + "/events", json=body, timeout=60).status_code] += 1
        with lock:
            statuses.update(local)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses[201] == 200
    assert statuses[409] == 7 * 200
    assert sum(n for code, n in statuses.items() if code >= 500) == 0
    assert set(statuses) == {201, 409}
    stored, cursor = [], None
    while True:
        page = api.get("/events", params={"integrationId": integ["id"], "limit": 500,
                                          **({"cursor": cursor} if cursor else {})}).json()
        stored.extend(page["events"])
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert len(stored) == 200
    assert len({e["externalId"] for e in stored}) == 200


def test_simultaneous_batches_store_each_event_once(backend, api):
    integ = create_integration(api, register_type(api))
    events = [event_body(integ, n) for n in range(200)]
    results = []
    barrier = threading.Barrier(8)

    def worker():
        barrier.wait()
        response = requests.post(backend.api_url + "/events/batch", json={"events": events}, timeout=60)
        results.append((response.status_code, response.json()))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [code for code, _ in results] == [200] * 8
    assert sum(body["created"] for _, body in results) == 200
    assert sum(body["duplicates"] for _, body in results) == 7 * 200
