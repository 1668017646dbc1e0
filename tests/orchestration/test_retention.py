"""The `event_retention` asset against the real backend on a real socket, run by Dagster in process:
the rows removed in its metadata, 'retention off' as a success, retries while the backend fails."""

import datetime as dt
import uuid

import dagster as dg
import pytest

from painchain_pipelines.backend.routers import retention as retention_router
from painchain_pipelines.backend.schemas.common import iso_from_ms
from painchain_pipelines.backend.services import retention as retention_service
from painchain_pipelines.defs.retention import defs
from painchain_pipelines.orchestration.resources import PainChainBackend
from tests.conftest import DATABASE_KINDS, create_integration, register_type
from tests.orchestration.github_defs import product_definitions

SERVICE_TOKEN = "pc_service_token_retention_3c2b1a"
event_retention = defs.get_assets_def("event_retention")
[event_retention_schedule] = defs.schedules
DAY_MS = 24 * 3600 * 1000


@pytest.fixture
def instance(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        yield instance


def _materialize(backend, instance, token: str | None = SERVICE_TOKEN) -> dg.ExecuteInProcessResult:
    return dg.materialize([event_retention], instance=instance, raise_on_error=False,
                          resources={"painchain": PainChainBackend(api_url=backend.api_url, api_token=token)})


def _metadata(result: dg.ExecuteInProcessResult) -> dict:
    [materialization] = result.asset_materializations_for_node("event_retention")
    return {key: value.value for key, value in materialization.metadata.items()}


def _post_events(backend, days_ago: list[int]) -> None:
    api = backend.client(Authorization=f"Bearer {SERVICE_TOKEN}")
    integration = create_integration(api, register_type(api))
    now = int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000)
    bodies = [{"title": f"change {n}", "connector": integration["type"], "project": "octo/app",
               "timestamp": iso_from_ms(now - days * DAY_MS - n), "externalId": uuid.uuid4().hex,
               "integrationId": integration["id"]} for n, days in enumerate(days_ago)]
    response = api.post("/events/batch", json={"events": bodies})
    assert response.json()["created"] == len(bodies), response.text


@pytest.mark.parametrize("kind", DATABASE_KINDS)
def test_the_asset_prunes_through_the_backend_and_reports_what_it_removed(make_backend, instance, monkeypatch, kind):
    backend = make_backend(kind, api_token=SERVICE_TOKEN, retention_days=30)
    _post_events(backend, [90, 45, 31, 31, 40, 29, 2])
    # One batch of two events per call: the asset has to call until the backend says done.
    monkeypatch.setattr(retention_router, "RUN_SECONDS", 0.0)
    monkeypatch.setattr(retention_service, "FIRST_BATCH_ROWS", 2)

    result = _materialize(backend, instance)

    assert result.success
    metadata = _metadata(result)
    assert metadata["retention"] == "30 days" and metadata["retention_days"] == 30
    assert (metadata["rows_removed"], metadata["batches"]) == (5, 3)
    assert 0 < metadata["longest_batch_ms"] < 5000
    cutoff = dt.datetime.fromtimestamp(metadata["cutoff"], dt.timezone.utc)
    assert abs(cutoff - (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=30))) < dt.timedelta(minutes=2)
    api = backend.client(Authorization=f"Bearer {SERVICE_TOKEN}")
    assert len(api.get("/events").json()["events"]) == 2

    again = _materialize(backend, instance)
    assert again.success and _metadata(again)["rows_removed"] == 0
    # History in the UI: one materialization per run.
    assert len(instance.fetch_materializations(dg.AssetKey("event_retention"), limit=10).records) == 2


def test_retention_off_is_a_successful_run_that_says_so(make_backend, instance):
    backend = make_backend("sqlite", api_token=SERVICE_TOKEN)
    _post_events(backend, [400])
    result = _materialize(backend, instance)
    assert result.success
    assert _metadata(result)["retention"] == "off" and _metadata(result)["rows_removed"] == 0
    logs = "\n".join(entry.user_message for entry in instance.all_logs(result.run_id))
    assert "retention off: PAINCHAIN_RETENTION_DAYS is not set on the backend" in logs


def test_a_failing_backend_is_retried_and_a_refused_token_is_not(make_backend, instance):
    backend = make_backend("sqlite", api_token=SERVICE_TOKEN, retention_days=30)
    _post_events(backend, [31])
    backend.fail_next(3, status=503, path_contains="/retention")  # every attempt of the first try

    result = _materialize(backend, instance)

    assert result.success
    assert [e.event_type_value for e in result.all_events].count("STEP_UP_FOR_RETRY") == 1
    assert _metadata(result)["rows_removed"] == 1

    refused = _materialize(backend, instance, token="not-the-service-token")
    assert not refused.success
    assert [e.event_type_value for e in refused.all_events].count("STEP_UP_FOR_RETRY") == 0
    failure = next(e for e in refused.all_events if e.event_type_value == "STEP_FAILURE")
    assert "PAINCHAIN_API_TOKEN must be the backend's service token" in str(failure.event_specific_data.error)


def test_the_schedule_runs_the_job_daily_and_is_on_by_default():
    assert event_retention_schedule.name == "event_retention_schedule"
    assert event_retention_schedule.cron_schedule == "15 3 * * *"
    assert event_retention_schedule.execution_timezone == "UTC"
    assert event_retention_schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert event_retention_schedule.job_name == "event_retention_job"
    # in the code location `painchain up` loads, with the backend resource it needs
    job = product_definitions().get_repository_def().get_job("event_retention_job")
    assert job.asset_layer.executable_asset_keys == {dg.AssetKey("event_retention")}
