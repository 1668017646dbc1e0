"""A hostile web page, in real Chromium, against both UIs with no token configured (the local
default): DNS rebinding (Chromium's host-resolver rules map the attacker's names to 127.0.0.1)
and cross-site requests. Every attack fails; the UIs still work at 127.0.0.1 and localhost."""

import http.server
import json
import threading
from pathlib import Path

import pytest
import requests

from painchain_pipelines.paths import METADATA_DIR
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS, REQUIRE_BROWSER

VICTIM_TOKEN = "ghp_rebinding_victim_token_4242"
REBIND = "rebind.attacker.example"
ATTACKER = "attacker.example"


@pytest.fixture(scope="module")
def hostile_browser():
    """Chromium resolving the attacker's names to this machine, as after a DNS rebinding."""
    if not Path(CHROMIUM).exists():
        message = f"Chromium not found at {CHROMIUM} (apt install chromium)"
        if REQUIRE_BROWSER:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    rules = f"--host-resolver-rules=MAP {REBIND} 127.0.0.1, MAP {ATTACKER} 127.0.0.1"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, rules])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def victim(make_backend):
    server = make_backend("sqlite", api_token=None)
    session = requests.Session()
    session.post(server.api_url + "/integrations/types/register",
                 json=json.loads((METADATA_DIR / "github.json").read_text())).raise_for_status()
    integration = session.post(server.api_url + "/integrations", json={"type": "github", "config": {
        "name": "Victim GitHub", "tags": [], "token": VICTIM_TOKEN, "repositories": ["acme/app"]}}).json()
    return {"server": server, "integration": integration}


def integrations_in_clear(victim) -> list[dict]:
    return requests.get(victim["server"].api_url + "/integrations", params={"type": "github"}, timeout=10).json()


ATTEMPTS_JS = """async (integrationId) => {
  const answers = {};
  const attempt = async (name, url, options) => {
    try { const r = await fetch(url, options); answers[name] = [r.status, await r.text()]; }
    catch (e) { answers[name] = ["blocked", String(e)]; }
  };
  await attempt("read", "/api/integrations?type=github");
  await attempt("register", "/api/integrations/types/register", {method: "POST",
    headers: {"Content-Type": "application/json"}, body: JSON.stringify({id: "evil", displayName: "Evil",
    configSchema: {fields: []}})});
  await attempt("edit", `/api/integrations/${integrationId}`, {method: "PUT",
    headers: {"Content-Type": "application/json"}, body: JSON.stringify({config: {name: "owned", tags: []}})});
  await attempt("delete", `/api/integrations/${integrationId}`, {method: "DELETE"});
  return answers;
}"""


def test_a_rebound_page_reads_nothing_and_changes_nothing(hostile_browser, victim):
    port = victim["server"].port
    page = hostile_browser.new_page()
    response = page.goto(f"http://{REBIND}:{port}/")  # the page now talks to us under its own name
    assert response.status == 400 and "PAINCHAIN_ALLOWED_HOSTS" in response.text()
    answers = page.evaluate(ATTEMPTS_JS, victim["integration"]["id"])
    assert {name: status for name, (status, _) in answers.items()} == {
        "read": 400, "register": 400, "edit": 400, "delete": 400}, answers
    assert VICTIM_TOKEN not in json.dumps(answers)
    [stored] = integrations_in_clear(victim)
    assert stored["name"] == "Victim GitHub" and stored["config"]["token"] == VICTIM_TOKEN
    page.close()


def test_without_the_host_check_the_same_page_would_have_read_the_token(hostile_browser, make_backend):
    """The control: it is the Host allow-list that stops the attack (and this test can fail)."""
    server = make_backend("sqlite", api_token=None, allowed_hosts=("*",))
    session = requests.Session()
    session.post(server.api_url + "/integrations/types/register",
                 json=json.loads((METADATA_DIR / "github.json").read_text())).raise_for_status()
    session.post(server.api_url + "/integrations", json={"type": "github", "config": {
        "name": "Exposed", "tags": [], "token": VICTIM_TOKEN, "repositories": ["acme/app"]}}).raise_for_status()
    page = hostile_browser.new_page()
    assert page.goto(f"http://{REBIND}:{server.port}/").status == 200
    status, body = page.evaluate("async () => { const r = await fetch('/api/integrations?type=github'); "
                                 "return [r.status, await r.text()]; }")
    page.close()
    # Chromium sends no Sec-Fetch-* to a plain-HTTP name that is not localhost; only its
    # Mozilla User-Agent still keeps the secret masked.
    assert status == 200 and VICTIM_TOKEN not in body and "********" in body


@pytest.fixture(scope="module")
def attacker_site():
    """The attacker's own web server (its name mapped to this machine, so that the browser's
    local-network protections do not step in: this tests the server's own defences)."""
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"<!doctype html><title>cute cats</title><p>cats"
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://{ATTACKER}:{server.server_address[1]}"
    server.shutdown()


def test_a_cross_site_page_cannot_post_events_or_change_integrations(hostile_browser, victim, attacker_site):
    server = victim["server"]
    page = hostile_browser.new_page()
    answered: dict[str, int] = {}
    page.on("response", lambda r: answered.__setitem__(f"{r.request.method} {r.url.split(server.url)[-1]}", r.status)
            if r.url.startswith(server.url) else None)
    page.goto(attacker_site)
    event = {"title": "forged", "connector": "github", "project": "acme/app", "timestamp": "2026-12-01T00:00:00Z",
             "externalId": "forged-1", "integrationId": victim["integration"]["id"]}
    answers = page.evaluate("""async ([base, event, integrationId]) => {
      const answers = {};
      const attempt = async (name, url, options) => {
        try { const r = await fetch(url, options); answers[name] = r.type === "opaque" ? "opaque" : r.status; }
        catch (e) { answers[name] = "blocked"; }
      };
      // "simple" requests: no CORS preflight, so the browser sends them
      await attempt("batch", base + "/api/events/batch", {method: "POST", mode: "no-cors",
        headers: {"Content-Type": "text/plain"}, body: JSON.stringify({events: [event]})});
      await attempt("single", base + "/api/events", {method: "POST", mode: "no-cors",
        headers: {"Content-Type": "text/plain"}, body: JSON.stringify(event)});
      // the rest need a preflight, which is never granted
      await attempt("json", base + "/api/events", {method: "POST",
        headers: {"Content-Type": "application/json"}, body: JSON.stringify(event)});
      await attempt("delete", base + `/api/integrations/${integrationId}`, {method: "DELETE"});
      await attempt("read", base + "/api/integrations?type=github", {});
      return answers;
    }""", [server.url, event, victim["integration"]["id"]])
    assert answers == {"batch": "opaque", "single": "opaque", "json": "blocked", "delete": "blocked",
                       "read": "blocked"}, answers
    # what the server answered the requests the browser did send (the others never left it)
    assert answered["POST /api/events/batch"] == 403 and answered["POST /api/events"] == 403, answered
    # an HTML form posting to the API (no JavaScript at all)
    page.set_content(f"""<form method="post" action="{server.url}/api/events/batch" enctype="text/plain">
        <input type="hidden" name='{{"events": [{json.dumps(event)}], "x": "' value='"}}'>
        <button>Win a prize</button></form>""")
    with page.expect_navigation():
        page.get_by_role("button", name="Win a prize").click()
    assert "cross-origin" in page.content()  # our 403 answer
    page.close()
    stored = requests.get(server.api_url + "/events", params={"integrationId": victim["integration"]["id"]},
                          timeout=10).json()
    assert stored["events"] == []
    assert [i["id"] for i in integrations_in_clear(victim)] == [victim["integration"]["id"]]


@pytest.mark.parametrize("address", ["127.0.0.1", "localhost"])
def test_the_ui_still_works_where_people_open_it(hostile_browser, victim, address):
    page = hostile_browser.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"http://{address}:{victim['server'].port}/integrations?edit={victim['integration']['id']}")
    page.locator("#field-repositories").fill('["acme/app", "acme/web"]')
    page.get_by_role("button", name="Save changes").click()
    page.get_by_role("heading", name="Integrations").wait_for()
    assert errors == []
    [stored] = integrations_in_clear(victim)
    assert stored["config"]["repositories"] == ["acme/app", "acme/web"] and stored["config"]["token"] == VICTIM_TOKEN
    # the people's read never carries the secret, even from the same origin
    body = page.evaluate("async () => (await fetch('/api/integrations?type=github')).text()")
    assert VICTIM_TOKEN not in body
    page.close()


@pytest.fixture(scope="module")
def dagster_ui(tmp_path_factory):
    from tests.support.painchain_up import PainchainUp

    up = PainchainUp(tmp_path_factory.mktemp("up"))
    try:
        up.wait_for_dagster()
        yield up
    finally:
        up.stop()


BACKFILLS = "{ partitionBackfillsOrError { ... on PartitionBackfills { results { id } } } }"
LAUNCH = ('mutation { launchPartitionBackfill(backfillParams: {assetSelection: [{path: ["github_events"]}], '
          'partitionNames: ["2026-11-01|x"]}) { __typename } }')


def test_the_dagster_ui_refuses_rebound_and_cross_site_pages(hostile_browser, dagster_ui, attacker_site):
    page = hostile_browser.new_page()
    response = page.goto(f"http://{REBIND}:{dagster_ui.dagster_port}/")
    assert response.status == 400
    status = page.evaluate("async (q) => (await fetch('/graphql', {method: 'POST', headers: "
                           "{'Content-Type': 'application/json'}, body: JSON.stringify({query: q})})).status", LAUNCH)
    assert status == 400

    answered = {}
    page.on("response", lambda r: answered.setdefault(r.request.method, r.status)
            if r.url.startswith(dagster_ui.dagster_url) else None)
    page.goto(attacker_site)
    outcome = page.evaluate("""async ([base, q]) => {
      const sent = await fetch(base + "/graphql", {method: "POST", mode: "no-cors",
        headers: {"Content-Type": "text/plain"}, body: JSON.stringify({query: q})}).then(r => r.type, e => "blocked");
      const socket = await new Promise((resolve) => {
        const ws = new WebSocket(base.replace("http", "ws") + "/graphql", "graphql-ws");
        ws.onopen = () => resolve("open"); ws.onerror = () => resolve("refused");
      });
      return [sent, socket];
    }""", [dagster_ui.dagster_url, LAUNCH])
    assert outcome == ["opaque", "refused"] and answered["POST"] == 403, (outcome, answered)
    backfills = requests.post(dagster_ui.dagster_url + "/graphql", json={"query": BACKFILLS}, timeout=30).json()
    assert backfills["data"]["partitionBackfillsOrError"]["results"] == []

    # where people open it, it works (the UI's own GraphQL requests included)
    page.goto(f"http://127.0.0.1:{dagster_ui.dagster_port}/runs")
    version = page.evaluate("async () => (await fetch('/graphql', {method: 'POST', headers: {'Content-Type': "
                            "'application/json'}, body: JSON.stringify({query: '{ version }'})})).json()")
    assert version["data"]["version"]
    page.close()


def test_changing_where_a_secret_goes_asks_for_the_secret_again(hostile_browser, victim):
    page = hostile_browser.new_page()
    integration = victim["integration"]
    page.goto(f"http://127.0.0.1:{victim['server'].port}/integrations?edit={integration['id']}")
    token = page.locator("#field-token")
    assert token.get_attribute("placeholder") == "Unchanged — type to replace"
    page.locator("#field-baseUrl").fill("https://attacker.example/api")
    assert token.get_attribute("placeholder") == "Required — API Base URL changed"
    page.get_by_role("button", name="Save changes").click()
    assert page.locator("#field-token-error").inner_text() == "Access Token must be entered again: API Base URL changed"
    assert integrations_in_clear(victim)[0]["config"].get("baseUrl") is None  # nothing was sent
    page.locator("#field-baseUrl").fill("")  # back to where it was: the stored token is kept again
    assert token.get_attribute("placeholder") == "Unchanged — type to replace"
    page.locator("#field-baseUrl").fill("https://ghe.example.com/api/v3")
    token.fill("ghp_token_for_the_enterprise_host")
    page.get_by_role("button", name="Save changes").click()
    page.get_by_role("heading", name="Integrations").wait_for()
    [stored] = integrations_in_clear(victim)
    assert stored["config"]["baseUrl"] == "https://ghe.example.com/api/v3"
    assert stored["config"]["token"] == "ghp_token_for_the_enterprise_host"
    page.close()
