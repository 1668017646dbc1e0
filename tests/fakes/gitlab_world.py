"""The world behind the fake GitLab (``tests.fakes.gitlab_server.FakeGitLab``).

A world holds groups, projects, commits (with push times), merge requests, pipelines,
deployments, releases, tags and project events, and a world clock.  Everything that happens
at a time later than ``world.now`` is scheduled and happens when the clock passes it::

    world = GitLabWorld(now=datetime(2026, 11, 2, 12, tzinfo=timezone.utc))
    p = world.add_project("acme/platform/api")
    c = p.add_commit(committed_date=..., pushed_at=...)   # late push: invisible until pushed_at
    world.advance(timedelta(hours=1))

Payloads are copies of recorded / documented GitLab objects (``tests/fixtures/gitlab``, see
SOURCES.md there) with ids, dates, users, SHAs and URLs substituted.

``build_bench_world(seed, now)`` builds the benchmark world (20 projects, 90 days);
``advance_bench_world(world, days, seed)`` simulates more days of the same activity.
"""

from __future__ import annotations

import bisect
import copy
import functools
import hashlib
import heapq
import itertools
import json
import random
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

__all__ = [
    "GitLabWorld", "Project", "Group", "Commit", "MergeRequest", "Pipeline", "Deployment", "Release",
    "Tag", "Event", "User", "build_bench_world", "advance_bench_world", "FIXTURES_DIR", "iso", "git_iso",
]

UTC = timezone.utc
FIXTURES_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "gitlab"
# Event::RESET_PROJECT_ACTIVITY_INTERVAL: last_activity_at only moves when older than this
RESET_PROJECT_ACTIVITY_INTERVAL = timedelta(hours=1)

PIPELINE_STATUSES = ("created", "waiting_for_resource", "preparing", "pending", "running", "success",
                     "failed", "canceled", "skipped", "manual", "scheduled")
PIPELINE_FINISHED = {"success", "failed", "canceled", "skipped"}
DEPLOYMENT_STATUSES = ("created", "running", "success", "failed", "canceled", "skipped", "blocked")
DEPLOYMENT_FINISHED = {"success", "failed", "canceled"}
DEPLOYABLE_STATUS = {"created": "created", "running": "running", "success": "success", "failed": "failed",
                     "canceled": "canceled", "skipped": "skipped", "blocked": "manual"}


# --------------------------------------------------------------------------------------------
# time helpers


def _utc(dt: datetime) -> datetime:
    if not isinstance(dt, datetime):
        raise TypeError(f"expected datetime, got {dt!r}")
    if dt.tzinfo is None:
        raise ValueError(f"naive datetime not allowed (use timezone.utc): {dt!r}")
    dt = dt.astimezone(UTC)
    return dt.replace(microsecond=dt.microsecond // 1000 * 1000)  # GitLab: millisecond resolution


def iso(dt: datetime | None) -> str | None:
    """GitLab's API timestamps: ``2026-11-02T12:00:00.000Z``."""
    if dt is None:
        return None
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _tz(offset: str | timezone | None) -> timezone:
    if offset is None:
        return UTC
    if isinstance(offset, timezone):
        return offset
    s = offset.strip()
    if s in ("Z", "z"):
        return UTC
    sign = -1 if s[0] == "-" else 1
    hh, _, mm = s.lstrip("+-").partition(":")
    if not mm and len(hh) == 4:
        hh, mm = hh[:2], hh[2:]
    return timezone(sign * timedelta(hours=int(hh), minutes=int(mm or 0)))


def git_iso(dt: datetime, tz: timezone) -> str:
    """Git dates as GitLab shows them, in the committer's offset: ``2026-11-01T10:00:00.000+02:00``."""
    d = dt.astimezone(tz)
    off = d.strftime("%z")
    return d.strftime("%Y-%m-%dT%H:%M:%S.000") + off[:3] + ":" + off[3:]


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# templates


class _Templates:
    def __init__(self, root: Path = FIXTURES_DIR):
        def load(rel: str) -> Any:
            return json.loads((root / rel).read_text(encoding="utf-8"))

        def load_http(rel: str) -> Any:  # danger: raw HTTP response files
            text = (root / rel).read_text(encoding="utf-8")
            return json.loads(text.split("\n\n", 1)[1] if "\n\n" in text else text.split("\r\n\r\n", 1)[1])

        self.commit: dict = load("gitlab-docs/commits.md.list-repository-commits.json")[0]
        self.commit_full: dict = load("go-gitlab/get_commit.json")
        self.mr: dict = load("go-gitlab/get_merge_requests.json")[0]
        self.mr_single: dict = load_http("danger/merge_request_1_response.json")
        self.pipeline: dict = load("gitlab-docs/pipelines.md.list-project-pipelines.json")[0]
        self.pipeline_full: dict = load("gitlab-docs/pipelines.md.get-a-single-pipeline.json")
        self.deployment: dict = load("gitlab-docs/deployments.md.list-project-deployments.json")[0]
        self.user: dict = self.pipeline_full["user"]  # id, username, name, state, avatar_url, web_url


@functools.cache
def templates() -> _Templates:
    """The fixture payloads, read once."""
    return _Templates()


def _fill(template: dict, values: dict) -> dict:
    """Template key order and field set, values substituted; keys absent from the template appended."""
    out = {}
    for k in template:
        out[k] = values[k] if k in values else copy.deepcopy(template[k])
    for k, v in values.items():
        if k not in out:
            out[k] = v
    return out


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


# --------------------------------------------------------------------------------------------
# model


class User:
    def __init__(self, world: "GitLabWorld", uid: int, username: str, name: str):
        self.world = world
        self.id = uid
        self.username = username
        self.name = name
        self.email = f"{username}@example.com"
        self.created_at = datetime(2020, 1, 6, 9, tzinfo=UTC)

    def to_json(self) -> dict:
        t = templates().user
        return _fill(t, {
            "id": self.id, "username": self.username, "name": self.name, "state": "active", "locked": False,
            "avatar_url": f"https://secure.gravatar.com/avatar/{_sha(self.email)[:32]}?s=80&d=identicon",
            "web_url": f"{self.world.web_url}/{self.username}",
        })


class Group:
    def __init__(self, world: "GitLabWorld", gid: int, full_path: str, parent: "Group | None"):
        self.world = world
        self.id = gid
        self.full_path = full_path
        self.path = full_path.rsplit("/", 1)[-1]
        self.name = self.path.replace("-", " ").title()
        self.parent = parent
        self.created_at = world.now - timedelta(days=900)
        self.web_url = f"{world.web_url}/groups/{full_path}"

    @property
    def full_name(self) -> str:
        return " / ".join(g.name for g in self.ancestry())

    def ancestry(self) -> list["Group"]:
        out, g = [], self
        while g is not None:
            out.append(g)
            g = g.parent
        return out[::-1]

    def is_descendant_of(self, other: "Group") -> bool:
        return other in self.ancestry()

    def namespace_json(self) -> dict:
        return {"id": self.id, "name": self.name, "path": self.path, "kind": "group", "full_path": self.full_path,
                "parent_id": self.parent.id if self.parent else None, "avatar_url": None, "web_url": self.web_url}

    def to_json(self) -> dict:
        return {"id": self.id, "web_url": self.web_url, "name": self.name, "path": self.path, "description": "",
                "visibility": "private", "share_with_group_lock": False, "require_two_factor_authentication": False,
                "two_factor_grace_period": 48, "project_creation_level": "developer", "auto_devops_enabled": None,
                "subgroup_creation_level": "maintainer", "emails_disabled": False, "emails_enabled": True,
                "mentions_disabled": None, "lfs_enabled": True, "default_branch_role": 2,
                "request_access_enabled": True, "full_name": self.full_name, "full_path": self.full_path,
                "created_at": iso(self.created_at), "parent_id": self.parent.id if self.parent else None,
                "organization_id": 1, "shared_runners_setting": "enabled", "ldap_cn": None,
                "ldap_access": None, "marked_for_deletion_on": None, "archived": False}


class Commit:
    """A commit.  ``pushed_at`` is when it reaches GitLab; before that it does not exist there."""

    def __init__(self, project: "Project", sha: str, message: str, author: User | None, author_name: str,
                 author_email: str, authored_date: datetime, committed_date: datetime, tz: timezone,
                 pushed_at: datetime, branch: str):
        self.project = project
        self.sha = self.id = sha
        self.short_id = sha[:8]
        self.message = message
        self.title = message.split("\n", 1)[0].rstrip("\r")
        self.author = author
        self.author_name = author_name
        self.author_email = author_email
        self.committer_name = author_name
        self.committer_email = author_email
        self.authored_date = authored_date
        self.committed_date = committed_date
        self.tz = tz
        self.pushed_at = pushed_at
        self.branch = branch
        self.parent_ids: list[str] = []
        self.landed = False
        self.seq = 0  # global landing order
        self.home: tuple[str, int] | None = None  # (branch, entry seq) where it first landed
        h = int(sha[:6], 16)
        self.stats = {"additions": h % 120 + 1, "deletions": h % 37, "total": h % 120 + 1 + h % 37}
        self._json: bytes | None = None

    def to_json(self) -> dict:
        p = self.project
        return _fill(templates().commit, {
            "id": self.sha, "short_id": self.short_id, "created_at": git_iso(self.committed_date, self.tz),
            "parent_ids": list(self.parent_ids), "title": self.title, "message": self.message,
            "author_name": self.author_name, "author_email": self.author_email,
            "authored_date": git_iso(self.authored_date, self.tz), "committer_name": self.committer_name,
            "committer_email": self.committer_email, "committed_date": git_iso(self.committed_date, self.tz),
            "trailers": {}, "extended_trailers": {}, "web_url": f"{p.web_url}/-/commit/{self.sha}",
        })

    def json_bytes(self) -> bytes:
        if self._json is None:
            self._json = _dumps(self.to_json())
        return self._json

    def to_full_json(self) -> dict:
        d = self.to_json()
        full = templates().commit_full
        last = self.project.last_pipeline_for(self.sha)
        extra = {
            "last_pipeline": ({"id": last.id, "iid": last.iid, "project_id": self.project.id, "ref": last.ref,
                               "sha": last.sha, "status": last.status, "source": last.source,
                               "web_url": last.web_url, "created_at": iso(last.created_at),
                               "updated_at": iso(last.updated_at)} if last else None),
            "stats": dict(self.stats), "status": last.status if last else None, "project_id": self.project.id,
        }
        for k in full:
            if k not in d:
                d[k] = extra.get(k, copy.deepcopy(full[k]))
        return d


class _Item:
    _json: bytes | None = None

    def touch(self, at: datetime | None = None):
        self._json = None
        if at is not None:
            self.updated_at = at

    def json_bytes(self) -> bytes:
        if self._json is None:
            self._json = _dumps(self.to_json())
        return self._json


class MergeRequest(_Item):
    def __init__(self, project: "Project", mid: int, iid: int, source_branch: str, target_branch: str,
                 created_at: datetime, title: str, author: User, description: str, sha: str):
        self.project = project
        self.id = mid
        self.iid = iid
        self.source_branch = source_branch
        self.target_branch = target_branch
        self.created_at = self.updated_at = created_at
        self.title = title
        self.author = author
        self.description = description
        self.sha = sha
        self.state = "opened"
        self.merged_at = self.closed_at = None
        self.merged_by = self.closed_by = None
        self.merge_commit_sha = None
        self.squash_commit_sha = None
        self.web_url = f"{project.web_url}/-/merge_requests/{iid}"

    def merge(self, at: datetime | None = None, merge_commit_sha: str | None = None,
              merged_by: str | User | None = None) -> "MergeRequest":
        """Merge into the target branch: a merge commit pushed at ``at`` (also brings the source
        branch's commits into the target's history)."""
        w = self.project.world
        at = _utc(at) if at is not None else w.now
        sha = merge_commit_sha or _sha(f"merge:{self.project.id}:{self.iid}:{at.isoformat()}")
        self.merge_commit_sha = sha  # known now (the caller may need it); visible when merged
        by = w.user(merged_by) if merged_by is not None else self.author

        def do():
            with w.lock:
                if self.state != "opened":
                    return
                p = self.project
                brought = p._unmerged_source_commits(self.source_branch, self.target_branch)
                msg = (f"Merge branch '{self.source_branch}' into '{self.target_branch}'\n\n{self.title}\n\n"
                       f"See merge request {p.path_with_namespace}!{self.iid}")
                c = p._new_commit(self.target_branch, at, at, msg, by, None, None, UTC, sha)
                second = brought[-1].sha if brought else (self.sha if self.sha in p.commits else None)
                p._land(c, self.target_branch, brought=brought, second_parent=second)
                self.state = "merged"
                self.merged_at = at
                self.merged_by = by
                self.touch(at)
                p._event("merged", at, by, target=self)
                p._activity(at)

        w._at(at, do)
        return self

    def close(self, at: datetime | None = None, closed_by: str | User | None = None) -> "MergeRequest":
        w = self.project.world
        at = _utc(at) if at is not None else w.now
        by = w.user(closed_by) if closed_by is not None else self.author

        def do():
            with w.lock:
                if self.state != "opened":
                    return
                self.state = "closed"
                self.closed_at = at
                self.closed_by = by
                self.touch(at)
                self.project._event("closed", at, by, target=self)
                self.project._activity(at)

        w._at(at, do)
        return self

    def to_json(self) -> dict:
        p = self.project
        ref = f"!{self.iid}"
        user = self.author.to_json()
        state = self.state
        return _fill(templates().mr, {
            "id": self.id, "iid": self.iid, "project_id": p.id, "title": self.title, "description": self.description,
            "state": state, "created_at": iso(self.created_at), "updated_at": iso(self.updated_at),
            "merged_by": self.merged_by.to_json() if self.merged_by else None,
            "merge_user": self.merged_by.to_json() if self.merged_by else None,
            "merged_at": iso(self.merged_at),
            "closed_by": self.closed_by.to_json() if self.closed_by else None, "closed_at": iso(self.closed_at),
            "target_branch": self.target_branch, "source_branch": self.source_branch, "user_notes_count": 0,
            "upvotes": 0, "downvotes": 0, "assignee": None, "author": user, "assignees": [], "reviewers": [],
            "source_project_id": p.id, "target_project_id": p.id, "labels": [], "draft": False,
            "work_in_progress": False, "milestone": None, "merge_when_pipeline_succeeds": False,
            "merge_status": "can_be_merged" if state == "opened" else "unchecked",
            "detailed_merge_status": "mergeable" if state == "opened" else "not_open",
            "sha": self.sha, "merge_commit_sha": self.merge_commit_sha if state == "merged" else None,
            "squash_commit_sha": self.squash_commit_sha, "discussion_locked": None,
            "should_remove_source_branch": None, "force_remove_source_branch": True,
            "prepared_at": iso(self.created_at), "reference": ref,
            "references": {"short": ref, "relative": ref, "full": f"{p.path_with_namespace}{ref}"},
            "web_url": self.web_url,
            "time_stats": {"time_estimate": 0, "total_time_spent": 0, "human_time_estimate": None,
                           "human_total_time_spent": None},
            "squash": False, "squash_on_merge": False, "task_completion_status": {"count": 0, "completed_count": 0},
            "has_conflicts": False, "blocking_discussions_resolved": True, "approvals_before_merge": None,
        })

    def to_single_json(self) -> dict:
        d = self.to_json()
        p = self.project
        pl = p.last_pipeline_for(self.sha)
        extra = {
            "subscribed": False, "changes_count": str(1 + self.iid % 9), "latest_build_started_at": None,
            "latest_build_finished_at": None, "first_deployed_to_production_at": None,
            "pipeline": ({"id": pl.id, "iid": pl.iid, "project_id": p.id, "sha": pl.sha, "ref": pl.ref,
                          "status": pl.status, "source": pl.source, "created_at": iso(pl.created_at),
                          "updated_at": iso(pl.updated_at), "web_url": pl.web_url} if pl else None),
            "diff_refs": {"base_sha": p.head_sha(self.target_branch, at=self.created_at), "head_sha": self.sha,
                          "start_sha": p.head_sha(self.target_branch, at=self.created_at)},
            "merge_error": None, "user": {"can_merge": True},
        }
        for k in templates().mr_single:
            if k not in d:
                d[k] = extra.get(k, copy.deepcopy(templates().mr_single[k]))
        d["head_pipeline"] = d.get("pipeline")
        return d


class Pipeline(_Item):
    def __init__(self, project: "Project", pid: int, iid: int, ref: str, sha: str, created_at: datetime,
                 status: str, source: str, user: User, tag: bool, name: str | None):
        self.project = project
        self.id = pid
        self.iid = iid
        self.ref = ref
        self.sha = sha
        self.created_at = self.updated_at = created_at
        self.status = "created"
        self.source = source
        self.user = user
        self.tag = tag
        self.name = name
        self.started_at = self.finished_at = None
        self.duration = None
        self.retries = 0
        self.before_sha = "0" * 40
        self.web_url = f"{project.web_url}/-/pipelines/{pid}"
        self._apply(status, created_at)

    def _apply(self, status: str, at: datetime):
        if status not in PIPELINE_STATUSES:
            raise ValueError(f"unknown pipeline status {status!r}")
        self.status = status
        self.updated_at = at
        if status == "running" and self.started_at is None:
            self.started_at = at
        if status in PIPELINE_FINISHED:
            if self.started_at is None and status != "canceled" and status != "skipped":
                self.started_at = at
            self.finished_at = at
            self.duration = int((at - self.started_at).total_seconds()) if self.started_at else None
        else:
            self.finished_at = None
            self.duration = None
        self._json = None

    def set_status(self, status: str, at: datetime | None = None) -> "Pipeline":
        w = self.project.world
        at = _utc(at) if at is not None else w.now
        w._at(at, lambda: self._apply(status, at))
        return self

    def retry(self, at: datetime | None = None) -> "Pipeline":
        """GitLab keeps the pipeline id on retry: status back to running, updated_at = at."""
        w = self.project.world
        at = _utc(at) if at is not None else w.now

        def do():
            self.retries += 1
            self._apply("running", at)

        w._at(at, do)
        return self

    @property
    def queued_duration(self):
        if self.started_at is None:
            return None
        return round((self.started_at - self.created_at).total_seconds(), 3)

    def to_json(self) -> dict:
        p = self.project
        return _fill(templates().pipeline, {
            "id": self.id, "iid": self.iid, "project_id": p.id, "status": self.status, "source": self.source,
            "ref": self.ref, "sha": self.sha, "name": self.name, "web_url": self.web_url,
            "created_at": iso(self.created_at), "updated_at": iso(self.updated_at),
        })

    def to_full_json(self) -> dict:
        st = self.status
        text = {"success": "passed", "manual": "blocked"}.get(st, st)
        label = {"success": "passed", "manual": "manual action", "pending": "pending"}.get(st, st)
        p = self.project
        return _fill(templates().pipeline_full, {
            "id": self.id, "iid": self.iid, "project_id": p.id, "name": self.name, "sha": self.sha, "ref": self.ref,
            "status": st, "source": self.source, "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at), "web_url": self.web_url, "before_sha": self.before_sha,
            "tag": self.tag, "yaml_errors": None, "user": self.user.to_json(), "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at), "committed_at": None, "duration": self.duration,
            "queued_duration": self.queued_duration, "coverage": None,
            "detailed_status": {
                "icon": f"status_{st}", "text": text, "label": label, "group": st, "tooltip": label,
                "has_details": True, "details_path": f"/{p.path_with_namespace}/-/pipelines/{self.id}",
                "illustration": None, "favicon": f"/assets/ci_favicons/favicon_status_{st}.png",
            },
        })


class Deployment(_Item):
    def __init__(self, project: "Project", did: int, iid: int, environment: "_Environment", ref: str, sha: str,
                 created_at: datetime, status: str, deployable_status: str | None, user: User, tag: bool,
                 pipeline: Pipeline | None, job_id: int):
        self.project = project
        self.id = did
        self.iid = iid
        self.environment = environment
        self.ref = ref
        self.sha = sha
        self.created_at = self.updated_at = created_at
        self.finished_at = None
        self.user = user
        self.tag = tag
        self.pipeline = pipeline
        self.job_id = job_id
        self.job_started_at = None
        self.status = status
        self.deployable_status = deployable_status
        self._apply(status, created_at, deployable_status)

    def _apply(self, status: str, at: datetime, deployable_status: str | None = None):
        if status not in DEPLOYMENT_STATUSES:
            raise ValueError(f"unknown deployment status {status!r}")
        self.status = status
        self.updated_at = at
        self.deployable_status = deployable_status or DEPLOYABLE_STATUS[status]
        if status == "running" and self.job_started_at is None:
            self.job_started_at = at
        self.finished_at = at if status in DEPLOYMENT_FINISHED else None
        self._json = None

    def set_status(self, status: str, at: datetime | None = None, deployable_status: str | None = None):
        w = self.project.world
        at = _utc(at) if at is not None else w.now
        w._at(at, lambda: self._apply(status, at, deployable_status))
        return self

    def to_json(self) -> dict:
        t = templates().deployment
        p = self.project
        c = p.commits.get(self.sha)
        commit = ({"author_email": c.author_email, "author_name": c.author_name,
                   "created_at": git_iso(c.committed_date, c.tz), "id": c.sha, "message": c.message,
                   "short_id": c.short_id, "title": c.title} if c else
                  {"author_email": self.user.email, "author_name": self.user.name, "created_at": iso(self.created_at),
                   "id": self.sha, "message": "deploy", "short_id": self.sha[:8], "title": "deploy"})
        pl = self.pipeline
        pipeline = ({"created_at": iso(pl.created_at), "id": pl.id, "iid": pl.iid, "project_id": p.id,
                     "ref": pl.ref, "sha": pl.sha, "source": pl.source, "status": pl.status,
                     "updated_at": iso(pl.updated_at), "web_url": pl.web_url} if pl else
                    {"created_at": iso(self.created_at), "id": self.job_id // 7, "iid": self.iid, "project_id": p.id,
                     "ref": self.ref, "sha": self.sha, "source": "push", "status": self.deployable_status,
                     "updated_at": iso(self.updated_at),
                     "web_url": f"{p.web_url}/-/pipelines/{self.job_id // 7}"})
        user_full = _fill(t["deployable"]["user"], self.user.to_json() | {"created_at": iso(self.user.created_at)})
        deployable = _fill(t["deployable"], {
            "commit": commit, "coverage": None, "created_at": iso(self.created_at),
            "finished_at": iso(self.finished_at), "id": self.job_id, "name": f"deploy-{self.environment.name}",
            "ref": self.ref, "runner": None, "stage": "deploy", "started_at": iso(self.job_started_at),
            "status": self.deployable_status, "tag": self.tag, "project": {"ci_job_token_scope_enabled": False},
            "user": user_full, "pipeline": pipeline,
            "web_url": f"{p.web_url}/-/jobs/{self.job_id}",
        })
        return _fill(t, {
            "created_at": iso(self.created_at), "updated_at": iso(self.updated_at), "status": self.status,
            "deployable": deployable,
            "environment": {"external_url": self.environment.external_url, "id": self.environment.id,
                            "name": self.environment.name},
            "id": self.id, "iid": self.iid, "ref": self.ref, "sha": self.sha, "user": self.user.to_json(),
            "finished_at": iso(self.finished_at),
        })


class _Environment:
    def __init__(self, eid: int, name: str, project: "Project"):
        self.id = eid
        self.name = name
        self.external_url = f"https://{name}.{project.path}.example.com"


class Tag(_Item):
    def __init__(self, project: "Project", name: str, sha: str, created_at: datetime, message: str | None):
        self.project = project
        self.name = name
        self.sha = sha
        self.created_at = self.updated_at = created_at
        self.message = message
        self.release: Release | None = None

    def to_json(self) -> dict:
        c = self.project.commits.get(self.sha)
        return {
            "commit": c.to_json() if c else None,
            "release": ({"tag_name": self.name, "description": self.release.description}
                        if self.release and self.release.created_at <= self.project.world.now else None),
            "name": self.name, "target": _sha(f"tagobj:{self.sha}:{self.name}") if self.message else self.sha,
            "message": self.message, "protected": False,
            "created_at": iso(self.created_at) if self.message else None,
        }


class Release(_Item):
    def __init__(self, project: "Project", tag: Tag, created_at: datetime, released_at: datetime, name: str,
                 description: str, author: User):
        self.project = project
        self.tag = tag
        self.tag_name = tag.name
        self.created_at = self.updated_at = created_at
        self.released_at = released_at
        self.name = name
        self.description = description
        self.author = author

    def to_json(self) -> dict:
        p = self.project
        c = p.commits.get(self.tag.sha)
        base = f"{p.web_url}/-/archive/{self.tag_name}/{p.path}-{self.tag_name}"
        return {
            "name": self.name, "tag_name": self.tag_name, "description": self.description,
            "created_at": iso(self.created_at), "released_at": iso(self.released_at),
            "upcoming_release": self.released_at > p.world.now,
            "author": self.author.to_json(), "commit": c.to_json() if c else None,
            "commit_path": f"/{p.path_with_namespace}/-/commit/{self.tag.sha}",
            "tag_path": f"/{p.path_with_namespace}/-/tags/{self.tag_name}",
            "assets": {"count": 4, "sources": [{"format": f, "url": f"{base}.{f}"}
                                                for f in ("zip", "tar.gz", "tar.bz2", "tar")], "links": []},
            "evidences": [{"sha": _sha(f"evidence:{p.id}:{self.tag_name}")[:40],
                           "filepath": f"{p.web_url}/-/releases/{self.tag_name}/evidences/{p.id}.json",
                           "collected_at": iso(self.created_at)}],
            "_links": {
                "closed_issues_url": f"{p.web_url}/-/issues?release_tag={self.tag_name}&scope=all&state=closed",
                "closed_merge_requests_url":
                    f"{p.web_url}/-/merge_requests?release_tag={self.tag_name}&scope=all&state=closed",
                "edit_url": f"{p.web_url}/-/releases/{self.tag_name}/edit",
                "merged_merge_requests_url":
                    f"{p.web_url}/-/merge_requests?release_tag={self.tag_name}&scope=all&state=merged",
                "opened_issues_url": f"{p.web_url}/-/issues?release_tag={self.tag_name}&scope=all&state=opened",
                "opened_merge_requests_url":
                    f"{p.web_url}/-/merge_requests?release_tag={self.tag_name}&scope=all&state=opened",
                "self": f"{p.web_url}/-/releases/{self.tag_name}",
            },
        }


class Event(_Item):
    """A project event (Events API).  ``action``: the filter value (pushed, created, merged, closed...)."""

    def __init__(self, project: "Project", eid: int, action: str, action_name: str, created_at: datetime,
                 author: User, target: Any = None, push_data: dict | None = None):
        self.project = project
        self.id = eid
        self.action = action
        self.action_name = action_name
        self.created_at = created_at
        self.author = author
        self.target = target
        self.push_data = push_data

    @property
    def target_type(self) -> str | None:
        return "MergeRequest" if isinstance(self.target, MergeRequest) else None

    def to_json(self) -> dict:
        t = self.target
        d = {
            "id": self.id, "project_id": self.project.id, "action_name": self.action_name,
            "target_id": t.id if t is not None else None, "target_iid": t.iid if t is not None else None,
            "target_type": self.target_type, "author_id": self.author.id,
            "target_title": t.title if t is not None else None, "created_at": iso(self.created_at),
            "author": self.author.to_json(), "imported": False, "imported_from": "none",
        }
        if self.push_data is not None:
            d["push_data"] = dict(self.push_data)
        d["author_username"] = self.author.username
        return d


class _Branch:
    def __init__(self, name: str):
        self.name = name
        # (landed_at, seq, commit, first_parent) in push order (first-parent history at the end)
        self.entries: list[tuple[datetime, int, Commit, bool]] = []
        self.index: dict[str, int] = {}  # sha -> position (rebuilt lazily)
        self._index_len = -1

    def head(self) -> Commit | None:
        return self.entries[-1][2] if self.entries else None

    def position(self, sha: str) -> int | None:
        if self._index_len != len(self.entries):
            self.index = {e[2].sha: i for i, e in enumerate(self.entries)}
            self._index_len = len(self.entries)
        return self.index.get(sha)


class Project:
    def __init__(self, world: "GitLabWorld", pid: int, path_with_namespace: str, namespace: Group,
                 default_branch: str, branches: tuple[str, ...], created_at: datetime,
                 member: bool = True, visibility: str = "private"):
        self.world = world
        # member: the token's user is a member (listed by /projects?membership=true, its events in
        # /events?scope=all); a non-member project is readable only when public or internal.
        self.member = member
        self.visibility = visibility
        self.id = pid
        self.path_with_namespace = path_with_namespace
        self.path = path_with_namespace.rsplit("/", 1)[-1]
        self.name = self.path
        self.namespace = namespace
        self.default_branch = default_branch
        self.created_at = created_at
        self.last_activity_at = created_at
        self.last_repository_updated_at = created_at
        self.archived = False
        self.web_url = f"{world.web_url}/{path_with_namespace}"
        self.branches: dict[str, _Branch] = {}
        for b in (default_branch, *branches):
            self.branches.setdefault(b, _Branch(b))
        self.commits: dict[str, Commit] = {}  # landed commits
        self.pending: dict[str, Commit] = {}  # not pushed yet
        self.merge_requests: list[MergeRequest] = []
        self.pipelines: list[Pipeline] = []
        self.pipelines_by_id: dict[int, Pipeline] = {}
        self._pipelines_by_sha: dict[str, list[Pipeline]] = {}
        self.deployments: list[Deployment] = []
        self.environments: dict[str, _Environment] = {}
        self.tags: dict[str, Tag] = {}
        self.releases: dict[str, Release] = {}
        self.events: list[Event] = []
        self._iids = {"mr": 0, "pipeline": 0, "deployment": 0}

    # ------------------------------------------------------------ helpers
    def _next_iid(self, kind: str) -> int:
        self._iids[kind] += 1
        return self._iids[kind]

    def _activity(self, at: datetime):
        # Event#reset_project_activity: UPDATE ... WHERE last_activity_at <= (created_at - 1 hour)
        if self.last_activity_at <= at - RESET_PROJECT_ACTIVITY_INTERVAL:
            self.last_activity_at = at

    @property
    def updated_at(self) -> datetime:
        return max(self.last_activity_at, self.last_repository_updated_at)

    def _event(self, action: str, at: datetime, author: User, target: Any = None, push_data: dict | None = None):
        names = {"created": "opened", "merged": "accepted", "closed": "closed", "reopened": "reopened"}
        if action == "pushed":
            name = "pushed new" if push_data and push_data.get("action") == "created" else "pushed to"
        else:
            name = names.get(action, action)
        ev = Event(self, self.world._next_id("event"), action, name, at, author, target, push_data)
        self.events.append(ev)
        return ev

    def branch(self, name: str) -> _Branch:
        if name not in self.branches:
            self.branches[name] = _Branch(name)
        return self.branches[name]

    def head_sha(self, branch: str, at: datetime | None = None) -> str | None:
        b = self.branches.get(branch)
        if b is None or not b.entries:
            return None
        if at is None:
            return b.entries[-1][2].sha
        i = bisect.bisect_right(b.entries, at, key=lambda e: e[0])
        return b.entries[i - 1][2].sha if i else None

    def last_pipeline_for(self, sha: str) -> Pipeline | None:
        now = self.world.now
        for pl in reversed(self._pipelines_by_sha.get(sha, ())):
            if pl.created_at <= now:
                return pl
        return None

    def find_commit(self, ref: str) -> Commit | None:
        c = self.commits.get(ref)
        if c is not None:
            return c
        if ref in self.branches and self.branches[ref].entries:
            return self.branches[ref].head()
        t = self.tags.get(ref)
        if t is not None and t.created_at <= self.world.now:
            return self.commits.get(t.sha)
        if len(ref) >= 7:
            for sha, c in self.commits.items():
                if sha.startswith(ref):
                    return c
        return None

    def ref_head(self, ref: str) -> Commit | None:
        """The commit a ref (branch, tag, full or short SHA) names, or None."""
        if ref in self.branches:
            return self.branches[ref].head()
        return self.find_commit(ref)

    def walk(self, ref: str | Commit, first_parent: bool = False,
             stop: "set[str] | None" = None) -> list[Commit] | None:
        """``git log <ref>``: history reachable from ``ref``, newest first, in git's default order:
        a priority-queue walk of the commit graph by committed date (newest popped first, a
        parent queued when a child is popped), over every parent of a merge commit
        (``first_parent``: the first parent only).  Commits in ``stop`` (and what is behind
        them) are left out.  None if ``ref`` is unknown."""
        head = ref if isinstance(ref, Commit) else self.ref_head(ref)
        if head is None:
            return None if isinstance(ref, str) and ref not in self.branches else []
        stop = stop or set()
        out: list[Commit] = []
        queued = {head.sha}
        heap = [(-head.committed_date.timestamp(), -head.seq, head.sha)]
        while heap:
            _, _, sha = heapq.heappop(heap)
            c = self.commits[sha]
            if sha in stop:
                continue
            out.append(c)
            parents = c.parent_ids[:1] if first_parent else c.parent_ids
            for parent in parents:
                pc = self.commits.get(parent)
                if pc is not None and parent not in queued:
                    queued.add(parent)
                    heapq.heappush(heap, (-pc.committed_date.timestamp(), -pc.seq, parent))
        return out

    def reachable(self, ref: str | Commit) -> set[str] | None:
        walked = self.walk(ref)
        return None if walked is None else {c.sha for c in walked}

    def reset_branch(self, branch: str, sha: str, at: datetime | None = None) -> None:
        """A force-push of ``branch`` back to ``sha`` (an older commit of it) at ``at``: the commits
        after it leave the branch (they stay readable by SHA, as on GitLab until housekeeping).
        Push new commits on top with ``add_commit(branch=..., pushed_at=...)`` after ``at``."""
        w = self.world
        at = _utc(at) if at is not None else w.now

        def do():
            with w.lock:
                b = self.branch(branch)
                pos = b.position(sha)
                if pos is None:
                    raise ValueError(f"{sha} is not on {branch}")
                del b.entries[pos + 1:]
                b._index_len = -1
                self._event("pushed", at, w.user("dev"), push_data={
                    "commit_count": 0, "action": "pushed", "ref_type": "branch", "commit_from": None,
                    "commit_to": sha, "ref": branch, "commit_title": None, "ref_count": None})
                self._activity(at)

        w._at(at, do)

    def ancestry(self, ref: str, first_parent: bool = False) -> list[Commit] | None:
        """History reachable from ref in push order (oldest first), or None if ref is unknown."""
        if ref in self.branches:
            b = self.branches[ref]
            ents = b.entries
        else:
            c = self.find_commit(ref)
            if c is None:
                return None
            b = self.branches[c.home[0]] if c.home else None
            pos = b.position(c.sha) if b else None
            if b is None or pos is None:
                return [c]
            ents = b.entries[: pos + 1]
        if first_parent:
            return [e[2] for e in ents if e[3]]
        return [e[2] for e in ents]

    def _unmerged_source_commits(self, source: str, target: str) -> list[Commit]:
        sb = self.branches.get(source)
        if sb is None:
            return []
        tb = self.branch(target)
        return [e[2] for e in sb.entries if tb.position(e[2].sha) is None]

    # ------------------------------------------------------------ commits
    def _new_commit(self, branch, committed_date, pushed_at, message, author, author_name, author_email, tz, sha,
                    authored_date=None):
        w = self.world
        if author is None:
            author = w.user(author_name or "dev")
        name = author_name or author.name
        email = author_email or author.email
        seq = w._next_id("commit")
        sha = sha or _sha(f"{self.id}:{seq}:{message}:{committed_date.isoformat()}")
        return Commit(self, sha, message, author, name, email, authored_date or committed_date, committed_date,
                      tz, pushed_at, branch)

    def _land(self, c: Commit, branch: str, brought: list[Commit] = (), second_parent: str | None = None,
              event: bool = True):
        w = self.world
        b = self.branch(branch)
        at = c.pushed_at
        prev = self.head_sha(branch, at)
        key = lambda e: (e[0], e[1])  # noqa: E731
        for bc in brought:
            entry = (at, w._next_id("landing"), bc, False)
            bisect.insort(b.entries, entry, key=key)
        entry = (at, w._next_id("landing"), c, True)
        bisect.insort(b.entries, entry, key=key)
        c.parent_ids = [p for p in (prev, second_parent) if p]
        c.landed = True
        c.seq = entry[1]
        c._json = None
        if c.home is None:
            c.home = (branch, entry[1])
        self.commits[c.sha] = c
        self.pending.pop(c.sha, None)
        if at > self.last_repository_updated_at:
            self.last_repository_updated_at = at
        if event:
            self._event("pushed", at, c.author, push_data={
                "commit_count": 1 + len(brought), "action": "pushed", "ref_type": "branch",
                "commit_from": prev, "commit_to": c.sha, "ref": branch, "commit_title": c.title[:70],
                "ref_count": None,
            })
            self._activity(at)

    def add_commit(self, branch: str | None = None, committed_date: datetime | None = None,
                   pushed_at: datetime | None = None, message: str = "Update", author_name: str | None = None,
                   author_email: str | None = None, committer_tz_offset: str | timezone = "+00:00",
                   authored_date: datetime | None = None, sha: str | None = None,
                   author: str | User | None = None) -> Commit:
        """A commit pushed (alone) onto ``branch`` at ``pushed_at`` (default: ``committed_date``)."""
        w = self.world
        with w.lock:
            branch = branch or self.default_branch
            committed_date = _utc(committed_date) if committed_date is not None else w.now
            pushed_at = _utc(pushed_at) if pushed_at is not None else committed_date
            u = w.user(author) if author is not None else w.user(author_name or "dev", display=author_name)
            c = self._new_commit(branch, committed_date, pushed_at, message, u, author_name, author_email,
                                 _tz(committer_tz_offset), sha,
                                 _utc(authored_date) if authored_date else None)
            self.branch(branch)
            self.pending[c.sha] = c
            w._at(pushed_at, lambda: self._land(c, branch))
            return c

    # ------------------------------------------------------------ other objects
    def add_merge_request(self, source_branch: str, target_branch: str | None = None,
                          created_at: datetime | None = None, title: str | None = None,
                          author: str | User | None = None, description: str = "", sha: str | None = None
                          ) -> MergeRequest:
        w = self.world
        with w.lock:
            created_at = _utc(created_at) if created_at is not None else w.now
            u = w.user(author or "dev")
            iid = self._next_iid("mr")
            sha = sha or self.head_sha(source_branch) or _sha(f"mrhead:{self.id}:{iid}")
            mr = MergeRequest(self, w._next_id("mr"), iid, source_branch, target_branch or self.default_branch,
                              created_at, title or f"Change {iid}", u, description, sha)
            self.merge_requests.append(mr)

            def opened():
                self._event("created", created_at, u, target=mr)
                self._activity(created_at)

            w._at(created_at, opened)
            return mr

    def add_pipeline(self, ref: str | None = None, sha: str | None = None, created_at: datetime | None = None,
                     status: str = "running", source: str = "push", user: str | User | None = None,
                     tag: bool = False, name: str | None = None) -> Pipeline:
        w = self.world
        with w.lock:
            ref = ref or self.default_branch
            created_at = _utc(created_at) if created_at is not None else w.now
            sha = sha or self.head_sha(ref) or _sha(f"plsha:{self.id}:{ref}")
            pl = Pipeline(self, w._next_id("pipeline"), self._next_iid("pipeline"), ref, sha, created_at, status,
                          source, w.user(user or "dev"), tag or ref in self.tags, name)
            self.pipelines.append(pl)
            self.pipelines_by_id[pl.id] = pl
            self._pipelines_by_sha.setdefault(sha, []).append(pl)
            return pl

    def add_deployment(self, environment: str = "production", ref: str | None = None, sha: str | None = None,
                       created_at: datetime | None = None, status: str = "running",
                       deployable_status: str | None = None, user: str | User | None = None,
                       pipeline: Pipeline | None = None, tag: bool = False) -> Deployment:
        w = self.world
        with w.lock:
            ref = ref or self.default_branch
            created_at = _utc(created_at) if created_at is not None else w.now
            sha = sha or self.head_sha(ref) or _sha(f"dsha:{self.id}:{ref}")
            env = self.environments.get(environment)
            if env is None:
                env = self.environments[environment] = _Environment(w._next_id("environment"), environment, self)
            if pipeline is None:
                pipeline = self.last_pipeline_for(sha)
            d = Deployment(self, w._next_id("deployment"), self._next_iid("deployment"), env, ref, sha, created_at,
                           status, deployable_status, w.user(user or "deployer"), tag or ref in self.tags,
                           pipeline, w._next_id("job"))
            self.deployments.append(d)
            return d

    def add_tag(self, name: str, sha: str | None = None, created_at: datetime | None = None,
                message: str | None = None, user: str | User | None = None) -> Tag:
        w = self.world
        with w.lock:
            if name in self.tags:
                raise ValueError(f"tag {name!r} exists")
            created_at = _utc(created_at) if created_at is not None else w.now
            sha = sha or self.head_sha(self.default_branch, created_at) or self.head_sha(self.default_branch)
            if sha is None:
                raise ValueError("no commit to tag")
            t = Tag(self, name, sha, created_at, message if message is not None else f"Release {name}")
            self.tags[name] = t
            u = w.user(user or "releaser")

            def pushed():
                self._event("pushed", created_at, u, push_data={
                    "commit_count": 0, "action": "created", "ref_type": "tag", "commit_from": None,
                    "commit_to": sha, "ref": name, "commit_title": None, "ref_count": None,
                })
                self._activity(created_at)

            w._at(created_at, pushed)
            return t

    def add_release(self, tag_name: str, created_at: datetime | None = None, released_at: datetime | None = None,
                    name: str | None = None, description: str = "", sha: str | None = None,
                    author: str | User | None = None) -> Release:
        w = self.world
        with w.lock:
            created_at = _utc(created_at) if created_at is not None else w.now
            released_at = _utc(released_at) if released_at is not None else created_at
            tag = self.tags.get(tag_name) or self.add_tag(tag_name, sha=sha, created_at=created_at)
            if tag_name in self.releases:
                raise ValueError(f"release {tag_name!r} exists")
            r = Release(self, tag, created_at, released_at, name or tag_name,
                        description or f"Release notes for {tag_name}", w.user(author or "releaser"))
            self.releases[tag_name] = r
            tag.release = r
            tag._json = None
            w._at(created_at, lambda: self._activity(created_at))
            return r

    # ------------------------------------------------------------ JSON
    def to_json(self, simple: bool = False) -> dict:
        ns = self.namespace
        w = self.world
        host = w.web_url.split("://", 1)[-1]
        d = {
            "id": self.id, "description": None, "name": self.name,
            "name_with_namespace": f"{ns.full_name} / {self.name}", "path": self.path,
            "path_with_namespace": self.path_with_namespace, "created_at": iso(self.created_at),
            "default_branch": self.default_branch, "tag_list": [], "topics": [],
            "ssh_url_to_repo": f"git@{host.split('/')[0]}:{self.path_with_namespace}.git",
            "http_url_to_repo": f"{self.web_url}.git", "web_url": self.web_url,
            "readme_url": f"{self.web_url}/-/blob/{self.default_branch}/README.md", "forks_count": 0,
            "avatar_url": None, "star_count": 0, "last_activity_at": iso(self.last_activity_at),
            "visibility": self.visibility, "namespace": ns.namespace_json(),
        }
        if simple:
            d.pop("visibility")
            return d
        d.update({
            "container_registry_image_prefix": f"registry.{host.split('/')[0]}/{self.path_with_namespace}",
            "_links": {
                "self": f"{w.web_url}/api/v4/projects/{self.id}",
                "issues": f"{w.web_url}/api/v4/projects/{self.id}/issues",
                "merge_requests": f"{w.web_url}/api/v4/projects/{self.id}/merge_requests",
                "repo_branches": f"{w.web_url}/api/v4/projects/{self.id}/repository/branches",
                "labels": f"{w.web_url}/api/v4/projects/{self.id}/labels",
                "events": f"{w.web_url}/api/v4/projects/{self.id}/events",
                "members": f"{w.web_url}/api/v4/projects/{self.id}/members",
                "cluster_agents": f"{w.web_url}/api/v4/projects/{self.id}/cluster_agents",
            },
            "empty_repo": not self.commits, "archived": self.archived, "owner": None,
            "updated_at": iso(self.updated_at), "resolve_outdated_diff_discussions": False,
            "repository_object_format": "sha1", "issues_enabled": True, "merge_requests_enabled": True,
            "wiki_enabled": True, "jobs_enabled": True, "snippets_enabled": True,
            "container_registry_enabled": True, "creator_id": 1, "import_status": "none",
            "open_issues_count": 0, "ci_default_git_depth": 20, "public_jobs": True,
            "shared_with_groups": [], "only_allow_merge_if_pipeline_succeeds": False,
            "request_access_enabled": True, "merge_method": "merge", "squash_option": "default_off",
            "permissions": {"project_access": None, "group_access": (
                {"access_level": 20, "notification_level": 3} if self.member else None)},
        })
        return d

    def branch_json(self, b: _Branch) -> dict:
        return {"name": b.name, "commit": b.head().to_json(), "merged": False,
                "protected": b.name == self.default_branch, "developers_can_push": False,
                "developers_can_merge": False, "can_push": True, "default": b.name == self.default_branch,
                "web_url": f"{self.web_url}/-/tree/{b.name}"}


class GitLabWorld:
    """Groups, projects and their activity, and the world clock.  Thread-safe through ``world.lock``."""

    def __init__(self, now: datetime | None = None, web_url: str = "https://gitlab.example.com",
                 token_user: str = "painchain-bot"):
        self.lock = threading.RLock()
        self._now = _utc(now) if now is not None else _utc(datetime.now(UTC))
        self.web_url = web_url.rstrip("/")
        self._heap: list[tuple[datetime, int, Callable[[], Any]]] = []
        self._seq = itertools.count()
        self._ids: dict[str, int] = {}
        self.users: dict[str, User] = {}
        self.groups: dict[str, Group] = {}
        self.groups_by_id: dict[int, Group] = {}
        self.projects: dict[int, Project] = {}
        self.projects_by_path: dict[str, Project] = {}
        self.token_user = self.user(token_user, display="PainChain Bot")

    # ------------------------------------------------------------ clock
    @property
    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward, running scheduled callbacks in time order (clock = their time)."""
        with self.lock:
            target = self._now + delta
            while self._heap and self._heap[0][0] <= target:
                at, _, fn = heapq.heappop(self._heap)
                if at > self._now:
                    self._now = at
                fn()
            self._now = target
            return self._now

    def advance_to(self, when: datetime) -> datetime:
        when = _utc(when)
        return self.advance(max(timedelta(0), when - self._now))

    def schedule(self, at: datetime, fn: Callable[[], Any]) -> None:
        """Run ``fn`` when the clock passes ``at`` (now, if ``at`` is not in the future)."""
        at = _utc(at)
        with self.lock:
            if at <= self._now:
                fn()
            else:
                heapq.heappush(self._heap, (at, next(self._seq), fn))

    _at = schedule

    def pending_count(self) -> int:
        return len(self._heap)

    # ------------------------------------------------------------ ids, users
    def _next_id(self, kind: str) -> int:
        starts = {"project": 4_100_000, "group": 9_200_000, "mr": 310_000_000, "pipeline": 1_900_000_000,
                  "deployment": 620_000_000, "event": 3_700_000_000, "job": 8_400_000_000,
                  "environment": 12_000_000, "user": 5_500_000}
        v = self._ids.get(kind, starts.get(kind, 0)) + 1
        self._ids[kind] = v
        return v

    def user(self, who: "str | User", display: str | None = None) -> User:
        if isinstance(who, User):
            return who
        key = who.strip().lower().replace(" ", ".")
        u = self.users.get(key)
        if u is None:
            u = self.users[key] = User(self, self._next_id("user"), key,
                                       display or who.replace(".", " ").replace("-", " ").title())
        return u

    # ------------------------------------------------------------ groups, projects
    def group(self, full_path: str) -> Group:
        with self.lock:
            g = self.groups.get(full_path)
            if g is None:
                parent = self.group(full_path.rsplit("/", 1)[0]) if "/" in full_path else None
                g = Group(self, self._next_id("group"), full_path, parent)
                self.groups[full_path] = g
                self.groups_by_id[g.id] = g
            return g

    def add_project(self, path_with_namespace: str, default_branch: str = "main", branches: tuple[str, ...] = (),
                    created_at: datetime | None = None, member: bool = True,
                    visibility: str | None = None) -> Project:
        """``member=False``: a project the token's user is not a member of, ``public`` unless
        ``visibility`` says otherwise (a private one is then unreadable: 404)."""
        if visibility not in (None, "private", "internal", "public"):
            raise ValueError("visibility must be private, internal or public")
        with self.lock:
            if path_with_namespace in self.projects_by_path:
                raise ValueError(f"project {path_with_namespace!r} exists")
            if "/" not in path_with_namespace:
                raise ValueError("project path needs a namespace: 'group/project'")
            ns = self.group(path_with_namespace.rsplit("/", 1)[0])
            created_at = _utc(created_at) if created_at is not None else self._now - timedelta(days=365)
            p = Project(self, self._next_id("project"), path_with_namespace, ns, default_branch, tuple(branches),
                        created_at, member=member, visibility=visibility or ("private" if member else "public"))
            self.projects[p.id] = p
            self.projects_by_path[path_with_namespace] = p
            return p

    def project(self, ref: "int | str") -> Project:
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            return self.projects[int(ref)]
        return self.projects_by_path[ref]

    def counts(self) -> dict[str, int]:
        """Visible object counts (as of world.now)."""
        with self.lock:
            now = self._now
            out = {"projects": len(self.projects), "groups": len(self.groups), "default_branch_commits": 0,
                   "late_pushed_commits": 0, "merged_in_older_commits": 0, "other_branch_commits": 0, "merge_requests": 0, "mr_opened": 0,
                   "mr_merged": 0, "mr_closed": 0, "pipelines": 0, "pipelines_retried": 0, "deployments": 0,
                   "deployments_failed": 0, "deployments_blocked": 0, "releases": 0, "releases_upcoming": 0,
                   "releases_backdated": 0, "tags": 0, "events": 0, "pending_callbacks": len(self._heap)}
            for p in self.projects.values():
                main = p.branches[p.default_branch]
                out["default_branch_commits"] += len(main.entries)
                # first-parent commits pushed >= 1 h after their commit date; commits brought in by merges
                out["late_pushed_commits"] += sum(1 for e in main.entries
                                                  if e[3] and e[0] - e[2].committed_date >= timedelta(hours=1))
                out["merged_in_older_commits"] += sum(1 for e in main.entries if not e[3])
                out["other_branch_commits"] += sum(len(b.entries) for n, b in p.branches.items()
                                                   if n != p.default_branch and not n.startswith("feature/"))
                for mr in p.merge_requests:
                    if mr.created_at <= now:
                        out["merge_requests"] += 1
                        out["mr_" + mr.state] += 1
                pls = [pl for pl in p.pipelines if pl.created_at <= now]
                out["pipelines"] += len(pls)
                out["pipelines_retried"] += sum(1 for pl in pls if pl.retries)
                ds = [d for d in p.deployments if d.created_at <= now]
                out["deployments"] += len(ds)
                out["deployments_failed"] += sum(1 for d in ds if d.status == "failed")
                out["deployments_blocked"] += sum(1 for d in ds if getattr(d, "was_blocked", False))
                rs = [r for r in p.releases.values() if r.created_at <= now]
                out["releases"] += len(rs)
                out["releases_upcoming"] += sum(1 for r in rs if r.released_at > now)
                out["releases_backdated"] += sum(1 for r in rs if r.released_at < r.created_at)
                out["tags"] += sum(1 for t in p.tags.values() if t.created_at <= now)
                out["events"] += sum(1 for e in p.events if e.created_at <= now)
            return out


# --------------------------------------------------------------------------------------------
# the benchmark world

BENCH_PROJECTS = (
    "acme/platform/api", "acme/platform/gateway", "acme/platform/auth", "acme/platform/web/frontend",
    "acme/platform/web/admin", "acme/platform/web/design-system", "acme/data/ingest", "acme/data/warehouse",
    "acme/data/ml/features", "acme/data/ml/training", "acme/infra/terraform", "acme/infra/k8s-manifests",
    "acme/infra/ci-templates", "acme/mobile/ios", "acme/mobile/android", "acme/payments/ledger",
    "acme/payments/billing", "acme/tools/cli", "acme/tools/docs", "acme/security/scanner",
)
BENCH_USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
               "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yvonne")
BENCH_TZS = ("+00:00", "+01:00", "+02:00", "-05:00", "-08:00", "+05:30", "+09:00")
BENCH_DAYS = 90
# per project per day, on average (x20 projects x90 days)
_DIRECT_PUSHES = 4.8     # -> ~8,600 direct default-branch commits
_MRS = 1.67              # -> ~3,000 MRs
_SECOND_BRANCH = 0.25    # commits on the release branch
_PIPELINE_P = 0.40       # pipelines per push
_DEPLOY_P = 0.245        # deployments per successful default-branch pipeline
_RELEASES = 0.11         # -> ~200 releases
_EXTRA_TAGS = 0.028      # -> ~50 tags without a release


class _BenchSim:
    """Schedules a project's activity for a time window; everything lands through the world clock."""

    def __init__(self, world: GitLabWorld, rng: random.Random, end_of_history: datetime):
        self.w = world
        self.rng = rng
        self.end = end_of_history
        self.release_no: dict[int, int] = {}

    def _poisson(self, lam: float) -> int:
        # Knuth; small lambdas only
        import math
        L, k, p = math.exp(-lam), 0, 1.0
        while True:
            p *= self.rng.random()
            if p <= L:
                return k
            k += 1

    def _t(self, day_start: datetime) -> datetime:
        # working hours, mostly
        r = self.rng
        hour = r.gauss(14, 3.5)
        hour = min(max(hour, 0.0), 23.99)
        return day_start + timedelta(hours=hour, seconds=r.randint(0, 59))

    def schedule_day(self, p: Project, day_start: datetime, weight: float):
        r = self.rng
        w = self.w
        for _ in range(self._poisson(_DIRECT_PUSHES * weight)):
            t = self._t(day_start)
            late = r.random() < 0.13
            pushed = t + timedelta(minutes=r.randint(60, 72 * 60)) if late else t + timedelta(seconds=r.randint(5, 600))
            author = r.choice(BENCH_USERS)
            tz = r.choice(BENCH_TZS)
            msg = f"{r.choice(('Fix', 'Add', 'Refactor', 'Update', 'Remove'))} {r.choice(('cache', 'handler', 'schema', 'tests', 'docs', 'retry logic', 'metrics'))}"
            w.schedule(t, lambda p=p, t=t, pushed=pushed, a=author, tz=tz, m=msg: self._push(p, p.default_branch, t, pushed, a, tz, m))
        for _ in range(self._poisson(_SECOND_BRANCH * weight)):
            t = self._t(day_start)
            w.schedule(t, lambda p=p, t=t: self._push(p, "release", t, t + timedelta(minutes=2), r.choice(BENCH_USERS),
                                                      "+00:00", "Backport fix"))
        for _ in range(self._poisson(_MRS * weight)):
            t = self._t(day_start)
            w.schedule(t, lambda p=p, t=t: self._open_mr(p, t))
        for _ in range(self._poisson(_RELEASES * weight)):
            t = self._t(day_start)
            w.schedule(t, lambda p=p, t=t: self._release(p, t))
        for _ in range(self._poisson(_EXTRA_TAGS * weight)):
            t = self._t(day_start)
            w.schedule(t, lambda p=p, t=t: self._tag(p, t))

    def _push(self, p: Project, branch: str, t: datetime, pushed: datetime, author: str, tz: str, msg: str):
        c = p.add_commit(branch=branch, committed_date=t, pushed_at=pushed, message=msg, author=author,
                         committer_tz_offset=tz)
        if self.rng.random() < _PIPELINE_P:
            self.w.schedule(pushed + timedelta(seconds=self.rng.randint(2, 40)),
                            lambda: self._pipeline(p, branch, c.sha))

    def _pipeline(self, p: Project, ref: str, sha: str, source: str = "push"):
        r = self.rng
        w = self.w
        now = w.now
        pl = p.add_pipeline(ref=ref, sha=sha, created_at=now, status="pending", source=source,
                            user=r.choice(BENCH_USERS))
        start = now + timedelta(seconds=r.randint(3, 90))
        pl.set_status("running", at=start)
        end = start + timedelta(seconds=r.randint(180, 1800))
        x = r.random()
        if x < 0.05:  # failed, retried later, then success
            pl.set_status("failed", at=end)
            again = end + timedelta(minutes=r.randint(10, 180))
            pl.retry(at=again)
            final = "success"
            end = again + timedelta(seconds=r.randint(180, 1500))
        else:
            final = "success" if x < 0.82 else ("failed" if x < 0.95 else "canceled")
        pl.set_status(final, at=end)
        if final == "success" and ref == p.default_branch and r.random() < _DEPLOY_P:
            w.schedule(end + timedelta(seconds=r.randint(5, 60)), lambda: self._deploy(p, pl))

    def _deploy(self, p: Project, pl: Pipeline, env: str | None = None):
        r = self.rng
        w = self.w
        now = w.now
        env = env or r.choice(("production", "staging", "staging"))
        x = r.random()
        if x < 0.05:  # manual job awaiting approval, approved later
            d = p.add_deployment(environment=env, ref=pl.ref, sha=pl.sha, created_at=now, status="blocked",
                                 pipeline=pl, user=r.choice(BENCH_USERS))
            d.was_blocked = True
            ok = now + timedelta(minutes=r.randint(30, 36 * 60))
            d.set_status("running", at=ok)
            d.set_status("success", at=ok + timedelta(seconds=r.randint(60, 600)))
            return
        d = p.add_deployment(environment=env, ref=pl.ref, sha=pl.sha, created_at=now, status="running",
                             pipeline=pl, user=r.choice(BENCH_USERS))
        end = now + timedelta(seconds=r.randint(60, 900))
        if x < 0.14:
            d.set_status("failed", at=end)
            if r.random() < 0.5:  # retried: a new deployment of the same sha
                w.schedule(end + timedelta(minutes=r.randint(5, 90)), lambda: self._deploy(p, pl, env))
        elif x < 0.16:
            d.set_status("canceled", at=end)
        else:
            d.set_status("success", at=end)

    def _open_mr(self, p: Project, t: datetime):
        r = self.rng
        iid_hint = len(p.merge_requests) + 1
        branch = f"feature/{p.id}-{iid_hint}"
        author = r.choice(BENCH_USERS)
        n_commits = r.choice((0, 0, 1, 1, 2, 3)) if r.random() < 0.45 else 0
        for i in range(n_commits):
            ct = t - timedelta(hours=r.randint(1, 48) + i)
            p.add_commit(branch=branch, committed_date=ct, pushed_at=t, message=f"WIP {branch} part {i + 1}",
                         author=author, committer_tz_offset=r.choice(BENCH_TZS))
        mr = p.add_merge_request(branch, created_at=t, author=author,
                                 title=f"{r.choice(('Add', 'Fix', 'Improve', 'Drop'))} {r.choice(('retry', 'auth', 'paging', 'cache', 'logging'))} ({branch})")
        if r.random() < _PIPELINE_P and n_commits:
            w = self.w
            w.schedule(t + timedelta(seconds=20), lambda: self._pipeline(p, branch, mr.sha, "merge_request_event"))
        x = r.random()
        later = t + timedelta(minutes=r.randint(30, 4 * 24 * 60))
        if x < 0.70:
            mr.merge(at=later, merged_by=r.choice(BENCH_USERS))
            if r.random() < _PIPELINE_P:
                self.w.schedule(later + timedelta(seconds=15),
                                lambda: self._pipeline(p, p.default_branch, mr.merge_commit_sha))
        elif x < 0.85:
            mr.close(at=later)

    def _release(self, p: Project, t: datetime):
        r = self.rng
        n = self.release_no.get(p.id, 0) + 1
        self.release_no[p.id] = n
        tag = f"v1.{n // 10}.{n % 10}"
        if tag in p.tags or p.head_sha(p.default_branch) is None:
            return
        x = r.random()
        if x < 0.04:
            released = self.end + timedelta(days=r.randint(2, 20))  # upcoming
        elif x < 0.10:
            released = t - timedelta(days=r.randint(1, 30))  # backdated
        else:
            released = t
        p.add_release(tag, created_at=t, released_at=released, author=r.choice(BENCH_USERS))

    def _tag(self, p: Project, t: datetime):
        name = f"build-{t:%Y%m%d}-{self.rng.randint(100, 999)}"
        if name not in p.tags and p.head_sha(p.default_branch):
            p.add_tag(name, created_at=t, message=None)


def _bench_weights(rng: random.Random) -> list[float]:
    ws = [rng.uniform(0.4, 1.6) for _ in BENCH_PROJECTS]
    s = sum(ws) / len(ws)
    return [x / s for x in ws]


def build_bench_world(seed: int = 7, now: datetime | None = None) -> GitLabWorld:
    """20 projects in nested groups with 90 days of history ending at ``now`` (deterministic per seed)."""
    now = _utc(now) if now is not None else datetime(2026, 11, 2, 12, tzinfo=UTC)
    start = (now - timedelta(days=BENCH_DAYS)).replace(hour=0, minute=0, second=0, microsecond=0)
    rng = random.Random(seed)
    w = GitLabWorld(now=start - timedelta(days=1))
    for u in BENCH_USERS:
        w.user(u)
    for path in BENCH_PROJECTS:
        p = w.add_project(path, default_branch="main", branches=("release",),
                          created_at=start - timedelta(days=rng.randint(30, 400)))
        # a root commit on main and release
        root = p.add_commit(committed_date=start - timedelta(days=1), message="Initial commit", author="alice")
        p.branch("release").entries.append((root.pushed_at, w._next_id("landing"), root, True))
    sim = _BenchSim(w, rng, now)
    weights = _bench_weights(rng)
    w._bench = {"sim": sim, "weights": weights, "seed": seed}
    day = start
    while day < now:
        for p, wt in zip(w.projects.values(), weights):
            sim.schedule_day(p, day, wt)
        day += timedelta(days=1)
    # events dated after ``now`` stay scheduled (late pushes, running pipelines...)
    w.advance(now - w.now)
    return w


def advance_bench_world(world: GitLabWorld, days: int = 1, seed: int = 8) -> GitLabWorld:
    """Schedule ``days`` more days of the same activity and advance the clock by ``days``
    (late pushes land, running pipelines finish, blocked deployments get approved)."""
    bench = getattr(world, "_bench", None)
    rng = random.Random(seed)
    if bench is None:
        sim, weights = _BenchSim(world, rng, world.now), [1.0] * len(world.projects)
        world._bench = {"sim": sim, "weights": weights, "seed": seed}
    else:
        sim, weights = bench["sim"], bench["weights"]
        sim.rng = rng
    end = world.now + timedelta(days=days)
    sim.end = end
    day = world.now
    while day < end:
        for p, wt in zip(world.projects.values(), weights):
            # schedule_day draws times over a calendar day: shift so nothing lands in the past
            sim.schedule_day(p, day, wt)
        day += timedelta(days=1)
    world.advance(end - world.now)
    return world
