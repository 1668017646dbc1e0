"""What the orchestrator reports (heartbeat, checks, queued first syncs), what the status
endpoint derives from it for the UI, readable integration ids and JSON-typed config fields."""

import datetime as dt
import re

import pytest
from sqlalchemy import update

from painchain_pipelines.backend.models import OrchestratorStatus
from tests.conftest import TEST_SCHEMA, create_integration, register_type


def statuses(api) -> dict[str, dict]:
    return {s["id"]: s for s in api.get("/integrations/status").json()}


def test_integration_ids_are_readable_stable_and_unique(api):
    type_id = register_type(api)
    first = create_integration(api, type_id, name="Payments GitHub (prod) — EU")
    second = create_integration(api, type_id, name="Payments GitHub (prod) — EU")
    for created in (first, second):
        assert re.fullmatch(r"payments-github-prod-eu-[0-9a-f]{8}", created["id"]), created["id"]
    assert first["id"] != second["id"]
    odd = create_integration(api, type_id, name="日本語 ✓")
    assert re.fullmatch(r"integration-[0-9a-f]{8}", odd["id"])
    long = create_integration(api, type_id, name="x" * 200)
    assert len(long["id"]) <= 49 and not any(c in long["id"] for c in "|,[]")
    # a rename keeps the id (it is the Dagster partition key)
    renamed = api.put(f"/integrations/{first['id']}", json={"config": {**first["config"], "name": "Renamed"}})
    assert renamed.status_code == 200 and renamed.json()["id"] == first["id"]


def test_orchestrator_heartbeat_problem_checks_and_queued_first_syncs(api, backend):
    type_id = register_type(api)
    integ = create_integration(api, type_id)
    other_type = register_type(api)
    foreign = create_integration(api, other_type)
    before = statuses(api)[integ["id"]]
    assert before["orchestrator"] == {"running": False, "seenAt": None, "problem": None}
    assert before["lastCheckedAt"] is None and before["firstSyncQueuedAt"] is None
    assert before["failedSources"] == {}

    queued = api.put(f"/integrations/types/{type_id}/orchestrator",
                     json={"problem": None, "queued": [integ["id"], foreign["id"], "deleted-meanwhile"]})
    assert queued.status_code == 200, queued.text
    assert queued.json()["queued"] == 1 and queued.json()["problem"] is None
    status = statuses(api)
    assert status[integ["id"]]["firstSyncQueuedAt"] is not None
    assert status[integ["id"]]["orchestrator"]["running"] is True
    assert status[foreign["id"]]["firstSyncQueuedAt"] is None  # another connector's integration
    assert status[foreign["id"]]["orchestrator"]["running"] is False

    problem = api.put(f"/integrations/types/{type_id}/orchestrator",
                      json={"problem": "registration refused: bad metadata"})
    assert problem.json()["problem"] == "registration refused: bad metadata"
    # a report without `problem` leaves it as it is; null clears it
    checked = api.put(f"/integrations/types/{type_id}/orchestrator", json={"checked": [integ["id"]] * 3})
    assert checked.json() == {**checked.json(), "checked": 1, "problem": "registration refused: bad metadata"}
    assert statuses(api)[integ["id"]]["lastCheckedAt"] is not None
    assert statuses(api)[integ["id"]]["lastSuccessAt"] is None  # a check is not a sync
    cleared = api.put(f"/integrations/types/{type_id}/orchestrator", json={"problem": None})
    assert cleared.json()["problem"] is None

    # silence for longer than a few minutes reads as "not running"
    with backend.app_db().write() as session:
        session.execute(update(OrchestratorStatus).where(OrchestratorStatus.connector_type == type_id)
                        .values(seen_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)))
    assert statuses(api)[integ["id"]]["orchestrator"]["running"] is False


def test_orchestrator_reports_are_for_services_only_and_validated(api, backend):
    type_id = register_type(api)
    assert api.put("/integrations/types/no-such-type/orchestrator", json={}).status_code == 404
    too_many = api.put(f"/integrations/types/{type_id}/orchestrator", json={"checked": ["x"] * 10_001})
    assert too_many.status_code == 422 and too_many.json()["detail"][0]["loc"] == ["body", "checked"]
    nul = api.put(f"/integrations/types/{type_id}/orchestrator", json={"problem": "a\u0000b"})
    assert nul.status_code == 422 and nul.json()["detail"][0]["loc"] == ["body", "problem"]
    wrong = api.put(f"/integrations/types/{type_id}/orchestrator", json={"checked": "not-a-list"})
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"] == ["body", "checked"]


def test_status_shows_partial_failures_of_the_last_attempt(api):
    type_id = register_type(api)
    integ = create_integration(api, type_id)
    api.put(f"/integrations/{integ['id']}/sync", json={
        "status": "success", "stats": {"failedSources": {"acme/secret": "HTTP 404 Not Found"}}})
    status = statuses(api)[integ["id"]]
    assert status["failedSources"] == {"acme/secret": "HTTP 404 Not Found"}
    assert status["lastSuccessAt"] is not None and status["lastCheckedAt"] == status["lastSuccessAt"]
    api.put(f"/integrations/{integ['id']}/sync", json={"status": "success", "stats": {"failedSources": {}}})
    assert statuses(api)[integ["id"]]["failedSources"] == {}
    # stats of another shape (a third-party connector) do not break the status list
    api.put(f"/integrations/{integ['id']}/sync", json={"status": "success", "stats": {"failedSources": ["x"]}})
    assert statuses(api)[integ["id"]]["failedSources"] == {}


LIST_SCHEMA = {"fields": [*TEST_SCHEMA["fields"][:3], {
    "key": "repositories", "label": "Repositories", "type": "textarea", "format": "json", "required": True,
    "placeholder": '["owner/repo"]',
    "jsonSchema": {"type": "array", "minItems": 1, "items": {"anyOf": [
        {"type": "string", "pattern": "^[^/]+/[^/]+$"},
        {"type": "object", "required": ["owner", "repo"]}]}},
}, {"key": "clusters", "label": "Clusters", "type": "textarea", "format": "json", "required": False,
    "jsonSchema": {"type": "array", "items": {"type": "object", "required": ["name", "server"],
                                              "properties": {"token": {"type": "string"}}}}}]}


@pytest.mark.parametrize("value, message", [
    ('"acme/api-gateway"', 'Repositories must be a JSON array, e.g. ["owner/repo"] (got a string)'),
    ("acme/api-gateway", "Repositories is not valid JSON"),
    ('{"owner": "a"}', "Repositories must be a JSON array"),
    ("[]", "Repositories must have at least 1 item(s)"),
    ('["no-slash"]', "Repositories at [0]: does not have the expected form (^[^/]+/[^/]+$)"),
    (["ok/one", 5], "Repositories at [1]: does not match any of the accepted forms"),
    ("acme", "Repositories is not valid JSON"),
])
def test_json_fields_are_checked_against_their_json_schema(api, value, message):
    type_id = register_type(api, schema=LIST_SCHEMA)
    response = api.post("/integrations", json={"type": type_id, "config": {
        "name": "x", "tags": [], "token": "t", "repositories": value}})
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "config", "repositories"] and error["msg"].startswith(message), error


def test_json_schema_errors_never_echo_the_value(api):
    type_id = register_type(api, schema=LIST_SCHEMA)
    response = api.post("/integrations", json={"type": type_id, "config": {
        "name": "x", "tags": [], "token": "t", "repositories": ["a/b"],
        "clusters": [{"name": "prod", "token": "k8s-secret-token-value"}]}})
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == "Clusters at [0]: is missing 'server'"
    assert "k8s-secret-token-value" not in response.text
    ok = api.post("/integrations", json={"type": type_id, "config": {
        "name": "x", "tags": [], "token": "t", "repositories": '["a/b", {"owner": "c", "repo": "d"}]'}})
    assert ok.status_code == 201 and ok.json()["config"]["repositories"] == ["a/b", {"owner": "c", "repo": "d"}]


def test_a_connector_type_with_an_invalid_json_schema_is_refused(api):
    bad = {"fields": [*TEST_SCHEMA["fields"][:3], {"key": "repositories", "label": "Repositories",
                                                   "type": "textarea", "jsonSchema": {"type": "no-such-type"}}]}
    response = api.post("/integrations/types/register", json={"id": "bad-schema", "displayName": "Bad",
                                                              "configSchema": bad})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"][:3] == ["body", "configSchema", "fields"] and "jsonSchema" in error["msg"]
