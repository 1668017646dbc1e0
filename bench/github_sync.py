"""GitHub connector and orchestration figures, against the fake GitHub API with network latency.

    python -m bench.github_sync [--latency 0.05]                 # initial sync, idle polls, run overhead
    python -m bench.github_sync reruns                           # cost of the re-run sweep, 1 and 20 repos
    python -m bench.github_sync commits                          # first sync of a branch: exact vs date cut
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
from painchain_pipelines.connectors.base import Integration, TimeWindow
from painchain_pipelines.connectors.github import GitHubConnector
from painchain_pipelines.connectors.github.connector import Tuning
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
        if is_sweep(r):
            kinds["re-run sweep"] += 1
            continue
        for kind in ("/commits", "/pulls", "/actions/runs", "/releases", "/deployments", "/compare"):
            if path.endswith(kind):
                kinds[kind] += 1
    return kinds


def is_sweep(request) -> bool:
    """A request of the re-run sweep: the runs list of one created-day (or hour) slice."""
    return request.canonical_path.endswith("/actions/runs") and "created" in request.query


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
        print(f"  re-run sweep    {kinds['re-run sweep']:4d} requests (one per created-day of the runs 10 to 30 "
              "days old, none of which exist here)")
        print(f"  all requests    {len(fake.requests)} (incl. repository, releases, deployments, sweep)")
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
        print(f"  change check: {len(fake.requests)} requests, {check.stats.counters.get('api_not_modified_304', 0)} answered 304 "
              f"({check.stats.counters.get('api_not_modified_304', 0) / len(fake.requests):.0%}), {counted} counted against the rate limit, "
              f"{detect_s * 1000:.0f} ms, changed={check.changed}")
        fake.reset_requests()
        started = time.perf_counter()
        idle = run_sync(client, GitHubConnector(), integration_id)
        idle_s = time.perf_counter() - started
        counted = sum(1 for r in fake.requests if r.counted)
        print(f"  live sync:    {len(fake.requests)} requests, {idle.stats.counters.get('api_not_modified_304', 0)} answered 304 "
              f"({idle.stats.counters.get('api_not_modified_304', 0) / len(fake.requests):.0%}), {counted} counted, {idle_s * 1000:.0f} ms, "
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


# ---------------------------------------------------------------------------- re-run sweep


def direct_integration(fake: FakeGitHub, repos: list[str]) -> Integration:
    config = {"name": "bench", "tags": [], "token": TOKEN, "repositories": repos, "baseUrl": fake.base_url}
    return Integration(id="bench", name="bench", type="github", config=config, tenant_id=None)


def sweep_figures(fake: FakeGitHub, started: float, events: list) -> str:
    swept = sum(1 for r in fake.requests if is_sweep(r))
    counted = sum(1 for r in fake.requests if r.counted)
    not_modified = sum(1 for r in fake.requests if r.status == 304)
    return (f"{len(fake.requests):4d} requests ({swept:3d} of the sweep), {not_modified:3d} answered 304, "
            f"{counted:3d} counted, {time.perf_counter() - started:5.2f} s, {len(events)} events")


def bench_reruns(latency: float, runs_per_day: int) -> None:
    """Live syncs of repositories with 30 days of workflow runs: what the periodic re-run sweep
    costs when nothing was re-run, and when one run of 15 days ago was."""
    interval = Tuning().rerun_sweep_interval.total_seconds()
    print(f"# re-run sweep — {machine()}, {latency * 1000:.0f} ms per request, {runs_per_day} runs a day for 31 days "
          f"per repository, sweep every {interval / 60:.0f} min")
    for count in (1, 20):
        # 10:00 UTC: an hour's polling never moves the days swept
        target = dt.datetime.combine(dt.datetime.now(dt.timezone.utc).date(), dt.time(10), dt.timezone.utc)
        with FakeGitHub(token=TOKEN, latency=latency, clock_offset=target.timestamp() - time.time(),
                        rate_limit=10**9) as fake:
            names = [f"bench/service-{n:02d}" for n in range(count)]
            now = fake.now()
            old_runs = {}
            for name in names:
                repo = fake.add_repo(name)
                repo.add_commit(message="x", authored_at=now - dt.timedelta(days=1))
                for n in range(31 * runs_per_day):
                    created = now - dt.timedelta(days=31) + n * dt.timedelta(days=1) / runs_per_day
                    run = repo.add_workflow_run(created_at=created)
                    repo.complete_run(run, "success", at=created + dt.timedelta(minutes=6))
                    if abs(created - (now - dt.timedelta(days=15))) < dt.timedelta(days=1) / runs_per_day:
                        old_runs[name] = run
            connector, integration = GitHubConnector(), direct_integration(fake, names)
            print(f"  {count} repositor{'y' if count == 1 else 'ies'} ({count * 31 * runs_per_day:,} runs):")
            rows = []
            state = None

            def live_sync(label: str) -> None:
                nonlocal state
                fake.reset_requests()
                events: list = []
                started = time.perf_counter()
                state = connector.live_sync(integration, state, events.append).state
                rows.append(f"    {label:50s} {sweep_figures(fake, started, events)}")

            live_sync("first sync (7 days)")
            fake.advance(interval)
            live_sync("2nd sweep (lists the days the first sync read)")
            live_sync("live sync, sweep not due")
            fake.advance(interval)
            fake.reset_requests()
            check = connector.detect_changes(integration, state)
            rows.append(f"    {'change check, sweep due':50s} {len(fake.requests):4d} requests, "
                        f"changed={check.changed} ({check.reason})")
            live_sync("idle sweep (nothing re-run)")
            fake.advance(interval)
            repo = fake.repo(names[-1])
            repo.rerun(old_runs[names[-1]])
            repo.complete_run(old_runs[names[-1]], "failure")
            live_sync("sweep finding 1 re-run")
            print("\n".join(rows))


# ---------------------------------------------------------------------------- first sync of a branch


def busy_history(fake: FakeGitHub, name: str, rng: random.Random, days: int = 40, per_day: float = 11.0) -> None:
    """A default branch fed by direct commits and by merges of feature branches that lived from an
    hour to ten days: merged commits are listed right below their merge, whatever their age."""
    repo = fake.add_repo(name)
    now = fake.now()
    moment = now - dt.timedelta(days=days)
    repo.add_commit(message="initial", authored_at=moment - dt.timedelta(days=1))
    open_branches: list[tuple[str, dt.datetime]] = []  # (branch, when it merges)
    step = dt.timedelta(days=1) / per_day
    serial = 0
    while moment < now - dt.timedelta(minutes=5):
        moment += step * rng.uniform(0.2, 1.8)
        for branch, merge_at in [b for b in open_branches if b[1] <= moment]:
            repo.merge(branch, committed_at=min(merge_at, now - dt.timedelta(minutes=1)))
            open_branches.remove((branch, merge_at))
        roll = rng.random()
        if roll < 0.55:
            repo.add_commit(message="direct", authored_at=moment)
        elif roll < 0.7 or not open_branches:
            serial += 1
            branch = f"feature-{serial}"
            repo.create_branch(branch)
            lifetime = rng.choices([1, 6, 24, 72, 10 * 24], weights=[30, 30, 25, 12, 3])[0]
            open_branches.append((branch, moment + dt.timedelta(hours=lifetime)))
        else:
            branch, _ = rng.choice(open_branches)
            repo.add_commit(branch=branch, message="feature work", authored_at=moment)


def date_cut(fake: FakeGitHub, name: str, lower: dt.datetime) -> tuple[set[str], set[str], int]:
    """(exact set, set read by walking the list to the first older commit, that walk's pages)."""
    repo = fake.repo(name)
    listed = list(reversed(repo.branches[repo.default_branch]))
    exact = {sha for sha in listed if repo.commits[sha].committed_at >= lower}
    cut = next((i for i, sha in enumerate(listed) if repo.commits[sha].committed_at < lower), len(listed))
    return exact, set(listed[:cut]), cut // 100 + 1


def bench_first_sync_commits(latency: float, repositories: int = 20) -> None:
    lookback = dt.timedelta(days=7)
    print(f"# first sync of a branch — {latency * 1000:.0f} ms per request, {repositories} busy repositories, "
          "7-day look-back")
    with FakeGitHub(token=TOKEN, latency=latency, rate_limit=10**9) as fake:
        rng = random.Random(7)
        names = [f"bench/busy-{n:02d}" for n in range(repositories)]
        for name in names:
            busy_history(fake, name, rng)
        exact_total = cut_found = walk_found = cut_pages = walk_requests = 0
        connector = GitHubConnector()
        for name in names:
            fake.reset_requests()
            events: list = []
            result = connector.live_sync(direct_integration(fake, [name]), None, events.append, lookback)
            lower = result.window.start
            exact, by_date_cut, pages = date_cut(fake, name, lower)
            found = {e.data["sha"] for e in events if e.data.get("type") == "commit"}
            assert found == exact, f"{name}: {len(exact - found)} missing, {len(found - exact)} extra"
            exact_total += len(exact)
            walk_found += len(found & exact)
            cut_found += len(by_date_cut & exact)
            cut_pages += pages
            walk_requests += sum(1 for r in fake.requests if r.canonical_path.endswith("/commits"))
        print(f"  commits of the look-back: {exact_total:,}")
        print(f"  stop at the first older commit : {cut_found:,} read, {exact_total - cut_found} missing "
              f"({(exact_total - cut_found) / exact_total:.1%}), {cut_pages} list requests")
        print(f"  graph walk (this version)      : {walk_found:,} read, {exact_total - walk_found} missing, "
              f"{walk_requests} list requests")
    with FakeGitHub(token=TOKEN, latency=latency) as fake:
        repo = fake.add_repo("bench/linear")
        now = fake.now()
        for n in range(3050):  # one every 9.6 min: 1,050 in the look-back
            repo.add_commit(message=f"c{n}", authored_at=now - (3050 - n) * dt.timedelta(minutes=9.6))
        fake.reset_requests()
        result = connector.live_sync(direct_integration(fake, ["bench/linear"]), None, lambda e: None, lookback)
        exact, _, pages = date_cut(fake, "bench/linear", result.window.start)
        walk = sum(1 for r in fake.requests if r.canonical_path.endswith("/commits"))
        print(f"  linear history, {len(exact):,} commits in the look-back: {walk} list requests; stopping at the "
              f"first older commit: {pages} (the walk reads the page after it)")


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
    parser.add_argument("what", nargs="?", default="sync", choices=["sync", "reruns", "commits", "capacity"])
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--runs-per-day", type=int, default=40)
    parser.add_argument("--integrations", type=int, default=200)
    parser.add_argument("--change-rate", type=float, default=0.05)
    parser.add_argument("--minutes", type=float, default=8)
    args = parser.parse_args()
    if args.what == "sync":
        bench_sync(args.latency)
    elif args.what == "reruns":
        bench_reruns(args.latency, args.runs_per_day)
    elif args.what == "commits":
        bench_first_sync_commits(args.latency)
    else:
        bench_capacity(args.integrations, args.change_rate, args.minutes, args.latency)


if __name__ == "__main__":
    main()
