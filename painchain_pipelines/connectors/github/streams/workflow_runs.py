"""GitHub Actions workflow runs: one event per completed attempt, dated when it completed.

Window: `GET /repos/{r}/actions/runs?created=<range>&status=completed`, the range starting
`Tuning.run_lookback` before the window (runs finishing inside it may have started before).

Live: the runs list, newest first, down to `run_lookback` before the lower bound; runs seen in
progress are kept in `pending_runs` (with their ETag once asked one by one) until they complete;
and the re-run sweep (`rerun_sweep`): runs can be re-run for 30 days after creation and the list
is by creation, so older runs are listed again by created-day slice, every page conditionally.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from typing import Any

from painchain_pipelines.connectors.base import Event, TimeWindow, iso, parse_time
from painchain_pipelines.connectors.github.client import GitHubReader, SourceUnavailable
from painchain_pipelines.connectors.github.streams.base import (
    CONNECTOR,
    LIST_PARAMS,
    FirstPage,
    LiveRead,
    Part,
    Probe,
    Repo,
    Stream,
    login,
    newest,
)

log = logging.getLogger(__name__)

FILTERED_RUNS_CAP = 1000  # GitHub stops filtered workflow-run lists at 1,000 results
CONCLUSION_WORDS = {
    "success": "succeeded",
    "failure": "failed",
    "cancelled": "was cancelled",
    "timed_out": "timed out",
    "action_required": "needs action",
    "neutral": "finished (neutral)",
    "skipped": "was skipped",
    "stale": "went stale",
    "startup_failure": "failed to start",
}


class WorkflowRunsStream(Stream):
    name = "runs"

    # ------------------------------------------------------------------ window sync

    def read_window(self, reader: GitHubReader, repo: Repo, window: TimeWindow) -> Iterator[Part]:
        yield self.name, self._window_runs(reader, repo, window)

    def _window_runs(self, reader: GitHubReader, repo: Repo, window: TimeWindow) -> Iterator[Event]:
        # Runs that finished inside the window may have started before it.
        start = window.start - self.tuning.run_lookback
        for run in self._runs_created_between(reader, repo, start, window.end):
            event = workflow_run_event(repo.name, run)
            if event is not None:
                yield event

    def _runs_created_between(self, reader: GitHubReader, repo: Repo, start: dt.datetime, end: dt.datetime):
        params = {"created": f"{iso(start)}..{iso(end)}", "status": "completed", **LIST_PARAMS}
        first = reader.get(f"{repo.path}/actions/runs", params)
        if first.data.get("total_count", 0) >= FILTERED_RUNS_CAP and end - start > dt.timedelta(minutes=2):
            middle = start + (end - start) / 2
            yield from self._runs_created_between(reader, repo, middle, end)
            yield from self._runs_created_between(reader, repo, start, middle)
            return
        yield from reader.items(f"{repo.path}/actions/runs", params, first=first, list_item="workflow_runs")

    # ------------------------------------------------------------------ live sync

    def first_pages(self, repo: Repo) -> list[FirstPage]:
        return [self._first_page(repo)]

    def _first_page(self, repo: Repo) -> FirstPage:
        return FirstPage(self.name, f"{repo.path}/actions/runs", LIST_PARAMS)

    def live_state(self, repo_state: dict[str, Any]) -> dict[str, Any]:
        return {
            "pending_runs": dict(repo_state.get("pending_runs", {})),  # run id -> ETag (None: not asked yet)
            "rerun_sweep": dict(repo_state.get("rerun_sweep") or {}),  # at, slices: created-day -> page ETags
        }

    def read_live(self, live: LiveRead, state: dict[str, Any]) -> Iterator[Part]:
        due = self._sweep_due(_last_sweep(state), live.now)
        yield self.name, self._live_runs(live, state["pending_runs"], state["rerun_sweep"] if due else None)

    def saved_state(self, state: dict[str, Any]) -> dict[str, Any]:
        return {"pending_runs": newest(state["pending_runs"]), "rerun_sweep": state["rerun_sweep"]}

    def complete_until(self, live: LiveRead, state: dict[str, Any]) -> dt.datetime:
        # Re-runs of older runs are read by the sweep only: complete up to the last one.
        swept_until = _last_sweep(state)
        return min(live.now, swept_until) if swept_until else live.lower

    def _live_runs(self, live: LiveRead, pending: dict, sweep: dict | None) -> Iterator[Event]:
        reader, repo, lower = live.reader, live.repo, live.lower
        oldest = lower - self.tuning.run_lookback
        if sweep is not None:
            yield from self._rerun_sweep(reader, repo, sweep, lower, live.now, oldest, pending)
        page = live.first_page(self._first_page(repo))
        seen: set[str] = set()
        if page is not None:
            for run in reader.items(f"{repo.path}/actions/runs", LIST_PARAMS, first=page,
                                    list_item="workflow_runs"):
                created = parse_time(run.get("created_at"))
                if created is not None and created < oldest:
                    break
                seen.add(str(run["id"]))
                event = _run_change(repo, run, lower, pending)
                if event is not None:
                    yield event
        # Runs we saw in progress that the list no longer shows near the top: ask for each.
        for run_id in [r for r in pending if r not in seen]:
            try:
                run_page = reader.get(f"{repo.path}/actions/runs/{run_id}", etag=pending[run_id])
            except SourceUnavailable:
                pending.pop(run_id, None)  # deleted run
                continue
            if run_page.status == 304:
                continue
            if run_page.data.get("status") == "completed":
                pending.pop(run_id, None)
                yield workflow_run_event(repo.name, run_page.data)
            else:
                pending[run_id] = run_page.etag

    # ------------------------------------------------------------------ re-run sweep

    def _sweep_due(self, last: dt.datetime | None, now: dt.datetime) -> bool:
        """Once per slot of the clock (:00 and :30 by default), not per interval since the last
        sweep: every repository of every integration falls due at the same moment, so sweeps
        come as one live sync per interval (one batch run), not as a trickle of runs. Never
        within half an interval of the last sweep (a first sync at 10:29 waits until 10:45)."""
        interval = self.tuning.rerun_sweep_interval.total_seconds()
        if last is None or interval <= 0:
            return True
        elapsed = (now - last).total_seconds()
        return now.timestamp() // interval > last.timestamp() // interval and elapsed >= interval / 2

    def _rerun_sweep(self, reader: GitHubReader, repo: Repo, sweep: dict, lower: dt.datetime, now: dt.datetime,
                     listed_from: dt.datetime, pending: dict) -> Iterator[Event]:
        """New attempts of the runs created between `rerun_window` ago and `listed_from` (where
        this sync's runs list stops), read by created-day slice, every page with its ETag. A past
        day's list changes only when one of its runs does (a re-run): the other days answer 304,
        which costs no rate limit, and days without runs are never asked again."""
        last = parse_time(sweep.get("at"))
        since = last - self.tuning.overlap if last else lower
        slices: dict[str, list[str]] = sweep.get("slices") or {}
        kept: dict[str, list[str]] = {}
        day = (now - self.tuning.rerun_window).date()
        while day <= listed_from.date():
            hours = [f"{day.isoformat()}T{hour:02d}" for hour in range(24)]
            for key in hours if hours[0] in slices else [day.isoformat()]:
                yield from self._sweep_slice(reader, repo, key, slices.get(key), since, now, listed_from,
                                             pending, kept)
            day += dt.timedelta(days=1)
        # Only now (the sweep went through): a failure above keeps the previous sweep state.
        sweep.clear()
        sweep.update({"at": iso(now), "slices": kept})

    def _sweep_slice(self, reader: GitHubReader, repo: Repo, key: str, etags: list[str] | None,
                     since: dt.datetime, now: dt.datetime, listed_from: dt.datetime, pending: dict,
                     kept: dict[str, list[str]]) -> Iterator[Event]:
        """One slice (`YYYY-MM-DD`, or `YYYY-MM-DDTHH` for days over GitHub's 1,000-result cap)."""
        start = dt.datetime.fromisoformat(key + ("" if "T" in key else "T00")).replace(tzinfo=dt.timezone.utc)
        end = start + (dt.timedelta(hours=1) if "T" in key else dt.timedelta(days=1))
        if etags == [] and end <= now:  # a past slice without runs stays without
            kept[key] = []
            return
        path = f"{repo.path}/actions/runs"
        params = {"created": f"{iso(start)}..{iso(end - dt.timedelta(seconds=1))}", **LIST_PARAMS}
        etags = etags or []
        new_etags: list[str] = []
        number = 1
        while True:
            known = etags[number - 1] if number <= len(etags) else None
            page = reader.get(path, {**params, "page": number}, known)
            if page.status == 304:
                new_etags.append(known)
                if number >= len(etags):
                    break
            else:
                total = page.data.get("total_count", 0)
                if total >= FILTERED_RUNS_CAP:
                    if "T" not in key:
                        for hour in range(24):
                            yield from self._sweep_slice(reader, repo, f"{key}T{hour:02d}", None, since, now,
                                                         listed_from, pending, kept)
                        return
                    log.warning("%s: over %d runs created in the hour %s; re-runs of the others are not seen",
                                repo.name, FILTERED_RUNS_CAP, key)
                if total == 0 and number == 1 and end <= now:
                    break
                new_etags.append(page.etag)
                for run in page.data.get("workflow_runs") or []:
                    created = parse_time(run.get("created_at"))
                    if created is not None and created >= listed_from:
                        continue  # this sync's runs list reads it
                    event = _run_change(repo, run, since, pending)
                    if event is not None:
                        yield event
                if not page.has_next:
                    break
            number += 1
        kept[key] = new_etags

    # ------------------------------------------------------------------ change check

    def pending_probes(self, repo: Repo, repo_state: dict[str, Any]) -> Iterator[Probe]:
        for run_id, etag in repo_state.get("pending_runs", {}).items():
            # Runs without an ETag were seen in the runs list, whose probe covers them.
            if etag:
                yield Probe(f"run {run_id}", f"{repo.path}/actions/runs/{run_id}", {}, etag)

    def due(self, repo_state: dict[str, Any], now: dt.datetime) -> str | None:
        # The live sync makes the sweep, and a sweep that finds nothing costs no rate limit.
        return "re-run sweep due" if self._sweep_due(_last_sweep(repo_state), now) else None


def _last_sweep(state: dict[str, Any] | None) -> dt.datetime | None:
    return parse_time(((state or {}).get("rerun_sweep") or {}).get("at"))


def _run_change(repo: Repo, run: dict, since: dt.datetime, pending: dict) -> Event | None:
    """The event of a listed run that completed at or after `since` (or was awaited); a run in
    progress is remembered in `pending` until it completes."""
    run_id = str(run["id"])
    if run.get("status") != "completed":
        pending.setdefault(run_id, None)
        return None
    was_pending = pending.pop(run_id, "absent") != "absent"
    if was_pending or (parse_time(run.get("updated_at")) or since) >= since:
        return workflow_run_event(repo.name, run)
    return None


# ---------------------------------------------------------------------------- transform


def workflow_run_event(repo: str, run: dict) -> Event | None:
    """Completed runs only; each attempt (re-run) is its own event, dated when it completed."""
    if run.get("status") != "completed":
        return None
    completed_at = parse_time(run.get("updated_at"))
    started_at = parse_time(run.get("run_started_at")) or parse_time(run.get("created_at"))
    attempt = run.get("run_attempt") or 1
    conclusion = run.get("conclusion") or "unknown"
    name = run.get("name") or "workflow"
    suffix = f" (attempt {attempt})" if attempt > 1 else ""
    return Event(
        title=f"Workflow {name} #{run.get('run_number')} {CONCLUSION_WORDS.get(conclusion, conclusion)} "
        f"on {run.get('head_branch')}{suffix}",
        connector=CONNECTOR, project=repo, timestamp=completed_at,
        external_id=f"github:{repo}:run:{run['id']}:attempt:{attempt}",
        data={
            "type": "workflow_run",
            "url": run.get("html_url"),
            "runId": run["id"],
            "runNumber": run.get("run_number"),
            "attempt": attempt,
            "workflow": name,
            "workflowId": run.get("workflow_id"),
            "event": run.get("event"),
            "status": run.get("status"),
            "conclusion": conclusion,
            "sha": run.get("head_sha"),
            "headSha": run.get("head_sha"),
            "branch": run.get("head_branch"),
            "actor": login(run.get("actor")),
            "triggeringActor": login(run.get("triggering_actor")),
            "startedAt": iso(started_at) if started_at else None,
            "completedAt": run.get("updated_at"),
            "durationSeconds": int((completed_at - started_at).total_seconds()) if started_at else None,
        },
    )
