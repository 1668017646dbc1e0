"""GitLab connector figures against the fake GitLab API (a real socket), with network latency.

    python -m bench.gitlab_sync [--latency 0 0.05] [--seed 7]

The world is `build_bench_world` (tests/fakes/gitlab_world.py): 20 projects in nested groups,
90 days of history (~12,000 commits of which ~10% reach the branch an hour or more after their
date, ~3,000 MRs, ~4,900 pipelines, ~800 deployments, ~200 releases, ~270 tags). The connector
is called directly (no backend, no Dagster) with an in-memory sink:

  initial   first live sync, look-back covering the whole history
  idle      the same live sync again, nothing changed (and the change check before it)
  +1 day    `advance_bench_world(days=1)`: a day of activity, late pushes landing, running
            pipelines finishing, blocked deployments approved; then one live sync

Every request the fake received is counted (a 304 would count too: on GitLab it does). Recall
is checked against the world: every commit of the followed branches, every MR transition, the
final status of every finished pipeline and deployment, every release and tag.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import time
from collections import Counter

from bench._support import machine
from painchain_pipelines.connectors.base import Integration
from painchain_pipelines.connectors.gitlab import GitLabConnector
from painchain_pipelines.connectors.gitlab.client import ClientTuning
from painchain_pipelines.connectors.gitlab.streams.base import Tuning
from tests.fakes.gitlab_server import FakeGitLab
from tests.fakes.gitlab_world import BENCH_PROJECTS, advance_bench_world, build_bench_world

TOKEN = "glpat-bench-token"
NOW = dt.datetime(2026, 11, 2, 12, tzinfo=dt.timezone.utc)
LOOKBACK = dt.timedelta(days=92)
BRANCHES = ["release"]
TARGETS = {"initial": 350, "idle": 45, "+1 day": 80}
REFERENCES = {"Airbyte source-gitlab": (513, 156, 159), "Meltano tap-gitlab": (1051, 122, 131)}
KINDS = [
    ("projects list", r"^/api/v4/projects$"),
    ("commits", r"/repository/commits$"),
    ("compare", r"/repository/compare$"),
    ("branches", r"/repository/branches$"),
    ("merge requests", r"/merge_requests$"),
    ("tags", r"/repository/tags$"),
    ("releases", r"/releases$"),
    ("pipelines", r"/pipelines$"),
    ("deployments", r"/deployments$"),
    ("events", r"/events$"),
    ("project (GET)", r"^/api/v4/projects/[^/]+(/[^/]+/[^/]+)*$"),
]


def integration(fake: FakeGitLab) -> Integration:
    config = {"name": "bench", "tags": [], "token": TOKEN, "projects": list(BENCH_PROJECTS), "url": fake.url,
              "branches": BRANCHES}
    return Integration(id="bench", name="bench", type="gitlab", config=config, tenant_id=None)


def breakdown(fake: FakeGitLab) -> Counter:
    kinds: Counter = Counter()
    for request in fake.requests:
        for kind, pattern in KINDS:
            if re.search(pattern, request.path):
                kinds[kind] += 1
                break
        else:
            kinds["other"] += 1
    return kinds


def _ts(moment: dt.datetime) -> int:
    return int(moment.timestamp())


def expected_ids(world) -> set[str]:
    """What a complete ingestion holds once the world is at its `now`: current, final states."""
    now = world.now
    out: set[str] = set()
    for p in world.projects.values():
        pid = p.id
        for name in (p.default_branch, *BRANCHES):
            branch = p.branches.get(name)
            for entry in branch.entries if branch else ():
                if now - entry[2].committed_date <= LOOKBACK:
                    out.add(f"gitlab:{pid}:commit:{entry[2].sha}")
        for mr in p.merge_requests:
            if mr.created_at > now:
                continue
            out.add(f"gitlab:{pid}:mr:{mr.iid}:opened")
            if mr.state == "merged":
                out.add(f"gitlab:{pid}:mr:{mr.iid}:merged")
            elif mr.state == "closed":
                out.add(f"gitlab:{pid}:mr:{mr.iid}:closed:{_ts(mr.closed_at)}")
        for pl in p.pipelines:
            if pl.created_at <= now and pl.status in ("success", "failed", "canceled"):
                out.add(f"gitlab:{pid}:pipeline:{pl.id}:{pl.status}:{_ts(pl.updated_at)}")
        for d in p.deployments:
            if d.created_at > now:
                continue
            if d.status in ("success", "failed", "canceled"):
                out.add(f"gitlab:{pid}:deployment:{d.id}:{d.status}:{_ts(d.finished_at or d.updated_at)}")
            elif d.status == "blocked":
                out.add(f"gitlab:{pid}:deployment:{d.id}:blocked:{_ts(d.updated_at)}")
        for tag in p.tags.values():
            if tag.created_at <= now:
                out.add(f"gitlab:{pid}:tag:{tag.name}")
        for release in p.releases.values():
            if release.created_at <= now:
                out.add(f"gitlab:{pid}:release:{release.tag_name}")
    return out


def late_pushes(world) -> set[str]:
    return {f"gitlab:{p.id}:commit:{e[2].sha}" for p in world.projects.values()
            for e in p.branches[p.default_branch].entries if e[0] - e[2].committed_date >= dt.timedelta(hours=1)}


def run(latency: float, seed: int, tuning: Tuning | None = None, label: str = "") -> dict:
    world = build_bench_world(seed=seed, now=NOW)
    counts = world.counts()
    connector = GitLabConnector(tuning, ClientTuning())
    rows = {}
    seen: dict[str, object] = {}
    duplicates = 0
    with FakeGitLab(world, token=TOKEN, latency_s=latency, rate_limit_per_minute=None) as fake:
        target = integration(fake)

        def step(name: str, state):
            nonlocal duplicates
            fake.reset_requests()
            events: list = []
            started = time.perf_counter()
            result = connector.live_sync(target, state, events.append, LOOKBACK)
            wall = time.perf_counter() - started
            for event in events:
                duplicates += event.external_id in seen
                seen[event.external_id] = event
            assert result.stats.api_requests == len(fake.requests), (result.stats.api_requests, len(fake.requests))
            rows[name] = {"requests": len(fake.requests), "events": len(events), "wall": wall,
                          "kinds": breakdown(fake), "failed": dict(result.stats.failed_sources)}
            return result.state

        state = step("initial", None)
        expected = expected_ids(world)
        missing_initial = expected - set(seen)
        fake.reset_requests()
        started = time.perf_counter()
        check = connector.detect_changes(target, state)
        rows["probe"] = {"requests": len(fake.requests), "changed": check.changed, "reason": check.reason,
                         "wall": time.perf_counter() - started}
        state = step("idle", state)
        advance_bench_world(world, days=1, seed=seed + 1)
        fake.reset_requests()
        check = connector.detect_changes(target, state)
        rows["probe +1 day"] = {"requests": len(fake.requests), "changed": check.changed, "reason": check.reason}
        state = step("+1 day", state)
        expected_day = expected_ids(world)
        missing = expected_day - set(seen)
        late = late_pushes(world)
    return {"label": label, "latency": latency, "counts": counts, "rows": rows, "expected": len(expected_day),
            "missing_initial": len(missing_initial), "missing": sorted(missing)[:10], "missing_n": len(missing),
            "recall": 1 - len(missing) / len(expected_day), "late": len(late), "late_found": len(late & set(seen)),
            "duplicates": duplicates}


def report(result: dict) -> None:
    rows = result["rows"]
    print(f"## {result['label'] or 'default tuning'} — {result['latency'] * 1000:.0f} ms per request")
    print(f"{'sync':10s} {'requests':>8s} {'target':>7s} {'events':>7s} {'wall s':>7s}   breakdown")
    for name in ("initial", "idle", "+1 day"):
        row = rows[name]
        kinds = ", ".join(f"{k} {v}" for k, v in row["kinds"].most_common())
        print(f"{name:10s} {row['requests']:8d} {'≤' + str(TARGETS[name]):>7s} {row['events']:7d} {row['wall']:7.2f}   {kinds}")
    for name in ("probe", "probe +1 day"):
        row = rows[name]
        print(f"{name:12s} {row['requests']:6d} requests, changed={row['changed']} ({row['reason']})")
    print(f"recall {result['recall']:.4f} ({result['expected'] - result['missing_n']:,}/{result['expected']:,} expected "
          f"events after +1 day; missing after the initial sync alone: {result['missing_initial']}); "
          f"late pushes found {result['late_found']:,}/{result['late']:,}; duplicate emissions {result['duplicates']}")
    if result["missing_n"]:
        print("  missing e.g.", result["missing"])
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, nargs="+", default=[0.0, 0.05])
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    first = None
    for latency in args.latency:
        result = run(latency, args.seed)
        if first is None:
            first = result
            print(f"# GitLab connector — {machine()}, fake GitLab, bench world seed {args.seed}")
            print("world:", ", ".join(f"{k} {v:,}" for k, v in result["counts"].items() if k != "pending_callbacks"))
            print("references (initial / idle / +1 day):",
                  "; ".join(f"{k} {a:,}/{b}/{c}" for k, (a, b, c) in REFERENCES.items()))
            print()
        report(result)


if __name__ == "__main__":
    main()
