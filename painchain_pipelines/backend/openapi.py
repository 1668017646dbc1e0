"""The OpenAPI document, made to tell the truth about what the API does (a schemathesis run with
every check holds it to that: tests/backend/test_openapi_fuzz.py).

FastAPI's generated document is completed with what the routes alone cannot say:

* security: with no token configured a token is optional (an unknown one is still a 401), so
  Authorization is not claimed to be required; with PAINCHAIN_API_TOKEN it is;
* the answers every operation can give besides its own: 400 (Host not answered here, malformed
  x-tenant-id), 401/403 (tokens, cross-origin writes), 404 (path ids), 413/415 (bodies), 422
  (validation, NUL in the URL), 503 (a query stopped by its time budget);
* the JSON input rules of services/json_input.py: strings and keys without NUL, integers within
  64 bits, free-form values (event data, config, state) described as such JSON;
* the x-tenant-id header's form.

Call `install_openapi(app)` once the routers are included.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI

from painchain_pipelines.backend.auth import TENANT_ID_PATTERN
from painchain_pipelines.backend.services.json_input import INT_MAX, INT_MIN

NO_NUL = "^[^\\u0000]*$"
# "not blank" (pydantic pattern \S, searched anywhere) and no NUL, as one anchored pattern
NOT_BLANK_NO_NUL = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"
JSON_VALUE_REF = "#/components/schemas/JsonValue"
METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")


def _error(description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorMessage"}}}}


COMPONENTS = {
    "JsonValue": {
        "description": "Any JSON value within the API's input rules: strings and keys without NUL, "
        "integers within 64 bits, objects and arrays nested at most 64 levels (see docs/api.md).",
        "anyOf": [
            {"type": "string", "pattern": NO_NUL},
            {"type": "integer", "minimum": INT_MIN, "maximum": INT_MAX},
            {"type": "number"},
            {"type": "boolean"},
            {"type": "null"},
            {"type": "array", "items": {"$ref": JSON_VALUE_REF}},
            {"type": "object", "propertyNames": {"pattern": NO_NUL},
             "additionalProperties": {"$ref": JSON_VALUE_REF}},
        ],
    },
    "ErrorMessage": {
        "type": "object",
        "required": ["detail"],
        "properties": {"detail": {"anyOf": [
            {"type": "string"},
            {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}},
        ]}},
    },
    "HealthDown": {
        "type": "object",
        "required": ["status", "database"],
        "properties": {"status": {"type": "string"}, "version": {"type": "string"},
                       "database": {"type": "object"}},
    },
}


def install_openapi(app: FastAPI) -> None:
    """Serve the completed document at the app's openapi_url (idempotent)."""
    if getattr(app, "_painchain_openapi", False):
        return
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        cached = getattr(app.state, "painchain_openapi", None)
        if cached is None:
            cached = app.state.painchain_openapi = describe(copy.deepcopy(generate()), app)
        return cached

    app.openapi = openapi
    app._painchain_openapi = True


def describe(schema: dict[str, Any], app: FastAPI) -> dict[str, Any]:
    settings = app.state.ctx.settings
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, component in components.items():
        _json_rules(component)
    components.update(copy.deepcopy(COMPONENTS))
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method in METHODS:
                _operation(path, method, operation, settings.auth_required)
    return schema


def _operation(path: str, method: str, operation: dict, auth_required: bool) -> None:
    secured = bool(operation.get("security"))
    if secured and not auth_required:
        # No token configured: a token may be sent (an unknown one is a 401), none is needed.
        operation["security"] = [{}, *operation["security"]]
    responses = operation.setdefault("responses", {})

    def add(status: str, description: str) -> None:
        responses.setdefault(status, _error(description))

    add("400", "A Host this server does not answer to, or a malformed x-tenant-id header")
    if secured:
        add("401", "A token is required, or the token is unknown")
        add("403", "A tenant token acting for another tenant or doing an admin-only action")
    if method in ("post", "put", "patch", "delete"):
        add("403", "A cross-origin request that changes data, or a tenant token doing an admin-only action")
    if "{" in path or (path, method) == ("/api/events", "post"):
        add("404", "Not found (or another tenant's)")
    if "requestBody" in operation:
        add("413", "Request body over the size limit")
        add("415", "Request body not sent as application/json")
        _json_rules(operation["requestBody"])
    add("422", "Invalid input; `detail[].loc` names the field")
    if path == "/api/health":
        responses.setdefault("503", {"description": "The database is unreachable", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/HealthDown"}}}})
    else:
        add("503", "A query ran past its time budget and was stopped (`Retry-After` is set); narrow it")
    for parameter in operation.get("parameters", []):
        _parameter(parameter)


def _parameter(parameter: dict) -> None:
    schema = parameter.get("schema", {})
    options = schema.get("anyOf")
    if options and not parameter.get("required"):
        # `X | None`: in a URL or a header, "null" is leaving the parameter out
        kept = [o for o in options if o.get("type") != "null"]
        if len(kept) == 1:
            extra = {k: v for k, v in schema.items() if k != "anyOf"}
            schema = parameter["schema"] = {**kept[0], **extra}
    if parameter.get("in") == "header" and parameter.get("name", "").lower() == "x-tenant-id":
        for option in schema.get("anyOf", [schema]):
            if option.get("type") == "string":
                option["pattern"] = TENANT_ID_PATTERN.pattern
                option["maxLength"] = 128
        return
    # The URL may not carry NUL (%00): the request is refused before routing.
    for option in schema.get("anyOf", [schema]):
        target = option.get("items", option) if option.get("type") == "array" else option
        if target.get("type") == "string" and "pattern" not in target:
            target["pattern"] = NO_NUL


def _json_rules(node: Any) -> None:
    """Strings without NUL; free-form objects and values as JsonValue."""
    if isinstance(node, list):
        for item in node:
            _json_rules(item)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") == "string" and "format" not in node and "enum" not in node and "const" not in node:
        pattern = node.get("pattern")
        if pattern is None:
            node["pattern"] = NO_NUL
        elif pattern == "\\S":
            node["pattern"] = NOT_BLANK_NO_NUL
    if node.get("type") == "object" and not node.pop("x-unchecked-properties", False):
        extra = node.get("additionalProperties", True)
        if extra is True or extra == {}:
            node["additionalProperties"] = {"$ref": JSON_VALUE_REF}
        node.setdefault("propertyNames", {"pattern": NO_NUL})
    for key, value in list(node.items()):
        if key in ("properties", "$defs", "definitions", "patternProperties"):
            for name, sub in value.items():
                if sub == {} or sub is True:
                    value[name] = {"$ref": JSON_VALUE_REF}
                else:
                    _json_rules(sub)
        elif key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf", "prefixItems", "not"):
            if value == {}:
                node[key] = {"$ref": JSON_VALUE_REF}
            else:
                _json_rules(value)
        elif key == "content" or (isinstance(value, dict) and key not in ("propertyNames", "examples", "example")):
            _json_rules(value)
