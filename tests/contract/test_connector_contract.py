"""What every connector promises, checked against each connector's fake API (harnesses.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging

import pytest

from painchain_pipelines.connectors.backend_client import BackendClient
from painchain_pipelines.connectors.base import AuthError, ConfigError, TimeWindow
from painchain_pipelines.connectors.registration import register
from painchain_pipelines.connectors.sync import run_sync
from painchain_pipelines.orchestration.metadata import run_metadata
from tests.contract.harnesses import HARNESSES

H = dt.timedelta(hours=1)
SERVICE_TOKEN = "pc_service_token_contract_0f1e2d3c4b5a"


@pytest.fixture(params=HARNESSES, ids=lambda h: h.connector_id)
def source(request):
    with request.param().running() as harness:
        yield harness


def collect(fn, *args, **kwargs):
    events = []
    result = fn(*args, sink=events.append, **kwargs)
    return events, result


def test_config_errors_name_the_field(source):
    connector = source.connector()
    for changes, field in source.invalid_configs:
        with pytest.raises(ConfigError) as raised:
            connector.validate(source.integration(**changes))
        assert raised.value.field == field, changes
        assert repr(field) in str(raised.value), changes


def test_a_window_sync_covers_exactly_start_to_end(source):
    start = (source.now() - dt.timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    end = start + 6 * H
    for moment in (start - dt.timedelta(seconds=1), start, end - dt.timedelta(seconds=1), end):
        source.add_change(moment)
    events, result = collect(source.connector().window_sync, source.integration(), TimeWindow(start, end))
    assert sorted(e.timestamp for e in events) == [start, end - dt.timedelta(seconds=1)]
    assert result.covered == TimeWindow(start, end)


def test_external_ids_are_the_same_from_window_and_live_syncs(source):
    now = source.now()
    for hours in (50, 30, 26, 5, 1):
        source.add_change(now - hours * H)
    connector = source.connector()
    live, _ = collect(connector.live_sync, source.integration(), None, lookback=dt.timedelta(days=7))
    windowed = []
    day = (now - dt.timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)
    while day < now:
        events, _ = collect(connector.window_sync, source.integration(), TimeWindow(day, min(day + 24 * H, now)))
        windowed += events
        day += 24 * H
    assert len(live) >= 5
    assert sorted(e.external_id for e in live) == sorted(e.external_id for e in windowed)
    assert len({e.external_id for e in live}) == len(live)


def test_the_change_probe_says_no_change_after_a_sync_that_saw_nothing_new(source):
    source.add_change(source.now() - 2 * H)
    connector = source.connector()
    _, first = collect(connector.live_sync, source.integration(), None, lookback=dt.timedelta(days=1))
    _, idle = collect(connector.live_sync, source.integration(), first.state, lookback=dt.timedelta(days=1))
    assert idle.stats.events_fetched == 0
    check = connector.detect_changes(source.integration(), idle.state)
    assert not check.changed, check.reason
    source.add_change(source.now())
    assert connector.detect_changes(source.integration(), idle.state).changed


def test_no_secret_in_any_repr_log_line_exception_or_metadata(source, make_backend, caplog):
    caplog.set_level(logging.DEBUG)
    source.add_change(source.now() - H)
    connector = source.connector()
    integration = source.integration()
    seen: list[str] = [repr(integration), repr(connector.validate(integration))]
    events, result = collect(connector.live_sync, integration, None, lookback=dt.timedelta(days=1))
    seen += [json.dumps(e.to_api("i"), default=str) for e in events]
    seen.append(repr(connector.detect_changes(integration, result.state)))
    seen.append(repr(dataclasses.asdict(result.stats)))
    refused = source.integration(token=source.wrong_token())
    with pytest.raises(AuthError) as raised:
        collect(connector.live_sync, refused, None, lookback=dt.timedelta(days=1))
    seen += [str(raised.value), repr(raised.value)]
    for changes, _field in source.invalid_configs:
        with pytest.raises(ConfigError) as bad:
            connector.validate(source.integration(**changes))
        seen.append(str(bad.value))

    backend = make_backend("sqlite", api_token=SERVICE_TOKEN)
    client = BackendClient(backend.api_url, SERVICE_TOKEN)
    register(client, [source.connector_id])
    api = backend.client(Authorization=f"Bearer {SERVICE_TOKEN}")
    created = api.post("/integrations", json={"type": source.connector_id, "config": source.config()}).json()
    outcome = run_sync(client, connector, created["id"], lookback=dt.timedelta(days=1))
    assert outcome.ok, outcome.error
    seen.append(repr(run_metadata([outcome])))
    seen.append(api.get(f"/integrations/{created['id']}/sync").text)
    seen.append(caplog.text)
    for text in seen:
        assert source.token not in text and source.wrong_token() not in text


def test_events_are_posted_for_the_integrations_tenant(source, make_backend):
    source.add_change(source.now() - H)
    backend = make_backend("sqlite", api_token=SERVICE_TOKEN)
    client = BackendClient(backend.api_url, SERVICE_TOKEN)
    register(client, [source.connector_id])
    api = backend.client(Authorization=f"Bearer {SERVICE_TOKEN}")
    acme = api.with_headers(**{"x-tenant-id": "acme"})
    created = acme.post("/integrations", json={"type": source.connector_id, "config": source.config()})
    assert created.status_code == 201, created.text
    integration_id = created.json()["id"]
    outcome = run_sync(client, source.connector(), integration_id, lookback=dt.timedelta(days=1))
    assert outcome.ok and outcome.posted.created >= 1, outcome.error
    mine = acme.get("/events", params={"integrationId": integration_id}).json()["events"]
    assert len(mine) == outcome.posted.created
    other = api.with_headers(**{"x-tenant-id": "globex"})
    assert other.get("/events", params={"integrationId": integration_id}).json()["events"] == []
