"""A stored secret is only ever sent where it was entered for: changing a field that decides
where a secret goes (GitHub's baseUrl, GitLab's url, a cluster's server) requires the secret again."""

import json

import pytest

from painchain_pipelines.connectors.registration import available_connectors, load_metadata
from tests.conftest import TEST_SCHEMA

# A valid configuration per shipped connector; a new connector's metadata must add one here.
EXAMPLE_CONFIGS = {
    "github": {"name": "Guarded", "tags": [], "token": "ghp_guarded_secret_123",
               "repositories": ["octo/app"], "baseUrl": "https://github.example.com/api/v3"},
    "gitlab": {"name": "Guarded", "tags": [], "token": "gitlab_guarded_secret_123", "projects": ["acme/app"],
               "url": "https://gitlab.example.com/gitlab",
               "caCertificate": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"},
    "kubernetes": {"name": "Guarded", "tags": [], "namespaces": [], "clusters": [
        {"name": "prod", "server": "https://prod.example.com:6443", "token": "k8s_guarded_secret_123",
         "certificate": "QUJD"},
        {"name": "local", "context": "kind-local"}]},
}


def guarded_fields(metadata: dict) -> dict[str, list[str]]:
    return {f["key"]: f["guardsSecrets"] for f in metadata["configSchema"]["fields"] if f.get("guardsSecrets")}


@pytest.mark.parametrize("connector_id", available_connectors())
def test_every_connector_guards_the_secrets_its_destination_fields_receive(api, connector_id):
    metadata = load_metadata(connector_id)
    assert connector_id in EXAMPLE_CONFIGS, f"add an example configuration of {connector_id} to this test"
    guards = guarded_fields(metadata)
    item_guards = {f["key"]: f for f in metadata["configSchema"]["fields"] if f.get("itemSecretGuards")}
    assert guards or item_guards, f"{connector_id}: no field declares guardsSecrets or itemSecretGuards"
    assert api.post("/integrations/types/register", json=metadata).status_code in (200, 201)
    config = EXAMPLE_CONFIGS[connector_id]
    created = api.post("/integrations", json={"type": connector_id, "config": config})
    assert created.status_code == 201, created.text
    integration = created.json()
    for key, field in item_guards.items():  # secrets inside a JSON list (each cluster's token)
        first = integration["config"][key][0]
        for guard in field["itemSecretGuards"]:
            moved = [{**first, guard: "https://attacker.example/api"}, *integration["config"][key][1:]]
            refused = api.put(f"/integrations/{integration['id']}", json={"config": {**integration["config"], key: moved}})
            assert refused.status_code == 422, (guard, refused.text)
            assert "must be entered again" in refused.text and guard in refused.text
        [stored] = [i for i in api.get("/integrations", params={"type": connector_id}).json()
                    if i["id"] == integration["id"]]
        assert stored["config"][key] == config[key]
    for guard, secrets in guards.items():
        moved = {**integration["config"], guard: "https://attacker.example/api"}  # secrets left masked
        refused = api.put(f"/integrations/{integration['id']}", json={"config": moved})
        assert refused.status_code == 422, refused.text
        assert {tuple(e["loc"]) for e in refused.json()["detail"]} == {("body", "config", s) for s in secrets}
        assert all("must be entered again" in e["msg"] for e in refused.json()["detail"])
        # nothing changed: the connectors' read still has the old destination
        [stored] = [i for i in api.get("/integrations", params={"type": connector_id}).json()
                    if i["id"] == integration["id"]]
        assert stored["config"][guard] == config[guard] and stored["config"][secrets[0]] == config[secrets[0]]
        # with the secret typed again, the change is accepted
        accepted = api.put(f"/integrations/{integration['id']}", json={
            "config": {**moved, **{s: "new-secret-for-the-new-host" for s in secrets}}})
        assert accepted.status_code == 200, accepted.text
        api.put(f"/integrations/{integration['id']}", json={"config": {**config}})  # back, secret given


def test_unchanged_destination_keeps_the_secret_and_removing_it_counts_as_a_change(api):
    metadata = load_metadata("github")
    api.post("/integrations/types/register", json=metadata)
    config = EXAMPLE_CONFIGS["github"]
    integration = api.post("/integrations", json={"type": "github", "config": config}).json()
    same = api.put(f"/integrations/{integration['id']}", json={"config": {
        **integration["config"], "baseUrl": "  https://github.example.com/api/v3 ", "repositories": ["octo/other"]}})
    assert same.status_code == 200, same.text  # whitespace is not a new destination
    back_to_default = {k: v for k, v in integration["config"].items() if k != "baseUrl"}
    refused = api.put(f"/integrations/{integration['id']}", json={"config": back_to_default})
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", "config", "token"]
    assert "ghp_guarded_secret_123" not in refused.text


def test_guards_must_name_password_fields(api):
    schema = json.loads(json.dumps(TEST_SCHEMA))
    for field in schema["fields"]:
        if field["key"] == "baseUrl":
            field["guardsSecrets"] = ["repositories"]
    response = api.post("/integrations/types/register", json={"id": "bad-guard", "displayName": "Bad",
                                                              "configSchema": schema})
    assert response.status_code == 422
    assert "not password fields" in response.json()["detail"][0]["msg"]
