"""What every connector's Dagster wiring shares: the partitions, the ingestion asset and the
two sensors. A source's folder (e.g. `defs/github/`) instantiates these for its connector."""


import datetime as dt
import hashlib
import json
import random
import time
import warnings
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, wait

import dagster as dg

from painchain_pipelines.connectors.backend_client import BackendClient, BackendError, BackendUnavailable
from painchain_pipelines.connectors.base import (
    AuthError,
    ConfigError,
    Connector,
    ConnectorError,
    Integration,
    RateLimited,
    TimeWindow,
)
from painchain_pipelines.connectors.registration import RegistrationFailed, load_metadata, register
from painchain_pipelines.connectors.sync import SyncOutcome, run_sync
from painchain_pipelines.defs.resources import PainChainBackend
from painchain_pipelines.defs.settings import OrchestrationSettings

MODE_TAG = "painchain/mode"  # "live": continue from the saved state (set by the sensors)
TRIGGER_TAG = "painchain/trigger"  # why a sensor launched the run
BATCH_TAG = "painchain/batch"  # a live sync of every integration, one run (sensor, busy ticks)
INTEGRATION_TAG = "dagster/partition/integration"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"
# A run stopped by a long primary rate limit is launched again after the reset by the deferred
# retry sensor, instead of a run process sleeping through it (and holding a run slot).
DEFERRED_TAG = "painchain/deferred"  # "pending" on the stopped run, then "relaunched"
RETRY_AT_TAG = "painchain/retry_at"  # when (ISO 8601, UTC)
DEFERRAL_TAG = "painchain/deferral"  # how many times this work was deferred so far
DEFERRED_FROM_TAG = "painchain/deferred_from"
CONNECTOR_TAG = "painchain/connector"
MAX_IN_PROCESS_WAIT_S = 120  # shorter waits (secondary limits, Retry-After) are retried in place
MAX_DEFERRALS = 6
ACTIVE_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
# Dynamic partition keys must stay clear of the characters Dagster uses in keys and ranges.
_FORBIDDEN_IN_KEYS = ("|", ",", "[", "]", "...")


# ---------------------------------------------------------------------------- partitions


def integration_partitions(
    connector_id: str, history_start: str
) -> tuple[dg.DynamicPartitionsDefinition, dg.MultiPartitionsDefinition]:
    """integration (dynamic, one key per integration id) × date (daily, UTC, including today)."""
    integrations = dg.DynamicPartitionsDefinition(name=f"{connector_id}_integrations")
    dates = dg.DailyPartitionsDefinition(start_date=history_start, end_offset=1, timezone="UTC")
    return integrations, dg.MultiPartitionsDefinition({"date": dates, "integration": integrations})


def partition_key(date: dt.date, integration_id: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"date": date.isoformat(), "integration": integration_id})


def valid_partition_name(integration_id: str) -> bool:
    return bool(integration_id) and not any(c in integration_id for c in _FORBIDDEN_IN_KEYS)


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


# ---------------------------------------------------------------------------- the asset


class RetryableSyncError(Exception):
    """Raised for timeouts / 5xx / an unreachable backend: Dagster's RetryPolicy retries it."""


def build_ingestion_asset(
    connector: Connector,
    partitions_def: dg.MultiPartitionsDefinition,
    settings: OrchestrationSettings,
    *,
    description: str,
) -> dg.AssetsDefinition:
    name = f"{connector.id}_events"
    checks = [
        dg.AssetCheckSpec(
            "events_stored_cleanly", asset=name,
            description="Every event the connector produced was accepted by the backend (0 invalid).",
        ),
        dg.AssetCheckSpec(
            "sources_accessible", asset=name,
            description="Every configured source (repository, project, cluster) could be read.",
        ),
    ]

    # BackfillPolicy is beta in Dagster 1.13; we rely on it deliberately (a backfill range, from the
    # UI or `--partition-range`, becomes one run), so its beta notice is not repeated on every load.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*backfill_policy.*")
        return _define_asset(connector, partitions_def, settings, name, description, checks)


def _define_asset(connector, partitions_def, settings, name, description, checks) -> dg.AssetsDefinition:
    @dg.asset(
        name=name,
        description=description,
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=dg.RetryPolicy(
            max_retries=3, delay=settings.retry_delay, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
        ),
        check_specs=checks,
        kinds={connector.id, "python"},
        group_name=connector.id,
        # Live syncs happen when something changes, and at least every heartbeat.
        freshness_policy=dg.FreshnessPolicy.time_window(
            fail_window=settings.heartbeat * 2 + dt.timedelta(hours=1),
            warn_window=settings.heartbeat + dt.timedelta(seconds=settings.polling_interval * 5),
        ),
    )
    def ingestion_asset(context: dg.AssetExecutionContext, painchain: PainChainBackend) -> dg.MaterializeResult:
        return sync_partitions(context, connector, painchain.client(), partitions_def, settings)

    return ingestion_asset


def sync_partitions(
    context: dg.AssetExecutionContext,
    connector: Connector,
    client: BackendClient,
    partitions_def: dg.MultiPartitionsDefinition,
    settings: OrchestrationSettings,
) -> dg.MaterializeResult:
    targets = targets_of(context, partitions_def)
    now = dt.datetime.now(dt.timezone.utc)
    live = context.run.tags.get(MODE_TAG) == "live"
    if live and any(dates != [now.date()] for dates in targets.values()):
        context.log.warning("live syncs cover today only; syncing these partitions' windows instead")
        live = False
    if live and len(targets) > 1:
        integrations_def_name = partitions_def.get_partitions_def_for_dimension("integration").name
        return _live_batch(context, connector, client, list(targets), settings, integrations_def_name)
    outcomes: list[SyncOutcome] = []
    for integration_id, dates in targets.items():
        if live:
            outcome = run_sync(client, connector, integration_id, lookback=settings.initial_lookback)
        else:
            windows = windows_for(dates, now)
            if not windows:
                context.log.info(f"integration {integration_id}: nothing to sync (window in the future)")
                continue
            outcome = run_sync(client, connector, integration_id, windows=windows)
        _log(context, outcome)
        outcomes.append(outcome)

    failures = [o for o in outcomes if not o.ok]
    if failures:
        # The integrations that did sync are materialized now: a failure elsewhere in the run
        # must not leave their partitions looking failed.
        _materialize_succeeded(context, targets, outcomes, partitions_def)
        message = "; ".join(o.error for o in failures)
        rate_limited = [o.retry_after for o in failures if o.error_kind == "rate_limited"]
        if rate_limited:
            # Jitter, so that integrations sharing a token do not all come back in the same second.
            wait_s = max(rate_limited) + random.uniform(1, 1 + min(10.0, max(rate_limited) / 10))
            if wait_s <= MAX_IN_PROCESS_WAIT_S:
                context.log.warning(f"rate limited: retrying in {wait_s:.0f} s — {message}")
                raise dg.RetryRequested(max_retries=8, seconds_to_wait=wait_s)
            raise dg.Failure(description=_defer(context, connector.id, wait_s, message, live), allow_retries=False,
                             metadata=_metadata(outcomes))
        if any(o.retryable for o in failures):
            raise RetryableSyncError(message)
        raise dg.Failure(description=message, allow_retries=False, metadata=_metadata(outcomes))
    return dg.MaterializeResult(metadata=_metadata(outcomes), check_results=_check_results(outcomes))


def _materialize_succeeded(context, targets: dict[str, list[dt.date]], outcomes: list[SyncOutcome],
                           partitions_def: dg.MultiPartitionsDefinition) -> None:
    if len(outcomes) < 2:
        return
    for outcome in outcomes:
        if not outcome.ok:
            continue
        metadata = _metadata([outcome])
        for date in targets.get(outcome.integration_id, []):
            context.log_event(dg.AssetMaterialization(
                asset_key=context.asset_key, partition=str(partition_key(date, outcome.integration_id)),
                metadata=metadata))


def _defer(context, connector_id: str, wait_s: float, message: str, live: bool) -> str:
    """Stop instead of sleeping through a long rate-limit wait; say when the work resumes."""
    resume_at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=wait_s)
    when = f"{resume_at:%Y-%m-%d %H:%M} UTC"
    if live:
        return f"{message} — rate limited until {when}; live polling resumes by itself then"
    deferral = int(context.run.tags.get(DEFERRAL_TAG, "0"))
    if deferral >= MAX_DEFERRALS:
        return f"{message} — rate limited until {when}, deferred {deferral} times already: re-run it then"
    context.instance.add_run_tags(context.run.run_id, {
        DEFERRED_TAG: "pending", CONNECTOR_TAG: connector_id, RETRY_AT_TAG: resume_at.isoformat(timespec="seconds")})
    return f"{message} — rate limited until {when}; the same partitions are launched again then"


def _live_batch(context, connector: Connector, client: BackendClient, integration_ids: list[str],
                settings: OrchestrationSettings, integrations_def_name: str) -> dg.MaterializeResult:
    """Live-sync many integrations in one run (the sensor starts this when many changed at once):
    one process start instead of one per integration; unchanged ones cost a few 304s. An
    integration that fails is reported (here and to the backend) and left to the next tick."""
    busy = _integrations_with_active_runs(context.instance, integrations_def_name, exclude_run=context.run.run_id)
    todo = [i for i in integration_ids if i not in busy]
    if busy & set(integration_ids):
        context.log.info(f"skipping {len(busy & set(integration_ids))} integrations with a run of their own")
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="live") as pool:
        outcomes = list(pool.map(
            lambda i: run_sync(client, connector, i, lookback=settings.initial_lookback), todo))
    for outcome in outcomes:
        _log(context, outcome)
    failed = [o for o in outcomes if not o.ok]
    if outcomes and len(failed) == len(outcomes):
        message = "; ".join(o.error for o in failed)
        if any(o.retryable for o in failed):
            raise RetryableSyncError(message)
        raise dg.Failure(description=message, allow_retries=False)
    metadata = _metadata([o for o in outcomes if o.ok])
    metadata["integrations_failed"] = dg.MetadataValue.json({o.integration_id: o.error for o in failed})
    metadata["integrations_skipped_busy"] = dg.MetadataValue.json(sorted(busy & set(integration_ids)))
    return dg.MaterializeResult(metadata=metadata, check_results=_check_results(outcomes))


def _log(context, outcome: SyncOutcome) -> None:
    if outcome.ok:
        report = outcome.report()
        context.log.info(
            f"integration {outcome.integration_name!r} ({outcome.integration_id}) {outcome.mode} sync: "
            f"{report['eventsFetched']} events fetched, {report['created']} new, {report['duplicates']} "
            f"already stored, {report['invalid']} invalid; {report['apiRequests']} API requests "
            f"({report['notModified']} × 304) in {report['durationSeconds']} s"
        )
        for source, problem in outcome.stats.failed_sources.items():
            context.log.warning(f"integration {outcome.integration_id}: cannot read {source}: {problem}")
    else:
        context.log.error(outcome.error)


def _metadata(outcomes: list[SyncOutcome]) -> dict:
    reports = [o.report() for o in outcomes]

    def total(key: str) -> int:
        return sum(r[key] or 0 for r in reports)

    remaining = [r["rateLimitRemaining"] for r in reports if r["rateLimitRemaining"] is not None]
    metadata = {
        "integrations": dg.MetadataValue.json(
            {o.integration_id: o.integration_name for o in outcomes}
        ),
        "mode": ", ".join(sorted({o.mode for o in outcomes})) or "none",
        "window": dg.MetadataValue.text("; ".join(w for r in reports for w in r["windows"]) or "none"),
        "sources": dg.MetadataValue.json(sorted({s for r in reports for s in r["sources"]})),
        "failed_sources": dg.MetadataValue.json({k: v for r in reports for k, v in r["failedSources"].items()}),
        "events_fetched": total("eventsFetched"),
        "events_posted": total("posted"),
        "events_created": total("created"),
        "events_duplicate": total("duplicates"),
        "events_invalid": total("invalid"),
        "api_requests": total("apiRequests"),
        "api_not_modified_304": total("notModified"),
        "api_retries": total("retries"),
        "duration_seconds": dg.MetadataValue.float(round(sum(r["durationSeconds"] for r in reports), 3)),
    }
    if remaining:
        metadata["rate_limit_remaining"] = min(remaining)
    if len(reports) > 1:
        metadata["per_integration"] = dg.MetadataValue.json({o.integration_id: o.report() for o in outcomes})
    else:
        metadata["events_per_stream"] = dg.MetadataValue.json(reports[0]["eventsPerStream"] if reports else {})
    return metadata


def _check_results(outcomes: list[SyncOutcome]) -> list[dg.AssetCheckResult]:
    invalid = sum(o.posted.invalid for o in outcomes)
    examples = [e for o in outcomes for e in o.posted.invalid_examples][:5]
    failed = {k: v for o in outcomes for k, v in o.stats.failed_sources.items()}
    return [
        dg.AssetCheckResult(
            check_name="events_stored_cleanly",
            passed=invalid == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"invalid": invalid, "examples": dg.MetadataValue.json(examples)},
        ),
        dg.AssetCheckResult(
            check_name="sources_accessible",
            passed=not failed,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"failed_sources": dg.MetadataValue.json(failed)},
        ),
    ]


# ---------------------------------------------------------------------------- sensors


def build_integrations_sensor(
    connector_id: str,
    integrations_def: dg.DynamicPartitionsDefinition,
    job,
) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"{connector_id}_integrations_sensor",
        job=job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Keeps one `integration` partition per {connector_id} integration of the backend "
        "(adds new ones, removes deleted ones) and starts the first sync of each new integration.",
    )
    def integrations_sensor(context: dg.SensorEvaluationContext, painchain: PainChainBackend):
        client = painchain.client()
        # Register (upsert) the connector type when the sensor starts or the metadata file
        # changed, so that `dagster dev` alone (without `painchain up`) also registers it.
        digest = hashlib.sha256(json.dumps(load_metadata(connector_id), sort_keys=True).encode()).hexdigest()
        if context.cursor != digest:
            try:
                register(client, [connector_id], attempts=1)
            except RegistrationFailed as exc:
                return dg.SkipReason(str(exc))
            context.update_cursor(digest)
        try:
            integrations = client.list_integrations(connector_id)
        except (BackendUnavailable, BackendError) as exc:
            return dg.SkipReason(f"backend not answering: {exc}")
        wanted = []
        for integration in integrations:
            if valid_partition_name(integration.id):
                wanted.append(integration.id)
            else:
                context.log.error(f"integration id {integration.id!r} cannot be a partition key; skipped")
        existing = set(context.instance.get_dynamic_partitions(integrations_def.name))
        added = [i for i in wanted if i not in existing]
        removed = sorted(existing - set(wanted))
        if not added and not removed:
            return dg.SkipReason(f"{len(existing)} integrations, none added or removed")
        today = dt.datetime.now(dt.timezone.utc).date()
        requests = [
            dg.RunRequest(
                run_key=f"first-sync-{integration_id}",
                partition_key=partition_key(today, integration_id),
                tags={MODE_TAG: "live", TRIGGER_TAG: "new-integration"},
            )
            for integration_id in added
        ]
        partition_requests = []
        if added:
            partition_requests.append(integrations_def.build_add_request(added))
        if removed:
            partition_requests.append(integrations_def.build_delete_request(removed))
        context.log.info(f"integrations added: {added or 'none'}; removed: {removed or 'none'}")
        return dg.SensorResult(run_requests=requests, dynamic_partitions_requests=partition_requests, cursor=digest)

    return integrations_sensor


def build_live_sensor(
    connector: Connector,
    integrations_def: dg.DynamicPartitionsDefinition,
    job,
    settings: OrchestrationSettings,
) -> dg.SensorDefinition:
    """Every POLLING_INTERVAL: ask each integration's source, with conditional requests, whether
    anything changed since its last sync, and start a live sync only where something did (or
    where the last success is older than the heartbeat). Idle integrations cost no run."""

    @dg.sensor(
        name=f"{connector.id}_live_sensor",
        job=job,
        minimum_interval_seconds=settings.polling_interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Live polling of {connector.id}: cheap change detection every POLLING_INTERVAL "
        f"({settings.polling_interval} s); a live sync run only for integrations that changed.",
    )
    def live_sensor(context: dg.SensorEvaluationContext, painchain: PainChainBackend):
        client = painchain.client()
        try:
            integrations = client.list_integrations(connector.id)
        except (BackendUnavailable, BackendError) as exc:
            return dg.SkipReason(f"backend not answering: {exc}")
        if _batch_active(context.instance, job.name):
            return dg.SkipReason("a live sync of every integration is running; its changes are covered")
        cursor = json.loads(context.cursor) if context.cursor else {}
        held: dict = cursor.get("held", {})  # integration id -> {"until": epoch, "updatedAt": ...}
        now = time.time()
        known = set(context.instance.get_dynamic_partitions(integrations_def.name))
        busy = _integrations_with_active_runs(context.instance, integrations_def.name)
        candidates = []
        for integration in integrations:
            hold = held.get(integration.id)
            if hold and hold.get("until", 0) > now and hold.get("updatedAt") == integration.updated_at:
                continue  # waiting out a rate limit, or a config error nobody fixed yet
            held.pop(integration.id, None)
            if integration.id in known and integration.id not in busy:
                candidates.append(integration)
        # Start where the last tick stopped, so a slow tick cannot starve the same integrations.
        offset = cursor.get("offset", 0) % max(1, len(candidates))
        candidates = candidates[offset:] + candidates[:offset]

        deadline = time.monotonic() + 40  # sensor evaluations time out at 60 s
        decisions: dict[str, tuple[bool, str]] = {}
        pool = ThreadPoolExecutor(max_workers=settings.detect_workers, thread_name_prefix="detect")
        futures = {
            pool.submit(_needs_sync, client, connector, integration, settings, deadline): integration
            for integration in candidates
        }
        done, _ = wait(futures, timeout=max(1.0, deadline - time.monotonic()))
        pool.shutdown(wait=False, cancel_futures=True)
        checked = 0
        for future in done:
            integration = futures[future]
            checked += 1
            try:
                decisions[integration.id] = future.result()
            except (ConfigError, AuthError) as exc:
                context.log.error(f"integration {integration.name!r} ({integration.id}): {exc}")
                held[integration.id] = {"until": now + 600, "updatedAt": integration.updated_at}
                _report(client, integration, str(exc))
            except RateLimited as exc:
                context.log.warning(f"integration {integration.id}: {exc}")
                held[integration.id] = {"until": now + exc.retry_after, "updatedAt": integration.updated_at}
            except (ConnectorError, BackendUnavailable, BackendError) as exc:
                context.log.warning(f"integration {integration.id}: change check failed, next tick retries: {exc}")
        today = dt.datetime.now(dt.timezone.utc).date()
        changed = [(i, decisions[i.id][1]) for i in candidates if decisions.get(i.id, (False, ""))[0]]
        run_requests = []
        if len(changed) > settings.batch_threshold:
            # Many changed at once: one run live-syncs all of today's partitions (a range), at the
            # cost of one process start instead of one per integration.
            if not _batch_active(context.instance, job.name):
                ordered = context.instance.get_dynamic_partitions(integrations_def.name)
                run_requests.append(dg.RunRequest(tags={
                    MODE_TAG: "live", BATCH_TAG: "true", TRIGGER_TAG: f"{len(changed)} integrations changed",
                    RANGE_START_TAG: str(partition_key(today, ordered[0])),
                    RANGE_END_TAG: str(partition_key(today, ordered[-1])),
                }))
        else:
            for integration, reason in changed:
                run_requests.append(dg.RunRequest(
                    partition_key=partition_key(today, integration.id),
                    tags={MODE_TAG: "live", TRIGGER_TAG: reason[:200]},
                ))
        new_cursor = {"offset": offset + checked, "held": held}
        summary = (f"{len(integrations)} integrations, {len(busy)} busy, {checked}/{len(candidates)} checked, "
                   f"{len(run_requests)} live syncs requested")
        context.log.info(summary)
        if not run_requests:
            return dg.SensorResult(skip_reason=dg.SkipReason(summary), cursor=json.dumps(new_cursor))
        return dg.SensorResult(run_requests=run_requests, cursor=json.dumps(new_cursor))

    return live_sensor


def build_deferred_retry_sensor(connector_id: str, job) -> dg.SensorDefinition:
    """Launches again, after the reset, the window runs (backfills, reruns, reconciles) that a
    long primary rate limit stopped: no run process sleeps through the wait."""

    @dg.sensor(
        name=f"{connector_id}_deferred_retry_sensor",
        job=job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Re-launches {connector_id} runs stopped by a rate limit once the limit resets.",
    )
    def deferred_retry_sensor(context: dg.SensorEvaluationContext):
        now = dt.datetime.now(dt.timezone.utc)
        # Any job: materializations from the UI run as Dagster's implicit asset job.
        records = context.instance.get_run_records(filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.FAILURE], tags={DEFERRED_TAG: "pending", CONNECTOR_TAG: connector_id}))
        due = [r.dagster_run for r in records
               if dt.datetime.fromisoformat(r.dagster_run.tags[RETRY_AT_TAG]) <= now]
        run_requests = [deferred_run_request(run) for run in due]
        for run in due:
            context.instance.add_run_tags(run.run_id, {DEFERRED_TAG: "relaunched"})
        waiting = len(records) - len(due)
        if not run_requests:
            return dg.SkipReason(f"{waiting} run(s) waiting for a rate limit to reset" if waiting
                                 else "no run is waiting for a rate limit")
        return run_requests

    return deferred_retry_sensor


def deferred_run_request(run: dg.DagsterRun) -> dg.RunRequest:
    """The same partitions (one key or a range) and mode as the stopped run."""
    tags = {k: v for k, v in run.tags.items() if k in (MODE_TAG, TRIGGER_TAG, BATCH_TAG)}
    tags[DEFERRAL_TAG] = str(int(run.tags.get(DEFERRAL_TAG, "0")) + 1)
    tags[DEFERRED_FROM_TAG] = run.run_id
    run_key = f"deferred:{run.run_id}"  # launched once, even if tagging the old run failed
    if PARTITION_TAG in run.tags:
        return dg.RunRequest(run_key=run_key, partition_key=run.tags[PARTITION_TAG], tags=tags)
    tags[RANGE_START_TAG], tags[RANGE_END_TAG] = run.tags[RANGE_START_TAG], run.tags[RANGE_END_TAG]
    return dg.RunRequest(run_key=run_key, tags=tags)


def _needs_sync(client: BackendClient, connector: Connector, integration: Integration,
                settings: OrchestrationSettings, deadline: float) -> tuple[bool, str]:
    if time.monotonic() > deadline:
        return False, ""
    sync = client.get_sync(integration)
    last_success = sync.get("lastSuccessAt")
    if last_success:
        age = dt.datetime.now(dt.timezone.utc) - dt.datetime.fromisoformat(last_success.replace("Z", "+00:00"))
        if age > settings.heartbeat:
            return True, "heartbeat"
    check = connector.detect_changes(integration, sync["state"])
    return check.changed, check.reason


def _integrations_with_active_runs(instance: dg.DagsterInstance, integrations_def_name: str,
                                   exclude_run: str | None = None) -> set[str]:
    """Integrations some queued or running run is syncing: runs of one partition, and range runs
    (backfills, batches), which cover the integrations from the range's first to its last in
    partition order. Any job: the UI's materializations run as Dagster's implicit asset job."""
    records = instance.get_run_records(filters=dg.RunsFilter(statuses=ACTIVE_STATUSES))
    busy: set[str] = set()
    ordered: list[str] | None = None
    for record in records:
        tags = record.dagster_run.tags
        if record.dagster_run.run_id == exclude_run:
            continue
        if INTEGRATION_TAG in tags:
            busy.add(tags[INTEGRATION_TAG])
        elif "|" in tags.get(RANGE_START_TAG, "") and "|" in tags.get(RANGE_END_TAG, ""):
            ordered = ordered if ordered is not None else list(instance.get_dynamic_partitions(integrations_def_name))
            first, last = (tags[t].split("|", 1)[1] for t in (RANGE_START_TAG, RANGE_END_TAG))
            if first in ordered and last in ordered:
                busy.update(ordered[ordered.index(first):ordered.index(last) + 1])
    return busy


def _batch_active(instance: dg.DagsterInstance, job_name: str) -> bool:
    records = instance.get_run_records(
        filters=dg.RunsFilter(job_name=job_name, statuses=ACTIVE_STATUSES, tags={BATCH_TAG: "true"}), limit=1)
    return bool(records)


def _report(client: BackendClient, integration: Integration, error: str) -> None:
    try:
        client.put_sync(integration, status="error", error=error[:4000])
    except (BackendUnavailable, BackendError):
        pass


# ---------------------------------------------------------------------------- schedule


def build_reconcile_schedule(
    connector_id: str, integrations_def: dg.DynamicPartitionsDefinition, job, cron: str = "15 * * * *"
) -> dg.ScheduleDefinition:
    """Safety net: once a day, a window sync of yesterday for each integration.

    Live syncs already catch late changes; this makes each day's partition the source of truth
    even after an outage longer than the live look-backs. Integrations are spread over the hours
    of the day (by a hash of their id), so a few hundred of them never arrive as one burst of
    runs. Duplicates cost nothing.
    """

    @dg.schedule(
        name=f"{connector_id}_daily_reconcile_schedule",
        cron_schedule=cron,
        execution_timezone="UTC",
        job=job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Hourly; each {connector_id} integration gets a window sync of yesterday once a day, "
        "in the hour its id hashes to.",
    )
    def reconcile(context: dg.ScheduleEvaluationContext):
        moment = context.scheduled_execution_time.astimezone(dt.timezone.utc)
        yesterday = (moment - dt.timedelta(days=1)).date()
        due = [i for i in context.instance.get_dynamic_partitions(integrations_def.name)
               if reconcile_hour(i) == moment.hour]
        if not due:
            return dg.SkipReason(f"no integration is due at {moment.hour:02d}h")
        return [
            dg.RunRequest(
                run_key=f"reconcile-{yesterday.isoformat()}-{integration_id}",
                partition_key=partition_key(yesterday, integration_id),
                tags={TRIGGER_TAG: "daily-reconcile"},
            )
            for integration_id in due
        ]

    return reconcile


def reconcile_hour(integration_id: str) -> int:
    """The UTC hour (0-23) in which an integration's previous day is reconciled."""
    return int(hashlib.sha256(integration_id.encode()).hexdigest(), 16) % 24
