"""Regenerates dagster-partitions.png: `painchain up` in a temporary directory, two GitHub
integrations against the fake GitHub of the tests, their first syncs, and the Dagster UI's
partition view of `github_events` in headless Chromium.

    .venv/bin/python docs/screenshots/capture_dagster.py [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from tests.fakes.github_server import FakeGitHub  # noqa: E402
from tests.support.painchain_up import PainchainUp  # noqa: E402

INTEGRATIONS = {"Payments GitHub": "acme/payments-api", "Web GitHub": "acme/web"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with FakeGitHub(token="ghp_screenshot") as fake, tempfile.TemporaryDirectory() as workdir:
        for repo in INTEGRATIONS.values():
            fake_repo = fake.add_repo(repo)
            for day in range(9):
                fake_repo.add_commit(message=f"change {day}", authored_at=fake.now() - dt.timedelta(days=day, hours=2))
        up = PainchainUp(Path(workdir))
        try:
            up.wait_for_dagster()
            ids = [requests.post(up.api + "/integrations", timeout=10, json={"type": "github", "config": {
                "name": name, "tags": ["production"], "token": "ghp_screenshot", "repositories": [repo],
                "baseUrl": fake.base_url}}).json()["id"] for name, repo in INTEGRATIONS.items()]
            up.wait_for(lambda: all(len(up.stored(integrationId=i)) >= 7 for i in ids), "the first syncs", 240, 2)
            time.sleep(5)  # the materializations reach the UI's queries
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=args.chromium,
                                                     args=["--no-sandbox", "--disable-gpu"])
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(up.dagster_url + "/assets/github_events?view=partitions", wait_until="networkidle")
                page.wait_for_timeout(4000)
                if page.get_by_role("button", name="Skip").count():  # Dagster's newsletter prompt
                    page.get_by_role("button", name="Skip").click()
                page.get_by_text((fake.now() - dt.timedelta(days=3)).date().isoformat()).first.click()
                page.wait_for_timeout(3000)
                page.screenshot(path=str(HERE / "dagster-partitions.png"))
                browser.close()
        finally:
            up.stop()
    print(f"wrote {HERE / 'dagster-partitions.png'}")


if __name__ == "__main__":
    main()
