"""Orchestration settings from the environment (the connector guide's names where it has them)."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass


def _int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ValueError(f"environment variable {name}={raw!r} must be at least {minimum}")
    return value


@dataclass(frozen=True)
class OrchestrationSettings:
    backend_api_url: str
    polling_interval: int
    initial_lookback: dt.timedelta
    history_start: str
    heartbeat: dt.timedelta
    batch_threshold: int
    detect_workers: int
    retry_delay: int
    watch_segment: dt.timedelta = dt.timedelta(minutes=10)

    @classmethod
    def from_env(cls) -> "OrchestrationSettings":
        history_start = os.environ.get("PAINCHAIN_HISTORY_START", "2026-01-01")
        try:
            dt.date.fromisoformat(history_start)
        except ValueError:
            raise ValueError(f"PAINCHAIN_HISTORY_START={history_start!r} is not a date (YYYY-MM-DD)") from None
        return cls(
            backend_api_url=os.environ.get("BACKEND_API_URL", "http://127.0.0.1:8000/api").rstrip("/"),
            polling_interval=_int("POLLING_INTERVAL", 60, minimum=5),
            initial_lookback=dt.timedelta(days=_int("PAINCHAIN_INITIAL_LOOKBACK_DAYS", 7)),
            history_start=history_start,
            heartbeat=dt.timedelta(hours=_int("PAINCHAIN_HEARTBEAT_HOURS", 6)),
            batch_threshold=_int("PAINCHAIN_LIVE_BATCH_THRESHOLD", 5, minimum=0),
            detect_workers=_int("PAINCHAIN_DETECT_WORKERS", 16),
            retry_delay=_int("PAINCHAIN_RETRY_DELAY_SECONDS", 15),
            watch_segment=dt.timedelta(seconds=_int("PAINCHAIN_WATCH_SEGMENT_SECONDS", 600, minimum=30)),
        )
