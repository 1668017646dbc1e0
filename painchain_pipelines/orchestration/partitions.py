"""Partitions of an ingestion asset: integration (dynamic) × UTC day, and what a run covers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import dagster as dg

from painchain_pipelines.connectors.base import TimeWindow

# Dynamic partition keys must stay clear of the characters Dagster uses in keys and ranges.
FORBIDDEN_IN_KEYS = ("|", ",", "[", "]", "...")


def integrations_partitions_name(connector_id: str) -> str:
    return f"{connector_id}_integrations"


def integration_partitions(
    connector_id: str, history_start: str
) -> tuple[dg.DynamicPartitionsDefinition, dg.MultiPartitionsDefinition]:
    """integration (dynamic, one key per integration id) × date (daily, UTC, including today).
    Keys read `2026-11-24|<integrationId>` (Dagster orders dimensions alphabetically)."""
    integrations = dg.DynamicPartitionsDefinition(name=integrations_partitions_name(connector_id))
    dates = dg.DailyPartitionsDefinition(start_date=history_start, end_offset=1, timezone="UTC")
    return integrations, dg.MultiPartitionsDefinition({"date": dates, "integration": integrations})


def partition_key(date: dt.date, integration_id: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"date": date.isoformat(), "integration": integration_id})


def valid_partition_name(integration_id: str) -> bool:
    return bool(integration_id) and not any(c in integration_id for c in FORBIDDEN_IN_KEYS)


def targets_of(context: dg.AssetExecutionContext, partitions_def: dg.MultiPartitionsDefinition) -> dict[str, list[dt.date]]:
    """integration id -> dates this run covers. A backfill run may cover several of each."""
    targets: dict[str, list[dt.date]] = {}
    for key in context.partition_keys:
        dims = partitions_def.get_partition_key_from_str(str(key)).keys_by_dimension
        targets.setdefault(dims["integration"], []).append(dt.date.fromisoformat(dims["date"]))
    return {k: sorted(set(v)) for k, v in targets.items()}


def windows_for(dates: Iterable[dt.date], now: dt.datetime) -> list[TimeWindow]:
    """Consecutive dates merged into [start, end) windows in UTC, ending at `now` at the latest."""
    windows: list[TimeWindow] = []
    for day in sorted(dates):
        start = dt.datetime.combine(day, dt.time(), dt.timezone.utc)
        end = min(start + dt.timedelta(days=1), now)
        if start >= end:
            continue
        if windows and windows[-1].end == start:
            windows[-1] = TimeWindow(windows[-1].start, end)
        else:
            windows.append(TimeWindow(start, end))
    return windows


def full_days(window: TimeWindow) -> list[dt.date]:
    """The UTC days lying entirely inside `window`."""
    first = window.start.astimezone(dt.timezone.utc).date()
    if dt.datetime.combine(first, dt.time(), dt.timezone.utc) < window.start:
        first += dt.timedelta(days=1)
    days = []
    while dt.datetime.combine(first + dt.timedelta(days=1), dt.time(), dt.timezone.utc) <= window.end:
        days.append(first)
        first += dt.timedelta(days=1)
    return days
