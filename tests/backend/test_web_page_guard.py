"""The backend's defences against web pages, seen as a careless client or an attacker sends
requests (the same attacks in real Chromium: tests/ui/test_web_page_attacks.py)."""

import pytest
import requests

from painchain_pipelines.backend.middleware import allowed_hosts_from, host_allowed, host_name
from tests.conftest import create_integration, event_body, register_type


@pytest.mark.parametrize("host", ["rebind.attacker.example:8000", "evil.test", "10.0.0.5:8000", "localhost.evil.test",
                                  "127.0.0.1.nip.io"])
def test_requests_for_other_host_names_are_refused(api, integration, host):
    for method, path in (("GET", "/integrations?type=" + integration["type"]), ("GET", "/health"),
                         ("DELETE", f"/integrations/{integration['id']}")):
        response = api.request(method, path, headers={"Host": host})
        assert response.status_code == 400, (method, path, response.text)
        assert "PAINCHAIN_ALLOWED_HOSTS" in response.json()["detail"] and "s3cret-token" not in response.text
    assert api.get(f"/integrations/{integration['id']}").status_code == 200  # nothing was deleted


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:8000", "localhost:8000", "LOCALHOST", "localhost.",
                                  "ui.localhost:8000", "[::1]:8000", "127.0.0.2:8000"])
def test_loopback_names_and_addresses_are_answered(api, host):
    assert api.get("/health", headers={"Host": host}).status_code == 200


def test_the_allow_list_takes_the_setting_and_the_bound_address():
    allowed = allowed_hosts_from("painchain.example.com, *.corp.example", bind_host="192.168.1.20")
    assert host_allowed(host_name("painchain.example.com:8000"), allowed)
    assert host_allowed(host_name("ui.corp.example"), allowed) and not host_allowed("corp.example.evil", allowed)
    assert host_allowed(host_name("192.168.1.20:8000"), allowed) and not host_allowed("192.168.1.21", allowed)
    assert not host_allowed("attacker.example", allowed_hosts_from(None, bind_host="0.0.0.0"))
    assert host_allowed("anything.example", allowed_hosts_from("*"))


def test_cross_origin_writes_are_refused_and_same_origin_ones_pass(api, backend):
    type_id = register_type(api)
    same = api.post("/integrations", headers={"Origin": backend.url}, json={"type": type_id, "config": {
        "name": "from the UI", "tags": [], "token": "t", "repositories": '["a/b"]'}})
    assert same.status_code == 201, same.text
    for origin in ("http://attacker.example", "null", f"http://localhost:{backend.port + 1}"):
        response = api.put(f"/integrations/{same.json()['id']}", headers={"Origin": origin},
                           json={"config": {"name": "owned", "tags": []}})
        assert response.status_code == 403, origin
        assert api.delete(f"/integrations/{same.json()['id']}", headers={"Origin": origin}).status_code == 403
    # a cross-origin read is answered (the browser will not let the page see it) but without secrets
    listed = api.get("/integrations", params={"type": type_id}, headers={"Origin": "http://attacker.example"})
    assert listed.status_code == 200 and "********" in listed.text


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", None])
def test_bodies_that_a_page_could_send_without_preflight_are_refused(api, integration, content_type):
    body = b'{"events": [' + requests.compat.json.dumps(event_body(integration, 1)).encode() + b"]}"
    headers = {"Content-Type": content_type} if content_type else {}
    session = requests.Session()
    for path in ("/events/batch", "/events"):
        response = session.post(api.api_url + path, data=body, headers=headers, timeout=10)
        assert response.status_code == 415, (path, response.text)
        assert "application/json" in response.json()["detail"]
    assert api.get("/events", params={"integrationId": integration["id"]}).json()["events"] == []


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "Application/JSON", "application/merge-patch+json"])
def test_json_bodies_in_any_spelling_are_taken(api, integration, content_type):
    body = requests.compat.json.dumps({"events": [event_body(integration, 2)]})
    response = requests.post(api.api_url + "/events/batch", data=body, headers={"Content-Type": content_type},
                             timeout=10)
    assert response.status_code == 200 and response.json()["created"] == 1


@pytest.mark.parametrize("headers", [{"Origin": "http://127.0.0.1:8000"}, {"Sec-Fetch-Mode": "cors"},
                                     {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0"}])
def test_anything_that_may_be_a_browser_gets_secrets_masked(api, headers):
    type_id = register_type(api)
    create_integration(api, type_id, token="ghp_never_to_a_browser")
    masked = api.get("/integrations", params={"type": type_id}, headers=headers)
    assert "ghp_never_to_a_browser" not in masked.text and "********" in masked.text
    clear = api.get("/integrations", params={"type": type_id})  # python-requests: a connector
    assert "ghp_never_to_a_browser" in clear.text


def test_with_a_token_only_health_and_the_api_documentation_answer_without_it(make_backend):
    server = make_backend("sqlite", api_token="pc_docs_token_1234567890")
    for path in ("/api/health", "/api/openapi.json", "/api/docs", "/api/redoc"):
        assert requests.get(server.url + path, timeout=10).status_code == 200, path
    for path in ("/api/integrations", "/api/events", "/api/integrations/types", "/api/integrations/status"):
        assert requests.get(server.url + path, timeout=10).status_code == 401, path
