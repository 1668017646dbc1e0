"""What every connector's Dagster wiring shares: the partitions, the ingestion asset, the
sensors and the schedule. A source's folder (e.g. `defs/github/`) instantiates these for its
connector. docs/orchestration.md says what each sensor does on each branch."""


import datetime as dt
import hashlib
import json
import random
import time
import warnings
from collections.abc import Iterable, Iterator
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
    parse_time,
    utcnow,
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
INTEGRATION_NAME_TAG = "painchain/integration_name"
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


CHECK_SPECS = {
    "events_stored_cleanly": "Every event the connector produced was accepted by the backend (0 invalid).",
    "sources_accessible": "Every configured source (repository, project, cluster) could be read.",
    "integrations_synced": "Every integration this run covered synced (a batch live run goes on past "
                           "failing ones; they are listed here and left unmaterialized).",
}


def build_ingestion_asset(
    connector: Connector,
    partitions_def: dg.MultiPartitionsDefinition,
    settings: OrchestrationSettings,
    *,
    description: str,
) -> dg.AssetsDefinition:
    name = f"{connector.id}_events"
    checks = [dg.AssetCheckSpec(check, asset=name, description=text) for check, text in CHECK_SPECS.items()]

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
    targets = targets_of(context, partitions_def)
    now = utcnow()
    live = context.run.tags.get(MODE_TAG) == "live"
    if live and any(dates != [now.date()] for dates in targets.values()):
        context.log.warning("live syncs cover today only; syncing these partitions' windows instead")
        live = False
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
                outcome = run_sync(client, connector, integration_id, lookback=settings.initial_lookback)
            else:
                windows = windows_for(dates, now)
                if not windows:
                    context.log.info(f"integration {integration_id}: nothing to sync (window in the future)")
                    continue
                outcome = run_sync(client, connector, integration_id, windows=windows)
            outcomes.append(outcome)
    history_start = dt.date.fromisoformat(settings.history_start)
    for outcome in outcomes:
        _log(context, outcome)
        if outcome.ok:
            _materialize(context, outcome, targets[outcome.integration_id], history_start, now.date())

    failures = [o for o in outcomes if not o.ok]
    # A batch goes on past failing integrations (the live sensor tries them again next tick);
    # any other run fails, so that its failed partitions show as failed.
    if failures and (not batch or len(failures) == len(outcomes)):
        _raise_for(context, connector, failures, outcomes, live)
    yield from _check_results(outcomes, skipped_busy)


def _raise_for(context, connector: Connector, failures: list[SyncOutcome], outcomes: list[SyncOutcome],
               live: bool) -> None:
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
    # Timeouts, 5xx, an unreachable backend: the RetryPolicy tries again. Either way the failed
    # attempt keeps its figures (requests, retries) in the run's event log.
    retryable = any(o.retryable for o in failures)
    raise dg.Failure(description=message, allow_retries=retryable, metadata=_metadata(outcomes))


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


def _materialize(context, outcome: SyncOutcome, dates: list[dt.date], history_start: dt.date,
                 today: dt.date) -> None:
    """The run's own partitions of this integration, plus every other day the sync read
    completely (a first sync reads a week), each with this sync's metadata."""
    days = set(dates)
    for window in outcome.covered:
        days.update(d for d in full_days(window) if history_start <= d <= today)
    metadata = _metadata([outcome])
    for day in sorted(days):
        context.log_event(dg.AssetMaterialization(
            asset_key=context.asset_key, partition=str(partition_key(day, outcome.integration_id)),
            metadata=metadata))


def _defer(context, connector_id: str, wait_s: float, message: str, live: bool) -> str:
    """Stop instead of sleeping through a long rate-limit wait; say when the work resumes."""
    resume_at = utcnow() + dt.timedelta(seconds=wait_s)
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
                settings: OrchestrationSettings, integrations_def_name: str) -> tuple[list[SyncOutcome], list[str]]:
    """Live-sync many integrations in one run (the sensors start this when many changed, or
    were added, at once): one process start instead of one per integration; unchanged ones cost
    a few 304s. Returns the outcomes and the integrations left alone because a run of their own
    is syncing them."""
    busy = _integrations_with_active_runs(context.instance, integrations_def_name, exclude_run=context.run.run_id)
    skipped = sorted(busy & set(integration_ids))
    todo = [i for i in integration_ids if i not in busy]
    if skipped:
        context.log.info(f"skipping {len(skipped)} integrations with a run of their own")
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="live") as pool:
        outcomes = list(pool.map(
            lambda i: run_sync(client, connector, i, lookback=settings.initial_lookback), todo))
    return outcomes, skipped


def _log(context, outcome: SyncOutcome) -> None:
    if outcome.ok:
        report = outcome.report()
        context.log.info(
            f"integration {outcome.integration_name!r} ({outcome.integration_id}) {outcome.mode} sync: "
            f"{report['eventsFetched']} events fetched, {report['created']} new, {report['duplicates']} "
            f"already stored, {report['invalid']} invalid; {report['apiRequests']} API requests "
            f"{_counters_text(report['counters'])}in {report['durationSeconds']} s"
        )
        for source, problem in outcome.stats.failed_sources.items():
            context.log.warning(f"integration {outcome.integration_id}: cannot read {source}: {problem}")
    else:
        context.log.error(outcome.error)


def _counters_text(counters: dict[str, int]) -> str:
    return f"({', '.join(f'{k} {v}' for k, v in sorted(counters.items()))}) " if counters else ""


def _metadata(outcomes: list[SyncOutcome]) -> dict:
    reports = [o.report() for o in outcomes]

    def total(key: str) -> int:
        return sum(r[key] or 0 for r in reports)

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
        "api_retries": total("retries"),
        "backend_retries": total("backendRetries"),
        "duration_seconds": dg.MetadataValue.float(round(sum(r["durationSeconds"] for r in reports), 3)),
    }
    # The connector's own figures: counters add up, gauges (levels) report the lowest.
    for report in reports:
        for key, value in report["counters"].items():
            metadata[key] = metadata.get(key, 0) + value
    for key in {k for r in reports for k in r["gauges"]}:
        metadata[key] = min(r["gauges"][key] for r in reports if key in r["gauges"])
    if len(reports) > 1:
        metadata["per_integration"] = dg.MetadataValue.json({o.integration_id: o.report() for o in outcomes})
    else:
        metadata["events_per_stream"] = dg.MetadataValue.json(reports[0]["eventsPerStream"] if reports else {})
    return metadata


def _check_results(outcomes: list[SyncOutcome], skipped_busy: list[str]) -> list[dg.AssetCheckResult]:
    invalid = sum(o.posted.invalid for o in outcomes)
    examples = [e for o in outcomes for e in o.posted.invalid_examples][:5]
    failed_sources = {k: v for o in outcomes for k, v in o.stats.failed_sources.items()}
    failed = {o.integration_id: o.error for o in outcomes if not o.ok}
    return [
        dg.AssetCheckResult(
            check_name="events_stored_cleanly",
            passed=invalid == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"invalid": invalid, "examples": dg.MetadataValue.json(examples)},
        ),
        dg.AssetCheckResult(
            check_name="sources_accessible",
            passed=not failed_sources,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"failed_sources": dg.MetadataValue.json(failed_sources)},
        ),
        dg.AssetCheckResult(
            check_name="integrations_synced",
            passed=not failed,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "integrations_synced": len(outcomes) - len(failed),
                "integrations_failed": dg.MetadataValue.json(failed),
                "integrations_skipped_busy": dg.MetadataValue.json(skipped_busy),
            },
        ),
    ]


# ---------------------------------------------------------------------------- sensors

# Sensors ask the backend with short timeouts and one retry, so that a tick whose backend is
# down ends in seconds with a reason instead of running into Dagster's 60 s evaluation limit.
SENSOR_BACKEND_RETRIES = 1
SENSOR_BACKEND_TIMEOUT_S = 10.0
INTEGRATIONS_SENSOR_INTERVAL_S = 30
MAX_REMOVALS_CHECKED_PER_TICK = 100


def _load_cursor(raw: str | None, legacy_key: str | None = None) -> dict:
    """A sensor cursor (a JSON object). Anything else (an older version's format, a value edited
    by hand) is read as `{legacy_key: raw}`, or as empty."""
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if isinstance(value, dict):
        return value
    return {legacy_key: raw} if legacy_key else {}


def _skip(reason: str, cursor: dict) -> dg.SensorResult:
    # Always with the cursor: every tick saves it the same way (never also context.update_cursor).
    return dg.SensorResult(skip_reason=dg.SkipReason(reason), cursor=json.dumps(cursor, sort_keys=True))


def _heartbeat(context, client: BackendClient, connector_id: str, **report) -> None:
    """Tell the backend (and so the PainChain UI) that the orchestrator is alive, and what it did."""
    try:
        client.report_orchestrator(connector_id, **report)
    except (BackendUnavailable, BackendError) as exc:
        context.log.warning(f"could not report to the backend: {exc}")


def _backend_refused(exc: BackendError) -> str:
    if exc.status in (401, 403):
        return (f"the backend refused the orchestrator ({exc}); PAINCHAIN_API_TOKEN must be the "
                "backend's service token")
    return f"the backend refused the request: {exc}"


def metadata_digest(connector_id: str) -> str:
    return hashlib.sha256(json.dumps(load_metadata(connector_id), sort_keys=True).encode()).hexdigest()


def build_integrations_sensor(
    connector_id: str,
    integrations_def: dg.DynamicPartitionsDefinition,
    job,
    settings: OrchestrationSettings,
) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"{connector_id}_integrations_sensor",
        job=job,
        minimum_interval_seconds=INTEGRATIONS_SENSOR_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Registers the {connector_id} connector type (at start and when its metadata changes), "
        f"keeps one `integration` partition per {connector_id} integration of the backend (adds new ones, "
        "removes deleted ones) and queues the first sync of each new integration.",
    )
    def integrations_sensor(context: dg.SensorEvaluationContext, painchain: PainChainBackend):
        client = painchain.client(retries=SENSOR_BACKEND_RETRIES, timeout=SENSOR_BACKEND_TIMEOUT_S)
        cursor = _load_cursor(context.cursor, legacy_key="metadata")
        # Register (upsert) the connector type when the sensor starts or the metadata changed,
        # so that `dagster dev` alone (without `painchain up`) registers it too.
        try:
            digest = metadata_digest(connector_id)
            if cursor.get("metadata") != digest:
                register(client, [connector_id], attempts=1)
                cursor["metadata"] = digest
        except RegistrationFailed as exc:
            problem = f"registering connector type {connector_id!r} failed: {exc}"
            _heartbeat(context, client, connector_id, problem=problem)
            return _skip(f"{problem}; tried again on the next tick", cursor)
        try:
            integrations = client.list_integrations(connector_id)
        except BackendUnavailable as exc:
            return _skip(f"the backend does not answer ({exc}); tried again on the next tick", cursor)
        except BackendError as exc:
            return _skip(_backend_refused(exc), cursor)

        usable = [i for i in integrations if valid_partition_name(i.id)]
        _report_unusable(context, client, [i for i in integrations if not valid_partition_name(i.id)], cursor)
        existing = set(context.instance.get_dynamic_partitions(integrations_def.name))
        added = [i for i in usable if i.id not in existing]
        listed = {i.id for i in integrations}
        removed = _confirmed_deleted(context, client, sorted(existing - listed))
        run_requests = first_sync_requests(added, settings.batch_threshold)
        partition_requests = []
        if added:
            partition_requests.append(integrations_def.build_add_request([i.id for i in added]))
        if removed:
            partition_requests.append(integrations_def.build_delete_request(removed))
        _heartbeat(context, client, connector_id, problem=None, queued=[i.id for i in added])
        if not added and not removed:
            return _skip(f"{len(existing)} integrations, none added or removed", cursor)
        context.log.info(f"integrations added: {[i.id for i in added] or 'none'}; removed: {removed or 'none'}")
        return dg.SensorResult(run_requests=run_requests, dynamic_partitions_requests=partition_requests,
                               cursor=json.dumps(cursor, sort_keys=True))

    return integrations_sensor


def first_sync_requests(added: list[Integration], batch_threshold: int) -> list[dg.RunRequest]:
    """One live run per new integration; past the batch threshold (hundreds created at once,
    a restored database) one batch run over the new partitions, which are contiguous at the
    end of the partition list (Dagster keeps dynamic partitions in the order they were added)."""
    today = utcnow().date()
    if not added:
        return []
    if len(added) > batch_threshold:
        ids = [i.id for i in added]
        return [dg.RunRequest(
            run_key="first-sync-batch-" + hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16],
            tags={MODE_TAG: "live", BATCH_TAG: "true", TRIGGER_TAG: f"{len(ids)} new integrations",
                  RANGE_START_TAG: str(partition_key(today, ids[0])),
                  RANGE_END_TAG: str(partition_key(today, ids[-1]))})]
    return [
        dg.RunRequest(
            run_key=f"first-sync-{integration.id}",
            partition_key=partition_key(today, integration.id),
            tags={MODE_TAG: "live", TRIGGER_TAG: "new-integration", **name_tag(integration)},
        )
        for integration in added
    ]


def name_tag(integration: Integration) -> dict[str, str]:
    """The integration's name on its runs, so that runs of UUID-keyed integrations are recognizable."""
    return {INTEGRATION_NAME_TAG: integration.name[:200]}


def _report_unusable(context, client: BackendClient, unusable: list[Integration], cursor: dict) -> None:
    """Integrations whose id cannot be a partition key: said once in the log and on their card."""
    reported = set(cursor.get("unusable", []))
    for integration in unusable:
        if integration.id in reported:
            continue
        problem = (f"integration {integration.name!r} ({integration.id}) cannot be synced: its id contains one "
                   f"of {' '.join(_FORBIDDEN_IN_KEYS)}, which Dagster partition keys cannot hold; recreate it")
        context.log.error(problem)
        _report(client, integration, problem)
        reported.add(integration.id)
    cursor["unusable"] = sorted(reported & {i.id for i in unusable})


def _confirmed_deleted(context, client: BackendClient, missing: list[str]) -> list[str]:
    """Of the partitions the integration list no longer shows, those the backend confirms are
    deleted: removing a partition hides its history, so a partial answer must not do it."""
    deleted = []
    for integration_id in missing[:MAX_REMOVALS_CHECKED_PER_TICK]:
        try:
            if not client.integration_exists(integration_id):
                deleted.append(integration_id)
        except (BackendUnavailable, BackendError) as exc:
            context.log.warning(f"keeping partition {integration_id}: cannot confirm it was deleted ({exc})")
    return deleted


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
        client = painchain.client(retries=SENSOR_BACKEND_RETRIES, timeout=SENSOR_BACKEND_TIMEOUT_S)
        cursor = _load_cursor(context.cursor)
        try:
            integrations = client.list_integrations(connector.id)
        except BackendUnavailable as exc:
            return _skip(f"the backend does not answer ({exc}); tried again on the next tick", cursor)
        except BackendError as exc:
            return _skip(_backend_refused(exc), cursor)
        if _batch_active(context.instance, job.name):
            _heartbeat(context, client, connector.id)
            return _skip("a live sync of every integration is running; its changes are covered", cursor)
        held = cursor.get("held") if isinstance(cursor.get("held"), dict) else {}
        now = time.time()
        known = set(context.instance.get_dynamic_partitions(integrations_def.name))
        busy = _integrations_with_active_runs(context.instance, integrations_def.name)
        candidates = []
        for integration in integrations:
            hold = held.get(integration.id)
            if isinstance(hold, dict) and hold.get("until", 0) > now and hold.get("updatedAt") == integration.updated_at:
                continue  # waiting out a rate limit, or a config error nobody fixed yet
            held.pop(integration.id, None)
            if integration.id in known and integration.id not in busy:
                candidates.append(integration)
        # Start where the last tick stopped, so a slow tick cannot starve the same integrations.
        offset = int(cursor.get("offset", 0) or 0) % max(1, len(candidates))
        candidates = candidates[offset:] + candidates[:offset]

        decisions = _check_for_changes(context, client, connector, candidates, settings, held, now)
        changed = [(i, decisions[i.id][1]) for i in candidates if decisions.get(i.id, (False, ""))[0]]
        quiet = [i.id for i in candidates if i.id in decisions and not decisions[i.id][0]]
        run_requests = live_sync_requests(changed, settings.batch_threshold, context.instance,
                                          integrations_def.name, job.name)
        _heartbeat(context, client, connector.id, checked=quiet)
        new_cursor = {"offset": offset + len(decisions), "held": held}
        summary = (f"{len(integrations)} integrations, {len(busy)} busy, {len(decisions)}/{len(candidates)} "
                   f"checked, {len(run_requests)} live syncs requested")
        context.log.info(summary)
        if not run_requests:
            return _skip(summary, new_cursor)
        return dg.SensorResult(run_requests=run_requests, cursor=json.dumps(new_cursor, sort_keys=True))

    return live_sensor


DETECTION_BUDGET_S = 20  # evaluations time out at 60 s and run one after the other in the daemon


def _check_for_changes(context, client: BackendClient, connector: Connector, candidates: list[Integration],
                       settings: OrchestrationSettings, held: dict, now: float) -> dict[str, tuple[bool, str]]:
    """integration id -> (changed, why) for the integrations checked within the time budget.
    One integration's failure (a refused token, a rate limit, a bug) never stops the others."""
    deadline = time.monotonic() + DETECTION_BUDGET_S
    decisions: dict[str, tuple[bool, str]] = {}
    pool = ThreadPoolExecutor(max_workers=settings.detect_workers, thread_name_prefix="detect")
    futures = {
        pool.submit(_needs_sync, client, connector, integration, settings, deadline): integration
        for integration in candidates
    }
    done, _ = wait(futures, timeout=max(1.0, deadline - time.monotonic()))
    pool.shutdown(wait=False, cancel_futures=True)
    for future in done:
        integration = futures[future]
        label = f"integration {integration.name!r} ({integration.id})"
        try:
            decision = future.result()
        except (ConfigError, AuthError) as exc:
            context.log.error(f"{label}: {exc}")
            held[integration.id] = {"until": now + 600, "updatedAt": integration.updated_at}
            _report(client, integration, str(exc))
            continue
        except RateLimited as exc:
            context.log.warning(f"{label}: {exc}")
            held[integration.id] = {"until": now + exc.retry_after, "updatedAt": integration.updated_at}
            continue
        except (ConnectorError, BackendUnavailable, BackendError) as exc:
            context.log.warning(f"{label}: change check failed, next tick retries: {exc}")
            continue
        except Exception as exc:  # an answer the connector did not expect: this integration only
            context.log.error(f"{label}: change check failed unexpectedly, next tick retries: "
                              f"{type(exc).__name__}: {exc}")
            continue
        if decision is not None:
            decisions[integration.id] = decision
    return decisions


def live_sync_requests(changed: list[tuple[Integration, str]], batch_threshold: int,
                       instance: dg.DagsterInstance, integrations_def_name: str, job_name: str) -> list[dg.RunRequest]:
    today = utcnow().date()
    if len(changed) > batch_threshold:
        # Many changed at once: one run live-syncs all of today's partitions (a range), at the
        # cost of one process start instead of one per integration.
        if _batch_active(instance, job_name):
            return []
        ordered = instance.get_dynamic_partitions(integrations_def_name)
        return [dg.RunRequest(tags={
            MODE_TAG: "live", BATCH_TAG: "true", TRIGGER_TAG: f"{len(changed)} integrations changed",
            RANGE_START_TAG: str(partition_key(today, ordered[0])),
            RANGE_END_TAG: str(partition_key(today, ordered[-1])),
        })]
    return [
        dg.RunRequest(partition_key=partition_key(today, integration.id),
                      tags={MODE_TAG: "live", TRIGGER_TAG: reason[:200], **name_tag(integration)})
        for integration, reason in changed
    ]


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
        now = utcnow()
        # Any job: materializations from the UI run as Dagster's implicit asset job.
        records = context.instance.get_run_records(filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.FAILURE], tags={DEFERRED_TAG: "pending", CONNECTOR_TAG: connector_id}))
        due = [r.dagster_run for r in records if _retry_at(r.dagster_run, now) <= now]
        run_requests = [deferred_run_request(run) for run in due]
        for run in due:
            context.instance.add_run_tags(run.run_id, {DEFERRED_TAG: "relaunched"})
        waiting = len(records) - len(due)
        if not run_requests:
            return dg.SkipReason(f"{waiting} run(s) waiting for a rate limit to reset" if waiting
                                 else "no run is waiting for a rate limit")
        return run_requests

    return deferred_retry_sensor


def _retry_at(run: dg.DagsterRun, now: dt.datetime) -> dt.datetime:
    """When a deferred run may go again; a missing or mangled tag means now."""
    try:
        return dt.datetime.fromisoformat(run.tags[RETRY_AT_TAG])
    except (KeyError, ValueError):
        return now


def deferred_run_request(run: dg.DagsterRun) -> dg.RunRequest:
    """The same partitions (one key or a range) and mode as the stopped run."""
    tags = {k: v for k, v in run.tags.items() if k in (MODE_TAG, TRIGGER_TAG, BATCH_TAG, INTEGRATION_NAME_TAG)}
    tags[DEFERRAL_TAG] = str(int(run.tags.get(DEFERRAL_TAG, "0")) + 1)
    tags[DEFERRED_FROM_TAG] = run.run_id
    run_key = f"deferred:{run.run_id}"  # launched once, even if tagging the old run failed
    if PARTITION_TAG in run.tags:
        return dg.RunRequest(run_key=run_key, partition_key=run.tags[PARTITION_TAG], tags=tags)
    tags[RANGE_START_TAG], tags[RANGE_END_TAG] = run.tags[RANGE_START_TAG], run.tags[RANGE_END_TAG]
    return dg.RunRequest(run_key=run_key, tags=tags)


def _needs_sync(client: BackendClient, connector: Connector, integration: Integration,
                settings: OrchestrationSettings, deadline: float) -> tuple[bool, str] | None:
    """(changed, why), or None when the tick's time ran out before this integration's turn."""
    if time.monotonic() > deadline:
        return None
    sync = client.get_sync(integration)
    last_success = parse_time(sync.get("lastSuccessAt"))
    if last_success and utcnow() - last_success > settings.heartbeat:
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
