from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field, model_validator

from painchain_pipelines.backend.schemas.common import ApiModel


class SyncReport(ApiModel):
    """Sent by the orchestration after a sync attempt (or to save state)."""

    status: Literal["success", "error"] | None = Field(
        default=None, description="Outcome of the attempt; omit to only save state."
    )
    error: str | None = Field(
        default=None, max_length=4000, pattern=r"^[^\x00]*$", description="Why it failed (no secrets)."
    )
    stats: dict[str, Any] | None = Field(default=None, description="Figures of the attempt.")
    state: dict[str, Any] | None = Field(
        default=None, description="Replaces the connector's resumable state (cursors, ETags)."
    )

    @model_validator(mode="after")
    def _no_nul(self) -> "SyncReport":
        from painchain_pipelines.backend.services.integration_config import has_nul

        if has_nul(self.stats) or has_nul(self.state):
            raise ValueError("must not contain NUL (\\u0000) characters")
        return self


class SyncOut(ApiModel):
    integration_id: str
    state: dict[str, Any]
    last_attempt_at: dt.datetime | None
    last_success_at: dt.datetime | None
    last_checked_at: dt.datetime | None
    last_error_at: dt.datetime | None
    last_error: str | None
    last_stats: dict[str, Any] | None
    first_sync_queued_at: dt.datetime | None


MAX_REPORTED_IDS = 10_000


class OrchestratorReport(ApiModel):
    """Sent by the orchestrator's sensors on every tick: it is alive (and why it cannot work,
    if it cannot), which integrations it checked without finding changes, which first syncs
    it queued. Every field is optional; `problem` is changed only when given (null clears it)."""

    problem: str | None = Field(
        default=None, max_length=4000, pattern=r"^[^\x00]*$",
        description="Why the orchestrator cannot do its job for this connector type (no secrets); null: it can.",
    )
    checked: list[str] = Field(
        default_factory=list, max_length=MAX_REPORTED_IDS,
        description="Integrations whose sources were checked just now and had nothing new.",
    )
    queued: list[str] = Field(
        default_factory=list, max_length=MAX_REPORTED_IDS,
        description="Integrations whose first sync was queued just now.",
    )


class OrchestratorOut(ApiModel):
    connector_type: str
    seen_at: dt.datetime
    problem: str | None
    checked: int
    queued: int


class OrchestratorState(ApiModel):
    running: bool = Field(description="The orchestrator reported within the last few minutes.")
    seen_at: dt.datetime | None
    problem: str | None


class IntegrationStatus(ApiModel):
    id: str
    type: str
    name: str
    tenant_id: str | None
    last_attempt_at: dt.datetime | None
    last_success_at: dt.datetime | None
    last_checked_at: dt.datetime | None
    last_error_at: dt.datetime | None
    last_error: str | None
    failed_sources: dict[str, str] = Field(
        description="Sources (repositories, projects, clusters) the last sync attempt could not read."
    )
    first_sync_queued_at: dt.datetime | None
    orchestrator: OrchestratorState
    events_last24h: int = Field(alias="eventsLast24h")
