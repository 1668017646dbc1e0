"""The Dagster instance's tick history: every test that runs the daemon asserts none failed."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import dagster as dg
from dagster._core.scheduler.instigation import TickStatus


def tick_history(dagster_home: Path) -> dict[str, Counter]:
    """sensor/schedule name -> how many of its ticks ended in each status (SUCCESS, SKIPPED, FAILURE)."""
    history: dict[str, Counter] = {}
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        for state in instance.all_instigator_state():
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=100_000)
            history[state.instigator_name] = Counter(t.status.value for t in ticks)
    return history


def failed_ticks(dagster_home: Path) -> list[str]:
    """'<name>: <error>' for every tick that ended in an error."""
    failures = []
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        for state in instance.all_instigator_state():
            for tick in instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=100_000,
                                           statuses=[TickStatus.FAILURE]):
                error = tick.error.message.strip() if tick.error else "no error recorded"
                failures.append(f"{state.instigator_name}: {error}")
    return failures


def assert_no_failed_ticks(dagster_home: Path, ticked: tuple[str, ...] = ("github_integrations_sensor",)) -> dict:
    """No tick failed, and the named sensors did tick (so this check can fail at all)."""
    failures = failed_ticks(dagster_home)
    assert not failures, "Dagster ticks ended in an error:\n" + "\n".join(failures)
    history = tick_history(dagster_home)
    for name in ticked:
        assert sum(history.get(name, Counter()).values()) >= 1, f"{name} never ticked: {history}"
    return history
