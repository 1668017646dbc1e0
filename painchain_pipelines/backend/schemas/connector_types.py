from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from painchain_pipelines.backend.schemas.common import ApiModel

MAX_LOGO_BYTES = 256 * 1024
FIELD_TYPES = ("text", "textarea", "password", "number", "checkbox", "select")
_DATA_URI = re.compile(r"^data:image/(png|jpeg|gif|webp|svg\+xml)(;charset=[\w-]+)?(;base64)?,", re.I)
_COLOR = re.compile(r"^(#[0-9a-fA-F]{3}|#[0-9a-fA-F]{6}|#[0-9a-fA-F]{8})?$")


class SelectOption(BaseModel):
    value: str | int | float | bool
    label: str | None = None


class ConfigField(BaseModel):
    # Unknown attributes (e.g. UI hints of third-party connectors) are kept and returned.
    model_config = ConfigDict(extra="allow")

    key: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
    label: str = Field(min_length=1, max_length=200)
    type: Literal["text", "textarea", "password", "number", "checkbox", "select"]
    required: bool = Field(default=False, strict=True)
    placeholder: str | None = Field(default=None, max_length=2000)
    help: str | None = Field(default=None, max_length=4000)
    default: Any = None
    options: list[SelectOption | str] | None = None
    # Our extension: "json" makes a textarea parse as JSON (invalid JSON is a 422),
    # "text" keeps it verbatim. Without it, a textarea value that starts like JSON is parsed.
    format: Literal["json", "text"] | None = None
    # Our extension: a JSON Schema (draft 2020-12) the field's value must match once parsed,
    # e.g. {"type": "array", "items": {"type": "string"}}, so that a JSON string where a list
    # belongs is a 422 naming the field, not a failing sync later.
    jsonSchema: dict[str, Any] | None = None
    # Our extension: the password fields whose secret is sent wherever this field points (a base
    # URL, a server). When this field changes, those secrets must be entered again, so that
    # whoever may edit an integration but not read its secrets cannot redirect them elsewhere.
    guardsSecrets: list[str] | None = None
    # Our extension, for a JSON textarea holding a list of objects (e.g. Kubernetes clusters): the
    # keys of each object that are secrets (encrypted at rest, masked for people, like password
    # fields), the key naming an object (an edit keeps the secrets of the object of the same
    # name), and the keys deciding where its secrets are sent (changing one needs them again).
    itemSecrets: list[str] | None = Field(default=None, max_length=20)
    itemKey: str = Field(default="name", max_length=64)
    itemSecretGuards: list[str] | None = Field(default=None, max_length=20)

    @model_validator(mode="after")
    def _options_for_select(self) -> "ConfigField":
        if self.type == "select" and not self.options:
            raise ValueError("a select field needs a non-empty 'options' list")
        if (self.itemSecrets or self.itemSecretGuards) and (self.type != "textarea" or self.format != "json"):
            raise ValueError("itemSecrets and itemSecretGuards need a textarea with format 'json'")
        return self

    @field_validator("jsonSchema")
    @classmethod
    def _valid_json_schema(cls, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        if schema is not None:
            from painchain_pipelines.backend.services.json_values import check_json_schema

            check_json_schema(schema)
        return schema

    def option_values(self) -> list[Any]:
        return [o.value if isinstance(o, SelectOption) else o for o in self.options or []]


class ConfigSchema(BaseModel):
    model_config = ConfigDict(extra="allow")

    fields: list[ConfigField] = Field(max_length=100)

    @field_validator("fields")
    @classmethod
    def _unique_keys(cls, fields: list[ConfigField]) -> list[ConfigField]:
        seen: set[str] = set()
        for f in fields:
            if f.key in seen:
                raise ValueError(f"duplicate field key {f.key!r}")
            seen.add(f.key)
        secrets = {f.key for f in fields if f.type == "password"}
        for f in fields:
            unknown = [key for key in f.guardsSecrets or [] if key not in secrets]
            if unknown:
                raise ValueError(f"field {f.key!r}: guardsSecrets names {unknown}, which are not password fields")
        return fields

    def field(self, key: str) -> ConfigField | None:
        return next((f for f in self.fields if f.key == key), None)


class ConnectorTypeRegister(ApiModel):
    id: str = Field(
        pattern=r"^[a-z0-9]+(?:[-_.][a-z0-9]+)*$",
        max_length=64,
        description="Unique connector id: lowercase letters, digits and - _ . (no spaces).",
    )
    display_name: str = Field(min_length=1, max_length=200)
    color: str = Field(default="", max_length=9)
    logo: str = Field(default="", description="A data: URI (image) or an http(s) URL, at most 256 KiB.")
    description: str = Field(default="", max_length=2000)
    config_schema: ConfigSchema

    @field_validator("display_name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("color")
    @classmethod
    def _color(cls, value: str) -> str:
        if not _COLOR.match(value):
            raise ValueError("must be a hex colour like #326ce5 (or empty)")
        return value

    @field_validator("logo")
    @classmethod
    def _logo(cls, value: str) -> str:
        if len(value.encode()) > MAX_LOGO_BYTES:
            raise ValueError(f"is larger than {MAX_LOGO_BYTES // 1024} KiB")
        if value and not (_DATA_URI.match(value) or re.match(r"^https?://\S+$", value)):
            raise ValueError("must be a data:image/... URI or an http(s) URL")
        return value


    @model_validator(mode="after")
    def _no_nul(self) -> "ConnectorTypeRegister":
        from painchain_pipelines.backend.services.integration_config import has_nul

        if has_nul(self.model_dump(mode="json")):
            raise ValueError("must not contain NUL (\\u0000) characters")
        return self


class ConnectorTypeRegistered(ApiModel):
    id: str
    display_name: str
    registered: Literal[True] = True


class ConnectorTypeSummary(ApiModel):
    id: str
    display_name: str
    color: str
    logo: str
    description: str
    created_at: dt.datetime
    updated_at: dt.datetime


class ConnectorTypeDetail(ConnectorTypeSummary):
    config_schema: dict[str, Any]
