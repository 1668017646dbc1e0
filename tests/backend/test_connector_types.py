import base64

import pytest

from tests.conftest import TEST_SCHEMA, register_type


def _register(api, **overrides):
    body = {"id": "mytype", "displayName": "My Type", "configSchema": TEST_SCHEMA}
    body.update(overrides)
    return api.post("/integrations/types/register", json=body)


def _error_fields(response) -> list[tuple]:
    return [tuple(e["loc"]) for e in response.json()["detail"]]


def test_register_is_an_upsert(api):
    first = api.post("/integrations/types/register", json={
        "id": "upsert-me", "displayName": "Before", "configSchema": TEST_SCHEMA})
    assert first.status_code == 201
    assert first.json() == {"id": "upsert-me", "displayName": "Before", "registered": True}
    again = api.post("/integrations/types/register", json={
        "id": "upsert-me", "displayName": "After", "color": "#ff0000", "description": "d",
        "configSchema": {"fields": [{"key": "token", "label": "T", "type": "password", "required": True}]}})
    assert again.status_code == 200
    assert again.json() == {"id": "upsert-me", "displayName": "After", "registered": True}
    detail = api.get("/integrations/types/upsert-me").json()
    assert detail["displayName"] == "After"
    assert detail["color"] == "#ff0000"
    assert [f["key"] for f in detail["configSchema"]["fields"]] == ["token"]


def test_list_has_no_schemas_and_detail_has_one(api):
    type_id = register_type(api)
    listed = {t["id"]: t for t in api.get("/integrations/types").json()}
    assert type_id in listed
    assert "configSchema" not in listed[type_id]
    assert listed[type_id]["color"] == "#123456"
    detail = api.get(f"/integrations/types/{type_id}").json()
    assert detail["configSchema"]["fields"][3]["placeholder"] == '["owner/repo"]'
    # options of selects and our extensions survive the round trip
    assert detail["configSchema"]["fields"][7]["options"][0] == {"value": "fast", "label": "Fast"}
    assert detail["configSchema"]["fields"][8]["format"] == "text"


def test_unknown_type_is_404(api):
    response = api.get("/integrations/types/does-not-exist")
    assert response.status_code == 404
    assert "does-not-exist" in response.json()["detail"]


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"id": "MyType"}, ("body", "id")),
        ({"id": "my type"}, ("body", "id")),
        ({"id": ""}, ("body", "id")),
        ({"displayName": ""}, ("body", "displayName")),
        ({"displayName": "   "}, ("body", "displayName")),
        ({"color": "red"}, ("body", "color")),
        ({"logo": "javascript:alert(1)"}, ("body", "logo")),
        ({"configSchema": {}}, ("body", "configSchema", "fields")),
        ({"configSchema": {"fields": [{"key": "a", "label": "A", "type": "dropdown"}]}},
         ("body", "configSchema", "fields", 0, "type")),
        ({"configSchema": {"fields": [{"label": "A", "type": "text"}]}},
         ("body", "configSchema", "fields", 0, "key")),
        ({"configSchema": {"fields": [{"key": "a", "type": "text"}]}},
         ("body", "configSchema", "fields", 0, "label")),
        ({"configSchema": {"fields": [{"key": "a", "label": "A", "type": "select"}]}},
         ("body", "configSchema", "fields", 0)),
        ({"configSchema": {"fields": [{"key": "a", "label": "A", "type": "text"},
                                      {"key": "a", "label": "B", "type": "text"}]}},
         ("body", "configSchema", "fields")),
    ],
)
def test_invalid_registration_names_the_field(api, overrides, field):
    response = _register(api, **overrides)
    assert response.status_code == 422, response.text
    assert field in _error_fields(response)


def test_missing_display_name_is_named(api):
    response = api.post("/integrations/types/register", json={"id": "x", "configSchema": TEST_SCHEMA})
    assert response.status_code == 422
    assert ("body", "displayName") in _error_fields(response)


def test_logo_data_uri_allowed_and_size_limited(api):
    svg = base64.b64encode(b"<svg xmlns='http://www.w3.org/2000/svg'/>").decode()
    ok = _register(api, id="logo-ok", logo=f"data:image/svg+xml;base64,{svg}")
    assert ok.status_code == 201
    assert api.get("/integrations/types/logo-ok").json()["logo"].startswith("data:image/svg+xml")
    huge = "data:image/png;base64," + "A" * (300 * 1024)
    too_big = _register(api, id="logo-big", logo=huge)
    assert too_big.status_code == 422
    assert ("body", "logo") in _error_fields(too_big)
    assert api.get("/integrations/types/logo-big").status_code == 404


def test_malformed_json_body_is_422(api):
    response = api.post("/integrations/types/register", data="{not json",
                        headers={"content-type": "application/json"})
    assert response.status_code == 422
