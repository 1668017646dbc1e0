"""Dagster's DefaultRunLauncher plus a health check of the run worker, for run monitoring.

With the DefaultRunLauncher a run is a process of the code server, and Dagster 1.13 has no
health check for it (`supports_check_run_worker_health` is False): when the code server goes
down with its runs (`painchain up` stopped or killed during a long run, a crash), nothing ever
marks those runs failed and they stay STARTED for good, holding their integration. This
launcher lets the monitoring daemon (`run_monitoring` in dagster.yaml) ask whether the run's
worker process is still alive; when it is not, the run is marked failed and `run_retries`
launches it again.

Only runs launched on a code server of this machine are checked (the daemon sees their
processes); any other run is reported as running, Dagster's default behaviour.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from dagster import (
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultRunLauncher,
)
from dagster._core.events import JobFailureData, RunFailureReason
from dagster._core.execution.retries import auto_reexecution_should_retry_run
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._core.storage.tags import GRPC_INFO_TAG, WILL_RETRY_TAG

# A process that started this long after the run's RUN_START event cannot be the process that
# emitted it: its pid was reused. (Start times read here are precise to about a second.)
PID_REUSE_SLACK_S = 5.0


class LocalRunLauncher(DefaultRunLauncher):
    """DefaultRunLauncher whose run workers run monitoring can check (same machine only)."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        if not _launched_here(run):
            return CheckRunHealthResult(WorkerStatus.RUNNING, "not launched on a code server of this machine")
        records = self._instance.get_records_for_run(run.run_id, of_type=DagsterEventType.RUN_START, limit=1).records
        event = records[0].event_log_entry if records else None
        pid = event.dagster_event.pid if event and event.dagster_event else None
        if pid is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no RUN_START event with a process id yet")
        alive = process_alive_since(pid, event.timestamp)
        if alive is False:
            message = f"the run worker process (pid {pid}) is gone"
            mark_failed(self._instance, run, f"Run failed: {message} (killed, or stopped with its code server).")
            return CheckRunHealthResult(WorkerStatus.FAILED, message)
        return CheckRunHealthResult(WorkerStatus.RUNNING, f"run worker pid {pid}" + ("" if alive else " (unverified)"))


def mark_failed(instance: DagsterInstance, run: DagsterRun, message: str) -> None:
    """`instance.report_run_failed`, in an order neither run_retries nor a backfill can misread.

    Dagster stores the RUN_FAILURE event, then the run's FAILURE status, then its
    `dagster/will_retry` tag. Its retry daemon reads the run when it sees the event and skips it
    for good if it is still STARTED; the backfill daemon, seeing it FAILURE without the tag,
    ends the backfill as failed, and the retry is then refused (both seen here when the daemons
    started together). So the retry decision is tagged first, then the status, then the event
    (the monitoring loop then sees the status changed and leaves the run alone)."""
    reason = RunFailureReason.UNEXPECTED_TERMINATION
    event = DagsterEvent(event_type_value=DagsterEventType.RUN_FAILURE.value, job_name=run.job_name, message=message,
                         event_specific_data=JobFailureData(error=None, failure_reason=reason))
    if instance.run_retries_enabled:
        will_retry = auto_reexecution_should_retry_run(instance, run.with_status(DagsterRunStatus.FAILURE), reason)
        instance.add_run_tags(run.run_id, {WILL_RETRY_TAG: str(will_retry).lower()})
    instance.run_storage.handle_run_event(run.run_id, event)
    instance.report_dagster_event(event, run_id=run.run_id, log_level=logging.ERROR)


def _launched_here(run: DagsterRun) -> bool:
    try:
        host = json.loads(run.tags[GRPC_INFO_TAG]).get("host") or ""
    except (KeyError, ValueError, AttributeError):
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def process_alive_since(pid: int, started_by: float) -> bool | None:
    """Whether process `pid` exists, is not a zombie, and started by `started_by` (epoch
    seconds, give or take PID_REUSE_SLACK_S); None when this cannot be told."""
    state = _process_state(pid)
    if state is None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except OSError:  # exists, owned by someone else
            return None
        return None
    if state == "gone":
        return False
    code, started_at = state
    return not code.startswith("Z") and started_at <= started_by + PID_REUSE_SLACK_S


def _process_state(pid: int) -> tuple[str, float] | str | None:
    """(state code, start time in epoch seconds), "gone", or None when unknown."""
    if sys.platform.startswith("linux"):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return "gone"
        except OSError:
            return None
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (command) "
        try:
            boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                        if line.startswith("btime "))
        except (OSError, StopIteration, ValueError):
            return None
        return fields[0], boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    try:  # macOS, BSDs: elapsed time as [[dd-]hh:]mm:ss
        out = subprocess.run(["ps", "-o", "stat=,etime=", "-p", str(pid)], capture_output=True, text=True,
                             timeout=10, env={**os.environ, "LC_ALL": "C"})
    except (OSError, subprocess.SubprocessError):
        return None
    if not out.stdout.strip():
        return "gone" if out.returncode == 1 else None
    code, elapsed = out.stdout.split()[:2]
    days, _, clock = elapsed.rpartition("-")
    seconds = 0
    for part in clock.split(":"):
        seconds = seconds * 60 + int(part)
    return code, time.time() - seconds - int(days or 0) * 86400
