"""Deployments: one event when created, one per final status (success, failure, error).

`GET /repos/{r}/deployments` newest first, down to `Tuning.deployment_lookback` before the lower
bound (a deployment created before it may finish after it), each updated one with its
`.../deployments/{id}/statuses`. Live syncs keep the deployments still without a final status in
`pending_deployments`, with their statuses' ETag, and re-ask those conditionally until final.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from painchain_pipelines.connectors.base import Event, TimeWindow, parse_time
from painchain_pipelines.connectors.github.client import GitHubReader, Page, SourceUnavailable
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
    short_sha,
)

FINAL_DEPLOYMENT_STATES = {"success": "succeeded", "failure": "failed", "error": "errored"}


class DeploymentsStream(Stream):
    name = "deployments"

    def read_window(self, reader: GitHubReader, repo: Repo, window: TimeWindow) -> Iterator[Part]:
        yield self.name, self._deployments(reader, repo, None, window.start, {})

    def first_pages(self, repo: Repo) -> list[FirstPage]:
        return [self._first_page(repo)]

    def _first_page(self, repo: Repo) -> FirstPage:
        return FirstPage(self.name, f"{repo.path}/deployments", LIST_PARAMS)

    def live_state(self, repo_state: dict[str, Any]) -> dict[str, Any]:
        # deployment id -> ETag of its statuses
        return {"pending_deployments": dict(repo_state.get("pending_deployments", {}))}

    def read_live(self, live: LiveRead, state: dict[str, Any]) -> Iterator[Part]:
        yield self.name, self._live_deployments(live, state["pending_deployments"])

    def saved_state(self, state: dict[str, Any]) -> dict[str, Any]:
        return {"pending_deployments": newest(state["pending_deployments"])}

    def pending_probes(self, repo: Repo, repo_state: dict[str, Any]) -> Iterator[Probe]:
        for deployment_id, etag in repo_state.get("pending_deployments", {}).items():
            yield Probe(f"deployment {deployment_id}", _statuses_path(repo, deployment_id), LIST_PARAMS, etag)

    def _live_deployments(self, live: LiveRead, pending: dict) -> Iterator[Event]:
        reader, repo = live.reader, live.repo
        known_pending = set(pending)
        handled: set[str] = set()
        page = live.first_page(self._first_page(repo))
        if page is not None:
            yield from self._deployments(reader, repo, page, live.lower, pending, handled)
        # Deployments still in progress: their statuses, conditionally (a 304 is free).
        for deployment_id, etag in list(pending.items()):
            if deployment_id not in known_pending or deployment_id in handled:
                continue  # already read in this sync
            try:
                statuses_page = reader.get(_statuses_path(repo, deployment_id), LIST_PARAMS, etag=etag)
                if statuses_page.status == 304:
                    continue
                deployment = reader.get(f"{repo.path}/deployments/{deployment_id}").data
            except SourceUnavailable:
                pending.pop(deployment_id, None)
                continue
            pending.pop(deployment_id, None)
            yield from self._deployment_statuses(reader, repo, deployment, statuses_page,
                                                 dt.datetime.min.replace(tzinfo=dt.timezone.utc), pending)

    def _deployments(self, reader: GitHubReader, repo: Repo, first: Page | None, lower: dt.datetime,
                     pending: dict[str, str | None], handled: set[str] | None = None) -> Iterator[Event]:
        """Deployment created events and final statuses at or after `lower`. `pending` (live
        syncs) collects deployments still without a final status, with their statuses' ETag;
        `handled` the ids whose statuses were read."""
        oldest = lower - self.tuning.deployment_lookback
        for deployment in reader.items(f"{repo.path}/deployments", LIST_PARAMS, first=first):
            created = parse_time(deployment.get("created_at"))
            if created is not None and created < oldest:
                break
            updated = parse_time(deployment.get("updated_at")) or created
            if created is not None and created >= lower:
                yield deployment_created_event(repo.name, repo.html_url, deployment)
            if (updated and updated >= lower) or str(deployment["id"]) in pending:
                pending.pop(str(deployment["id"]), None)
                if handled is not None:
                    handled.add(str(deployment["id"]))
                yield from self._deployment_statuses(reader, repo, deployment, None, lower, pending)

    @staticmethod
    def _deployment_statuses(reader: GitHubReader, repo: Repo, deployment: dict, first: Page | None,
                             lower: dt.datetime, pending: dict[str, str | None]) -> Iterator[Event]:
        path = _statuses_path(repo, deployment["id"])
        if first is None:
            first = reader.get(path, LIST_PARAMS)
        statuses = list(reader.items(path, LIST_PARAMS, first=first))
        for status in statuses:
            at = parse_time(status.get("created_at"))
            event = deployment_status_event(repo.name, repo.html_url, deployment, status)
            if event is not None and at is not None and at >= lower:
                yield event
        latest = statuses[0].get("state") if statuses else None  # newest first
        if latest not in (*FINAL_DEPLOYMENT_STATES, "inactive"):
            pending[str(deployment["id"])] = first.etag


def _statuses_path(repo: Repo, deployment_id: Any) -> str:
    return f"{repo.path}/deployments/{deployment_id}/statuses"


# ---------------------------------------------------------------------------- transform


def _deployment_data(repo: str, repo_url: str, deployment: dict) -> dict:
    return {
        "type": "deployment",
        # GitHub has no page per deployment; the environment's deployments page is the closest.
        # `repo_url` is the repository's html_url, right for github.com and Enterprise alike.
        "url": f"{repo_url}/deployments/{quote(str(deployment.get('environment')), safe='')}",
        "deploymentId": deployment["id"],
        "environment": deployment.get("environment"),
        "ref": deployment.get("ref"),
        "sha": deployment.get("sha"),
        "task": deployment.get("task"),
        "description": deployment.get("description"),
        "creator": login(deployment.get("creator")),
        "createdAt": deployment.get("created_at"),
    }


def deployment_created_event(repo: str, repo_url: str, deployment: dict) -> Event:
    created_at = parse_time(deployment.get("created_at"))
    return Event(
        title=f"Deployment to {deployment.get('environment')} started "
        f"({deployment.get('ref')} @ {short_sha(deployment.get('sha'))})",
        connector=CONNECTOR, project=repo, timestamp=created_at,
        external_id=f"github:{repo}:deployment:{deployment['id']}:created",
        data={**_deployment_data(repo, repo_url, deployment), "state": "created"},
    )


def deployment_status_event(repo: str, repo_url: str, deployment: dict, status: dict) -> Event | None:
    """Final states only (success / failure / error); in-progress ones wait for their outcome."""
    state = status.get("state")
    if state not in FINAL_DEPLOYMENT_STATES:
        return None
    at = parse_time(status.get("created_at"))
    data = _deployment_data(repo, repo_url, deployment)
    data.update({
        "state": state,
        "statusId": status["id"],
        "statusDescription": status.get("description"),
        "statusCreator": login(status.get("creator")),
        "environmentUrl": status.get("environment_url") or None,
        "logUrl": status.get("log_url") or status.get("target_url") or None,
        "finishedAt": status.get("created_at"),
    })
    if data["logUrl"]:
        data["url"] = data["logUrl"]
    created = parse_time(deployment.get("created_at"))
    if created and at:
        data["durationSeconds"] = int((at - created).total_seconds())
    return Event(
        title=f"Deployment to {deployment.get('environment')} {FINAL_DEPLOYMENT_STATES[state]} "
        f"({deployment.get('ref')} @ {short_sha(deployment.get('sha'))})",
        connector=CONNECTOR, project=repo, timestamp=at,
        external_id=f"github:{repo}:deployment:{deployment['id']}:status:{status['id']}",
        data=data,
    )
