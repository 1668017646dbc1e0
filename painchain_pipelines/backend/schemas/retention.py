from __future__ import annotations

from pydantic import Field

from painchain_pipelines.backend.schemas.common import ApiModel


class RetentionRun(ApiModel):
    """What one call of the retention endpoint did."""

    enabled: bool = Field(description="Whether PAINCHAIN_RETENTION_DAYS is set; when not, nothing is deleted.")
    retention_days: int | None = Field(description="PAINCHAIN_RETENTION_DAYS.")
    cutoff: str | None = Field(description="Events with a timestamp before this moment (UTC) are deleted.")
    removed: int = Field(description="Events deleted by this call.")
    batches: int = Field(description="Transactions it took.")
    max_batch_ms: float = Field(description="The longest batch, in milliseconds (the most ingestion waited).")
    p50_batch_ms: float
    p95_batch_ms: float
    done: bool = Field(description="No event older than the cutoff is left; false: call again.")
