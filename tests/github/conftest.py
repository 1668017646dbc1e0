import pytest

from painchain_pipelines.connectors.base import Integration
from tests.fakes import FakeGitHub

TOKEN = "ghp_testtoken_never_logged_0123456789"


@pytest.fixture
def fake():
    with FakeGitHub(token=TOKEN) as server:
        yield server


def github_integration(fake, repositories, integration_id="int-1", **extra) -> Integration:
    config = {"name": "GitHub", "tags": ["prod"], "token": TOKEN, "repositories": repositories,
              "baseUrl": fake.base_url, **extra}
    return Integration(id=integration_id, name="GitHub", type="github", config=config, tenant_id=None)
