"""Retention (PAINCHAIN_RETENTION_DAYS): old events go in small batches, the hourly rollup and the
free-text search stay exact, ingestion running meanwhile loses nothing; the admin endpoint, the
`painchain db prune` command and the setting's checks."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
import uuid
from collections import Counter

import pytest
from sqlalchemy import inspect, select, text

from painchain_pipelines.backend.auth import hash_token
from painchain_pipelines.backend.config import BackendSettings, SettingsError
from painchain_pipelines.backend.models import ApiToken, Event, EventCount, EventTag, EventTagCount
from painchain_pipelines.backend.schemas.common import iso_from_ms
from painchain_pipelines.backend.services import events as event_service
from painchain_pipelines.backend.services.events import HOUR_MS
from painchain_pipelines.backend.services.retention import DAY_MS, cutoff_for, prune_events
from tests.conftest import DATABASE_KINDS, create_integration, register_type

SERVICE_TOKEN = "retention-service-token-5e4d"


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def _event(integration: dict, ts_ms: int, title: str | None = None) -> dict:
    external_id = uuid.uuid4().hex
    return {"title": title or f"change {external_id[:8]}", "connector": integration["type"], "project": "octo/app",
            "timestamp": iso_from_ms(ts_ms), "externalId": external_id, "integrationId": integration["id"],
            "data": {"sha": external_id}, "tags": ["ci"]}


def _post(api, bodies: list[dict]) -> list[int]:
    ids = []
    for start in range(0, len(bodies), 1000):
        response = api.post("/events/batch", json={"events": bodies[start:start + 1000]})
        assert response.status_code == 200, response.text
        assert response.json()["created"] == len(bodies[start:start + 1000]), response.text
        ids.extend(item["id"] for item in response.json()["results"])
    return ids


def _rollup_and_recount(db) -> tuple[dict, dict]:
    """The hourly counts (event_counts, and per tag event_tag_counts) as stored, and as counted
    afresh from the events."""
    with db.read() as session:
        rollup = {(h, i): n for h, i, n in session.execute(
            select(EventCount.hour_ts, EventCount.integration_id, EventCount.count))}
        rollup.update({(t, h, i): n for t, h, i, n in session.execute(
            select(EventTagCount.tag, EventTagCount.hour_ts, EventTagCount.integration_id, EventTagCount.count))})
        recount = Counter((ts // HOUR_MS * HOUR_MS, i) for ts, i in session.execute(
            select(Event.ts, Event.integration_id)))
        recount.update((t, ts // HOUR_MS * HOUR_MS, i) for t, ts, i in session.execute(
            select(EventTag.tag, Event.ts, Event.integration_id).join(Event, Event.id == EventTag.event_id)))
    return rollup, dict(recount)


def _assert_rollup_exact(db) -> None:
    rollup, recount = _rollup_and_recount(db)
    assert rollup == recount
    assert all(n > 0 for n in rollup.values())


def _histograms_agree(api, db, since_ms: int, until_ms: int, interval: int, tag: str | None = None) -> dict:
    """The API's histogram (whole hours from the rollups) equals counting the events."""
    answer = api.get("/events/histogram", params={"since": iso_from_ms(since_ms), "until": iso_from_ms(until_ms),
                                                  "interval": interval, **({"tags": tag} if tag else {})})
    assert answer.status_code == 200, answer.text
    filters = event_service.EventFilter(since_ms=since_ms, until_ms=until_ms, tags=[tag] if tag else [])
    scanned = event_service.histogram(db, filters, bucket_seconds=interval, force_scan=True)
    assert answer.json()["buckets"] == scanned["buckets"]
    return answer.json()


def _found(api, term: str) -> list[str]:
    response = api.get("/events", params={"q": term, "limit": 500})
    assert response.status_code == 200, response.text
    return [e["externalId"] for e in response.json()["events"]]


def _fts_is_consistent(db) -> None:
    """SQLite's FTS5 index (when the schema has one) compares itself with the events table."""
    if db.is_sqlite and "events_search" in inspect(db.engine).get_table_names():
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO events_search(events_search, rank) VALUES ('integrity-check', 1)"))


@pytest.fixture(params=DATABASE_KINDS)
def kind(request) -> str:
    return request.param


def _service_api(server):
    return server.client(Authorization=f"Bearer {SERVICE_TOKEN}")


def test_prune_removes_old_events_their_tags_and_counts_and_keeps_search_exact(make_backend, kind):
    server = make_backend(kind, api_token=SERVICE_TOKEN, retention_days=30)
    api, db = _service_api(server), server.app_db()
    type_id = register_type(api)
    first, second = create_integration(api, type_id), create_integration(api, type_id)
    now = dt.datetime.now(dt.timezone.utc)
    # The cutoff falls in the middle of an hour, so that hour keeps part of its events.
    straddled = _ms(now.replace(minute=0, second=0, microsecond=0) - dt.timedelta(days=10))
    cutoff = straddled + 30 * 60_000
    offsets_min = [-3 * 24 * 60 - 7, -26 * 60, -125, -61, -29, -1, 0, 1, 29, 59, 61, 24 * 60 + 3, 9 * 24 * 60]
    old_word, new_word = "old" + uuid.uuid4().hex[:10], "kept" + uuid.uuid4().hex[:10]
    bodies = [_event(integration, cutoff + m * 60_000) for integration in (first, second) for m in offsets_min]
    bodies.append(_event(first, cutoff - 5 * 60_000, title=f"deploy {old_word}"))
    bodies.append(_event(second, cutoff + 5 * 60_000, title=f"deploy {new_word}"))
    ids = _post(api, bodies)
    old_ids = [i for i, b in zip(ids, bodies) if b["timestamp"] < iso_from_ms(cutoff)]
    kept = {b["externalId"] for b in bodies if b["timestamp"] >= iso_from_ms(cutoff)}
    assert len(old_ids) == 2 * 6 + 1 and len(kept) == 2 * 7 + 1
    assert len(_found(api, old_word)) == 1

    stats = prune_events(db, cutoff, batch_rows=4)

    assert (stats.removed, stats.batches, stats.done) == (13, 4, True)
    assert 0 < stats.max_batch_ms < 5000
    stored = {e["externalId"] for e in api.get("/events", params={"limit": 500}).json()["events"]}
    assert stored == kept
    with db.read() as session:
        assert session.scalars(select(EventTag.event_id).where(EventTag.event_id.in_(old_ids))).all() == []
        assert session.scalar(select(EventTag.event_id).limit(1)) is not None
    _assert_rollup_exact(db)
    rollup, _ = _rollup_and_recount(db)
    assert rollup[(straddled, first["id"])] == 3  # minutes 30 (the cutoff itself), 31 and 59 of the hour
    for since, until, interval in ((cutoff - 4 * DAY_MS, cutoff + 10 * DAY_MS, 3600),
                                   (cutoff - 4 * DAY_MS - 17 * 60_000, cutoff + 2 * DAY_MS + 5 * 60_000, 3600),
                                   (straddled - 7 * DAY_MS, straddled + 14 * DAY_MS, 86400)):
        expected = sum(iso_from_ms(since) <= b["timestamp"] < iso_from_ms(until) for b in bodies if b["externalId"] in kept)
        for tag in (None, "ci", "prod"):  # every event carries both tags
            assert _histograms_agree(api, db, since, until, interval, tag)["total"] == expected
    assert _found(api, old_word) == []
    assert len(_found(api, new_word)) == 1
    _fts_is_consistent(db)
    # Nothing older is left: a second run has nothing to do.
    again = prune_events(db, cutoff)
    assert (again.removed, again.batches, again.done) == (0, 0, True)


def test_ingestion_during_a_prune_loses_nothing_and_keeps_counts_exact(make_backend, kind):
    server = make_backend(kind, api_token=SERVICE_TOKEN)
    api, db = _service_api(server), server.app_db()
    integration = create_integration(api, register_type(api))
    cutoff = _ms(dt.datetime.now(dt.timezone.utc)) - 30 * DAY_MS
    # 1,500 old events over the 5 hours before the cutoff, so the prune takes a while.
    _post(api, [_event(integration, cutoff - 5 * HOUR_MS + n * 12_000) for n in range(1500)])
    pruning = threading.Event()
    stop = threading.Event()
    posted: list[tuple[int, dict]] = []
    posted_lock = threading.Lock()

    def ingest(worker: int) -> None:
        client = _service_api(server)
        n = 0
        while not stop.is_set():
            # New events, some in the hour the cutoff straddles; every 4th round also late events
            # for the very hours being pruned.
            offsets = [n * 10 + worker, 2 * HOUR_MS + n]
            if n % 4 == 0:
                offsets += [-3 * HOUR_MS + n * 1000 + worker, -n * 10 - worker - 1]
            bodies = [_event(integration, cutoff + offset) for offset in offsets]
            response = client.post("/events/batch", json={"events": bodies})
            assert response.status_code == 200, response.text
            assert response.json()["created"] == len(bodies)
            with posted_lock:
                posted.extend((pruning.is_set(), b) for b in bodies)
            n += 1

    workers = [threading.Thread(target=ingest, args=(w,)) for w in range(2)]
    for worker in workers:
        worker.start()
    try:
        pruning.set()
        stats = prune_events(db, cutoff, batch_rows=50, max_seconds=60)
        pruning.clear()
    finally:
        stop.set()
        for worker in workers:
            worker.join(60)

    assert stats.done and stats.removed >= 1500 and stats.batches >= 30
    assert sum(1 for during, _ in posted if during) >= 20, "nothing was posted while pruning"
    _assert_rollup_exact(db)
    with db.read() as session:
        stored = set(session.scalars(select(Event.external_id).where(Event.ts >= cutoff)))
    assert stored == {b["externalId"] for _, b in posted if b["timestamp"] >= iso_from_ms(cutoff)}
    # Late old events that arrived behind the prune go with the next one.
    prune_events(db, cutoff)
    _assert_rollup_exact(db)
    with db.read() as session:
        assert session.scalar(select(Event.id).where(Event.ts < cutoff).limit(1)) is None
    for tag in (None, "ci"):
        _histograms_agree(api, db, cutoff - 6 * HOUR_MS, cutoff + 3 * HOUR_MS, 3600, tag)
    _fts_is_consistent(db)


def _tenant_token(server, tenant: str) -> str:
    token = "pct_" + uuid.uuid4().hex
    with server.app_db().write() as session:
        session.add(ApiToken(name="t", token_sha256=hash_token(token), tenant_id=tenant))
    return token


def test_the_endpoint_prunes_for_admins_only_and_says_when_retention_is_off(make_backend, kind):
    server = make_backend(kind, api_token=SERVICE_TOKEN, retention_days=30)
    api = _service_api(server)
    integration = create_integration(api, register_type(api))
    now = _ms(dt.datetime.now(dt.timezone.utc))
    old = [_event(integration, now - 40 * DAY_MS + n) for n in range(3)]
    _post(api, old + [_event(integration, now - 20 * DAY_MS)])

    tenant = server.client(Authorization=f"Bearer {_tenant_token(server, 'acme')}")
    assert tenant.post("/retention/run").status_code == 403
    assert server.client().post("/retention/run").status_code == 401
    assert api.get("/retention/run").status_code == 405

    answer = api.post("/retention/run")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["enabled"] is True and body["retentionDays"] == 30 and body["done"] is True
    assert (body["removed"], body["batches"]) == (3, 1)
    assert 0 < body["maxBatchMs"] < 5000
    cutoff = dt.datetime.fromisoformat(body["cutoff"].replace("Z", "+00:00"))
    assert abs(cutoff - (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=30))) < dt.timedelta(minutes=1)
    assert [e["externalId"] for e in api.get("/events").json()["events"]] != []
    _assert_rollup_exact(server.app_db())
    assert api.post("/retention/run").json()["removed"] == 0

    off = make_backend(kind, api_token=None)
    body = off.client().post("/retention/run").json()
    assert body["enabled"] is False and body["removed"] == 0 and body["done"] is True and body["cutoff"] is None


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PAINCHAIN_")}
    environment.update(env)
    return subprocess.run([sys.executable, "-m", "painchain_pipelines", *args], env=environment,
                          capture_output=True, text=True, timeout=120)


def test_db_prune_command(make_backend, kind):
    server = make_backend(kind, api_token=SERVICE_TOKEN)
    api, url = _service_api(server), server.settings.database_url
    integration = create_integration(api, register_type(api))
    now = _ms(dt.datetime.now(dt.timezone.utc))
    _post(api, [_event(integration, now - d * DAY_MS) for d in (100, 45, 31, 29, 1)])

    refused = _cli("db", "prune", PAINCHAIN_DATABASE_URL=url)
    assert refused.returncode == 2
    assert "--days N or set PAINCHAIN_RETENTION_DAYS" in refused.stderr
    assert _cli("db", "prune", "--days", "0", PAINCHAIN_DATABASE_URL=url).returncode == 2

    dry = _cli("db", "prune", "--days", "30", "--dry-run", PAINCHAIN_DATABASE_URL=url)
    assert dry.returncode == 0, dry.stderr
    assert "would remove 3 events older than" in dry.stdout
    # --days wins over the setting; the backend keeps running meanwhile.
    done = _cli("db", "prune", "--days", "30", PAINCHAIN_DATABASE_URL=url, PAINCHAIN_RETENTION_DAYS="60")
    assert done.returncode == 0, done.stderr
    assert "removed 3 events older than" in done.stdout
    assert len(api.get("/events").json()["events"]) == 2
    _assert_rollup_exact(server.app_db())
    by_setting = _cli("db", "prune", PAINCHAIN_DATABASE_URL=url, PAINCHAIN_RETENTION_DAYS="2")
    assert by_setting.returncode == 0, by_setting.stderr
    assert "removed 1 events" in by_setting.stdout and "(2 days)" in by_setting.stdout
    _assert_rollup_exact(server.app_db())


@pytest.mark.parametrize("raw", ["0", "-3", "abc", "1.5", "7 days"])
def test_a_bad_retention_setting_is_a_clear_error(monkeypatch, raw):
    monkeypatch.setenv("PAINCHAIN_RETENTION_DAYS", raw)
    with pytest.raises(SettingsError, match="PAINCHAIN_RETENTION_DAYS=.*positive whole number of days"):
        BackendSettings.from_env()


def test_retention_setting_values(monkeypatch):
    for raw, expected in (("", None), ("  ", None), ("7", 7), (" 365 ", 365)):
        monkeypatch.setenv("PAINCHAIN_RETENTION_DAYS", raw)
        assert BackendSettings.from_env().retention_days == expected
    monkeypatch.delenv("PAINCHAIN_RETENTION_DAYS")
    assert BackendSettings.from_env().retention_days is None


def test_the_backend_refuses_to_start_with_a_bad_retention_setting(tmp_path):
    out = _cli("backend", "--port", "1", PAINCHAIN_RETENTION_DAYS="ten",
               PAINCHAIN_DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}")
    assert out.returncode == 2
    assert "painchain: error: environment variable PAINCHAIN_RETENTION_DAYS='ten' must be a positive whole number" \
        in out.stderr
    assert "Traceback" not in out.stderr


def test_cutoff_is_days_before_now():
    assert cutoff_for(30, now_ms=100 * DAY_MS) == 70 * DAY_MS
