import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from painchain_pipelines.backend.config import BackendSettings
from painchain_pipelines.backend.database import Database
from painchain_pipelines.backend.migrate import current_revision, head_revision, upgrade
from painchain_pipelines.backend.models import Base, modelled_objects
from tests.conftest import DATABASE_KINDS, create_integration, event_body, register_type
from tests.support.backend_server import BackendServer
from tests.support.databases import insert_github_integration


@pytest.mark.parametrize("kind", DATABASE_KINDS)
def test_migrations_from_empty_match_the_models(make_database_url, kind):
    db = Database(make_database_url(kind))
    assert current_revision(db) is None
    assert upgrade(db) == head_revision()
    with db.engine.connect() as conn:
        opts = {"compare_type": True, "include_object": modelled_objects(conn.dialect.name)}
        diff = compare_metadata(MigrationContext.configure(conn, opts=opts), Base.metadata)
    assert diff == []
    assert {"connector_types", "integrations", "events", "event_tags", "api_tokens"} <= set(
        inspect(db.engine).get_table_names())
    # idempotent, and reversible
    assert upgrade(db) == head_revision()
    upgrade(db, "head")
    from alembic import command

    from painchain_pipelines.backend.migrate import alembic_config

    with db.write_connection() as conn:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert "events" not in inspect(db.engine).get_table_names()
    assert upgrade(db) == head_revision()
    db.dispose()


@pytest.mark.parametrize("kind", DATABASE_KINDS)
def test_data_and_secrets_survive_a_restart(make_database_url, tmp_path, kind):
    settings = BackendSettings.from_env(data_dir=tmp_path, database_url=make_database_url(kind),
                                        api_token=None, secret_key=None)
    with BackendServer(settings) as first:
        api = first.client()
        type_id = register_type(api)
        integ = create_integration(api, type_id, token="survives-restart")
        event = api.post("/events", json=event_body(integ, 1)).json()
    assert (tmp_path / "secret.key").exists()
    assert oct((tmp_path / "secret.key").stat().st_mode & 0o777) == "0o600"
    with BackendServer(settings) as second:
        api = second.client()
        assert api.get(f"/events/{event['id']}").json()["externalId"] == "commit-1"
        assert api.get("/integrations", params={"type": type_id}).json()[0]["config"]["token"] == "survives-restart"
        assert api.post("/events", json=event_body(integ, 1)).status_code == 409


def test_wrong_secret_key_is_reported_not_crashing(make_database_url, tmp_path, caplog):
    url = make_database_url("sqlite")
    settings = BackendSettings.from_env(data_dir=tmp_path, database_url=url, api_token=None, secret_key="key-one")
    with BackendServer(settings) as server:
        type_id = register_type(server.client())
        integ = create_integration(server.client(), type_id, token="locked")
    rotated = BackendSettings.from_env(data_dir=tmp_path, database_url=url, api_token=None, secret_key="key-two")
    with BackendServer(rotated) as server, caplog.at_level("ERROR"):
        listed = server.client().get("/integrations", params={"type": type_id})
        assert listed.status_code == 200
        assert listed.json()[0]["config"]["token"] is None
    assert f"integration {integ['id']}" in caplog.text and "PAINCHAIN_SECRET_KEY" in caplog.text


def test_health_reports_unreachable_database_as_503(tmp_path):
    import threading
    import time

    import requests
    import uvicorn

    from painchain_pipelines.backend.app import create_app

    settings = BackendSettings.from_env(
        data_dir=tmp_path, database_url="postgresql+psycopg://nobody:pw@127.0.0.1:1/none", api_token=None)
    app = create_app(settings, migrate=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        response = requests.get(f"http://127.0.0.1:{port}/api/health", timeout=30)
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "error" and body["database"]["status"] == "unreachable"
        assert "pw" not in response.text
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.mark.parametrize("kind", DATABASE_KINDS)
def test_upgrade_from_0003_keeps_sync_records_and_adds_checks_and_heartbeats(make_database_url, kind):
    from sqlalchemy import text

    db = Database(make_database_url(kind))
    upgrade(db, "0003")
    with db.write_connection() as conn:
        insert_github_integration(conn, "3f0e-old-uuid", None, "2026-11-30 10:00:00")
        conn.execute(text("INSERT INTO integration_sync (integration_id, state, last_success_at, updated_at)"
                          " VALUES ('3f0e-old-uuid', '{\"repos\": {}}', :t, :t)"), {"t": "2026-11-30 10:00:00"})
    assert upgrade(db) == head_revision()
    with db.engine.connect() as conn:
        row = conn.execute(text("SELECT state, last_success_at, last_checked_at, first_sync_queued_at"
                                " FROM integration_sync")).one()
        assert row.last_success_at is not None and row.last_checked_at is None and row.first_sync_queued_at is None
        assert "repos" in (row.state if isinstance(row.state, dict) else row.state)
        assert conn.execute(text("SELECT count(*) FROM orchestrator_status")).scalar() == 0
    db.dispose()
