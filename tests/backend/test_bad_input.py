"""No input produces a 5xx: every bad input, in every place it can appear, is a 4xx whose
`detail` names the field, and nothing is stored or altered. In a batch only the bad event is
`invalid`; its neighbours are stored.

One table: KINDS (what is wrong) x PLACES (where it is sent), on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from tests.conftest import event_body, register_type


def _nested(levels: int):
    value: object = "bottom"
    for n in range(levels):
        value = [value] if n % 2 else {"k": value}
    return value


BIG_INT = 12345678901234567890123

# What is wrong: a JSON value (any JSON type), or a string (for places that only take strings).
KINDS = {
    "int past 64 bits": BIG_INT,
    "negative int past 64 bits": -(2**63) - 1,
    "nested 300 levels": _nested(300),
    "nested 70 levels": _nested(70),
    "lone surrogate": "\ud800",
    "lone surrogate in a key": {"\udfff": "x"},
    "NaN": float("nan"),
    "NUL": "a\x00b",
}
STRING_KINDS = ("lone surrogate", "NUL")
INT_KINDS = ("int past 64 bits", "negative int past 64 bits")
ANY_KINDS = tuple(KINDS)
# Timestamps whose offset moves them off the calendar Python (and the API) can represent.
OFF_CALENDAR = ("9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00")

SCHEMA = {"fields": [
    {"key": "name", "label": "Integration Name", "type": "text", "required": True},
    {"key": "tags", "label": "Tags", "type": "textarea", "required": True},
    {"key": "token", "label": "API Token", "type": "password"},
    {"key": "repositories", "label": "Repositories", "type": "textarea"},
    {"key": "settings", "label": "Settings", "type": "textarea", "format": "json"},
    {"key": "baseUrl", "label": "Base URL", "type": "text"},
    {"key": "interval", "label": "Interval", "type": "number"},
    {"key": "verbose", "label": "Verbose", "type": "checkbox"},
    {"key": "mode", "label": "Mode", "type": "select", "options": ["fast", "slow"]},
]}
GOOD_CONFIG = {"name": "Bad input", "tags": ["prod"], "token": "s3cret", "repositories": ["octo/a"],
               "settings": '{"a": 1}', "baseUrl": "https://example.com", "interval": 5, "verbose": True,
               "mode": "fast"}


def send(api, method: str, path: str, body) -> object:
    """The body as JSON text (the standard library keeps big integers exact, writes NaN and
    escapes lone surrogates as \\ud800), as a client in any language could send it."""
    return api.request(method, path, data=json.dumps(body), headers={"content-type": "application/json"})


def assert_names(response, loc: tuple, bad_value=None) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    detail = response.json()["detail"]
    if response.status_code == 422:
        locs = [tuple(error["loc"]) for error in detail]
        assert any(found[:len(loc)] == loc for found in locs), (loc, locs)
    if isinstance(bad_value, int):
        assert str(bad_value) not in response.text  # the rejected value is not echoed


class World:
    """A type, an integration and a few events of it, made once per database."""

    def __init__(self, api):
        self.type_id = register_type(api, schema=SCHEMA)
        created = send(api, "POST", "/integrations", {"type": self.type_id, "config": GOOD_CONFIG})
        assert created.status_code == 201, created.text
        self.integration = created.json()
        self.id = self.integration["id"]
        assert api.put(f"/integrations/{self.id}/sync", json={"status": "success", "state": {"c": 1}}).ok

    def events(self, api) -> list[dict]:
        return api.get("/events", params={"integrationId": self.id, "limit": 500}).json()["events"]

    def integrations(self, api) -> list[dict]:
        return api.get("/integrations", params={"type": self.type_id}, headers={"sec-fetch-mode": "cors"}).json()


_worlds: dict[str, World] = {}


@pytest.fixture
def world(backend, api) -> World:
    if backend.url not in _worlds:
        _worlds[backend.url] = World(api)
    return _worlds[backend.url]


def _with(body: dict, path: tuple, value) -> dict:
    """A deep copy of body with `value` at `path`."""
    body = json.loads(json.dumps(body))
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return body


# ---------------------------------------------------------------------------- places


def event_field(path: tuple, wrap=lambda v: v):
    def place(api, world: World, value) -> None:
        before = world.events(api)
        body = _with(event_body(world.integration, 7, externalId="bad-" + uuid.uuid4().hex), path, wrap(value))
        assert_names(send(api, "POST", "/events", body), ("body", path[0]), value)
        assert world.events(api) == before
    return place


def batch_field(path: tuple, wrap=lambda v: v):
    def place(api, world: World, value) -> None:
        run = uuid.uuid4().hex
        items = [event_body(world.integration, n, externalId=f"{run}-{n}") for n in range(3)]
        items[1] = _with(items[1], path, wrap(value))
        response = send(api, "POST", "/events/batch", {"events": items})
        assert response.status_code == 200, response.text[:500]
        outcome = response.json()
        assert (outcome["created"], outcome["invalid"]) == (2, 1), outcome
        bad = outcome["results"][1]
        assert bad["status"] == "invalid"
        assert any(tuple(e["loc"])[:2] == ("body", path[0]) for e in bad["errors"]), bad
        if isinstance(value, int):
            assert str(value) not in response.text
        stored = {e["externalId"]: e for e in world.events(api) if e["externalId"].startswith(run)}
        assert sorted(stored) == [f"{run}-0", f"{run}-2"]
    return place


def config_field(key: str, wrap=lambda v: v):
    def create(api, world: World, value) -> None:
        before = world.integrations(api)
        body = {"type": world.type_id, "config": {**GOOD_CONFIG, key: wrap(value)}}
        assert_names(send(api, "POST", "/integrations", body), ("body", "config", key), value)
        assert world.integrations(api) == before

    def update(api, world: World, value) -> None:
        before = api.get(f"/integrations/{world.id}").json()
        body = {"config": {**GOOD_CONFIG, key: wrap(value)}}
        assert_names(send(api, "PUT", f"/integrations/{world.id}", body), ("body", "config", key), value)
        assert api.get(f"/integrations/{world.id}").json() == before
    return create, update


def registration_field(loc: tuple, wrap=lambda v: v):
    def place(api, world: World, value) -> None:
        type_id = "bad-" + uuid.uuid4().hex[:8]
        field = {"key": "x", "label": "X", "type": "text"}
        body = {"id": type_id, "displayName": "Bad", "configSchema": {"fields": [field]}}
        body = _with(body, loc, wrap(value))
        assert_names(send(api, "POST", "/integrations/types/register", body), ("body", *loc[:3]), value)
        assert api.get(f"/integrations/types/{type_id}").status_code == 404
    return place


def sync_field(key: str, wrap=lambda v: v, extra: dict | None = None):
    def place(api, world: World, value) -> None:
        before = api.get(f"/integrations/{world.id}/sync").json()
        body = {"status": "error", "error": "it failed", **(extra or {}), key: wrap(value)}
        assert_names(send(api, "PUT", f"/integrations/{world.id}/sync", body), ("body", key), value)
        assert api.get(f"/integrations/{world.id}/sync").json() == before
    return place


def orchestrator_field(key: str, wrap=lambda v: v):
    def place(api, world: World, value) -> None:
        def state():
            return [s for s in api.get("/integrations/status").json() if s["id"] == world.id]
        before = state()
        body = {key: wrap(value)}
        assert_names(send(api, "PUT", f"/integrations/types/{world.type_id}/orchestrator", body), ("body", key), value)
        assert state() == before
    return place


def query_param(path: str, name: str):
    def place(api, world: World, value) -> None:
        assert_names(api.get(path, params={name: value}), ("query", name), value)
    return place


def cursor_param(api, world: World, value) -> None:
    cursor = base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")
    assert_names(api.get("/events", params={"cursor": cursor}), ("query", "cursor"))


def event_path(api, world: World, value) -> None:
    response = api.get("/events/" + value)
    assert response.status_code == 404, response.text


create_config, update_config = {}, {}
for _key, _wrap in [("name", None), ("baseUrl", None), ("token", None), ("verbose", None), ("mode", None),
                    ("repositories", None), ("settings", None), ("interval", None),
                    ("settings-as-json-text", "text"), ("repositories-as-json-text", "text-list"),
                    ("interval-as-text", "str"), ("tags", "list"), ("tags-as-json-text", "text-list")]:
    key = _key.split("-")[0]
    wrap = {None: lambda v: v, "text": lambda v: json.dumps(v), "str": str, "list": lambda v: [v],
            "text-list": lambda v: json.dumps([v])}[_wrap]
    create_config[_key], update_config[_key] = config_field(key, wrap)

TEXT_KEYS = ("name", "baseUrl", "token", "verbose", "mode", "tags")
PLACES: dict[str, tuple] = {}
for where, kinds in [("data value", ANY_KINDS), ("data key", STRING_KINDS), ("tags", STRING_KINDS),
                     ("title", STRING_KINDS), ("project", STRING_KINDS), ("externalId", STRING_KINDS),
                     ("integrationId", STRING_KINDS), ("timestamp", OFF_CALENDAR)]:
    if where == "data value":
        single, batch = event_field(("data", "k")), batch_field(("data", "k"))
    elif where == "data key":
        single = event_field(("data",), lambda v: {v: 1})
        batch = batch_field(("data",), lambda v: {v: 1})
    elif where == "tags":
        single, batch = event_field(("tags",), lambda v: [v]), batch_field(("tags",), lambda v: [v])
    else:
        single, batch = event_field((where,)), batch_field((where,))
    PLACES[f"POST /events {where}"] = (single, kinds)
    PLACES[f"POST /events/batch {where}"] = (batch, kinds)
for key, place in create_config.items():
    kinds = (STRING_KINDS if key in TEXT_KEYS else INT_KINDS + ("NaN",) if key == "interval"
             else INT_KINDS if key == "interval-as-text" else ANY_KINDS)
    PLACES[f"POST /integrations config.{key}"] = (place, kinds)
    PLACES[f"PUT /integrations config.{key}"] = (update_config[key], kinds)
PLACES.update({
    "register field default": (registration_field(("configSchema", "fields", 0, "default")), ANY_KINDS),
    "register select option": (registration_field(
        ("configSchema", "fields", 0), lambda v: {"key": "x", "label": "X", "type": "select", "options": [{"value": v}]}),
        INT_KINDS + ("NaN",) + STRING_KINDS),
    "register jsonSchema": (registration_field(
        ("configSchema", "fields", 0, "jsonSchema"), lambda v: {"const": v}), ANY_KINDS),
    "register field label": (registration_field(("configSchema", "fields", 0, "label")), STRING_KINDS),
    "register displayName": (registration_field(("displayName",)), STRING_KINDS),
    "register field extra attribute": (registration_field(("configSchema", "fields", 0, "uiHint")), ANY_KINDS),
    "PUT sync state": (sync_field("state", lambda v: {"cursor": v}), ANY_KINDS),
    "PUT sync stats": (sync_field("stats", lambda v: {"n": v}), ANY_KINDS),
    "PUT sync error": (sync_field("error"), STRING_KINDS),
    "PUT orchestrator problem": (orchestrator_field("problem"), STRING_KINDS),
    "PUT orchestrator checked": (orchestrator_field("checked", lambda v: [v]), STRING_KINDS),
    "PUT orchestrator queued": (orchestrator_field("queued", lambda v: [v]), STRING_KINDS),
})
for path, name in [("/events", "since"), ("/events", "until"), ("/events", "receivedSince"),
                   ("/events/histogram", "since"), ("/events/histogram", "until"), ("/events/facets", "since")]:
    PLACES[f"GET {path}?{name}"] = (query_param(path, name), OFF_CALENDAR)
PLACES["GET /events?cursor"] = (cursor_param, ("99999999999999999999999:1", "1:99999999999999999999",
                                              "-99999999999999999999:1"))
PLACES["GET /events/{id}"] = (event_path, ("²", "１２", "٣"))
for path, name in [("/events", "limit"), ("/events/histogram", "buckets"), ("/events/histogram", "interval")]:
    PLACES[f"GET {path}?{name}"] = (query_param(path, name), tuple(str(KINDS[k]) for k in INT_KINDS))

CASES = [pytest.param(place, kind, id=f"{name} | {kind}") for name, (place, kinds) in PLACES.items() for kind in kinds]


@pytest.mark.parametrize("place, kind", CASES)
def test_bad_input_is_a_4xx_naming_the_field(api, world, place, kind):
    place(api, world, KINDS.get(kind, kind))


def test_numbers_within_64_bits_and_floats_are_kept_exactly(api, world):
    """Never alter data: what is accepted comes back as it was sent, through either endpoint."""
    data = {"u64": 2**64 - 1, "i64": -(2**63), "float": 1.5e300, "small": 0.1, "neg": -0.0, "deep": _nested(60)}
    run = uuid.uuid4().hex
    single = send(api, "POST", "/events", event_body(world.integration, 1, externalId=run + "-s", data=data))
    assert single.status_code == 201, single.text
    batch = send(api, "POST", "/events/batch", {"events": [
        event_body(world.integration, 2, externalId=run + "-b", data=data)]})
    assert batch.json()["created"] == 1, batch.text
    stored = [e for e in world.events(api) if e["externalId"].startswith(run)]
    assert len(stored) == 2
    for event in stored:
        assert json.loads(json.dumps(event["data"])) == json.loads(json.dumps(data))
        assert event["data"]["u64"] == 2**64 - 1 and event["data"]["i64"] == -(2**63)


def test_a_json_schema_that_refers_to_itself_without_end_is_a_422(api):
    """Valid JSON Schema, endless to apply: refused at registration when any value loops, and
    a 422 on the field (never a RecursionError) when only some values reach the loop."""
    loops = {"key": "x", "label": "X", "type": "textarea", "format": "json", "jsonSchema": {"$ref": "#"}}
    response = send(api, "POST", "/integrations/types/register", {
        "id": "loop-" + uuid.uuid4().hex[:8], "displayName": "Loop", "configSchema": {"fields": [loops]}})
    assert_names(response, ("body", "configSchema", "fields"))
    sometimes = {**loops, "jsonSchema": {"properties": {"a": {"$ref": "#/$defs/x"}},
                                         "$defs": {"x": {"$ref": "#/$defs/x"}}}}
    type_id = register_type(api, schema={"fields": [sometimes]})
    fine = send(api, "POST", "/integrations", {"type": type_id, "config": {"name": "n", "tags": [], "x": '{"b": 1}'}})
    assert fine.status_code == 201, fine.text
    response = send(api, "POST", "/integrations", {"type": type_id, "config": {"name": "n", "tags": [], "x": '{"a": 1}'}})
    assert_names(response, ("body", "config", "x"))
