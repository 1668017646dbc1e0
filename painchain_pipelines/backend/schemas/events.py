from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from painchain_pipelines.backend.schemas.common import ApiModel, parse_iso8601

MAX_EVENT_TAGS = 50


# "Not blank" as a pattern: checked inside pydantic-core, not by a Python validator (hot path).
NOT_BLANK = r"\S"


class EventIn(ApiModel):
    title: str = Field(min_length=1, max_length=500, pattern=NOT_BLANK, examples=["Commit to main: Fix bug"])
    connector: str = Field(
        min_length=1, max_length=64, pattern=NOT_BLANK, description="Must equal the integration's type."
    )
    project: str = Field(min_length=1, max_length=300, pattern=NOT_BLANK, examples=["facebook/react"])
    timestamp: dt.datetime = Field(
        description="When the change happened, ISO 8601 (no offset means UTC).",
        json_schema_extra={"type": "string", "format": "date-time"},
    )
    external_id: str = Field(
        min_length=1,
        max_length=500,
        pattern=NOT_BLANK,
        description="Stable id from the source; unique per integration.",
    )
    integration_id: str = Field(min_length=1, max_length=64, pattern=NOT_BLANK)
    data: dict[str, Any] = Field(default_factory=dict)
    tags: list[Annotated[str, Field(min_length=1, max_length=100, pattern=NOT_BLANK)]] = Field(
        default_factory=list, max_length=MAX_EVENT_TAGS)

    @field_validator("timestamp", mode="before")
    @classmethod
    def _iso8601(cls, value: Any) -> dt.datetime:
        return parse_iso8601(value)

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str]) -> list[str]:
        if not tags:
            return tags
        cleaned: list[str] = []
        for tag in tags:
            tag = tag.strip()
            if not tag or len(tag) > 100:
                raise ValueError("each tag must be 1-100 characters")
            if tag not in cleaned:
                cleaned.append(tag)
        return cleaned


class EventOut(ApiModel):
    id: int
    title: str
    connector: str
    project: str
    timestamp: str
    external_id: str
    integration_id: str
    tenant_id: str | None
    data: dict[str, Any]
    tags: list[str]
    received_at: str


class DuplicateEvent(ApiModel):
    detail: str
    existing_id: int


class EventPage(ApiModel):
    events: list[EventOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page; null at the end.")
    limit: int


class EventBatchIn(ApiModel):
    events: list[dict[str, Any]] = Field(
        max_length=1000,
        description="Up to 1,000 events, each shaped like POST /api/events. Each is validated on its own.",
    )


class ItemError(ApiModel):
    loc: list[str | int]
    msg: str


class BatchItemResult(ApiModel):
    index: int
    status: Literal["created", "duplicate", "invalid"]
    id: int | None = None
    errors: list[ItemError] | None = None


class EventBatchOut(ApiModel):
    created: int
    duplicates: int
    invalid: int
    results: list[BatchItemResult]


class HistogramBucket(ApiModel):
    start: str
    total: int
    counts: dict[str, int]


class Histogram(ApiModel):
    since: str
    until: str
    bucket_seconds: int
    connectors: list[str]
    total: int
    buckets: list[HistogramBucket]


class FacetValue(ApiModel):
    value: str
    count: int


class Facets(ApiModel):
    sample: int = Field(description="How many of the newest matching events were looked at.")
    projects: list[FacetValue]
    tags: list[FacetValue]
