import datetime as dt
import time

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


def offset_to_ten_am() -> float:
    """A clock offset putting the fake's world at 10:00 UTC today: tests that move its clock by
    hours then never cross midnight, whenever they run."""
    target = dt.datetime.combine(dt.datetime.now(dt.timezone.utc).date(), dt.time(10), dt.timezone.utc)
    return target.timestamp() - time.time()


def collect(fn, *args, **kwargs):
    events = []
    result = fn(*args, sink=events.append, **kwargs)
    return events, result
