"""Deployments and their status lifecycle: an event when one reaches a final status (success,
failed, canceled), and one when a manual deployment is blocked awaiting approval.

Listed by `updated_after` (GitLab then orders by updated_at); a status change moves updated_at,
so a deployment first seen running (or blocked) is reported again when it ends. A retried deploy
job is a new deployment (new id); a status reached again after a retry of the same deployment
is a new event (the externalId holds the status and, past the first, the time it was reached).
Deployment status changes make no event (not in the events feed): every live sync and change
check asks.
"""

from __future__ import annotations

from painchain_pipelines.connectors.base import Event, parse_time
from painchain_pipelines.connectors.gitlab.streams.base import (
    Project,
    StatusStream,
    short,
    user_name,
)

FINAL = {"success": "succeeded", "failed": "failed", "canceled": "was canceled"}
WAITING = {"blocked": "awaiting approval"}


def deployment_event(project: Project, deployment: dict) -> Event | None:
    status = deployment.get("status")
    if status not in FINAL and status not in WAITING:
        return None
    job = deployment.get("deployable") or {}
    environment = (deployment.get("environment") or {}).get("name")
    deployment_id = deployment["id"]
    updated = parse_time(deployment.get("updated_at")) or parse_time(deployment.get("created_at"))
    if status in FINAL:
        at = parse_time(deployment.get("finished_at")) or updated
    else:
        at = updated
    ref, sha = deployment.get("ref"), deployment.get("sha")
    words = FINAL.get(status) or WAITING[status]
    return project.event(
        title=f"Deployment to {environment} {words} ({ref}@{short(sha)})",
        timestamp=at,
        external_id=project.external_id("deployment", deployment_id, status, int(at.timestamp())),
        data={
            "type": "deployment",
            "url": (f"{project.web_url}/-/environments/{(deployment.get('environment') or {}).get('id')}"
                    if (deployment.get("environment") or {}).get("id") else job.get("web_url") or project.web_url),
            "jobUrl": job.get("web_url"),
            "id": deployment_id,
            "iid": deployment.get("iid"),
            "status": status,
            "final": status in FINAL,
            "environment": environment,
            "ref": ref,
            "sha": sha,
            "shortSha": short(sha),
            "tag": job.get("tag"),
            "jobId": job.get("id"),
            "jobName": job.get("name"),
            "pipelineId": (job.get("pipeline") or {}).get("id"),
            "author": user_name(deployment.get("user")),
            "createdAt": deployment.get("created_at"),
            "updatedAt": deployment.get("updated_at"),
        },
    )


class Deployments(StatusStream):
    name = "deployments"
    noun = "deployment"

    def to_event(self, project: Project, item: dict) -> Event | None:
        return deployment_event(project, item)
