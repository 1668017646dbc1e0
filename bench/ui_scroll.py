"""The timeline with 10,000+ events in range, in headless Chromium: first render, paging through
the whole range by scrolling, and scrolling over everything once it is loaded.

    python -m bench.ui_scroll [--events 12000] [--chromium /usr/bin/chromium]

The backend runs as its own process on SQLite; events are spread over the last 23 hours and
posted through the batch endpoint like a connector would. The page scrolls 400 px per animation
frame (a fast continuous flick); each frame's interval is recorded in the page with
requestAnimationFrame, so a long frame means the user saw the page stall.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path

import requests

from bench._support import backend_process, machine, percentile
from painchain_pipelines.paths import METADATA_DIR

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]

# Scrolls 400 px per frame until `stop()` is true or the deadline passes; returns frame intervals.
SCROLL_AND_TIME = """
async ([stopWhenAllLoaded, deadlineMs]) => {
  const frames = [];
  const started = performance.now();
  let last = started;
  const allLoaded = () => document.querySelector('.load-more')?.textContent.startsWith("That's all");
  return await new Promise((resolve) => {
    function step(now) {
      frames.push(now - last);
      last = now;
      const atBottom = window.scrollY + window.innerHeight >= document.documentElement.scrollHeight - 2;
      const done = stopWhenAllLoaded ? allLoaded() && atBottom : atBottom;
      if (done || now - started > deadlineMs) {
        resolve({ frames, elapsedMs: now - started, rows: document.querySelectorAll('article.event').length });
        return;
      }
      window.scrollBy(0, 400);
      requestAnimationFrame(step);
    }
    requestAnimationFrame(step);
  });
}
"""

# Scrolls to row `index`, clicks its Details button and returns the time until the next frame.
OPEN_DETAILS = """
(index) => new Promise((resolve) => {
  const row = document.querySelectorAll('article.event')[index];
  row.scrollIntoView({ block: 'center' });
  requestAnimationFrame(() => requestAnimationFrame(() => {
    const started = performance.now();
    row.querySelector('button.toggle').click();
    requestAnimationFrame(() => setTimeout(() => resolve(performance.now() - started)));
  }));
})
"""


def seed(api: str, count: int) -> None:
    session = requests.Session()
    session.post(api + "/integrations/types/register",
                 json=json.loads((METADATA_DIR / "github.json").read_text())).raise_for_status()
    integration = session.post(api + "/integrations", json={"type": "github", "config": {
        "name": "Bench GitHub", "tags": ["production"], "token": "ghp_bench", "repositories": ["acme/api"]}}).json()
    now = dt.datetime.now(dt.timezone.utc)
    span = dt.timedelta(hours=23)
    events = []
    for n in range(count):
        at = now - dt.timedelta(minutes=1) - span * n / count
        events.append({
            "title": f"Workflow CI #{n} {'failed' if n % 9 == 0 else 'succeeded'} on main",
            "connector": "github", "project": f"acme/service-{n % 40:02d}", "timestamp": at.isoformat(),
            "externalId": f"run-{n}", "integrationId": integration["id"], "tags": ["ci"],
            "data": {"url": f"https://github.com/acme/api/actions/runs/{n}", "actor": f"dev{n % 25}",
                     "conclusion": "failure" if n % 9 == 0 else "success", "headSha": f"{n:040x}",
                     "runAttempt": 1, "durationSeconds": 200 + n % 300},
        })
    for start in range(0, count, 1000):
        session.post(api + "/events/batch", json={"events": events[start:start + 1000]}).raise_for_status()


def frame_summary(frames: list[float]) -> str:
    frames = frames[1:] or frames  # the first interval includes the call itself
    return (f"frames {len(frames):5d}  p50 {percentile(frames, 50):6.1f} ms  p95 {percentile(frames, 95):6.1f} ms  "
            f"p99 {percentile(frames, 99):6.1f} ms  max {max(frames):6.1f} ms  "
            f"> 50 ms: {sum(f > 50 for f in frames)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=12_000)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    print(f"# Timeline UI with {args.events:,} events in range ({machine()}, headless Chromium, 1280x900)")
    with tempfile.TemporaryDirectory() as tmp, backend_process(Path(tmp)) as api:
        started = time.perf_counter()
        seed(api, args.events)
        print(f"seeded {args.events:,} events in {time.perf_counter() - started:.1f} s")
        site = api.removesuffix("/api")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            started = time.perf_counter()
            page.goto(site + "/?range=24h")
            page.locator("article.event").nth(99).wait_for()
            page.locator(".chart .bar").first.wait_for(state="attached")
            print(f"first render (100 rows + chart): {(time.perf_counter() - started) * 1000:.0f} ms")

            paging = page.evaluate(SCROLL_AND_TIME, [True, 600_000])
            rows = paging["rows"]
            print(f"page through everything by scrolling: {rows:,} rows in {paging['elapsedMs'] / 1000:.1f} s "
                  f"({rows / 100:.0f} pages, {paging['elapsedMs'] / max(1, rows / 100):.0f} ms per page incl. request)")
            print("  while loading: " + frame_summary(paging["frames"]))

            page.evaluate("window.scrollTo(0, 0)")
            page.wait_for_timeout(500)
            again = page.evaluate(SCROLL_AND_TIME, [False, 600_000])
            print(f"scroll top to bottom over {rows:,} loaded rows: {again['elapsedMs'] / 1000:.1f} s")
            print("  all loaded:    " + frame_summary(again["frames"]))

            opened = page.evaluate(OPEN_DETAILS, rows // 2)
            print(f"open one event's details among {rows:,} rows (click to next frame): {opened:.0f} ms")

            dom = page.evaluate("document.getElementsByTagName('*').length")
            heap = page.evaluate("performance.memory ? performance.memory.usedJSHeapSize : 0")
            print(f"DOM elements: {dom:,}   JS heap used: {heap / 2**20:.1f} MiB")
            browser.close()


if __name__ == "__main__":
    main()
