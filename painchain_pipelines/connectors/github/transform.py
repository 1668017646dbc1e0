"""GitHub API items (JSON dicts) → PainChain events. Pure functions: easy to read and test.

External ids are stable per change and state: github:<repo>:<kind>:<id>[:<state>]. Every event's
`data` has `url` (the page to open), the identifiers of the object and, where there is one, the
commit `sha` it concerns, which is what links a PR to its CI runs and deployments.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote

from painchain_pipelines.connectors.base import Event, iso
from painchain_pipelines.connectors.github.client import parse_ts

CONNECTOR = "github"
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
FINAL_DEPLOYMENT_STATES = {"success": "succeeded", "failure": "failed", "error": "errored"}


def _login(user: Any) -> str | None:
    return user.get("login") if isinstance(user, dict) else None


def _short(sha: str | None) -> str:
    return (sha or "")[:7]


def _subject(message: str | None) -> str:
    return (message or "").strip().splitlines()[0][:200] if message and message.strip() else "(no message)"


def commit_event(repo: str, branch: str, item: dict) -> Event:
    commit = item.get("commit") or {}
    committer, author = commit.get("committer") or {}, commit.get("author") or {}
    when = parse_ts(committer.get("date")) or parse_ts(author.get("date"))
    sha = item["sha"]
    return Event(
        title=f"Commit to {branch}: {_subject(commit.get('message'))}",
        connector=CONNECTOR,
        project=repo,
        timestamp=when,
        external_id=f"github:{repo}:commit:{sha}",
        data={
            "type": "commit",
            "url": item.get("html_url"),
            "sha": sha,
            "shortSha": _short(sha),
            "branch": branch,
            "message": (commit.get("message") or "")[:4000],
            "author": _login(item.get("author")) or author.get("name"),
            "authorName": author.get("name"),
            "committer": _login(item.get("committer")) or committer.get("name"),
            "authoredAt": author.get("date"),
            "committedAt": committer.get("date"),
            "parents": [p.get("sha") for p in item.get("parents") or []],
        },
    )


def pull_request_events(repo: str, pr: dict) -> list[tuple[dt.datetime, Event]]:
    """The PR's opened / merged / closed changes, each with the moment it happened."""
    number = pr["number"]
    head, base = pr.get("head") or {}, pr.get("base") or {}
    merged_at = parse_ts(pr.get("merged_at"))
    closed_at = parse_ts(pr.get("closed_at"))
    merge_sha = pr.get("merge_commit_sha")
    common = {
        "type": "pull_request",
        "url": pr.get("html_url"),
        "number": number,
        "prTitle": pr.get("title"),
        "author": _login(pr.get("user")),
        "headRef": head.get("ref"),
        "baseRef": base.get("ref"),
        "headSha": head.get("sha"),
        "draft": bool(pr.get("draft")),
        "createdAt": pr.get("created_at"),
    }
    changes = []
    created_at = parse_ts(pr.get("created_at"))
    if created_at:
        changes.append((created_at, Event(
            title=f"PR #{number} opened: {pr.get('title')}",
            connector=CONNECTOR, project=repo, timestamp=created_at,
            external_id=f"github:{repo}:pr:{number}:opened",
            data={**common, "action": "opened", "sha": head.get("sha")},
        )))
    if merged_at:
        changes.append((merged_at, Event(
            title=f"PR #{number} merged into {base.get('ref')}: {pr.get('title')}",
            connector=CONNECTOR, project=repo, timestamp=merged_at,
            external_id=f"github:{repo}:pr:{number}:merged",
            data={**common, "action": "merged", "sha": merge_sha or head.get("sha"),
                  "mergeCommitSha": merge_sha, "mergedAt": pr.get("merged_at")},
        )))
    elif closed_at and pr.get("state") == "closed":
        # A PR can be closed, reopened and closed again: each closing is its own change.
        changes.append((closed_at, Event(
            title=f"PR #{number} closed without merging: {pr.get('title')}",
            connector=CONNECTOR, project=repo, timestamp=closed_at,
            external_id=f"github:{repo}:pr:{number}:closed:{int(closed_at.timestamp())}",
            data={**common, "action": "closed", "sha": head.get("sha"), "closedAt": pr.get("closed_at")},
        )))
    return changes


def release_event(repo: str, release: dict) -> Event | None:
    published_at = parse_ts(release.get("published_at"))
    if release.get("draft") or published_at is None:
        return None
    label = release.get("name") or release.get("tag_name")
    kind = "Pre-release" if release.get("prerelease") else "Release"
    return Event(
        title=f"{kind} {label} published",
        connector=CONNECTOR, project=repo, timestamp=published_at,
        external_id=f"github:{repo}:release:{release['id']}",
        data={
            "type": "release",
            "url": release.get("html_url"),
            "releaseId": release["id"],
            "tag": release.get("tag_name"),
            "name": release.get("name"),
            "prerelease": bool(release.get("prerelease")),
            "author": _login(release.get("author")),
            "targetCommitish": release.get("target_commitish"),
            "publishedAt": release.get("published_at"),
        },
    )


def workflow_run_event(repo: str, run: dict) -> Event | None:
    """Completed runs only; each attempt (re-run) is its own event, dated when it completed."""
    if run.get("status") != "completed":
        return None
    completed_at = parse_ts(run.get("updated_at"))
    started_at = parse_ts(run.get("run_started_at")) or parse_ts(run.get("created_at"))
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
            "actor": _login(run.get("actor")),
            "triggeringActor": _login(run.get("triggering_actor")),
            "startedAt": iso(started_at) if started_at else None,
            "completedAt": run.get("updated_at"),
            "durationSeconds": int((completed_at - started_at).total_seconds()) if started_at else None,
        },
    )


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
        "creator": _login(deployment.get("creator")),
        "createdAt": deployment.get("created_at"),
    }


def deployment_created_event(repo: str, repo_url: str, deployment: dict) -> Event:
    created_at = parse_ts(deployment.get("created_at"))
    return Event(
        title=f"Deployment to {deployment.get('environment')} started "
        f"({deployment.get('ref')} @ {_short(deployment.get('sha'))})",
        connector=CONNECTOR, project=repo, timestamp=created_at,
        external_id=f"github:{repo}:deployment:{deployment['id']}:created",
        data={**_deployment_data(repo, repo_url, deployment), "state": "created"},
    )


def deployment_status_event(repo: str, repo_url: str, deployment: dict, status: dict) -> Event | None:
    """Final states only (success / failure / error); in-progress ones wait for their outcome."""
    state = status.get("state")
    if state not in FINAL_DEPLOYMENT_STATES:
        return None
    at = parse_ts(status.get("created_at"))
    data = _deployment_data(repo, repo_url, deployment)
    data.update({
        "state": state,
        "statusId": status["id"],
        "statusDescription": status.get("description"),
        "statusCreator": _login(status.get("creator")),
        "environmentUrl": status.get("environment_url") or None,
        "logUrl": status.get("log_url") or status.get("target_url") or None,
        "finishedAt": status.get("created_at"),
    })
    if data["logUrl"]:
        data["url"] = data["logUrl"]
    created = parse_ts(deployment.get("created_at"))
    if created and at:
        data["durationSeconds"] = int((at - created).total_seconds())
    return Event(
        title=f"Deployment to {deployment.get('environment')} {FINAL_DEPLOYMENT_STATES[state]} "
        f"({deployment.get('ref')} @ {_short(deployment.get('sha'))})",
        connector=CONNECTOR, project=repo, timestamp=at,
        external_id=f"github:{repo}:deployment:{deployment['id']}:status:{status['id']}",
        data=data,
    )
