"""The ingestion asset of a connector: each run syncs the integrations × days it covers and
turns the outcomes into materializations, check results, retries or failures (policy.py)."""

import datetime as dt
import threading
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
from dagster._core.errors import DagsterExecutionInterruptedError  # dagster does not export it

from painchain_pipelines.connectors.backend_client import BackendClient
from painchain_pipelines.connectors.base import Connector, SyncsLive, SyncsWindows, Watches, utcnow
from painchain_pipelines.connectors.sync import SyncOutcome, run_sync
from painchain_pipelines.orchestration.metadata import check_results, check_specs, log_outcome, run_metadata
from painchain_pipelines.orchestration.partitions import full_days, partition_key, targets_of, windows_for
from painchain_pipelines.orchestration.policy import raise_for_failures
from painchain_pipelines.orchestration.resources import PainChainBackend
from painchain_pipelines.orchestration.runs import integrations_with_active_runs
from painchain_pipelines.orchestration.settings import OrchestrationSettings
from painchain_pipelines.orchestration.tags import MODE_TAG, WATCH_AFTER_TAG, WATCH_UNTIL_TAG
from painchain_pipelines.orchestration.watch import wait_for_previous_segment, watch_segment

RETRY_ATTEMPTS = 3
BATCH_WORKERS = 8


def asset_name(connector_id: str) -> str:
    return f"{connector_id}_events"


def build_ingestion_asset(
    connector: Connector,
    partitions_def: dg.MultiPartitionsDefinition,
    settings: OrchestrationSettings,
) -> dg.AssetsDefinition:
    name = asset_name(connector.id)
    description = getattr(connector, "description", None) or f"{connector.id} changes as PainChain events."

    # BackfillPolicy is beta in Dagster 1.13; we rely on it deliberately (a backfill range, from the
    # UI or `--partition-range`, becomes one run), so its beta notice is not repeated on every load.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*backfill_policy.*")

        @dg.asset(
            name=name,
            description=description,
            partitions_def=partitions_def,
            backfill_policy=dg.BackfillPolicy.single_run(),
            retry_policy=dg.RetryPolicy(max_retries=RETRY_ATTEMPTS, delay=settings.retry_delay,
                                        backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS),
            check_specs=check_specs(name),
            # Each run materializes exactly the partitions it synced (its own and every other day it
            # fully covered) with their own metadata, rather than everything it was launched for.
            output_required=False,
            kinds={connector.id, "python"},
            group_name=connector.id,
            # Live syncs happen when something changes, and at least every heartbeat.
            freshness_policy=dg.FreshnessPolicy.time_window(
                fail_window=settings.heartbeat * 2 + dt.timedelta(hours=1),
                warn_window=settings.heartbeat + dt.timedelta(seconds=settings.polling_interval * 5),
            ),
        )
        def ingestion_asset(context: dg.AssetExecutionContext, painchain: PainChainBackend):
            yield from sync_partitions(context, connector, painchain.client(), partitions_def, settings)

    return ingestion_asset


def sync_partitions(
    context: dg.AssetExecutionContext,
    connector: Connector,
    client: BackendClient,
    partitions_def: dg.MultiPartitionsDefinition,
    settings: OrchestrationSettings,
) -> Iterator[dg.AssetCheckResult]:
    if context.run.tags.get(MODE_TAG) == "watch" and isinstance(connector, Watches):
        yield from _watch(context, connector, client, partitions_def, settings)
        return
    targets = targets_of(context, partitions_def)
    now = utcnow()
    if not isinstance(connector, (SyncsLive, SyncsWindows)):
        context.log.info(f"{connector.id} reads no past windows; its watch keeps every integration up to date")
        return
    live = _live_mode(context, connector, targets, now)
    batch = live and len(targets) > 1
    skipped_busy: list[str] = []
    if batch:
        integrations_def_name = partitions_def.get_partitions_def_for_dimension("integration").name
        outcomes, skipped_busy = _live_batch(context, connector, client, list(targets), settings,
                                             integrations_def_name)
    else:
        outcomes = []
        for integration_id, dates in targets.items():
            if live:
                outcomes.append(run_sync(client, connector, integration_id, lookback=settings.initial_lookback))
                continue
            windows = windows_for(dates, now)
            if not windows:
                context.log.info(f"integration {integration_id}: nothing to sync (window in the future)")
                continue
            outcomes.append(run_sync(client, connector, integration_id, windows=windows))
    history_start = dt.date.fromisoformat(settings.history_start)
    for outcome in outcomes:
        log_outcome(context, outcome)
        if outcome.ok:
            _materialize(context, outcome, targets[outcome.integration_id], history_start, now.date())

    failures = [o for o in outcomes if not o.ok]
    # A batch goes on past failing integrations (the live sensor tries them again next tick);
    # any other run fails, so that its failed partitions show as failed.
    if failures and (not batch or len(failures) == len(outcomes)):
        raise_for_failures(context, connector.id, failures, outcomes, live)
    yield from check_results(outcomes, skipped_busy)


def _watch(context: dg.AssetExecutionContext, connector: Watches, client: BackendClient,
           partitions_def: dg.MultiPartitionsDefinition, settings: OrchestrationSettings,
           ) -> Iterator[dg.AssetCheckResult]:
    """One segment of watching every integration; each one's partition of today is materialized
    with the segment's figures, unless it could not be watched."""
    try:
        handoff = wait_for_previous_segment(context.instance, context.run.tags.get(WATCH_AFTER_TAG))
    except DagsterExecutionInterruptedError:
        context.log.info("asked to stop before its segment began: nothing watched")
        return
    if handoff:
        context.log.info(handoff)
    until = utcnow() + settings.watch_segment
    context.instance.add_run_tags(context.run.run_id, {WATCH_UNTIL_TAG: until.isoformat(timespec="seconds")})
    context.log.info(f"watching every {connector.id} integration until {until:%H:%M:%S} UTC")
    stop = threading.Event()
    try:
        # A termination (`painchain up` stopping, the UI) ends the segment early instead of failing
        # it: what was seen is stored, and the RetryPolicy does not start the segment again.
        outcomes, lag = watch_segment(connector, client, connector.id, settings.watch_segment, stop,
                                      interrupts=(DagsterExecutionInterruptedError,))
    finally:
        stop.set()
    integrations_def_name = partitions_def.get_partitions_def_for_dimension("integration").name
    partitioned = set(context.instance.get_dynamic_partitions(integrations_def_name))
    today = utcnow().date()
    for outcome in outcomes:
        log_outcome(context, outcome)
        if outcome.ok and not outcome.stats.failed_sources and outcome.integration_id in partitioned:
            metadata = {**run_metadata([outcome]), **lag}
            context.log_event(dg.AssetMaterialization(
                asset_key=context.asset_key, partition=str(partition_key(today, outcome.integration_id)),
                metadata=metadata))
    context.log.info(f"segment ended: {len(outcomes)} integrations watched; lag {lag or 'no events'}")
    yield from check_results(outcomes, [])


def _live_mode(context: dg.AssetExecutionContext, connector: Connector, targets: dict[str, list[dt.date]],
               now: dt.datetime) -> bool:
    """Whether this run continues from the saved state (sensors) or syncs its partitions' windows
    (backfills, reconciles). A connector that has only one of the two always does that one."""
    live = context.run.tags.get(MODE_TAG) == "live"
    if not isinstance(connector, SyncsWindows):
        if not live:
            context.log.info(f"{connector.id} reads no past windows; a live sync brings it up to date instead")
        return True
    if not isinstance(connector, SyncsLive):
        return False
    if live and any(dates != [now.date()] for dates in targets.values()):
        context.log.warning("live syncs cover today only; syncing these partitions' windows instead")
        return False
    return live


def _materialize(context: dg.AssetExecutionContext, outcome: SyncOutcome, dates: list[dt.date],
                 history_start: dt.date, today: dt.date) -> None:
    """The run's own partitions of this integration, plus every other day the sync read
    completely (a first sync reads a week), each with this sync's metadata."""
    days = set(dates)
    for window in outcome.covered:
        days.update(d for d in full_days(window) if history_start <= d <= today)
    metadata = run_metadata([outcome])
    for day in sorted(days):
        context.log_event(dg.AssetMaterialization(
            asset_key=context.asset_key, partition=str(partition_key(day, outcome.integration_id)),
            metadata=metadata))


def _live_batch(context: dg.AssetExecutionContext, connector: Connector, client: BackendClient,
                integration_ids: list[str], settings: OrchestrationSettings,
                integrations_def_name: str) -> tuple[list[SyncOutcome], list[str]]:
    """Live-sync many integrations in one run (the sensors start this when many changed, or
    were added, at once): one process start instead of one per integration; unchanged ones cost
    a few conditional requests. Returns the outcomes and the integrations left alone because a
    run of their own is syncing them."""
    busy = integrations_with_active_runs(context.instance, integrations_def_name, exclude_run=context.run.run_id)
    skipped = sorted(busy & set(integration_ids))
    todo = [i for i in integration_ids if i not in busy]
    if skipped:
        context.log.info(f"skipping {len(skipped)} integrations with a run of their own")
    with ThreadPoolExecutor(max_workers=BATCH_WORKERS, thread_name_prefix="live") as pool:
        outcomes = list(pool.map(
            lambda i: run_sync(client, connector, i, lookback=settings.initial_lookback), todo))
    return outcomes, skipped
