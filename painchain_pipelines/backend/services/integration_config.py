"""Validate an integration's config against its connector type's configSchema."""

from __future__ import annotations

import math
import re
import secrets
import unicodedata
from collections.abc import Callable
from typing import Any

from painchain_pipelines.backend.crypto import MASK, SecretBox, SecretDecryptionError, is_encrypted
from painchain_pipelines.backend.errors import field_errors
from painchain_pipelines.backend.schemas.connector_types import ConfigField, ConfigSchema
from painchain_pipelines.backend.services.json_input import BIG_INT, INT_MAX, INT_MIN, parse_json_text
from painchain_pipelines.backend.services.json_values import schema_problem

# Always required, whatever the schema says (the connector guide's standard fields).
STANDARD_FIELDS = {
    "name": ConfigField(key="name", label="Integration Name", type="text", required=True),
    "tags": ConfigField(key="tags", label="Tags", type="textarea", required=True, format="json"),
}
MAX_TAGS = 50
MAX_TAG_LENGTH = 100
MAX_STRING_BYTES = 256 * 1024


def effective_fields(schema: ConfigSchema) -> list[ConfigField]:
    declared = {f.key: f for f in schema.fields}
    fields = []
    for key, standard in STANDARD_FIELDS.items():
        field = declared.pop(key, None)
        if field is None:
            fields.append(standard)
        else:
            fields.append(field.model_copy(update={"required": True}))
    return fields + list(declared.values())


def secret_keys(schema: ConfigSchema) -> set[str]:
    return {f.key for f in schema.fields if f.type == "password"}


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def normalize_tags(value: Any) -> list[str]:
    """`tags` is a JSON array of strings (given as a list or as JSON text). Raises ValueError."""
    if isinstance(value, str):
        try:
            value = parse_json_text(value) if value.strip() else []
        except ValueError as exc:
            raise ValueError(f'must be a JSON array of strings, e.g. ["production"]: {exc}') from None
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise ValueError('must be a JSON array of strings, e.g. ["production", "backend"]')
    tags: list[str] = []
    for tag in value:
        tag = tag.strip()
        if not tag:
            raise ValueError("tags must not be empty strings")
        if len(tag) > MAX_TAG_LENGTH:
            raise ValueError(f"each tag must be at most {MAX_TAG_LENGTH} characters")
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags")
    return tags


def has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False


def _coerce(field: ConfigField, value: Any) -> Any:
    """Return the stored form of one value, or raise ValueError with a message for people."""
    if has_nul(value):
        raise ValueError("must not contain NUL (\\u0000) characters")
    if field.key == "tags":
        return normalize_tags(value)
    if field.type in ("text", "password"):
        if not isinstance(value, str):
            raise ValueError("must be a string")
        if len(value.encode()) > MAX_STRING_BYTES:
            raise ValueError("is too long")
        return value.strip() if field.type == "text" else value
    if field.type == "textarea":
        if not isinstance(value, str):
            if field.format == "text":
                raise ValueError("must be a string")
            return value  # already structured JSON (API clients send lists/objects directly)
        if len(value.encode()) > MAX_STRING_BYTES:
            raise ValueError("is too long")
        looks_json = value.lstrip()[:1] in ("[", "{")
        if field.format == "json" or (field.format is None and looks_json):
            return parse_json_text(value)
        return value
    if field.type == "number":
        if isinstance(value, bool):
            raise ValueError("must be a number")
        if isinstance(value, str):
            try:
                value = float(value) if any(c in value for c in ".eE") else int(value)
            except ValueError:
                raise ValueError("must be a number") from None
        if not isinstance(value, (int, float)) or (isinstance(value, float) and not math.isfinite(value)):
            raise ValueError("must be a number")
        if isinstance(value, int) and not INT_MIN <= value <= INT_MAX:
            raise ValueError(BIG_INT)
        return value
    if field.type == "checkbox":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError("must be true or false")
    if field.type == "select":
        allowed = field.option_values()
        if value not in allowed:
            raise ValueError(f"must be one of {allowed}")
        return value
    raise ValueError(f"has unsupported type {field.type}")


def validate_config(
    schema: ConfigSchema,
    config: dict[str, Any],
    *,
    connector_id: str,
    previous: dict[str, Any] | None = None,
    loc: tuple[str, ...] = ("body", "config"),
) -> dict[str, Any]:
    """Validate and normalise `config`; raise a 422 naming every bad field.

    With `previous` (an update), password fields that are absent, blank or the mask keep
    their stored (encrypted) value.
    """
    fields = effective_fields(schema)
    known = {f.key for f in fields}
    errors: list[dict[str, Any]] = []
    for key in config:
        if key not in known:
            errors.append({
                "loc": (*loc, key),
                "msg": f"unknown field {key!r} for connector {connector_id!r}; "
                f"known fields: {', '.join(sorted(known))}",
                "type": "extra_forbidden",
            })
    result: dict[str, Any] = {}
    for field in fields:
        value = config.get(field.key)
        if field.type == "password" and previous is not None and (_blank(value) or value == MASK):
            if field.key in previous and not _blank(previous[field.key]):
                result[field.key] = previous[field.key]
                continue
        if field.type == "password" and value == MASK:
            errors.append({"loc": (*loc, field.key), "msg": "enter the secret itself, not the mask",
                           "type": "value_error"})
            continue
        if _blank(value):
            if field.required:
                hint = ": a JSON array of strings (can be empty [])" if field.key == "tags" else ""
                errors.append({"loc": (*loc, field.key), "msg": f"{field.label} is required{hint}",
                               "type": "missing"})
            continue
        try:
            result[field.key] = _coerce(field, value)
            problem = field.jsonSchema and schema_problem(field.jsonSchema, result[field.key], field.placeholder)
            if problem:
                raise ValueError(problem)
        except ValueError as exc:
            errors.append({"loc": (*loc, field.key), "msg": f"{field.label} {exc}", "type": "value_error"})
    if previous is not None:
        errors.extend(_secrets_to_reenter(fields, config, result, previous, loc))
    for field in fields:
        if field.itemSecrets and isinstance(result.get(field.key), list):
            errors.extend(_keep_item_secrets(field, result, (previous or {}).get(field.key), loc))
    if errors:
        raise field_errors(errors)
    return result


def _kept_secret(value: Any) -> bool:
    return _blank(value) or value == MASK


def _secrets_to_reenter(fields: list[ConfigField], config: dict[str, Any], result: dict[str, Any],
                        previous: dict[str, Any], loc: tuple[str, ...]) -> list[dict[str, Any]]:
    """A stored secret goes only where it was entered for: when a field that decides where it is
    sent changes, the secret must come with the change."""
    labels = {f.key: f.label for f in fields}
    errors = []
    for field in fields:
        if not field.guardsSecrets or result.get(field.key) == previous.get(field.key):
            continue
        for secret in field.guardsSecrets:
            if _kept_secret(config.get(secret)) and not _blank(previous.get(secret)):
                errors.append({
                    "loc": (*loc, secret),
                    "msg": f"{labels.get(secret, secret)} must be entered again: {field.label} changed, and a "
                           "stored secret is only sent where it was entered for",
                    "type": "value_error",
                })
    return errors


def _keep_item_secrets(field: ConfigField, result: dict[str, Any], previous_items: Any,
                       loc: tuple[str, ...]) -> list[dict[str, Any]]:
    """Secrets inside the objects of a JSON list: a masked one keeps the stored secret of the
    object of the same name, unless a key deciding where it is sent changed."""
    stored = {item.get(field.itemKey): item for item in previous_items or [] if isinstance(item, dict)}
    errors = []
    items = []
    for index, item in enumerate(result[field.key]):
        if not isinstance(item, dict):
            items.append(item)
            continue
        item = dict(item)
        before = stored.get(item.get(field.itemKey))
        for secret in field.itemSecrets or []:
            if item.get(secret) != MASK:
                continue
            where = f"{field.label} [{index}].{secret}"
            if before is None or _blank(before.get(secret)):
                errors.append({"loc": (*loc, field.key), "type": "value_error",
                               "msg": f"{where}: enter the secret itself, not the mask"})
                continue
            moved = [k for k in field.itemSecretGuards or [] if item.get(k) != before.get(k)]
            if moved:
                errors.append({"loc": (*loc, field.key), "type": "value_error",
                               "msg": f"{where} must be entered again: {', '.join(moved)} changed, and a stored "
                                      "secret is only sent where it was entered for"})
                continue
            item[secret] = before[secret]
        items.append(item)
    result[field.key] = items
    return errors


def _map_item_secrets(value: Any, keys: list[str], change: Callable[[Any], Any]) -> Any:
    if not isinstance(value, list):
        return value
    return [{k: change(v) if k in keys else v for k, v in item.items()} if isinstance(item, dict) else item
            for item in value]


ID_SLUG_LENGTH = 40


def new_integration_id(name: str, exists: Callable[[str], bool]) -> str:
    """A readable, stable id chosen at creation: `payments-github-3f9a1c0e`. It is also the
    integration's partition key in Dagster, where people pick integrations by it."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:ID_SLUG_LENGTH].rstrip("-") or "integration"
    while True:
        candidate = f"{slug}-{secrets.token_hex(4)}"
        if not exists(candidate):
            return candidate


def encrypt_secrets(config: dict[str, Any], schema: ConfigSchema, box: SecretBox) -> dict[str, Any]:
    def encrypt(value: Any) -> Any:
        return box.encrypt(value) if isinstance(value, str) and value and not is_encrypted(value) else value

    stored = dict(config)
    for key in secret_keys(schema) & stored.keys():
        stored[key] = encrypt(stored[key])
    for field in schema.fields:
        if field.itemSecrets and field.key in stored:
            stored[field.key] = _map_item_secrets(stored[field.key], field.itemSecrets, encrypt)
    return stored


def masked_config(config: dict[str, Any], schema: ConfigSchema | None) -> dict[str, Any]:
    """The config as people may see it: secrets replaced by the mask."""
    keys = secret_keys(schema) if schema else set()
    out = {}
    for key, value in config.items():
        if key in keys or is_encrypted(value):
            out[key] = MASK if not _blank(value) else ""
        elif isinstance(value, list):  # objects holding secrets (itemSecrets), or any encrypted value
            out[key] = [
                {k: MASK if is_encrypted(v) else v for k, v in item.items()} if isinstance(item, dict) else item
                for item in value]
        else:
            out[key] = value
    return out


def clear_config(config: dict[str, Any], box: SecretBox) -> tuple[dict[str, Any], list[str]]:
    """The config as a connector needs it: secrets decrypted. Returns (config, undecryptable keys)."""
    out, failed = {}, []

    def decrypt(value: Any, where: str) -> Any:
        if not is_encrypted(value):
            return value
        try:
            return box.decrypt(value)
        except SecretDecryptionError:
            failed.append(where)
            return None

    for key, value in config.items():
        if isinstance(value, list):
            out[key] = [{k: decrypt(v, f"{key}[{i}].{k}") for k, v in item.items()} if isinstance(item, dict)
                        else item for i, item in enumerate(value)]
        else:
            out[key] = decrypt(value, key)
    return out, failed
