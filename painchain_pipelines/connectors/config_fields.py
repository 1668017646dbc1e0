"""Parsers for configuration fields shared by connectors; each raises ConfigError naming the field."""

from __future__ import annotations

import json
import re
import ssl
from typing import Any
from urllib.parse import urlparse

from painchain_pipelines.connectors.base import ConfigError

# git check-ref-format, roughly: no spaces, control characters, ~ ^ : ? * [ \, no "..", no "@{",
# not starting with "-" or "/", not ending with "/", "." or ".lock".
_BRANCH = re.compile(r"^(?!-)(?!/)(?!.*\.\.)(?!.*@\{)(?!.*//)[^\s~^:?*\[\\\x00-\x1f\x7f]+(?<![/.])(?<!\.lock)$")
_PEM_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----\s+[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----")


def json_list(value: Any, field_name: str) -> list:
    """A list given as a list or as JSON text (the textarea form); empty text is []."""
    if value is None:
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except json.JSONDecodeError as exc:
            raise ConfigError(field_name, f"is not valid JSON ({exc.msg})") from None
    if not isinstance(value, list):
        raise ConfigError(field_name, "must be a JSON list")
    return value


def branch_names(value: Any, field_name: str = "branches") -> tuple[str, ...]:
    """A JSON list of git branch names, trimmed and without duplicates (order kept)."""
    names: list[str] = []
    for item in json_list(value, field_name):
        if not isinstance(item, str) or not _BRANCH.match(item.strip()):
            raise ConfigError(field_name, f"{item!r} is not a branch name")
        if item.strip() not in names:
            names.append(item.strip())
    return tuple(names)


def http_url(value: Any, field_name: str, default: str, hint: str = "") -> str:
    """An http(s) URL without query, fragment or credentials, trailing slashes removed."""
    url = value.strip() if isinstance(value, str) and value.strip() else default
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigError(field_name, f"{url!r} is not an http(s) URL{hint}")
    if parsed.username or parsed.password:
        raise ConfigError(field_name, "must not contain credentials (user:password@)")
    if parsed.query or parsed.fragment:
        raise ConfigError(field_name, f"{url!r} must not have a query or fragment{hint}")
    try:
        parsed.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ConfigError(field_name, f"{url!r} has an invalid port") from None
    return url.rstrip("/")


def pem_certificates(value: Any, field_name: str) -> str | None:
    """One or more PEM certificates (a private CA bundle), checked by loading them; None if empty."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise ConfigError(field_name, "must be PEM text")
    text = value.strip()
    if "PRIVATE KEY" in text:
        raise ConfigError(field_name, "contains a private key; paste only the CA certificate(s)")
    blocks = _PEM_BLOCK.findall(text)
    if not blocks:
        raise ConfigError(field_name, "is not a PEM certificate (-----BEGIN CERTIFICATE----- … -----END CERTIFICATE-----)")
    try:
        ssl.create_default_context(cadata="\n".join(blocks))
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(field_name, f"cannot be loaded as a CA certificate ({type(exc).__name__})") from None
    return "\n".join(blocks) + "\n"


def boolean(value: Any, field_name: str) -> bool:
    """A checkbox or JSON flag: true/false in the forms people and API clients send them."""
    if value in (None, "", False, 0, "false", "False", "0"):
        return False
    if value in (True, 1, "true", "True", "1", "on"):
        return True
    raise ConfigError(field_name, f"{value!r} is not true or false")
