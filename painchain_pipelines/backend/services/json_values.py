"""JSON values of config fields checked against the field's `jsonSchema`, with messages for
people that name where the value is wrong but never echo it (it may hold a secret)."""

from __future__ import annotations

import functools
import json
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError, best_match

_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number",
               type(None): "null"}


def check_json_schema(schema: dict[str, Any]) -> None:
    """Raise ValueError when `schema` is not a valid JSON Schema."""
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"jsonSchema is not a valid JSON Schema: {exc.message}") from None
    # A valid schema can still refer to itself without end ({"$ref": "#"}): try it on one value
    # of each JSON type.
    validator = Draft202012Validator(schema)
    for probe in (None, True, 0, 0.5, "", [], {}):
        try:
            best_match(validator.iter_errors(probe))
        except RecursionError:
            raise ValueError(ENDLESS) from None


ENDLESS = "jsonSchema refers to itself without end (e.g. {\"$ref\": \"#\"})"


@functools.lru_cache(maxsize=256)
def _validator(schema_json: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema_json))


def json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def schema_problem(schema: dict[str, Any], value: Any, example: str | None = None) -> str | None:
    """None when `value` matches `schema`, else one sentence ("must be a JSON array, e.g. [...]")."""
    validator = _validator(json.dumps(schema, sort_keys=True))
    try:
        error = best_match(validator.iter_errors(value))
    except RecursionError:
        return f"cannot be checked: its {ENDLESS}"
    if error is None:
        return None
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return (f"at {where.lstrip('.')}: " if where else "") + _describe(error, example if not where else None)


def _describe(error: ValidationError, example: str | None) -> str:
    expected = error.validator_value
    kind = error.validator
    if kind == "type":
        wanted = " or ".join(expected) if isinstance(expected, list) else expected
        hint = f", e.g. {example}" if example else ""
        return f"must be a JSON {wanted}{hint} (got {_article(json_type(error.instance))})"
    if kind == "required":
        missing = [k for k in expected if isinstance(error.instance, dict) and k not in error.instance]
        return f"is missing {', '.join(repr(k) for k in missing) or 'a required key'}"
    if kind == "additionalProperties":
        return "has keys that are not allowed here"
    if kind in ("anyOf", "oneOf"):
        return "does not match any of the accepted forms"
    if kind == "pattern":
        # A schema's "description" says the form in words; the regular expression is the fallback.
        return f"does not have the expected form ({error.schema.get('description') or expected})"
    if kind in ("minItems", "maxItems"):
        return f"must have {'at least' if kind == 'minItems' else 'at most'} {expected} item(s)"
    if kind in ("minLength", "maxLength"):
        return f"must be {'at least' if kind == 'minLength' else 'at most'} {expected} characters long"
    if kind == "enum":
        return f"must be one of {', '.join(json.dumps(v) for v in expected)}"
    if kind == "uniqueItems":
        return "must not list the same item twice"
    return f"is not valid ({kind})"


def _article(type_name: str) -> str:
    return f"an {type_name}" if type_name[0] in "aeiou" else f"a {type_name}"
