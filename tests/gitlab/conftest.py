import datetime as dt

import pytest

from painchain_pipelines.connectors.base import Integration
from painchain_pipelines.connectors.gitlab import GitLabConnector
from painchain_pipelines.connectors.gitlab.client import ClientTuning
from tests.fakes.gitlab_server import FakeGitLab
from tests.fakes.gitlab_world import GitLabWorld

TOKEN = "gitlab-test-token-never-logged-0123456789"
NOW = dt.datetime(2026, 11, 2, 12, 0, tzinfo=dt.timezone.utc)
H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)


@pytest.fixture
def world():
    return GitLabWorld(now=NOW)


@pytest.fixture
def fake(world):
    with FakeGitLab(world, token=TOKEN) as server:
        yield server


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def connector(sleeps):
    """The connector, its inline waits recorded instead of slept (the fake's clock is the world's)."""
    return GitLabConnector(client_tuning=ClientTuning(sleep=sleeps.append))


def gitlab_integration(fake, projects, integration_id="int-1", **extra) -> Integration:
    config = {"name": "GitLab", "tags": ["prod"], "token": TOKEN, "projects": projects, "url": fake.url, **extra}
    return Integration(id=integration_id, name="GitLab", type="gitlab", config=config, tenant_id=None)


def collect(fn, *args, **kwargs):
    events = []
    result = fn(*args, sink=events.append, **kwargs)
    return events, result
