"""GitHub connector and orchestration figures, against the fake GitHub API with network latency.

    python -m bench.github_sync [--latency 0.05]                 # initial sync, idle polls, run overhead
    python -m bench.github_sync capacity --integrations 200      # sustained live polling, real Dagster

The fake is the one the tests use (tests/fakes), built from GitHub's recorded payloads; every
request waits `latency` seconds, as a real round trip to api.github.com would.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import requests

from bench._support import backend_process, machine
from painchain_pipelines.connectors.backend_client import BackendClient
from painchain_pipelines.connectors.base import TimeWindow
from painchain_pipelines.connectors.github import GitHubConnector
from painchain_pipelines.connectors.registration import register
from painchain_pipelines.connectors.sync import run_sync
from tests.fakes import FakeGitHub

TOKEN = "ghp_bench_token"


def create_integration(api: str, fake: FakeGitHub, repos: list[str], name: str) -> str:
    body = {"type": "github", "config": {"name": name, "tags": [], "token": TOKEN, "repositories": repos,
                                         "baseUrl": fake.base_url}}
    response = requests.post(api + "/integrations", json=body, timeout=30)
    response.raise_for_status()
    return response.json()["id"]


def populate(fake: FakeGitHub, name: str, commits: int, pulls: int, runs: int) -> None:
    repo = fake.add_repo(name)
    now = fake.now()
    span = dt.timedelta(days=6).total_seconds()
    for n in range(commits):
        repo.add_commit(message=f"change {n}", authored_at=now - dt.timedelta(seconds=span * (1 - n / commits)))
    for n in range(pulls):
        opened = now - dt.timedelta(seconds=span * (1 - n / pulls))
        number = repo.open_pull(f"feature {n}", created_at=opened)
        repo.merge_pull(number, at=opened + dt.timedelta(minutes=30))
    for n in range(runs):
        created = now - dt.timedelta(seconds=span * (1 - n / runs))
        run = repo.add_workflow_run(created_at=created)
        repo.complete_run(run, "success" if n % 7 else "failure", at=created + dt.timedelta(minutes=6))


def list_requests(fake: FakeGitHub) -> Counter:
    kinds = Counter()
    for r in fake.requests:
        path = r.canonical_path
        for kind in ("/commits", "/pulls", "/actions/runs", "/releases", "/deployments", "/compare"):
            if path.endswith(kind):
                kinds[kind] += 1
    return kinds


def bench_sync(latency: float) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="painchain-gh-"))
    with backend_process(tmp / "data") as api, FakeGitHub(token=TOKEN, latency=latency) as fake:
        register(BackendClient(api), ["github"])
        populate(fake, "bench/big", commits=10_000, pulls=1_000, runs=2_000)
        integration_id = create_integration(api, fake, ["bench/big"], "big")
        client = BackendClient(api)
        fake.reset_requests()
        started = time.perf_counter()
        outcome = run_sync(client, GitHubConnector(), integration_id, lookback=dt.timedelta(days=7))
        wall = time.perf_counter() - started
        assert outcome.ok, outcome.error
        kinds = list_requests(fake)
        minimum = {"/commits": math.ceil(10_000 / 100), "/pulls": math.ceil(1_000 / 100),
                   "/actions/runs": math.ceil(2_000 / 100)}
        print(f"# GitHub initial sync — {machine()}, fake GitHub with {latency * 1000:.0f} ms per request")
        print("repository: 10,000 commits, 1,000 merged PRs (2,000 events), 2,000 completed workflow runs")
        for kind, least in minimum.items():
            print(f"  {kind:15s} list requests {kinds[kind]:4d}   minimum ceil(items/100) = {least}")
        print(f"  all requests    {len(fake.requests)} (incl. repository, releases, deployments)")
        print(f"  wall time       {wall:.1f} s   events {outcome.posted.posted:,}  created {outcome.posted.created:,}"
              f"   -> {outcome.posted.posted / wall:,.0f} events/s")

        state = client.get_sync(client.get_integration("github", integration_id))["state"]
        integration = client.get_integration("github", integration_id)
        fake.reset_requests()
        started = time.perf_counter()
        check = GitHubConnector().detect_changes(integration, state)
        detect_s = time.perf_counter() - started
        counted = sum(1 for r in fake.requests if r.counted)
        print("# idle re-poll (nothing changed)")
        print(f"  change check: {len(fake.requests)} requests, {check.stats.not_modified} answered 304 "
              f"({check.stats.not_modified / len(fake.requests):.0%}), {counted} counted against the rate limit, "
              f"{detect_s * 1000:.0f} ms, changed={check.changed}")
        fake.reset_requests()
        started = time.perf_counter()
        idle = run_sync(client, GitHubConnector(), integration_id)
        idle_s = time.perf_counter() - started
        counted = sum(1 for r in fake.requests if r.counted)
        print(f"  live sync:    {len(fake.requests)} requests, {idle.stats.not_modified} answered 304 "
              f"({idle.stats.not_modified / len(fake.requests):.0%}), {counted} counted, {idle_s * 1000:.0f} ms, "
              f"{idle.posted.posted} events")

        bench_run_overhead(api, fake, tmp)


def bench_run_overhead(api: str, fake: FakeGitHub, tmp: Path, repeat: int = 5) -> None:
    """A Dagster run as the daemon launches it (a new process loading the code location) versus
    the same sync called directly."""
    fake.add_repo("bench/small").add_commit(message="one", authored_at=fake.now() - dt.timedelta(hours=1))
    integration_id = create_integration(api, fake, ["bench/small"], "small")
    home = tmp / "dagster_home"
    home.mkdir(exist_ok=True)
    with open_instance(home) as instance:
        instance.add_dynamic_partitions("github_integrations", [integration_id])
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    env = {**os.environ, "DAGSTER_HOME": str(home), "BACKEND_API_URL": api}
    client = BackendClient(api)
    direct, runs, cpu = [], [], []
    for _ in range(repeat):
        started = time.perf_counter()
        window = TimeWindow(dt.datetime.fromisoformat(today + "T00:00:00+00:00"), dt.datetime.now(dt.timezone.utc))
        run_sync(client, GitHubConnector(), integration_id, windows=[window])
        direct.append(time.perf_counter() - started)
        before = os.times()
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dagster", "asset", "materialize", "-m", "painchain_pipelines.definitions",
                        "--select", "github_events", "--partition", f"{today}|{integration_id}"],
                       env=env, check=True, capture_output=True)
        runs.append(time.perf_counter() - started)
        after = os.times()
        cpu.append((after.children_user - before.children_user) + (after.children_system - before.children_system))
    print("# Dagster overhead per run (a run in its own process, as the run launcher starts it)")
    print(f"  same sync called directly : {statistics.median(direct) * 1000:7.0f} ms (median of {repeat})")
    print(f"  as a Dagster run           : {statistics.median(runs) * 1000:7.0f} ms wall, "
          f"{statistics.median(cpu):.2f} s CPU (median of {repeat})")
    print(f"  overhead per run           : {(statistics.median(runs) - statistics.median(direct)):7.2f} s wall")


# ---------------------------------------------------------------------------- capacity


def open_instance(home: Path):
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(home)
    return dg.DagsterInstance.get()


def bench_capacity(integrations: int, change_rate: float, minutes: float, latency: float) -> None:
    """N integrations (one repository each) polled live every 60 s by the real Dagster daemon;
    each minute a `change_rate` share of the repositories gets a new commit. Prints the run
    queue over time: it must not grow."""
    tmp = Path(tempfile.mkdtemp(prefix="painchain-cap-"))
    home = tmp / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text((Path(__file__).parents[1] / "dagster.yaml").read_text())
    # Every integration would have its own token (5,000 requests/hour each); the fake has one.
    with backend_process(tmp / "data") as api, \
            FakeGitHub(token=TOKEN, latency=latency, rate_limit=10**9) as fake:
        register(BackendClient(api), ["github"])
        repos, ids = [], []
        for n in range(integrations):
            name = f"org/service-{n:03d}"
            fake.add_repo(name).add_commit(message="initial", authored_at=fake.now() - dt.timedelta(hours=2))
            ids.append(create_integration(api, fake, [name], f"service {n}"))
            repos.append(name)
        # Steady state from the start: first syncs done and partitions known (a burst of first
        # syncs is measured separately, see docs/benchmarks.md).
        from concurrent.futures import ThreadPoolExecutor

        client = BackendClient(api)
        with ThreadPoolExecutor(8) as pool:
            assert all(o.ok for o in pool.map(lambda i: run_sync(client, GitHubConnector(), i), ids))
        with open_instance(home) as instance:
            instance.add_dynamic_partitions("github_integrations", ids)
        env = {**os.environ, "DAGSTER_HOME": str(home), "BACKEND_API_URL": api, "POLLING_INTERVAL": "60",
               "PYTHONUNBUFFERED": "1"}
        daemon = subprocess.Popen([sys.executable, "-m", "dagster", "dev", "-m", "painchain_pipelines.definitions",
                                   "-p", "0"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        stop = threading.Event()

        changes = Counter()

        def world():
            rng = random.Random(1)
            while not stop.wait(60):
                try:
                    for name in rng.sample(repos, max(1, int(len(repos) * change_rate))):
                        fake.repo(name).add_commit(message="change")
                        changes["commits"] += 1
                except Exception as exc:  # a bench must not go quiet on an error
                    print(f"world thread failed: {exc!r}", flush=True)
                    raise

        threading.Thread(target=world, daemon=True).start()
        import dagster as dg

        print(f"# live polling capacity — {machine()}, {integrations} integrations, POLLING_INTERVAL=60, "
              f"{change_rate:.0%} of repositories change per minute, {latency * 1000:.0f} ms GitHub latency")
        print("  minute  queued  in-progress  succeeded  failed")
        samples = []
        started = time.monotonic()
        try:
            while time.monotonic() - started < minutes * 60:
                time.sleep(30)
                with open_instance(home) as instance:
                    count = lambda statuses: instance.get_runs_count(dg.RunsFilter(statuses=statuses))  # noqa: E731
                    row = (count([dg.DagsterRunStatus.QUEUED]),
                           count([dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]),
                           count([dg.DagsterRunStatus.SUCCESS]), count([dg.DagsterRunStatus.FAILURE]))
                samples.append(row)
                print(f"  {(time.monotonic() - started) / 60:6.1f}  {row[0]:6d}  {row[1]:11d}  {row[2]:9d}  {row[3]:6d}",
                      flush=True)
        finally:
            stop.set()
            os.killpg(daemon.pid, 2)
            daemon.wait(60)
        with open_instance(home) as instance:
            records = instance.get_run_records(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS]))
            durations = [r.end_time - r.start_time for r in records if r.start_time and r.end_time]
            batches = sum(1 for r in records if r.dagster_run.tags.get("painchain/batch") == "true")
        if durations:
            print(f"  runs: {len(durations)} succeeded ({batches} of them live syncs of every integration), "
                  f"duration median {statistics.median(durations):.1f} s, max {max(durations):.1f} s")
        later = [s[0] for s in samples[len(samples) // 2:]]
        done_rate = (samples[-1][2] - samples[len(samples) // 2][2]) / max(1, (len(samples) - len(samples) // 2 - 1) / 2)
        print(f"  changes made: {changes['commits']}")
        print(f"  queue in the second half: max {max(later)}, last {later[-1]}; "
              f"runs completed per minute (second half): {done_rate:.1f}; "
              f"expected changes per minute: {integrations * change_rate:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", nargs="?", default="sync", choices=["sync", "capacity"])
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--integrations", type=int, default=200)
    parser.add_argument("--change-rate", type=float, default=0.05)
    parser.add_argument("--minutes", type=float, default=8)
    args = parser.parse_args()
    if args.what == "sync":
        bench_sync(args.latency)
    else:
        bench_capacity(args.integrations, args.change_rate, args.minutes, args.latency)


if __name__ == "__main__":
    main()
