"""What every sensor shares: short backend timeouts, JSON cursors, skips with a reason, the
orchestrator heartbeat. A tick never fails: every branch ends in runs or a skip reason."""

import json

import dagster as dg

from painchain_pipelines.connectors.backend_client import BackendClient, BackendError, BackendUnavailable

# Sensors ask the backend with short timeouts and one retry, so that a tick whose backend is
# down ends in seconds with a reason instead of running into Dagster's 60 s evaluation limit.
SENSOR_BACKEND_RETRIES = 1
SENSOR_BACKEND_TIMEOUT_S = 10.0


def sensor_client(painchain) -> BackendClient:
    return painchain.client(retries=SENSOR_BACKEND_RETRIES, timeout=SENSOR_BACKEND_TIMEOUT_S)


def load_cursor(raw: str | None, legacy_key: str | None = None) -> dict:
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


def dump_cursor(cursor: dict) -> str:
    return json.dumps(cursor, sort_keys=True)


def skip(reason: str, cursor: dict) -> dg.SensorResult:
    # Always with the cursor: every tick saves it the same way (never also context.update_cursor).
    return dg.SensorResult(skip_reason=dg.SkipReason(reason), cursor=dump_cursor(cursor))


def heartbeat(context, client: BackendClient, connector_id: str, **report) -> None:
    """Tell the backend (and so the PainChain UI) that the orchestrator is alive, and what it did."""
    try:
        client.report_orchestrator(connector_id, **report)
    except (BackendUnavailable, BackendError) as exc:
        context.log.warning(f"could not report to the backend: {exc}")


def backend_problem(exc: BackendUnavailable | BackendError) -> str:
    """Why a tick could not ask the backend, as its skip reason."""
    if isinstance(exc, BackendUnavailable):
        return f"the backend does not answer ({exc}); tried again on the next tick"
    if exc.status in (401, 403):
        return (f"the backend refused the orchestrator ({exc}); PAINCHAIN_API_TOKEN must be the "
                "backend's service token")
    return f"the backend refused the request: {exc}"
