"""Run tag names. They are part of the installed base: existing runs carry them, so a rename
needs a migration (tests/orchestration/test_upgrade.py)."""

from __future__ import annotations

from painchain_pipelines.connectors.base import Integration

MODE_TAG = "painchain/mode"  # "live": continue from the saved state (set by the sensors)
TRIGGER_TAG = "painchain/trigger"  # why a sensor launched the run
BATCH_TAG = "painchain/batch"  # a live sync of every integration, one run (sensor, busy ticks)
CONNECTOR_TAG = "painchain/connector"
# Watch runs (streaming connectors): one segment of watching every integration.
WATCH_TAG = "painchain/watch"  # "true" on watch runs
WATCH_UNTIL_TAG = "painchain/watch_until"  # set by the run when it starts watching: its segment's end
WATCH_AFTER_TAG = "painchain/watch_after"  # the segment this one takes over from (it waits for its end)
INTEGRATION_NAME_TAG = "painchain/integration_name"
# A run stopped by a long rate limit is launched again after the reset by the deferred retry
# sensor, instead of a run process sleeping through it (and holding a run slot).
DEFERRED_TAG = "painchain/deferred"  # "pending" on the stopped run, then "relaunched"
RETRY_AT_TAG = "painchain/retry_at"  # when (ISO 8601, UTC)
DEFERRAL_TAG = "painchain/deferral"  # how many times this work was deferred so far
DEFERRED_FROM_TAG = "painchain/deferred_from"
# Dagster's own tags on partitioned runs.
INTEGRATION_TAG = "dagster/partition/integration"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"


def name_tag(integration: Integration) -> dict[str, str]:
    """The integration's name on its runs, so that runs of UUID-keyed integrations are recognizable."""
    return {INTEGRATION_NAME_TAG: integration.name[:200]}
