from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import Field

from painchain_pipelines.backend.schemas.common import ApiModel


class IntegrationCreate(ApiModel):
    type: str = Field(min_length=1, max_length=64, pattern=r"^[^\x00]*$", description="A registered connector type id.")
    name: str | None = Field(
        default=None, max_length=200, pattern=r"^[^\x00]*$", description="Defaults to config.name; both must agree."
    )
    config: dict[str, Any] = Field(description="Values for the type's configSchema fields.")


class IntegrationUpdate(ApiModel):
    """Replaces name and config. A password field left out, empty or equal to the mask keeps
    the stored secret, so clients never need to know it."""

    type: str | None = Field(default=None, pattern=r"^[^\x00]*$", description="Must equal the current type if given.")
    name: str | None = Field(default=None, max_length=200, pattern=r"^[^\x00]*$")
    config: dict[str, Any]


class IntegrationOut(ApiModel):
    id: str
    name: str
    type: str
    config: dict[str, Any]
    tenant_id: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
