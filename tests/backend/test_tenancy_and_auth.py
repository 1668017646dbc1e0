import subprocess
import sys

import pytest

from tests.conftest import DATABASE_KINDS, TEST_SCHEMA, create_integration, event_body, register_type


def test_tenants_see_and_change_only_their_own(api):
    type_id = register_type(api)
    alpha = api.with_headers(**{"x-tenant-id": "alpha"})
    beta = api.with_headers(**{"x-tenant-id": "beta"})
    a = create_integration(alpha, type_id)
    b = create_integration(beta, type_id)
    assert a["tenantId"] == "alpha" and b["tenantId"] == "beta"

    assert [i["id"] for i in alpha.get("/integrations").json()] == [a["id"]]
    assert alpha.get(f"/integrations/{b['id']}").status_code == 404
    assert alpha.put(f"/integrations/{b['id']}", json={"config": b["config"]}).status_code == 404
    assert alpha.delete(f"/integrations/{b['id']}").status_code == 404
    assert beta.get(f"/integrations/{b['id']}").status_code == 200

    # Posting for another tenant's integration is rejected and nothing is stored.
    rejected = alpha.post("/events", json=event_body(b, 1))
    assert rejected.status_code == 404
    batch = alpha.post("/events/batch", json={"events": [event_body(b, 2), event_body(a, 3)]}).json()
    assert [r["status"] for r in batch["results"]] == ["invalid", "created"]
    assert beta.get("/events", params={"integrationId": b["id"]}).json()["events"] == []

    created_b = beta.post("/events", json=event_body(b, 4)).json()
    assert created_b["tenantId"] == "beta"
    assert alpha.get(f"/events/{created_b['id']}").status_code == 404
    alpha_events = alpha.get("/events", params={"limit": 500}).json()["events"]
    assert {e["tenantId"] for e in alpha_events} == {"alpha"}
    hist = alpha.get("/events/histogram", params={
        "since": "2026-01-01T00:00:00Z", "until": "2026-01-02T00:00:00Z"}).json()
    assert hist["total"] == len([e for e in alpha_events if e["timestamp"].startswith("2026-01-01")])

    # Unscoped (service / local) callers see every tenant — the connectors' view.
    everything = {i["id"] for i in api.get("/integrations", params={"type": type_id}).json()}
    assert {a["id"], b["id"]} <= everything


def test_bad_tenant_header_is_400(api):
    response = api.get("/integrations", headers={"x-tenant-id": "has spaces"})
    assert response.status_code == 400
    assert "x-tenant-id" in response.json()["detail"]


@pytest.fixture(scope="module", params=DATABASE_KINDS)
def secured(request, make_backend):
    return make_backend(request.param, api_token="service-token-123")


def _tenant_token(server, tenant: str) -> str:
    env = {"PAINCHAIN_DATABASE_URL": server.settings.database_url, "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "painchain_pipelines", "token", "create", "--tenant", tenant, "--name", "t"],
        env=env, capture_output=True, text=True, check=True,
    )
    return out.stdout.strip().splitlines()[-1]


def test_token_required_when_configured(secured):
    anonymous = secured.client()
    assert anonymous.get("/health").status_code == 200
    for method, path in [("GET", "/integrations"), ("GET", "/events"), ("GET", "/integrations/types"),
                         ("POST", "/events"), ("POST", "/integrations/types/register")]:
        response = anonymous.request(method, path, json={})
        assert response.status_code == 401, (method, path)
        assert response.headers["www-authenticate"] == "Bearer"
    wrong = secured.client(Authorization="Bearer nope")
    assert wrong.get("/integrations").status_code == 401
    service = secured.client(Authorization="Bearer service-token-123")
    assert service.get("/integrations").status_code == 200


def test_tenant_tokens_scope_requests(secured):
    service = secured.client(Authorization="Bearer service-token-123")
    type_id = register_type(service, schema=TEST_SCHEMA)
    token = _tenant_token(secured, "acme")
    acme = secured.client(Authorization=f"Bearer {token}")
    other = create_integration(service.with_headers(**{"x-tenant-id": "globex"}), type_id)
    mine = create_integration(acme, type_id, token="acme-secret")
    assert mine["tenantId"] == "acme"
    assert [i["id"] for i in acme.get("/integrations").json()] == [mine["id"]]
    assert acme.get(f"/integrations/{other['id']}").status_code == 404
    # a tenant token is for people: even the connector read stays masked
    assert "acme-secret" not in acme.get("/integrations", params={"type": type_id}).text
    # ... while the service token acting for acme gets it in clear
    service_acme = service.with_headers(**{"x-tenant-id": "acme"})
    assert service_acme.get("/integrations", params={"type": type_id}).json()[0]["config"]["token"] == "acme-secret"
    assert acme.get("/integrations", headers={"x-tenant-id": "globex"}).status_code == 403
    assert acme.get("/integrations", headers={"x-tenant-id": "acme"}).status_code == 200
    assert acme.post("/integrations/types/register", json={
        "id": "evil", "displayName": "Evil", "configSchema": TEST_SCHEMA}).status_code == 403
    assert acme.post("/events", json=event_body(other, 1)).status_code == 404
    assert acme.post("/events", json=event_body(mine, 1)).status_code == 201
