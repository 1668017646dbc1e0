"""The web UI in headless Chromium against the real backend with seeded events."""

import datetime as dt
import json
import os
import re
import subprocess
import sys

import pytest
import requests
from playwright.sync_api import expect

from painchain_pipelines.paths import METADATA_DIR
from tests.ui.conftest import SEEDED_EVENTS, seed


@pytest.fixture(scope="module")
def site(make_backend):
    server = make_backend("sqlite", api_token=None)
    data = seed(server.api_url)
    return {"url": server.url, "api": server.api_url, **data}


def events_shown(page):
    return page.locator("article.event")


def list_loaded(page):
    """Filter changes reload the list in place: wait for its first page before reading rows at once."""
    expect(page.locator(".timeline")).to_have_attribute("aria-busy", "false")


def test_timeline_shows_groups_chart_and_pages_through_everything(site, page):
    page.goto(site["url"] + "/")
    expect(events_shown(page)).to_have_count(100)
    expect(page.locator(".group-title").first).to_have_text("Last hour")
    expect(page.locator(".chart .bar").first).to_be_attached()
    expect(page.locator(".chart-legend")).to_contain_text("GitHub")
    expect(page.locator(".chart-legend")).to_contain_text("Kubernetes")
    expect(page.locator(".range-label")).to_contain_text(f"{SEEDED_EVENTS} events")
    first = events_shown(page).first
    expect(first).to_contain_text("prod-eu:payments")  # the newest seeded event
    expect(first.locator("time")).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\dT"))
    expect(first.locator(".relative")).to_contain_text("ago")
    # endless scrolling over the cursor API: every event exactly once
    for _ in range(6):
        page.locator(".load-more").scroll_into_view_if_needed()
        page.wait_for_timeout(300)
    expect(events_shown(page)).to_have_count(SEEDED_EVENTS)
    expect(page.locator(".load-more")).to_contain_text(f"That's all: {SEEDED_EVENTS} events")
    ids = page.locator("article.event").evaluate_all("rows => rows.map(r => r.dataset.id)")
    assert len(set(ids)) == SEEDED_EVENTS
    # links go to the source, and only http(s)
    href = events_shown(page).nth(1).locator(".event-title a").get_attribute("href")
    assert href.startswith("https://github.com/acme/payments/actions/runs/")


def test_filters_live_in_the_url_and_a_link_reproduces_the_view(site, page):
    page.goto(site["url"] + "/")
    page.select_option("#f-connector", "kubernetes")
    expect(page).to_have_url(re.compile(r"connector=kubernetes"))
    kube_count = sum(1 for n in range(SEEDED_EVENTS) if n % 3 == 0)
    expect(page.locator(".range-label")).to_contain_text(f"{kube_count} events")
    list_loaded(page)
    # text content, not innerText: rows off screen are skipped by layout (content-visibility)
    titles = events_shown(page).locator(".event-title").all_text_contents()
    assert len(titles) == min(kube_count, 100) and all("CrashLoopBackOff" in t for t in titles)
    page.fill("#f-tags", "pods")
    page.press("#f-tags", "Enter")
    expect(page).to_have_url(re.compile(r"tags=pods"))
    url = page.url
    page.goto("about:blank")
    page.goto(url)
    expect(page.locator("#f-connector")).to_have_value("kubernetes")
    expect(page.locator("#f-tags")).to_have_value("pods")
    expect(page.locator(".range-label")).to_contain_text(f"{kube_count} events")
    page.select_option("#f-integration", site["github"]["id"])
    expect(page.locator(".state")).to_contain_text("No changes match these filters")


def test_presets_custom_range_project_filter_and_day_groups(site, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="UTC")
    now = dt.datetime.now(dt.timezone.utc)
    context.clock.set_fixed_time(now)  # the page groups by the same moment as the test
    page = context.new_page()
    page.goto(site["url"] + "/")
    expect(events_shown(page)).to_have_count(100)
    # day groups, from the seeded timestamps (20 hours back); the last hour's go in "Last hour",
    # whatever their day (just after midnight, "Today" has no event yet)
    stamps = [dt.datetime.fromisoformat(e["timestamp"]) for e in site["events"]]
    days = {t.date() for t in stamps if now - t >= dt.timedelta(hours=1)}
    expected = ["Last hour"] + [label for day, label in ((now.date(), "Today"),
                                                          (now.date() - dt.timedelta(days=1), "Yesterday")) if day in days]
    for _ in range(3):
        page.locator(".load-more").scroll_into_view_if_needed()
        page.wait_for_timeout(300)
    expect(page.locator(".group-title")).to_have_text(expected)

    page.get_by_role("button", name="1h", exact=True).click()
    expect(page).to_have_url(re.compile(r"range=1h"))
    expect(page.get_by_role("button", name="1h", exact=True)).to_have_attribute("aria-pressed", "true")
    expect(page.locator(".range-label")).not_to_contain_text(f"{SEEDED_EVENTS} events")
    list_loaded(page)
    times = events_shown(page).evaluate_all("rows => rows.map(r => Number(r.dataset.ts))")
    hour_ago_ms = (now - dt.timedelta(hours=1, minutes=2)).timestamp() * 1000
    assert 0 < len(times) < 20 and min(times) >= hour_ago_ms

    since, until = now - dt.timedelta(hours=6), now - dt.timedelta(hours=4)
    page.get_by_label("From", exact=True).fill(since.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("To", exact=True).fill(until.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Apply range").click()
    expect(page).to_have_url(re.compile(r"since=.*until="))
    expect(page.locator(".range-label")).to_contain_text(" events")
    list_loaded(page)
    times = events_shown(page).evaluate_all("rows => rows.map(r => Number(r.dataset.ts))")
    assert times and all(since.timestamp() * 1000 - 60_000 <= t < until.timestamp() * 1000 + 60_000 for t in times)

    page.goto(site["url"] + "/?range=24h")
    page.fill("#f-project", "prod-eu:payments")
    page.press("#f-project", "Enter")
    expect(page).to_have_url(re.compile(r"project=prod-eu%3Apayments|project=prod-eu:payments"))
    expect(page.locator(".range-label")).to_contain_text(f"{sum(1 for n in range(SEEDED_EVENTS) if n % 3 == 0)} events")
    list_loaded(page)
    projects = events_shown(page).locator(".event-meta span:first-child").all_text_contents()
    assert projects and set(projects) == {"prod-eu:payments"}
    context.close()


def test_free_text_search(site, page):
    page.goto(site["url"] + "/")
    page.fill("#f-search", "needle123")
    page.press("#f-search", "Enter")
    expect(page).to_have_url(re.compile(r"q=needle123"))
    expect(events_shown(page)).to_have_count(1)
    expect(events_shown(page).first).to_contain_text("needle-in-haystack")


def test_zoom_by_clicking_and_by_dragging_on_the_chart(site, page):
    page.goto(site["url"] + "/?range=24h")
    bars = page.locator(".chart .bar")
    expect(bars.first).to_be_attached()
    busiest = bars.nth(bars.count() - 5)
    busiest.click()
    expect(page).to_have_url(re.compile(r"since=.*until="))
    query = dict(re.findall(r"(since|until)=([^&]+)", page.url))
    since = dt.datetime.fromisoformat(requests.utils.unquote(query["since"]).replace("Z", "+00:00"))
    until = dt.datetime.fromisoformat(requests.utils.unquote(query["until"]).replace("Z", "+00:00"))
    assert dt.timedelta(0) < until - since <= dt.timedelta(hours=1)
    list_loaded(page)
    for stamp in page.locator("article.event time").evaluate_all("ts => ts.map(t => t.getAttribute('datetime'))"):
        moment = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        assert since <= moment < until
    expect(page.get_by_role("button", name="Reset zoom")).to_be_visible()
    # drag across the chart of the full day
    page.goto(site["url"] + "/?range=24h")
    box = page.locator("svg.chart").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.5, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.75, y, steps=5)
    page.mouse.up()
    expect(page).to_have_url(re.compile(r"since=.*until="))
    query = dict(re.findall(r"(since|until)=([^&]+)", page.url))
    span = dt.datetime.fromisoformat(requests.utils.unquote(query["until"]).replace("Z", "+00:00")) - \
        dt.datetime.fromisoformat(requests.utils.unquote(query["since"]).replace("Z", "+00:00"))
    assert dt.timedelta(hours=4) < span < dt.timedelta(hours=8)


def test_chart_bars_zoom_from_the_keyboard(site, page):
    page.goto(site["url"] + "/?range=24h")
    bar = page.locator(".chart .bar").nth(10)
    bar.focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"since=.*until="))


def test_event_detail_and_deep_link(site, page):
    page.goto(site["url"] + "/")
    row = events_shown(page).nth(1)
    row.get_by_role("button", name=re.compile("Details")).click()
    detail = row.locator(".detail")
    expect(detail).to_be_visible()
    expect(detail.locator("a").first).to_have_attribute("href", re.compile(r"^https://github.com/"))
    expect(detail.locator(".badge.ok, .badge.bad").first).to_be_visible()
    expect(detail).to_contain_text("External id")
    expect(detail.locator("time").first).to_have_attribute("datetime", re.compile(r"\d{4}-"))
    event_id = row.get_attribute("data-id")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site["url"])
    detail.get_by_role("button", name="Copy link").click()
    expect(page.locator("#toast")).to_contain_text("Link copied")
    assert page.evaluate("navigator.clipboard.readText()") == f"{site['url']}/?event={event_id}"
    # the nested data renders as nested lists, not as JSON text
    kube_row = page.locator("article.event", has_text="CrashLoopBackOff").first
    kube_row.get_by_role("button", name=re.compile("Details")).click()
    expect(kube_row.locator(".detail")).to_contain_text("registry/api:1.2")
    assert "{" not in kube_row.locator(".detail").inner_text()
    # a deep link to an event deep in the list opens around it, scrolled to it, details open
    target = events_shown(page).nth(60).get_attribute("data-id")
    page.goto(f"{site['url']}/?event={target}")
    highlighted = page.locator(f"#event-{target}")
    expect(highlighted).to_have_class(re.compile("highlight"))
    expect(highlighted.locator(".detail")).to_be_visible()
    expect(highlighted).to_be_in_viewport()


def test_incident_view_shows_the_preceding_changes_with_a_marker(site, page):
    page.goto(site["url"] + "/")
    incident = dt.datetime.now() - dt.timedelta(hours=3)
    page.fill("#incident-at", incident.strftime("%Y-%m-%dT%H:%M"))
    page.select_option("#incident-window", "2h")
    page.get_by_role("button", name="Show changes").click()
    expect(page).to_have_url(re.compile(r"incident=.*before=2h"))
    expect(page.locator(".incident-marker")).to_be_visible()
    expect(page.locator(".chart .incident-line")).to_be_attached()
    at = incident.astimezone(dt.timezone.utc).replace(second=0, microsecond=0)
    stamps = [dt.datetime.fromisoformat(s.replace("Z", "+00:00")) for s in
              page.locator("article.event time").evaluate_all("ts => ts.map(t => t.getAttribute('datetime'))")]
    assert stamps and all(at - dt.timedelta(hours=2) <= s <= at + dt.timedelta(minutes=10) for s in stamps)
    # the marker sits between what came after and what came before
    order = page.locator(".incident-marker, article.event").evaluate_all(
        "nodes => nodes.map(n => n.classList.contains('incident-marker') ? 'marker' : n.querySelector('time').getAttribute('datetime'))")
    marker = order.index("marker")
    assert all(dt.datetime.fromisoformat(s.replace("Z", "+00:00")) > at for s in order[:marker])
    assert all(dt.datetime.fromisoformat(s.replace("Z", "+00:00")) <= at for s in order[marker + 1:])


def test_new_events_appear_while_watching_a_live_range(site, page):
    page.add_init_script("localStorage.setItem('painchain.refreshMs', '1000')")
    page.goto(site["url"] + "/?range=1h")
    expect(events_shown(page).first).to_be_visible()
    requests.post(site["api"] + "/events", json={
        "title": "Deployment to production failed (fresh)", "connector": "github", "project": "acme/payments",
        "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(), "externalId": "fresh-1",
        "integrationId": site["github"]["id"], "data": {"state": "failure"}}, timeout=10).raise_for_status()
    expect(events_shown(page).first).to_contain_text("failed (fresh)", timeout=10_000)
    # a late arrival: stored now, but it happened 30 minutes ago, among the rows already shown
    shown_before = events_shown(page).count()
    requests.post(site["api"] + "/events", json={
        "title": "Commit to main: pushed late", "connector": "github", "project": "acme/payments",
        "timestamp": (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=30)).isoformat(),
        "externalId": "late-1", "integrationId": site["github"]["id"], "data": {}}, timeout=10).raise_for_status()
    late = page.locator("article.event", has_text="pushed late")
    expect(late).to_have_count(1, timeout=10_000)
    expect(events_shown(page)).to_have_count(shown_before + 1)
    times = events_shown(page).evaluate_all("rows => rows.map(r => Number(r.dataset.ts))")
    assert times == sorted(times, reverse=True)
    position = events_shown(page).evaluate_all("rows => rows.findIndex(r => r.textContent.includes('pushed late'))")
    assert 0 < position < shown_before


def test_dark_theme_and_phone_layout(site, browser):
    context = browser.new_context(viewport={"width": 390, "height": 800}, color_scheme="dark", is_mobile=True)
    page = context.new_page()
    page.goto(site["url"] + "/")
    expect(events_shown(page).first).to_be_visible()
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(15, 18, 22)"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    # the header keeps its controls on screen (the time zone menu and the settings button)
    for control in ("#time-zone", "#settings-button"):
        box = page.locator(control).bounding_box()
        assert box["x"] + box["width"] <= 390, control
    context.close()


# ---------------------------------------------------------------- integrations


def test_integrations_list_shows_status_and_counts(site, page):
    requests.put(f"{site['api']}/integrations/{site['kube']['id']}/sync",
                 json={"status": "error", "error": "cluster unreachable"}, timeout=10)
    requests.put(f"{site['api']}/integrations/{site['github']['id']}/sync",
                 json={"status": "success"}, timeout=10).raise_for_status()
    for type_id in ("github", "kubernetes"):  # Dagster's sensors are running
        requests.put(f"{site['api']}/integrations/types/{type_id}/orchestrator", json={}, timeout=10).raise_for_status()
    page.goto(site["url"] + "/integrations")
    github_card = page.locator(f"article.card[data-id='{site['github']['id']}']")
    expect(github_card.locator(".status")).to_have_text("✓ Up to date — synced just now")
    kube_card = page.locator(f"article.card[data-id='{site['kube']['id']}']")
    expect(kube_card).to_contain_text("prod-eu")
    expect(kube_card.locator(".status.bad")).to_contain_text("cluster unreachable")
    expect(kube_card).to_contain_text(re.compile(r"\d+ events in the last 24 h"))
    expect(page.locator("section.type-group h2")).to_have_text(["GitHub", "Kubernetes"])


def test_create_edit_and_delete_through_the_generated_form(site, page):
    page.goto(site["url"] + "/integrations")
    page.select_option("#add-integration", "github")
    expect(page.locator("#form-title")).to_have_text("New GitHub integration")
    expect(page.locator("label[for=field-token] .required")).to_be_visible()
    expect(page.locator("#field-repositories")).to_have_value("")  # placeholder is a hint, not a value
    expect(page.locator("#field-repositories")).to_have_attribute("placeholder", re.compile("octocat"))
    # required-field errors, next to each field
    page.get_by_role("button", name="Create integration").click()
    expect(page.locator("#field-name-error")).to_have_text("Integration Name is required")
    expect(page.locator("#field-token-error")).to_be_visible()
    expect(page.locator("#field-name")).to_be_focused()
    # JSON validated inline
    page.fill("#field-repositories", '["acme/new",')
    expect(page.locator("#field-repositories-error")).to_contain_text("Not valid JSON")
    page.fill("#field-repositories", '["acme/new"]')
    expect(page.locator("#field-repositories-error")).to_be_hidden()
    # a server-side validation error lands on its field too
    page.fill("#field-name", "New UI integration")
    page.fill("#field-tags", '{"not": "a list"}')
    page.fill("#field-token", "ghp_created_in_ui")
    page.get_by_role("button", name="Create integration").click()
    expect(page.locator("#field-tags-error")).to_contain_text("JSON array")
    page.fill("#field-tags", '["ui"]')
    page.get_by_role("button", name="Create integration").click()
    expect(page).to_have_url(re.compile(r"/integrations$"))
    card = page.locator("article.card", has_text="New UI integration")
    expect(card).to_be_visible()
    created_id = card.get_attribute("data-id")

    # edit without re-entering the password: the secret is kept
    card.get_by_role("link", name="Edit").click()
    expect(page.locator("#field-token")).to_have_value("")
    expect(page.locator("#field-token")).to_have_attribute("placeholder", re.compile("Unchanged"))
    page.fill("#field-name", "Renamed in UI")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("article.card", has_text="Renamed in UI")).to_be_visible()
    stored = {i["id"]: i for i in requests.get(site["api"] + "/integrations", params={"type": "github"}, timeout=10).json()}
    assert stored[created_id]["config"]["token"] == "ghp_created_in_ui"
    assert stored[created_id]["name"] == "Renamed in UI"

    # delete, after confirming
    page.locator(f"article.card[data-id='{created_id}']").get_by_role("button", name="Delete").click()
    page.locator("dialog[open]").get_by_role("button", name="Delete").click()
    expect(page.locator(f"article.card[data-id='{created_id}']")).to_have_count(0)
    assert requests.get(f"{site['api']}/integrations/{created_id}", timeout=10).status_code == 404


def test_forms_work_for_a_connector_registered_later(site, page):
    requests.post(site["api"] + "/integrations/types/register", json={
        "id": "deployer", "displayName": "Acme Deployer", "color": "#8250df",
        "configSchema": {"fields": [
            {"key": "name", "label": "Name", "type": "text", "required": True},
            {"key": "tags", "label": "Tags", "type": "textarea", "required": True, "placeholder": "[]"},
            {"key": "region", "label": "Region", "type": "select", "required": True,
             "options": [{"value": "eu", "label": "Europe"}, {"value": "us", "label": "United States"}]},
            {"key": "interval", "label": "Interval (s)", "type": "number"},
            {"key": "dryRun", "label": "Dry run", "type": "checkbox", "help": "Do not post events"},
        ]}}, timeout=10).raise_for_status()
    page.goto(site["url"] + "/integrations?new=deployer")
    expect(page.locator("#form-title")).to_have_text("New Acme Deployer integration")
    page.fill("#field-name", "Deployer EU")
    page.fill("#field-tags", "[]")
    page.select_option("#field-region", "us")
    page.fill("#field-interval", "45")
    page.check("#field-dryRun")
    page.get_by_role("button", name="Create integration").click()
    expect(page.locator("article.card", has_text="Deployer EU")).to_be_visible()
    [created] = [i for i in requests.get(site["api"] + "/integrations", timeout=10).json() if i["name"] == "Deployer EU"]
    assert created["config"] == {"name": "Deployer EU", "tags": [], "region": "us", "interval": 45, "dryRun": True}


def test_the_gitlab_form_creates_a_gitlab_integration(site, page, tmp_path):
    requests.post(site["api"] + "/integrations/types/register", timeout=10,
                  json=json.loads((METADATA_DIR / "gitlab.json").read_text())).raise_for_status()
    page.goto(site["url"] + "/integrations?new=gitlab")
    expect(page.locator("#form-title")).to_have_text("New GitLab integration")
    expect(page.locator("#field-url")).to_have_value("https://gitlab.com")
    page.fill("#field-name", "Platform GitLab")
    page.fill("#field-tags", '["platform"]')
    page.fill("#field-token", "gitlab-ui-secret-value")
    page.fill("#field-projects", '["acme/platform/api", 42')
    expect(page.locator("#field-projects-error")).to_contain_text("Not valid JSON")
    page.fill("#field-projects", '["acme/platform/api", 42]')
    page.fill("#field-branches", '["release"]')
    page.screenshot(path=str(tmp_path / "gitlab-form.png"), full_page=True)
    page.get_by_role("button", name="Create integration").click()
    expect(page.locator("article.card", has_text="Platform GitLab")).to_be_visible()
    [created] = requests.get(site["api"] + "/integrations", params={"type": "gitlab"}, timeout=10).json()
    assert created["config"]["projects"] == ["acme/platform/api", 42]
    assert created["config"]["url"] == "https://gitlab.com" and created["config"]["branches"] == ["release"]
    assert created["config"]["token"] == "gitlab-ui-secret-value"
    # The UI never gets the secret back.
    page.locator("article.card", has_text="Platform GitLab").get_by_role("link", name="Edit").click()
    expect(page.locator("#field-token")).to_have_value("")
    assert "gitlab-ui-secret-value" not in page.content()


def test_the_kubernetes_form_keeps_cluster_tokens_secret(site, page, tmp_path):
    page.goto(site["url"] + "/integrations?new=kubernetes")
    expect(page.locator("#form-title")).to_have_text("New Kubernetes integration")
    page.fill("#field-name", "Staging clusters")
    page.fill("#field-tags", '["staging"]')
    page.fill("#field-clusters", json.dumps([
        {"name": "staging-eu", "server": "https://staging-eu.example.com:6443", "token": "k8s-ui-secret-1"},
        {"name": "staging-us", "server": "https://staging-us.example.com:6443", "token": "k8s-ui-secret-2"}]))
    page.get_by_role("button", name="Create integration").click()
    card = page.locator("article.card", has_text="Staging clusters")
    expect(card).to_be_visible()
    # Editing shows the clusters with masked tokens; saving unchanged keeps the tokens.
    card.get_by_role("link", name="Edit").click()
    expect(page.locator("#field-clusters")).to_contain_text("********")
    page.screenshot(path=str(tmp_path / "kubernetes-form.png"), full_page=True)
    assert "k8s-ui-secret" not in page.content()
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("article.card", has_text="Staging clusters")).to_be_visible()
    [stored] = [i for i in requests.get(site["api"] + "/integrations", params={"type": "kubernetes"}, timeout=10).json()
                if i["name"] == "Staging clusters"]
    assert [c["token"] for c in stored["config"]["clusters"]] == ["k8s-ui-secret-1", "k8s-ui-secret-2"]
    # Moving a cluster to another server without its token is refused, on the field.
    card = page.locator("article.card", has_text="Staging clusters")
    card.get_by_role("link", name="Edit").click()
    text = page.locator("#field-clusters").input_value().replace("staging-eu.example.com", "attacker.example")
    page.fill("#field-clusters", text)
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#field-clusters-error")).to_contain_text("must be entered again")


def test_tenant_setting_shows_only_that_tenants_data(site, page):
    tenant_api = requests.Session()
    tenant_api.headers["x-tenant-id"] = "globex"
    integration = tenant_api.post(site["api"] + "/integrations", json={"type": "kubernetes", "config": {
        "name": "Globex cluster", "tags": [], "clusters": [{"name": "globex", "server": "https://globex:6443",
                                                              "token": "t"}]}}, timeout=10).json()
    tenant_api.post(site["api"] + "/events", json={
        "title": "Globex only event", "connector": "kubernetes", "project": "globex:default",
        "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(), "externalId": "g-1",
        "integrationId": integration["id"]}, timeout=10).raise_for_status()
    page.goto(site["url"] + "/")
    page.get_by_role("button", name="Connection settings").click()
    page.fill("#settings-tenant", "globex")
    page.locator("#settings-dialog").get_by_role("button", name="Save").click()
    expect(page.locator("#tenant-badge")).to_have_text("Tenant: globex")
    expect(events_shown(page)).to_have_count(1)
    expect(events_shown(page).first).to_contain_text("Globex only event")
    page.goto(site["url"] + "/integrations")
    expect(page.locator("article.card")).to_have_count(1)


def test_empty_and_unreachable_states(make_backend, browser):
    server = make_backend("sqlite", api_token=None)
    context = browser.new_context()
    page = context.new_page()
    page.goto(server.url + "/")
    expect(page.locator(".state")).to_contain_text("No integrations yet")
    page.goto(server.url + "/integrations")
    expect(page.locator(".state")).to_contain_text("No connector is registered yet")
    # the API goes away (the page itself still loads): said so, with a way to retry
    page.route("**/api/**", lambda route: route.abort())
    page.goto(server.url + "/")
    expect(page.locator("#banner")).to_contain_text("cannot be reached")
    expect(page.locator("#banner").get_by_role("button", name="Retry")).to_be_visible()
    context.close()


def test_a_tenant_token_shows_only_that_tenants_data(make_backend, browser):
    server = make_backend("sqlite", api_token="svc-ui-token")
    service = {"Authorization": "Bearer svc-ui-token"}
    seed(server.api_url, count=20, headers={**service, "x-tenant-id": "acme"})
    seed(server.api_url, count=30, headers={**service, "x-tenant-id": "globex"})
    created = subprocess.run(
        [sys.executable, "-m", "painchain_pipelines", "token", "create", "--tenant", "acme", "--name", "ui"],
        env={**os.environ, "PAINCHAIN_DATABASE_URL": server.settings.database_url},
        capture_output=True, text=True, check=True)
    acme_token = created.stdout.strip().splitlines()[-1]
    context = browser.new_context()
    page = context.new_page()
    page.goto(server.url + "/")
    expect(page.locator("body")).to_contain_text("needs an API token")
    page.get_by_role("button", name="Connection settings").click()
    page.fill("#settings-token", acme_token)
    page.locator("#settings-dialog").get_by_role("button", name="Save").click()
    expect(page.locator(".range-label")).to_contain_text("20 events")
    expect(events_shown(page)).to_have_count(20)
    page.goto(server.url + "/integrations")
    expect(page.locator("article.card")).to_have_count(2)  # acme's two, not globex's
    # the token never shows back in the page
    page.get_by_role("button", name="Connection settings").click()
    assert acme_token not in page.locator("body").inner_text()
    context.close()
