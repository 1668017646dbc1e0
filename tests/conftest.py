from __future__ import annotations

import os
import uuid

# Before the Dagster definitions are imported: retries in tests wait 1 s, not 15.
os.environ.setdefault("PAINCHAIN_RETRY_DELAY_SECONDS", "1")

import pytest

from painchain_pipelines.backend.config import BackendSettings
from tests.support.backend_server import ApiClient, BackendServer
from tests.support.databases import PostgresDatabases, require_postgres

DATABASE_KINDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def postgres_databases():
    require_postgres()
    databases = PostgresDatabases()
    yield databases
    databases.drop_all()


@pytest.fixture(scope="session")
def make_database_url(request, tmp_path_factory):
    """make_database_url(kind) -> URL of a new, empty database of that kind."""

    def make(kind: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'painchain.db'}"
        return request.getfixturevalue("postgres_databases").create()

    return make


@pytest.fixture(scope="session")
def make_backend(make_database_url, tmp_path_factory):
    """make_backend(kind, **settings) -> a started BackendServer on a fresh database."""
    servers: list[BackendServer] = []

    def make(kind: str = "sqlite", **overrides) -> BackendServer:
        overrides.setdefault("data_dir", tmp_path_factory.mktemp("data"))
        overrides.setdefault("database_url", make_database_url(kind))
        server = BackendServer(BackendSettings.from_env(**overrides)).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(scope="session", params=DATABASE_KINDS)
def backend(request, make_backend) -> BackendServer:
    """The backend on each database kind, shared by a session (tests use their own integrations)."""
    return make_backend(request.param, api_token=None, secret_key=None)


@pytest.fixture
def api(backend) -> ApiClient:
    return backend.client()


TEST_SCHEMA = {
    "fields": [
        {"key": "name", "label": "Integration Name", "type": "text", "required": True},
        {"key": "tags", "label": "Tags", "type": "textarea", "required": True},
        {"key": "token", "label": "API Token", "type": "password", "required": True},
        {"key": "repositories", "label": "Repositories", "type": "textarea", "required": True,
         "placeholder": '["owner/repo"]'},
        {"key": "baseUrl", "label": "Base URL", "type": "text", "required": False},
        {"key": "interval", "label": "Interval", "type": "number", "required": False},
        {"key": "verbose", "label": "Verbose", "type": "checkbox", "required": False},
        {"key": "mode", "label": "Mode", "type": "select", "required": False,
         "options": [{"value": "fast", "label": "Fast"}, "slow"]},
        {"key": "notes", "label": "Notes", "type": "textarea", "required": False, "format": "text"},
    ]
}


def register_type(api: ApiClient, type_id: str | None = None, schema: dict | None = None) -> str:
    type_id = type_id or "t" + uuid.uuid4().hex[:10]
    response = api.post(
        "/integrations/types/register",
        json={"id": type_id, "displayName": type_id.title(), "color": "#123456",
              "configSchema": schema or TEST_SCHEMA},
    )
    assert response.status_code in (200, 201), response.text
    return type_id


def create_integration(api: ApiClient, type_id: str, **config) -> dict:
    body = {"name": "Integration " + uuid.uuid4().hex[:6], "tags": ["prod"], "token": "s3cret-token",
            "repositories": '["octo/hello"]'}
    body.update(config)
    response = api.post("/integrations", json={"type": type_id, "config": body})
    assert response.status_code == 201, response.text
    return response.json()


def event_body(integration: dict, n: int = 0, **overrides) -> dict:
    body = {
        "title": f"Commit {n}",
        "connector": integration["type"],
        "project": "octo/hello",
        "timestamp": f"2026-01-01T00:{n // 60 % 60:02d}:{n % 60:02d}Z",
        "externalId": f"commit-{n}",
        "integrationId": integration["id"],
        "data": {"sha": f"{n:040x}", "author": "octocat"},
    }
    body.update(overrides)
    return body


@pytest.fixture
def integration(api) -> dict:
    return create_integration(api, register_type(api))
