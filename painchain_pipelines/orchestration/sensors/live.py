"""The live sensor: every POLLING_INTERVAL, ask each integration's source cheaply whether
anything changed since its last sync, and start a live sync only where something did (or where
the last success is older than the heartbeat). Idle integrations cost no run."""

import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

import dagster as dg

from painchain_pipelines.connectors.backend_client import BackendClient, BackendError, BackendUnavailable
from painchain_pipelines.connectors.base import (
    AuthError,
    ConfigError,
    Connector,
    ConnectorError,
    Integration,
    ProbesChanges,
    RateLimited,
    parse_time,
    utcnow,
)
from painchain_pipelines.connectors.sync import report_error
from painchain_pipelines.orchestration.partitions import partition_key
from painchain_pipelines.orchestration.resources import PainChainBackend
from painchain_pipelines.orchestration.runs import batch_active, integrations_with_active_runs
from painchain_pipelines.orchestration.sensors.common import (
    backend_problem,
    dump_cursor,
    heartbeat,
    load_cursor,
    sensor_client,
    skip,
)
from painchain_pipelines.orchestration.settings import OrchestrationSettings
from painchain_pipelines.orchestration.tags import (
    BATCH_TAG,
    MODE_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    TRIGGER_TAG,
    name_tag,
)

# Evaluations time out at 60 s and run one after the other in the daemon (dagster.yaml).
if TYPE_CHECKING:  # the type define_asset_job returns; dagster does not export it
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition


DETECTION_BUDGET_S = 20
# An integration whose token or config was refused is not checked again until it is edited,
# or for this long.
HOLD_AFTER_REFUSAL_S = 600

Decision = tuple[bool, str]  # (changed, why)


def build_live_sensor(
    connector: Connector,
    integrations_def: dg.DynamicPartitionsDefinition,
    job: "UnresolvedAssetJobDefinition",
    settings: OrchestrationSettings,
) -> dg.SensorDefinition:

    probe = ("cheap change detection" if isinstance(connector, ProbesChanges)
             else "a live sync of each integration")

    @dg.sensor(
        name=f"{connector.id}_live_sensor",
        job=job,
        minimum_interval_seconds=settings.polling_interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Live polling of {connector.id}: {probe} every POLLING_INTERVAL "
        f"({settings.polling_interval} s); a live sync run only for integrations that changed.",
    )
    def live_sensor(context: dg.SensorEvaluationContext, painchain: PainChainBackend):
        client = sensor_client(painchain)
        cursor = load_cursor(context.cursor)
        try:
            integrations = client.list_integrations(connector.id)
        except (BackendUnavailable, BackendError) as exc:
            return skip(backend_problem(exc), cursor)
        if batch_active(context.instance, job.name):
            heartbeat(context, client, connector.id)
            return skip("a live sync of every integration is running; its changes are covered", cursor)
        held = cursor.get("held") if isinstance(cursor.get("held"), dict) else {}
        now = time.time()
        known = set(context.instance.get_dynamic_partitions(integrations_def.name))
        busy = integrations_with_active_runs(context.instance, integrations_def.name)
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
        heartbeat(context, client, connector.id, checked=quiet)
        new_cursor = {"offset": offset + len(decisions), "held": held}
        summary = (f"{len(integrations)} integrations, {len(busy)} busy, {len(decisions)}/{len(candidates)} "
                   f"checked, {len(run_requests)} live syncs requested")
        context.log.info(summary)
        if not run_requests:
            return skip(summary, new_cursor)
        return dg.SensorResult(run_requests=run_requests, cursor=dump_cursor(new_cursor))

    return live_sensor


def _check_for_changes(context, client: BackendClient, connector: Connector, candidates: list[Integration],
                       settings: OrchestrationSettings, held: dict, now: float) -> dict[str, Decision]:
    """integration id -> (changed, why) for the integrations checked within the time budget.
    One integration's failure (a refused token, a rate limit, a bug) never stops the others."""
    deadline = time.monotonic() + DETECTION_BUDGET_S
    decisions: dict[str, Decision] = {}
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
            held[integration.id] = {"until": now + HOLD_AFTER_REFUSAL_S, "updatedAt": integration.updated_at}
            report_error(client, integration, str(exc))
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


def _needs_sync(client: BackendClient, connector: Connector, integration: Integration,
                settings: OrchestrationSettings, deadline: float) -> Decision | None:
    """(changed, why), or None when the tick's time ran out before this integration's turn."""
    if time.monotonic() > deadline:
        return None
    sync = client.get_sync(integration)
    last_success = parse_time(sync.get("lastSuccessAt"))
    if last_success and utcnow() - last_success > settings.heartbeat:
        return True, "heartbeat"
    if not isinstance(connector, ProbesChanges):
        return True, "poll"  # no cheap probe: the live sync itself finds out
    check = connector.detect_changes(integration, sync["state"])
    return check.changed, check.reason


def live_sync_requests(changed: list[tuple[Integration, str]], batch_threshold: int,
                       instance: dg.DagsterInstance, integrations_def_name: str, job_name: str) -> list[dg.RunRequest]:
    today = utcnow().date()
    if len(changed) > batch_threshold:
        # Many changed at once: one run live-syncs all of today's partitions (a range), at the
        # cost of one process start instead of one per integration.
        if batch_active(instance, job_name):
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
