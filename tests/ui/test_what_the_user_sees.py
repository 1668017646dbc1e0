"""Issue "everything the user sees is true": typing in filters, identifiers, badges, time zones,
integration cards and JSON fields, in headless Chromium against the real backend."""

import datetime as dt
import re
import uuid

import pytest
import requests
from playwright.sync_api import expect
from sqlalchemy import create_engine, update
from sqlalchemy.orm import Session

from painchain_pipelines.backend.models import IntegrationSync, OrchestratorStatus
from tests.ui.conftest import seed

UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def server(make_backend):
    return make_backend("sqlite", api_token=None)


@pytest.fixture(scope="module")
def site(server):
    data = seed(server.api_url)
    return {"url": server.url, "api": server.api_url, **data}


def events_shown(page):
    return page.locator("article.event")


def post_events(site, *events):
    """Events of the seeded GitHub integration: (title, timestamp, data, project)."""
    body = [{"title": title, "connector": "github", "project": project, "timestamp": at.isoformat(),
             "externalId": f"ui-{uuid.uuid4().hex[:12]}", "integrationId": site["github"]["id"], "data": data}
            for title, at, data, project in events]
    requests.post(site["api"] + "/events/batch", json={"events": body}, timeout=10).raise_for_status()


def minutes_ago(minutes):
    return dt.datetime.now(UTC) - dt.timedelta(minutes=minutes)


def detail_value(detail, label):
    """The <dd> next to the <dt> reading exactly `label`."""
    return detail.locator("dt", has_text=re.compile(f"^{re.escape(label)}$")).first.locator("xpath=following-sibling::dd[1]")


# ---------------------------------------------------------------- 1. typing in filters


def test_typing_in_the_search_box_with_a_pause_keeps_focus_and_every_keystroke(site, page):
    post_events(site, ("Deploy prod: api v2.3", minutes_ago(30), {}, "acme/api"),
                ("Deploy staging: api v2.3", minutes_ago(31), {}, "acme/api"))
    page.goto(site["url"] + "/")
    expect(events_shown(page)).to_have_count(100)
    page.click("#f-search")
    page.keyboard.type("deploy")
    page.wait_for_timeout(800)  # longer than the search's debounce: the list reloads meanwhile
    expect(page).to_have_url(re.compile(r"[?&]q=deploy(&|$)"))
    titles = events_shown(page).locator(".event-title")
    expect(titles).to_contain_text(["Deploy prod: api v2.3", "Deploy staging: api v2.3"])
    page.keyboard.type(" prod")
    page.wait_for_timeout(800)
    assert page.input_value("#f-search") == "deploy prod"
    assert page.evaluate("document.activeElement.id") == "f-search"
    expect(page).to_have_url(re.compile(r"[?&]q=deploy\+prod(&|$)"))
    expect(titles).to_have_text(["Deploy prod: api v2.3"])


def test_typing_in_project_then_clicking_search_keeps_both(site, page):
    page.goto(site["url"] + "/")
    expect(events_shown(page)).to_have_count(100)
    page.click("#f-project")
    page.keyboard.type("acme/payments")
    page.click("#f-search")  # the project field's change applies it, while the user goes on typing
    page.keyboard.type("needle")
    page.wait_for_timeout(800)
    assert page.input_value("#f-project") == "acme/payments"
    assert page.input_value("#f-search") == "needle"
    assert page.evaluate("document.activeElement.id") == "f-search"
    expect(page).to_have_url(re.compile(r"project=acme%2Fpayments.*q=needle"))
    expect(events_shown(page)).to_have_count(1)
    expect(events_shown(page).first).to_contain_text("needle-in-haystack")
    expect(page.locator(".range-label")).to_contain_text("1 events")
    expect(page.locator(".filters-box summary")).to_have_text("Filters (2 active)")


def test_back_undoes_a_search_then_a_discrete_choice(site, page):
    page.goto(site["url"] + "/?range=24h")
    expect(events_shown(page)).to_have_count(100)
    page.select_option("#f-connector", "kubernetes")
    expect(page).to_have_url(re.compile(r"connector=kubernetes"))
    page.click("#f-search")
    page.keyboard.type("api-1")
    page.wait_for_timeout(800)
    page.keyboard.type("0")  # the same search, refined: no new history entry per keystroke
    page.wait_for_timeout(800)
    expect(page).to_have_url(re.compile(r"q=api-10"))
    expect(events_shown(page).locator(".event-title")).to_have_text([re.compile(r"^Pod api-10\d: ")] * 3)
    page.go_back()
    expect(page).not_to_have_url(re.compile(r"q="))
    expect(page.locator("#f-search")).to_have_value("")
    expect(page.locator("#f-connector")).to_have_value("kubernetes")
    page.go_back()
    expect(page.locator("#f-connector")).to_have_value("")
    expect(events_shown(page)).to_have_count(100)


def test_late_answers_of_an_older_filter_are_dropped(site, page):
    # the first search's answers arrive after the second one's
    page.add_init_script("""
      const realFetch = window.fetch;
      window.fetch = async (input, init) => {
        if (String(input.url || input).includes("q=CrashLoop")) await new Promise((r) => setTimeout(r, 1500));
        return realFetch(input, init);
      };""")
    page.goto(site["url"] + "/")
    expect(events_shown(page)).to_have_count(100)
    page.fill("#f-search", "CrashLoop")
    page.press("#f-search", "Enter")
    page.fill("#f-search", "needle123")
    page.press("#f-search", "Enter")
    expect(events_shown(page)).to_have_count(1)
    page.wait_for_timeout(2000)
    expect(events_shown(page)).to_have_count(1)
    expect(events_shown(page).first).to_contain_text("needle-in-haystack")
    expect(page.locator(".range-label")).to_contain_text("1 events")


# ---------------------------------------------------------------- 2. identifiers


def test_identifiers_show_raw_digits_and_can_be_searched(site, page):
    post_events(site, ("Workflow Release #4471 succeeded on main", minutes_ago(12), {
        "runId": 11000501530, "runNumber": 4471, "attempt": 2, "exitCode": 137, "pull_request_id": 1234567,
        "deploymentID": 987654321, "number": 12345, "runIds": [11000501530, 11000501531],
        "restartCount": 12345, "bytesWritten": 1048576, "durationSeconds": 300}, "acme/ids"))
    page.goto(site["url"] + "/?project=acme/ids")
    row = events_shown(page).first
    row.get_by_role("button", name=re.compile("Details")).click()
    detail = row.locator(".detail")
    for label, text in [("Run Id", "11000501530"), ("Run Number", "4471"), ("Attempt", "2"), ("Exit Code", "137"),
                        ("Pull request id", "1234567"), ("Deployment ID", "987654321"), ("Number", "12345"),
                        ("Run Ids", "11000501530, 11000501531"),
                        # quantities stay readable
                        ("Restart Count", "12,345"), ("Bytes Written", "1,048,576"), ("Duration Seconds", "5 min 0 s")]:
        expect(detail_value(detail, label)).to_have_text(text)
    # what the details show can be pasted into the search
    run_id = detail_value(detail, "Run Id").inner_text()
    page.goto(site["url"] + "/")
    page.fill("#f-search", run_id)
    page.press("#f-search", "Enter")
    expect(events_shown(page)).to_have_count(1)
    expect(events_shown(page).first).to_contain_text("Workflow Release #4471")


# ---------------------------------------------------------------- 3. badges


BADGE_CASES = [
    # title, data, the row's badge, its class (None: neutral)
    ("Deployment to production started (v1 @ abc1234)", {"state": "created"}, "created", None),
    ("Workflow CI #77 failed on main", {"status": "completed", "conclusion": "failure"}, "failure", "bad"),
    ("Workflow CI #78 succeeded on main", {"status": "completed", "conclusion": "success"}, "success", "ok"),
    ("Workflow CI #79 was cancelled on main", {"status": "completed", "conclusion": "cancelled"}, "cancelled", "warn"),
    ("Workflow CI #80 timed out on main", {"status": "completed", "conclusion": "timed_out"}, "timed out", "bad"),
    ("PR #9 closed without merging: tidy up", {"action": "closed"}, "closed", None),
    ("PR #10 opened: add retries", {"action": "opened"}, "opened", None),
    ("PR #11 merged into main: add retries", {"action": "merged"}, "merged", None),
    ("Deployment to production succeeded (v1 @ abc1234)", {"state": "success"}, "success", "ok"),
    ("Deployment to staging errored (v1 @ abc1234)", {"state": "error"}, "error", "bad"),
    ("Deployment to staging superseded", {"state": "inactive"}, "inactive", None),
    ("Pod api-7c9f: CrashLoopBackOff", {"phase": "Running", "reason": "CrashLoopBackOff"}, "CrashLoopBackOff", "bad"),
    ("Pod api-8d1e: OOMKilled", {"reason": "OOMKilled"}, "OOMKilled", "bad"),
    ("Deployment api rolled out", {"status": "complete"}, "complete", "ok"),
    ("Pipeline #5 running", {"status": "running"}, "running", "pending"),
    ("Pipeline #6 waiting for a manual job", {"status": "manual"}, "manual", "pending"),
]


def test_badges_colour_outcomes_only_and_prefer_them_over_lifecycle_words(site, page):
    post_events(site, *[(title, minutes_ago(40 + n), data, "acme/badges")
                        for n, (title, data, _, _) in enumerate(BADGE_CASES)])
    page.goto(site["url"] + "/?project=acme/badges")
    expect(events_shown(page)).to_have_count(len(BADGE_CASES))
    for title, _, text, cls in BADGE_CASES:
        badge = page.locator("article.event", has_text=title).locator(".side-row .badge")
        expect(badge).to_have_text(text)
        expect(badge).to_have_attribute("class", f"badge {cls}" if cls else "badge")
    # in the details of a failed run, "completed" is a neutral lifecycle word next to the red outcome
    row = page.locator("article.event", has_text="Workflow CI #77 failed")
    row.get_by_role("button", name=re.compile("Details")).click()
    expect(detail_value(row.locator(".detail"), "Status").locator(".badge")).to_have_attribute("class", "badge")
    expect(detail_value(row.locator(".detail"), "Conclusion").locator(".badge")).to_have_attribute("class", "badge bad")


# ---------------------------------------------------------------- 4. time zones

# The browser's clock is fixed at NOW (a Monday in January: New York is UTC-05:00, no DST doubt).
NOW = dt.datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
NEAR_MIDNIGHT = dt.datetime(2026, 1, 5, 3, 0, 7, tzinfo=UTC)  # 22:00:07 on Sunday in New York
DAYS_AGO = dt.datetime(2026, 1, 3, 2, 30, tzinfo=UTC)  # 21:30 on Friday 2 January in New York


def day_heading(day):
    return re.compile(rf"^{day:%A},? {day.day} {day:%B} {day.year}$")


def test_times_follow_the_chosen_zone_local_or_utc(site, browser):
    post_events(site, ("Zone check: near midnight", NEAR_MIDNIGHT, {"finishedAt": NEAR_MIDNIGHT.isoformat()}, "acme/zones"),
                ("Zone check: days ago", DAYS_AGO, {}, "acme/zones"))
    requests.put(f"{site['api']}/integrations/{site['github']['id']}/sync", json={"status": "success"},
                 timeout=10).raise_for_status()
    context = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="America/New_York", locale="en-GB")
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.clock.set_fixed_time(NOW)
    url = site["url"] + "/?range=7d&project=acme/zones"
    page.goto(url)
    rows = events_shown(page)
    expect(rows).to_have_count(2)
    groups = page.locator(".group-title")
    axis_start = page.locator(".chart .axis text").first

    # local: New York
    expect(page.locator("#time-zone")).to_have_value("local")
    expect(rows.first.locator("time")).to_have_text("22:00:07")
    expect(rows.first.locator("time")).to_have_attribute("title", "4 Jan 2026, 22:00:07 UTC-05:00")
    expect(groups).to_have_text(["Yesterday", day_heading(dt.date(2026, 1, 2))])
    expect(page.locator(".range-label")).to_contain_text("29 Dec, 07:00 – now")
    expect(page.locator(".range-label .zone")).to_have_text("local · America/New_York (UTC-05:00)")
    expect(axis_start).to_have_text("29 Dec, 07:00")
    expect(page.locator(".chart-legend")).to_contain_text("Times: local · America/New_York (UTC-05:00)")
    expect(page.locator(".chart .bar").last).to_have_attribute("aria-label", re.compile(r"UTC-05:00: \d+ events"))
    expect(page.locator("#f-from")).to_have_value("2025-12-29T07:00")
    rows.first.get_by_role("button", name=re.compile("Details")).click()
    expect(detail_value(rows.first.locator(".detail"), "Finished At")).to_contain_text("4 Jan 2026, 22:00:07 UTC-05:00")

    # UTC
    page.select_option("#time-zone", "utc")
    expect(rows.first.locator("time")).to_have_text("03:00:07")
    expect(rows.first.locator("time")).to_have_attribute("title", "5 Jan 2026, 03:00:07 UTC")
    expect(groups).to_have_text(["Today", day_heading(dt.date(2026, 1, 3))])
    expect(page.locator(".range-label .zone")).to_have_text("UTC")
    expect(page.locator(".range-label")).to_contain_text("29 Dec, 12:00 – now")
    expect(axis_start).to_have_text("29 Dec, 12:00")
    expect(page.locator(".chart-legend")).to_contain_text("Times: UTC")
    expect(page.locator("#f-from")).to_have_value("2025-12-29T12:00")

    # the setting is kept, and datetime fields are read in the chosen zone
    page.reload()
    expect(page.locator("#time-zone")).to_have_value("utc")
    expect(rows.first.locator("time")).to_have_text("03:00:07")
    page.fill("#incident-at", "2026-01-05T03:10")
    page.get_by_role("button", name="Show changes").click()
    expect(page).to_have_url(re.compile(r"incident=2026-01-05T03%3A10%3A00.000Z"))
    expect(page.locator(".incident-marker")).to_have_text("Incident · 5 Jan, 03:10 UTC")
    page.select_option("#time-zone", "local")
    expect(page.locator("#incident-at")).to_have_value("2026-01-04T22:10")
    page.fill("#incident-at", "2026-01-04T22:20")
    page.get_by_role("button", name="Show changes").click()
    expect(page).to_have_url(re.compile(r"incident=2026-01-05T03%3A20%3A00.000Z"))

    # integration cards' tooltips too
    page.select_option("#time-zone", "utc")
    page.goto(site["url"] + "/integrations")
    status = page.locator(f"article.card[data-id='{site['github']['id']}'] .status").last
    synced = dt.datetime.now(UTC)  # the card shows the real sync time (the page's clock is fixed)
    expect(status).to_have_attribute("title", re.compile(rf"Last change synced \d+ \w+ {synced.year}, \d\d:\d\d:\d\d UTC$"))
    context.close()
    assert errors == [], f"JavaScript errors: {errors}"


# ---------------------------------------------------------------- 5. integration cards


def test_integration_cards_tell_the_truth_about_syncing(server, browser):
    api = server.api_url
    fields = [{"key": "name", "label": "Name", "type": "text", "required": True},
              {"key": "tags", "label": "Tags", "type": "textarea", "required": True}]
    for type_id in ("orch-off", "orch-problem", "orch-on"):
        requests.post(api + "/integrations/types/register", json={
            "id": type_id, "displayName": type_id, "configSchema": {"fields": fields}}, timeout=10).raise_for_status()

    def integration(type_id, name):
        response = requests.post(api + "/integrations", json={"type": type_id, "config": {"name": name, "tags": []}}, timeout=10)
        response.raise_for_status()
        return response.json()["id"]

    def report_sync(integration_id, **body):
        requests.put(f"{api}/integrations/{integration_id}/sync", json=body, timeout=10).raise_for_status()

    def heartbeat(type_id, **body):
        requests.put(f"{api}/integrations/types/{type_id}/orchestrator", json=body, timeout=10).raise_for_status()

    ids = {name: integration(type_id, name) for type_id, name in [
        ("orch-off", "off-new"), ("orch-off", "off-synced"), ("orch-problem", "problem-new"),
        ("orch-on", "on-queued"), ("orch-on", "on-waiting"), ("orch-on", "on-fresh"), ("orch-on", "on-quiet"),
        ("orch-on", "on-partial"), ("orch-on", "on-failing")]}
    report_sync(ids["off-synced"], status="success")
    report_sync(ids["on-fresh"], status="success")
    report_sync(ids["on-quiet"], status="success")
    report_sync(ids["on-partial"], status="success", stats={"failedSources": {"acme/secret": "HTTP 404 Not Found"}})
    report_sync(ids["on-failing"], status="success")
    report_sync(ids["on-failing"], status="error", error="GitHub answered 502 three times")
    heartbeat("orch-off")
    heartbeat("orch-problem", problem="registration of connector type orch-problem refused: HTTP 401")
    heartbeat("orch-on", queued=[ids["on-queued"]])
    # a quiet integration: synced 8 minutes ago, checked (nothing new) just now; an orchestrator
    # last heard from 10 minutes ago has stopped
    eight_minutes_ago = dt.datetime.now(UTC) - dt.timedelta(minutes=8)
    engine = create_engine(server.settings.database_url)
    with Session(engine) as session, session.begin():
        session.execute(update(IntegrationSync).where(IntegrationSync.integration_id.in_([ids["on-quiet"], ids["on-failing"]]))
                        .values(last_success_at=eight_minutes_ago, last_checked_at=eight_minutes_ago))
        session.execute(update(OrchestratorStatus).where(OrchestratorStatus.connector_type == "orch-off")
                        .values(seen_at=dt.datetime.now(UTC) - dt.timedelta(minutes=10)))
    engine.dispose()
    heartbeat("orch-on", checked=[ids["on-quiet"]])

    context = browser.new_context(viewport={"width": 1280, "height": 1400}, locale="en-US")
    page = context.new_page()
    page.add_init_script("localStorage.setItem('painchain.refreshMs', '1000')")
    page.goto(server.url + "/integrations")

    def status_of(name):
        return page.locator(f"article.card[data-id='{ids[name]}'] .status")

    expect(status_of("off-new")).to_have_text(
        "Not synced yet — the orchestrator is not running (start it with painchain up)")
    expect(status_of("off-new").locator("code")).to_have_text("painchain up")
    expect(status_of("off-synced")).to_have_text([
        "⚠ Syncs stopped — the orchestrator is not running (last heard from 10 minutes ago); start it with painchain up",
        "Last synced just now"])
    expect(status_of("problem-new")).to_have_text(
        "Not synced yet — Dagster cannot sync: registration of connector type orch-problem refused: HTTP 401")
    expect(status_of("on-queued")).to_have_text("First sync queued in Dagster just now")
    expect(status_of("on-waiting")).to_have_text(
        "Not synced yet — waiting for Dagster (the first sync starts within a minute)")
    expect(status_of("on-fresh")).to_have_text("✓ Up to date — synced just now")
    expect(status_of("on-quiet")).to_have_text("✓ Up to date — checked just now; last change synced 8 minutes ago")
    expect(status_of("on-partial")).to_have_text([
        "⚠ 1 source cannot be read — acme/secret: HTTP 404 Not Found",
        "✓ The other sources are up to date — synced just now"])
    expect(status_of("on-partial").first).to_have_class("status warn")
    expect(status_of("on-failing")).to_have_text([
        "⚠ Failing since just now: GitHub answered 502 three times", "✓ Last successful sync 8 minutes ago"])
    expect(status_of("on-failing").first).to_have_class("status bad")

    # the cards follow what happens next without a reload
    heartbeat("orch-on", queued=[ids["on-waiting"]])
    expect(status_of("on-waiting")).to_have_text("First sync queued in Dagster just now", timeout=10_000)
    context.close()


# ---------------------------------------------------------------- 6. JSON fields


def test_json_fields_check_the_json_type_their_schema_asks_for(site, page):
    requests.post(site["api"] + "/integrations/types/register", json={
        "id": "schemaform", "displayName": "Schema Form", "configSchema": {"fields": [
            {"key": "name", "label": "Name", "type": "text", "required": True},
            {"key": "tags", "label": "Tags", "type": "textarea", "required": True, "format": "json"},
            {"key": "repositories", "label": "Repositories", "type": "textarea", "required": True, "format": "json",
             "placeholder": '["octocat/hello-world"]',
             "jsonSchema": {"type": "array", "minItems": 1,
                            "items": {"anyOf": [{"type": "string"}, {"type": "object"}]}}},
            {"key": "labels", "label": "Labels", "type": "textarea", "format": "json", "placeholder": "{}"},
        ]}}, timeout=10).raise_for_status()
    page.goto(site["url"] + "/integrations?new=schemaform")
    error = page.locator("#field-repositories-error")
    page.fill("#field-repositories", '"acme/api-gateway"')
    expect(error).to_have_text('Repositories must be a JSON array, e.g. ["octocat/hello-world"] — got a string')
    expect(page.locator("#field-repositories")).to_have_attribute("aria-invalid", "true")
    page.fill("#field-repositories", '["acme/api", 42]')
    expect(error).to_have_text('Repositories must be a JSON array of strings or objects, e.g. ["octocat/hello-world"]'
                               ' — item 2 is a number')
    page.fill("#field-repositories", '["acme/api", {"name": "acme/web"}]')
    expect(error).to_be_hidden()
    page.fill("#field-repositories", '["acme/api",')
    expect(error).to_contain_text("Not valid JSON")
    # a field without jsonSchema takes any JSON, as before
    page.fill("#field-labels", '"just a string"')
    expect(page.locator("#field-labels-error")).to_be_hidden()

    # checked before submitting too: nothing is sent
    page.fill("#field-name", "Schema checked")
    page.fill("#field-tags", "[]")
    page.fill("#field-repositories", '"acme/api-gateway"')
    requests_sent = []
    page.on("request", lambda request: requests_sent.append(request) if request.method == "POST" else None)
    page.get_by_role("button", name="Create integration").click()
    expect(error).to_contain_text("must be a JSON array")
    expect(page.locator("#field-repositories")).to_be_focused()
    assert requests_sent == []
    # what only the server checks (minItems) comes back on the field as well
    page.fill("#field-repositories", "[]")
    page.get_by_role("button", name="Create integration").click()
    expect(error).to_contain_text("Repositories")
    expect(page.locator("#field-repositories")).to_be_focused()
    page.fill("#field-repositories", '["acme/api"]')
    page.get_by_role("button", name="Create integration").click()
    expect(page.locator("article.card", has_text="Schema checked")).to_be_visible()
    [created] = [i for i in requests.get(site["api"] + "/integrations", params={"type": "schemaform"}, timeout=10).json()]
    assert created["config"]["repositories"] == ["acme/api"]
    assert created["config"]["labels"] == "just a string"
