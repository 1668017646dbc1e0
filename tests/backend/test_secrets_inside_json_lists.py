"""Secrets inside the objects of a JSON list field (each Kubernetes cluster's token): encrypted at
rest, masked for people, in clear for the connectors, kept on edits by the object's name, and
asked again when where they are sent changes."""

import pytest
from sqlalchemy import create_engine, text

from painchain_pipelines.backend.crypto import MASK

CLUSTERS_TYPE = {
    "id": "clusters-test", "displayName": "Clusters", "color": "#326ce5",
    "configSchema": {"fields": [
        {"key": "name", "label": "Integration Name", "type": "text", "required": True},
        {"key": "tags", "label": "Tags", "type": "textarea", "format": "json", "required": True},
        {"key": "clusters", "label": "Clusters", "type": "textarea", "format": "json", "required": True,
         "itemSecrets": ["token"], "itemKey": "name", "itemSecretGuards": ["server", "certificate"]},
    ]},
}
PROD = {"name": "prod", "server": "https://prod.example.com:6443", "token": "prod-cluster-secret-1"}
STAGING = {"name": "staging", "server": "https://staging.example.com:6443", "token": "staging-cluster-secret-2"}


@pytest.fixture
def clusters(api):
    assert api.post("/integrations/types/register", json=CLUSTERS_TYPE).status_code in (200, 201)
    created = api.post("/integrations", json={"type": "clusters-test", "config": {
        "name": "Two clusters", "tags": [], "clusters": [PROD, STAGING]}})
    assert created.status_code == 201, created.text
    return created.json()


def connector_read(api, integration_id):
    return next(i for i in api.get("/integrations", params={"type": "clusters-test"}).json() if i["id"] == integration_id)


def test_people_see_masks_connectors_see_the_tokens_and_the_database_holds_neither(api, clusters, backend):
    assert [c["token"] for c in clusters["config"]["clusters"]] == [MASK, MASK]
    shown = api.get(f"/integrations/{clusters['id']}").json()
    assert "cluster-secret" not in str(shown)
    assert connector_read(api, clusters["id"])["config"]["clusters"] == [PROD, STAGING]
    engine = create_engine(backend.settings.database_url)
    with engine.connect() as connection:
        raw = str(list(connection.execute(text("SELECT config FROM integrations"))))
    engine.dispose()
    assert "prod-cluster-secret-1" not in raw and "staging-cluster-secret-2" not in raw


def test_an_edit_keeps_masked_tokens_by_cluster_name_even_when_reordered(api, clusters):
    shown = clusters["config"]["clusters"]
    edited = [{**shown[1], "server": shown[1]["server"]}, {**shown[0]}, {"name": "dev", "server": "https://dev:6443",
                                                                           "token": "dev-cluster-secret-3"}]
    response = api.put(f"/integrations/{clusters['id']}", json={"config": {
        "name": "Two clusters", "tags": [], "clusters": edited}})
    assert response.status_code == 200, response.text
    assert [c["token"] for c in response.json()["config"]["clusters"]] == [MASK, MASK, MASK]
    tokens = [c["token"] for c in connector_read(api, clusters["id"])["config"]["clusters"]]
    assert tokens == ["staging-cluster-secret-2", "prod-cluster-secret-1", "dev-cluster-secret-3"]


@pytest.mark.parametrize("change", [{"server": "https://attacker.example.com"}, {"certificate": "QUJD"},
                                    {"name": "renamed"}])
def test_a_kept_token_cannot_follow_a_changed_destination(api, clusters, change):
    moved = [{**clusters["config"]["clusters"][0], **change}, clusters["config"]["clusters"][1]]
    refused = api.put(f"/integrations/{clusters['id']}", json={"config": {
        "name": "Two clusters", "tags": [], "clusters": moved}})
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["detail"]
    assert error["loc"] == ["body", "config", "clusters"] and "Clusters [0].token" in error["msg"]
    assert connector_read(api, clusters["id"])["config"]["clusters"] == [PROD, STAGING]  # nothing changed
    retyped = [{**moved[0], "token": "typed-again"}, moved[1]]
    accepted = api.put(f"/integrations/{clusters['id']}", json={"config": {
        "name": "Two clusters", "tags": [], "clusters": retyped}})
    assert accepted.status_code == 200, accepted.text
    assert connector_read(api, clusters["id"])["config"]["clusters"][0]["token"] == "typed-again"


def test_the_mask_is_never_stored_as_a_token(api):
    assert api.post("/integrations/types/register", json=CLUSTERS_TYPE).status_code in (200, 201)
    refused = api.post("/integrations", json={"type": "clusters-test", "config": {
        "name": "Masked", "tags": [], "clusters": [{**PROD, "token": MASK}]}})
    assert refused.status_code == 422 and "not the mask" in refused.text


def test_item_secrets_need_a_json_textarea(api):
    broken = {**CLUSTERS_TYPE, "id": "broken-clusters", "configSchema": {"fields": [
        {"key": "clusters", "label": "Clusters", "type": "text", "itemSecrets": ["token"]}]}}
    response = api.post("/integrations/types/register", json=broken)
    assert response.status_code == 422 and "itemSecrets" in response.text
