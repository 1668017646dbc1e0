import pytest

from tests.conftest import create_integration, register_type


def _fields(response):
    return {tuple(e["loc"]): e["msg"] for e in response.json()["detail"]}


def test_create_get_list_update_delete(api):
    type_id = register_type(api)
    created = api.post("/integrations", json={"type": type_id, "config": {
        "name": "Main", "tags": '["prod", "backend"]', "token": "tok-1", "repositories": '["a/b", "c/d"]',
        "interval": "30", "verbose": "true", "mode": "slow", "notes": "[not json, kept verbatim"}})
    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == {"id", "name", "type", "config", "tenantId", "createdAt", "updatedAt"}
    assert body["name"] == "Main" and body["type"] == type_id and body["tenantId"] is None
    assert body["config"]["tags"] == ["prod", "backend"]
    assert body["config"]["repositories"] == ["a/b", "c/d"]
    assert body["config"]["interval"] == 30 and body["config"]["verbose"] is True
    assert body["config"]["notes"] == "[not json, kept verbatim"
    assert body["config"]["token"] == "********"

    fetched = api.get(f"/integrations/{body['id']}").json()
    assert fetched["config"] == body["config"]
    listed = api.get("/integrations").json()
    assert body["id"] in [i["id"] for i in listed]
    typed = api.get("/integrations", params={"type": type_id}).json()
    assert [i["id"] for i in typed] == [body["id"]]

    updated = api.put(f"/integrations/{body['id']}", json={"config": {
        "name": "Renamed", "tags": ["prod"], "token": "", "repositories": ["a/b"]}})
    assert updated.status_code == 200, updated.text
    assert updated.json()["name"] == "Renamed"
    assert updated.json()["config"]["token"] == "********"
    assert updated.json()["updatedAt"] >= body["updatedAt"]

    assert api.delete(f"/integrations/{body['id']}").status_code == 204
    assert api.get(f"/integrations/{body['id']}").status_code == 404
    assert api.delete(f"/integrations/{body['id']}").status_code == 404


def test_connector_read_returns_secret_in_clear_and_people_get_the_mask(api):
    type_id = register_type(api)
    integ = create_integration(api, type_id, token="ghp_topsecret")
    connector_view = api.get("/integrations", params={"type": type_id}).json()[0]
    assert connector_view["config"]["token"] == "ghp_topsecret"
    # Not the connector read: every other view masks.
    assert api.get(f"/integrations/{integ['id']}").json()["config"]["token"] == "********"
    assert "ghp_topsecret" not in api.get("/integrations").text
    # A browser (fetch sends Sec-Fetch-Mode) never gets secrets, even on the connector read.
    browser = api.with_headers(**{"Sec-Fetch-Mode": "cors"})
    assert "ghp_topsecret" not in browser.get("/integrations", params={"type": type_id}).text


def test_update_keeps_secret_when_blank_or_mask_and_replaces_when_given(api):
    type_id = register_type(api)
    integ = create_integration(api, type_id, token="first")
    base = {"name": integ["name"], "tags": [], "repositories": ["a/b"]}
    for kept in ({}, {"token": ""}, {"token": "********"}, {"token": None}):
        response = api.put(f"/integrations/{integ['id']}", json={"config": {**base, **kept}})
        assert response.status_code == 200, response.text
        assert api.get("/integrations", params={"type": type_id}).json()[0]["config"]["token"] == "first"
    api.put(f"/integrations/{integ['id']}", json={"config": {**base, "token": "second"}})
    assert api.get("/integrations", params={"type": type_id}).json()[0]["config"]["token"] == "second"


def test_secret_is_encrypted_at_rest(backend, api):
    from sqlalchemy import create_engine, text

    type_id = register_type(api)
    integ = create_integration(api, type_id, token="plain-text-must-not-be-stored")
    engine = create_engine(backend.settings.database_url)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT CAST(config AS TEXT) FROM integrations WHERE id = :id"),
                              {"id": integ["id"]}).scalar()
    engine.dispose()
    assert "plain-text-must-not-be-stored" not in stored
    assert "enc:v1:" in stored


@pytest.mark.parametrize(
    "config, field, words",
    [
        ({"name": ""}, "name", "required"),
        ({"tags": None}, "tags", "required"),
        ({"tags": "not json"}, "tags", "JSON array"),
        ({"tags": '{"a": 1}'}, "tags", "JSON array"),
        ({"tags": [1, 2]}, "tags", "JSON array"),
        ({"token": ""}, "token", "required"),
        ({"repositories": '["a/b",'}, "repositories", "not valid JSON"),
        ({"interval": "soon"}, "interval", "number"),
        ({"verbose": "maybe"}, "verbose", "true or false"),
        ({"mode": "turbo"}, "mode", "one of"),
        ({"surprise": 1}, "surprise", "unknown field"),
    ],
)
def test_invalid_config_names_the_field(api, config, field, words):
    type_id = register_type(api)
    body = {"name": "n", "tags": [], "token": "t", "repositories": "[]"}
    body.update(config)
    body = {k: v for k, v in body.items() if v is not None}
    response = api.post("/integrations", json={"type": type_id, "config": body})
    assert response.status_code == 422, response.text
    errors = _fields(response)
    assert ("body", "config", field) in errors, errors
    assert words in errors[("body", "config", field)]


def test_every_missing_required_field_is_reported_at_once(api):
    type_id = register_type(api)
    response = api.post("/integrations", json={"type": type_id, "config": {}})
    assert response.status_code == 422
    assert {("body", "config", k) for k in ("name", "tags", "token", "repositories")} <= set(_fields(response))


def test_unknown_type_and_name_mismatch(api):
    response = api.post("/integrations", json={"type": "nope", "config": {"name": "x", "tags": []}})
    assert response.status_code == 422
    assert ("body", "type") in _fields(response)
    type_id = register_type(api)
    mismatch = api.post("/integrations", json={"type": type_id, "name": "A", "config": {
        "name": "B", "tags": [], "token": "t", "repositories": "[]"}})
    assert mismatch.status_code == 422
    assert ("body", "name") in _fields(mismatch)
    # top-level name alone fills config.name
    ok = api.post("/integrations", json={"type": type_id, "name": "Top", "config": {
        "tags": [], "token": "t", "repositories": "[]"}})
    assert ok.status_code == 201 and ok.json()["config"]["name"] == "Top"


def test_type_cannot_change_on_update(api):
    type_id = register_type(api)
    integ = create_integration(api, type_id)
    response = api.put(f"/integrations/{integ['id']}", json={"type": "other", "config": integ["config"]})
    assert response.status_code == 422
    assert ("body", "type") in _fields(response)


def test_unknown_integration_is_404(api):
    assert api.get("/integrations/missing").status_code == 404
    assert api.put("/integrations/missing", json={"config": {"name": "x", "tags": []}}).status_code == 404


def test_secrets_never_reach_the_logs(api, caplog):
    type_id = register_type(api)
    with caplog.at_level("DEBUG"):
        integ = create_integration(api, type_id, token="ghp_never_in_logs")
        api.put(f"/integrations/{integ['id']}", json={"config": {**integ["config"], "token": "ghp_new_secret"}})
        api.get("/integrations", params={"type": type_id})
    assert caplog.records, "expected the backend to log something"
    assert "ghp_never_in_logs" not in caplog.text and "ghp_new_secret" not in caplog.text


def test_rejected_bodies_are_not_echoed_so_secrets_stay_out_of_errors(api):
    type_id = register_type(api)
    bad = api.post("/integrations", json={"type": type_id, "config": ["ghp_echo_me_not"]})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "config"]
    assert "ghp_echo_me_not" not in bad.text
    bad_name = api.post("/integrations", json={"type": type_id, "config": {"name": 5, "tags": [], "token": "ghp_x1"}})
    assert bad_name.status_code == 422 and "ghp_x1" not in bad_name.text


def test_sync_record_round_trip(api):
    type_id = register_type(api)
    integ = create_integration(api, type_id)
    empty = api.get(f"/integrations/{integ['id']}/sync").json()
    assert empty == {"integrationId": integ["id"], "state": {}, "lastAttemptAt": None, "lastSuccessAt": None,
                     "lastCheckedAt": None, "lastErrorAt": None, "lastError": None, "lastStats": None,
                     "firstSyncQueuedAt": None}
    saved = api.put(f"/integrations/{integ['id']}/sync", json={
        "status": "success", "stats": {"created": 3}, "state": {"repos": {"a/b": {"since": "x"}}}}).json()
    assert saved["state"] == {"repos": {"a/b": {"since": "x"}}} and saved["lastStats"] == {"created": 3}
    assert saved["lastSuccessAt"] is not None and saved["lastError"] is None
    assert saved["lastCheckedAt"] == saved["lastSuccessAt"]  # a sync is a check too
    failed = api.put(f"/integrations/{integ['id']}/sync", json={"status": "error", "error": "401 Bad credentials"})
    assert failed.json()["lastError"] == "401 Bad credentials"
    assert failed.json()["state"] == saved["state"]  # state untouched when not given
    assert failed.json()["lastSuccessAt"] == saved["lastSuccessAt"]
    missing = api.put(f"/integrations/{integ['id']}/sync", json={"status": "error"})
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "error"]
    assert api.put("/integrations/nope/sync", json={"state": {}}).status_code == 404
    other_tenant = api.with_headers(**{"x-tenant-id": "someone-else"})
    assert other_tenant.get(f"/integrations/{integ['id']}/sync").status_code == 404


def test_status_lists_sync_outcome_and_events_of_the_last_day(api):
    import datetime as dt

    from tests.conftest import event_body

    type_id = register_type(api)
    integ = create_integration(api.with_headers(**{"x-tenant-id": "status-t"}), type_id)
    other = create_integration(api, type_id)
    now = dt.datetime.now(dt.timezone.utc)
    api.post("/events/batch", json={"events": [
        event_body(integ, 1, timestamp=(now - dt.timedelta(hours=1)).isoformat()),
        event_body(integ, 2, timestamp=(now - dt.timedelta(hours=2)).isoformat()),
        event_body(integ, 3, timestamp=(now - dt.timedelta(days=3)).isoformat()),
    ]})
    api.put(f"/integrations/{integ['id']}/sync", json={"status": "error", "error": "boom"})
    scoped = api.get("/integrations/status", headers={"x-tenant-id": "status-t"}).json()
    assert [s["id"] for s in scoped] == [integ["id"]]
    [status] = scoped
    assert status["eventsLast24h"] == 2 and status["lastError"] == "boom" and status["lastSuccessAt"] is None
    everything = {s["id"]: s for s in api.get("/integrations/status").json()}
    assert everything[other["id"]]["eventsLast24h"] == 0 and everything[other["id"]]["lastAttemptAt"] is None
