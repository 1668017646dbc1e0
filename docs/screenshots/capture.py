"""Regenerates the screenshots in this folder from the real backend and UI, in headless Chromium.

    .venv/bin/python docs/screenshots/capture.py [--chromium /usr/bin/chromium]

A backend runs on a temporary SQLite database seeded with a day of changes of a small team
(commits, pull requests, CI runs, deployments, Kubernetes rollouts and crashes) and an incident
40 minutes ago: a deployment, then pods crash-looping. A second one holds one integration per
sync state, for integration-states.png. The browser runs in Europe/Paris.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
import tempfile
from pathlib import Path

import requests
from sqlalchemy import create_engine, update
from sqlalchemy.orm import Session

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from bench._support import backend_process  # noqa: E402
from painchain_pipelines.backend.models import IntegrationSync, OrchestratorStatus  # noqa: E402
from painchain_pipelines.paths import METADATA_DIR  # noqa: E402

TIMEZONE = "Europe/Paris"

KUBERNETES_TYPE = {
    "id": "kubernetes", "displayName": "Kubernetes", "color": "#326ce5",
    "configSchema": {"fields": [
        {"key": "name", "label": "Integration Name", "type": "text", "required": True},
        {"key": "tags", "label": "Tags", "type": "textarea", "required": True},
        {"key": "kubeToken", "label": "Cluster Token", "type": "password", "required": True}]},
}
REPOS = ["acme/payments-api", "acme/web", "acme/checkout"]
PEOPLE = ["alice", "bob", "chen", "dana", "eve"]
SUBJECTS = ["Retry card captures on 502", "Bump pydantic to 2.9", "Add idempotency keys to refunds",
            "Fix flaky checkout test", "Cache exchange rates for 5 minutes", "Log the acquirer response code",
            "Drop the legacy /v1/charges route", "Tune connection pool for PgBouncer"]


def github_event(rng, n, at, integration):
    repo = rng.choice(REPOS)
    who = rng.choice(PEOPLE)
    sha = f"{rng.getrandbits(160):040x}"
    kind = n % 4
    if kind == 0:
        subject = rng.choice(SUBJECTS)
        return {"title": f"Commit to main: {subject}", "externalId": f"commit-{sha}", "project": repo,
                "data": {"url": f"https://github.com/{repo}/commit/{sha}", "sha": sha, "author": who,
                         "branch": "main", "message": subject}}
    if kind == 1:
        number = 400 + n
        return {"title": f"PR #{number} merged: {rng.choice(SUBJECTS)}", "externalId": f"pr-{number}-merged",
                "project": repo, "data": {"url": f"https://github.com/{repo}/pull/{number}", "number": number,
                                          "author": who, "state": "merged", "mergeCommitSha": sha}}
    conclusion = "failure" if n % 11 == 0 else "success"
    run = 9_000_000 + n
    return {"title": f"Workflow CI #{run % 10_000} {'failed' if conclusion == 'failure' else 'succeeded'} on main",
            "externalId": f"run-{run}-1", "project": repo,
            "data": {"url": f"https://github.com/{repo}/actions/runs/{run}", "runId": run, "conclusion": conclusion,
                     "headSha": sha, "actor": who, "runAttempt": 1, "durationSeconds": rng.randrange(120, 900),
                     "completedAt": at.isoformat()}}


def age(database_url: str, *, syncs: dict[str, dt.timedelta] = {}, heartbeats: dict[str, dt.timedelta] = {}) -> None:
    """Move last successful syncs and orchestrator heartbeats back in time (the API only says "now")."""
    engine = create_engine(database_url)
    now = dt.datetime.now(dt.timezone.utc)
    with Session(engine) as session, session.begin():
        for integration_id, ago in syncs.items():
            # a sync is also a check: both move back
            session.execute(update(IntegrationSync).where(IntegrationSync.integration_id == integration_id)
                            .values(last_success_at=now - ago, last_checked_at=now - ago))
        for type_id, ago in heartbeats.items():
            session.execute(update(OrchestratorStatus).where(OrchestratorStatus.connector_type == type_id)
                            .values(seen_at=now - ago))
    engine.dispose()


def seed(api: str, database_url: str) -> dt.datetime:
    session = requests.Session()
    session.post(api + "/integrations/types/register",
                 json=json.loads((METADATA_DIR / "github.json").read_text())).raise_for_status()
    session.post(api + "/integrations/types/register", json=KUBERNETES_TYPE).raise_for_status()
    github = session.post(api + "/integrations", json={"type": "github", "config": {
        "name": "Acme GitHub", "tags": ["production"], "token": "ghp_screenshot", "repositories": REPOS}}).json()
    kube = session.post(api + "/integrations", json={"type": "kubernetes", "config": {
        "name": "prod-eu", "tags": ["production", "eu"], "kubeToken": "k8s-screenshot"}}).json()
    staging = session.post(api + "/integrations", json={"type": "github", "config": {
        "name": "Acme GitHub (staging)", "tags": ["staging"], "token": "ghp_staging", "repositories": ["acme/web"]}}).json()
    session.put(f"{api}/integrations/{github['id']}/sync", json={"status": "success", "stats": {
        "failedSources": {"acme/legacy-billing": "HTTP 404 Not Found"}}}).raise_for_status()
    session.put(f"{api}/integrations/{kube['id']}/sync",
                json={"status": "error", "error": "cluster API timed out after 30 s"}).raise_for_status()
    # Dagster is running: the GitHub integration was synced 12 minutes ago and checked just now,
    # the staging one has its first sync queued
    age(database_url, syncs={github["id"]: dt.timedelta(minutes=12)})
    session.put(f"{api}/integrations/types/github/orchestrator",
                json={"checked": [github["id"]], "queued": [staging["id"]]}).raise_for_status()
    session.put(f"{api}/integrations/types/kubernetes/orchestrator", json={}).raise_for_status()

    rng = random.Random(7)
    now = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
    incident = now - dt.timedelta(minutes=40)
    events = []
    for n in range(320):
        at = now - dt.timedelta(minutes=70 + n * 4.2 + rng.random() * 3)
        events.append({**github_event(rng, n, at, github), "timestamp": at.isoformat(),
                       "connector": "github", "integrationId": github["id"]})
    sha = f"{rng.getrandbits(160):040x}"
    story = [
        (-64, "github", "PR #731 merged: Tune connection pool for PgBouncer", "acme/payments-api",
         {"url": "https://github.com/acme/payments-api/pull/731", "number": 731, "author": "dana",
          "state": "merged", "mergeCommitSha": sha}),
        (-58, "github", "Workflow CI #4471 succeeded on main", "acme/payments-api",
         {"url": "https://github.com/acme/payments-api/actions/runs/94471", "conclusion": "success",
          "headSha": sha, "actor": "dana", "durationSeconds": 312}),
        (-52, "github", "Deployment to production: success", "acme/payments-api",
         {"url": "https://github.com/acme/payments-api/deployments", "environment": "production",
          "state": "success", "sha": sha, "creator": "deploy-bot", "ref": "v2.14.0"}),
        (-49, "kubernetes", "Deployment payments-api rolled out: registry.acme.io/payments-api:v2.14.0",
         "prod-eu:payments", {"image": "registry.acme.io/payments-api:v2.14.0", "replicas": 6, "status": "complete"}),
        (-44, "kubernetes", "Pod payments-api-7c9f-x2k4q: CrashLoopBackOff", "prod-eu:payments",
         {"reason": "CrashLoopBackOff", "restartCount": 3, "status": "failure",
          "containers": [{"name": "app", "image": "registry.acme.io/payments-api:v2.14.0",
                          "lastState": "OOMKilled"}]}),
        (-41, "kubernetes", "Pod payments-api-7c9f-m8d2s: CrashLoopBackOff", "prod-eu:payments",
         {"reason": "CrashLoopBackOff", "restartCount": 5, "status": "failure",
          "containers": [{"name": "app", "image": "registry.acme.io/payments-api:v2.14.0",
                          "lastState": "OOMKilled"}]}),
        (-20, "github", "Commit to main: Revert \"Tune connection pool for PgBouncer\"", "acme/payments-api",
         {"url": "https://github.com/acme/payments-api/commit/abc", "sha": "abc", "author": "alice"}),
    ]
    for n, (minutes, connector, title, project, data) in enumerate(story):
        events.append({"title": title, "connector": connector, "project": project, "data": data,
                       "timestamp": (now + dt.timedelta(minutes=minutes)).isoformat(), "externalId": f"story-{n}",
                       "integrationId": github["id"] if connector == "github" else kube["id"],
                       "tags": ["pods"] if connector == "kubernetes" else []})
    session.post(api + "/events/batch", json={"events": events}).raise_for_status()
    return incident


def seed_states(api: str, database_url: str) -> None:
    """One integration per state a card can be in, named after it."""
    session = requests.Session()
    fields = [{"key": "name", "label": "Name", "type": "text", "required": True},
              {"key": "tags", "label": "Tags", "type": "textarea", "required": True}]
    types = {"dagster-running": "Dagster running", "dagster-stopped": "Dagster stopped",
             "dagster-refused": "Dagster cannot sync"}
    for type_id, name in types.items():
        session.post(api + "/integrations/types/register", json={
            "id": type_id, "displayName": name, "configSchema": {"fields": fields}}).raise_for_status()

    def integration(type_id: str, name: str) -> str:
        response = session.post(api + "/integrations", json={"type": type_id, "config": {"name": name, "tags": []}})
        response.raise_for_status()
        return response.json()["id"]

    def sync(integration_id: str, **body) -> None:
        session.put(f"{api}/integrations/{integration_id}/sync", json=body).raise_for_status()

    waiting = integration("dagster-running", "Never synced, waiting")
    queued = integration("dagster-running", "First sync queued")
    fresh = integration("dagster-running", "Synced just now")
    quiet = integration("dagster-running", "Quiet: checked, nothing new")
    partial = integration("dagster-running", "One repository unreadable")
    failing = integration("dagster-running", "Failing")
    integration("dagster-stopped", "Never synced, Dagster stopped")
    stopped = integration("dagster-stopped", "Synced before, Dagster stopped")
    integration("dagster-refused", "Never synced, Dagster refused")
    del waiting
    sync(fresh, status="success")
    sync(quiet, status="success")
    sync(partial, status="success", stats={"failedSources": {"acme/secret": "HTTP 404 Not Found",
                                                             "acme/archived": "HTTP 403 Forbidden"}})
    sync(failing, status="success")
    sync(failing, status="error", error="GitHub answered 502 Bad Gateway three times")
    sync(stopped, status="success")
    session.put(f"{api}/integrations/types/dagster-stopped/orchestrator", json={}).raise_for_status()
    session.put(f"{api}/integrations/types/dagster-refused/orchestrator", json={
        "problem": "registration of connector type dagster-refused refused: HTTP 401 (set PAINCHAIN_API_TOKEN)"}).raise_for_status()
    age(database_url, syncs={quiet: dt.timedelta(minutes=8), failing: dt.timedelta(hours=3),
                             stopped: dt.timedelta(hours=2)},
        heartbeats={"dagster-stopped": dt.timedelta(hours=2)})
    session.put(f"{api}/integrations/types/dagster-running/orchestrator",
                json={"checked": [quiet], "queued": [queued]}).raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as tmp_states, \
            backend_process(Path(tmp), database_url := f"sqlite:///{tmp}/painchain.db") as api, \
            backend_process(Path(tmp_states), states_url := f"sqlite:///{tmp_states}/painchain.db") as states_api, \
            sync_playwright() as pw:
        incident = seed(api, database_url)
        seed_states(states_api, states_url)
        site = api.removesuffix("/api")
        browser = pw.chromium.launch(executable_path=args.chromium, args=["--no-sandbox", "--disable-gpu"])

        def new_page(**options):
            return browser.new_page(timezone_id=TIMEZONE, **options)

        for scheme in ("light", "dark"):
            page = new_page(viewport={"width": 1280, "height": 860}, color_scheme=scheme)
            page.goto(site + "/?range=24h")
            page.locator("article.event").nth(20).wait_for()
            page.locator(".chart .bar").first.wait_for(state="attached")
            page.screenshot(path=HERE / f"timeline-{scheme}.png")
            page.close()

        page = new_page(viewport={"width": 1280, "height": 860})
        page.goto(site + f"/?incident={incident.isoformat().replace('+00:00', 'Z')}&before=2h")
        row = page.locator("article.event", has_text="payments-api-7c9f-x2k4q")
        row.locator("button.toggle").click()
        row.scroll_into_view_if_needed()
        page.locator(".incident-marker").first.wait_for()
        page.locator(".incident-bar").evaluate("bar => window.scrollTo(0, bar.getBoundingClientRect().top + window.scrollY - 60)")
        page.screenshot(path=HERE / "incident.png")

        page.set_viewport_size({"width": 1280, "height": 1060})
        page.goto(site + "/integrations?new=github")
        page.fill("#field-name", "Acme GitHub (EU)")
        page.fill("#field-tags", '["production", "eu"]')
        page.fill("#field-repositories", '["acme/payments-api",')
        page.get_by_role("button", name="Create integration").click()
        page.locator("#field-token-error").wait_for()
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=HERE / "integration-form.png")

        page.set_viewport_size({"width": 1280, "height": 860})
        page.goto(site + "/integrations")
        page.locator("article.card").first.wait_for()
        page.screenshot(path=HERE / "integrations.png")

        page.set_viewport_size({"width": 1280, "height": 760})
        page.goto(states_api.removesuffix("/api") + "/integrations")
        page.locator("article.card").first.wait_for()
        page.screenshot(path=HERE / "integration-states.png", full_page=True)
        browser.close()
    print("screenshots written to", HERE)


if __name__ == "__main__":
    main()
