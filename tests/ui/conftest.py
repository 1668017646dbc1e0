"""Browser tests: the real backend with seeded data, Debian's Chromium driven by Playwright."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
from pathlib import Path

import pytest
import requests

from painchain_pipelines.paths import METADATA_DIR

CHROMIUM = os.environ.get("PAINCHAIN_CHROMIUM", "/usr/bin/chromium")
REQUIRE_BROWSER = os.environ.get("PAINCHAIN_REQUIRE_BROWSER") == "1"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SEEDED_EVENTS = 250


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        message = f"Chromium not found at {CHROMIUM} (apt install chromium)"
        if REQUIRE_BROWSER:
            pytest.fail(message + "; PAINCHAIN_REQUIRE_BROWSER=1 makes this an error")
        pytest.skip(message + "; set PAINCHAIN_REQUIRE_BROWSER=1 to make this an error")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser):
    """A page of its own browser context (en-US), failing the test on any JavaScript error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert errors == [], f"JavaScript errors: {errors}"


def seed(api: str, count: int = SEEDED_EVENTS, *, now: dt.datetime | None = None, headers=None) -> dict:
    """Connector types, integrations and `count` events over the last 20 hours."""
    session = requests.Session()
    session.headers.update(headers or {})
    session.post(api + "/integrations/types/register", json=json.loads((METADATA_DIR / "github.json").read_text())).raise_for_status()
    session.post(api + "/integrations/types/register", json=json.loads((METADATA_DIR / "kubernetes.json").read_text())).raise_for_status()
    github = session.post(api + "/integrations", json={"type": "github", "config": {
        "name": "Payments GitHub", "tags": ["production"], "token": "ghp_ui_secret",
        "repositories": ["acme/payments"]}}).json()
    kube = session.post(api + "/integrations", json={"type": "kubernetes", "config": {
        "name": "prod-eu", "tags": ["production", "eu"], "namespaces": [],
        "clusters": [{"name": "prod-eu", "server": "https://prod-eu.example.com:6443", "token": "k8s-secret"}]}}).json()
    now = now or dt.datetime.now(dt.timezone.utc)
    rng = random.Random(5)
    events = []
    for n in range(count):
        at = now - dt.timedelta(minutes=5 + n * (20 * 60 - 10) / count)
        if n % 3:
            conclusion = "failure" if n % 7 == 0 else "success"
            events.append({"title": f"Workflow CI #{n} {'failed' if conclusion == 'failure' else 'succeeded'} on main",
                           "connector": "github", "project": "acme/payments", "timestamp": at.isoformat(),
                           "externalId": f"run-{n}", "integrationId": github["id"],
                           "data": {"url": f"https://github.com/acme/payments/actions/runs/{n}", "conclusion": conclusion,
                                    "sha": f"{rng.getrandbits(160):040x}", "actor": "alice",
                                    "completedAt": at.isoformat(), "durationSeconds": 300}})
        else:
            events.append({"title": f"Pod api-{n}: CrashLoopBackOff", "connector": "kubernetes",
                           "project": "prod-eu:payments", "timestamp": at.isoformat(), "externalId": f"pod-{n}",
                           "integrationId": kube["id"], "tags": ["pods"],
                           "data": {"reason": "CrashLoopBackOff", "restartCount": n % 5,
                                    "containers": [{"name": "app", "image": "registry/api:1.2"}]}})
    events[17]["title"] = "Commit to main: fix needle-in-haystack bug"
    events[17]["data"]["sha"] = "needle123abc"
    for start in range(0, len(events), 500):
        session.post(api + "/events/batch", json={"events": events[start:start + 500]}).raise_for_status()
    return {"github": github, "kube": kube, "events": events}
