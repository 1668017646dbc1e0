"""A local fake of the GitHub REST API (api.github.com / GHE ``/api/v3``) on a real socket.

The real PyGithub client works against it unchanged::

    with FakeGitHub() as fake:
        repo = fake.add_repo("acme/shop")
        repo.add_commit(message="init")
        gh = github.Github(auth=github.Auth.Token("test-token"), base_url=fake.base_url,
                           seconds_between_requests=0, retry=None)
        [c.sha for c in gh.get_repo("acme/shop").get_commits()]

Tests drive a "world" (repos, branches, commits, pulls, releases, workflow runs, deployments)
and a world clock between polls.  Every payload is a copy of a recorded / documented GitHub
payload (``tests/fixtures/github``) with identifiers, dates, users and URLs substituted.

Only the standard library is used for the server (``http.server.ThreadingHTTPServer``).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import threading
import time
import zlib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from http import HTTPStatus
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from .http_fake import DROPPED, Fault, HTTPFake

__all__ = ["FakeGitHub", "FakeRepo", "RequestRecord", "FIXTURES_DIR"]

FIXTURES_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "github"

DOCS_URL = "https://docs.github.com/rest"
SECONDARY_RATE_LIMIT_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID "
    "0000:0000:0000000:0000000:00000000."
)
RUNS_FILTER_CAP = 1000  # GitHub: filtered workflow-run lists return at most 1,000 results
RUN_FILTER_PARAMS = ("actor", "branch", "check_suite_id", "created", "event", "head_sha", "status")
RUN_CONCLUSIONS = {
    "success", "failure", "neutral", "cancelled", "skipped", "timed_out", "action_required", "stale",
    "startup_failure",
}
UTC = timezone.utc


# --------------------------------------------------------------------------------------------
# time helpers


def _utc(dt: datetime | None) -> datetime | None:
    """Timezone-aware UTC, truncated to whole seconds (GitHub's resolution)."""
    if dt is None:
        return None
    if not isinstance(dt, datetime):
        raise TypeError(f"expected datetime, got {dt!r}")
    if dt.tzinfo is None:
        raise ValueError(f"naive datetime not allowed (use timezone.utc): {dt!r}")
    return dt.astimezone(UTC).replace(microsecond=0)


def iso(dt: datetime | None) -> str | None:
    """Serialize as GitHub does: ``2026-11-24T10:00:00Z``."""
    if dt is None:
        return None
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(value: str) -> tuple[datetime, bool]:
    """Parse an ISO-8601 date or datetime.  Returns (datetime in UTC, is_date_only)."""
    v = value.strip()
    # a literal "+" in an unencoded query string arrives as a space: "...T10:00:00 01:00"
    v = re.sub(r"(T\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d:?\d\d)$", r"\1+\2", v)
    if len(v) == 10:
        d = date.fromisoformat(v)
        return datetime(d.year, d.month, d.day, tzinfo=UTC), True
    if v.endswith("z"):
        v = v[:-1] + "Z"
    dt = datetime.fromisoformat(v)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC), False


def parse_github_date_range(expr: str) -> Callable[[datetime], bool]:
    """GitHub search date syntax as used by ``created`` on the workflow-runs endpoints.

    ``>=X``, ``>X``, ``<=X``, ``<X``, ``X..Y``, ``X..*``, ``*..Y`` and a bare ``X`` (that whole
    day for a date, that exact second for a datetime).  A date bound covers its whole day.
    """
    expr = expr.strip()
    day = timedelta(days=1)

    def lo_hi(x: str) -> tuple[datetime, datetime]:
        # inclusive start, exclusive end of the instant/day denoted by x
        dt, is_date = _parse_iso(x)
        return (dt, dt + day) if is_date else (dt, dt + timedelta(seconds=1))

    lo: datetime | None = None  # inclusive
    hi: datetime | None = None  # exclusive
    if ".." in expr:
        a, b = expr.split("..", 1)
        if a.strip() not in ("", "*"):
            lo = lo_hi(a)[0]
        if b.strip() not in ("", "*"):
            hi = lo_hi(b)[1]
    elif expr.startswith(">="):
        lo = lo_hi(expr[2:])[0]
    elif expr.startswith(">"):
        lo = lo_hi(expr[1:])[1]
    elif expr.startswith("<="):
        hi = lo_hi(expr[2:])[1]
    elif expr.startswith("<"):
        hi = lo_hi(expr[1:])[0]
    else:
        lo, hi = lo_hi(expr)

    def match(dt: datetime) -> bool:
        return (lo is None or dt >= lo) and (hi is None or dt < hi)

    return match


# --------------------------------------------------------------------------------------------
# templates from the recorded / documented payloads


class _Templates:
    def __init__(self, root: Path = FIXTURES_DIR):
        oa = root / "github-openapi"

        def load(name: str) -> Any:
            return json.loads((oa / name).read_text(encoding="utf-8"))

        self.commit_item: dict = load("commit-items.json")[0]
        self.commit_full: dict = load("commit.json")
        self.pull: dict = load("pull-request-simple-items.json")[0]
        self.release: dict = load("release-items.json")[0]
        self.run: dict = load("workflow-run-paginated.json")["workflow_runs"][0]
        self.deployment: dict = load("deployment-items.json")[0]
        self.deployment_status: dict = load("deployment-status-items.json")[0]
        self.user: dict = self.commit_item["author"]  # simple-user of "octocat"
        self.repository: dict = parse_replay_file(root / "pygithub" / "PullRequest1375.setUp.txt")[0]["body"]


def parse_replay_file(path: Path) -> list[dict]:
    """Parse a PyGithub ReplayData file (blocks of 10 lines + blank line)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    blocks = []
    i = 0
    while i + 9 < len(lines):
        chunk = lines[i:i + 10]
        if not chunk[0].strip():
            i += 1
            continue
        blocks.append({
            "protocol": chunk[0], "verb": chunk[1], "host": chunk[2], "port": chunk[3],
            "path": chunk[4], "request_headers": chunk[5], "request_body": chunk[6],
            "status": int(chunk[7]), "response_headers": chunk[8],
            "body": json.loads(chunk[9]) if chunk[9].strip() else None,
        })
        i += 11
    return blocks


_TEMPLATES: _Templates | None = None
_TEMPLATES_LOCK = threading.Lock()


def templates() -> _Templates:
    global _TEMPLATES
    with _TEMPLATES_LOCK:
        if _TEMPLATES is None:
            _TEMPLATES = _Templates()
        return _TEMPLATES


def _replace_strings(obj: Any, pairs: list[tuple[str, str]]) -> Any:
    """Deep copy of ``obj`` with every ``old`` replaced by ``new`` in all string values."""
    if isinstance(obj, str):
        for old, new in pairs:
            if old in obj:
                obj = obj.replace(old, new)
        return obj
    if isinstance(obj, dict):
        return {k: _replace_strings(v, pairs) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_replace_strings(v, pairs) for v in obj]
    return obj


def _node_id(kind: str, ident: Any) -> str:
    return base64.b64encode(f"{kind}{ident}".encode()).decode()


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def _is_hex_sha(s: str) -> bool:
    return 4 <= len(s) <= 40 and all(c in "0123456789abcdef" for c in s.lower())


# --------------------------------------------------------------------------------------------
# world model


@dataclass
class RequestRecord:
    method: str
    path: str  # without api_prefix, as requested (may be the /repositories/{id}/... alias)
    query: dict[str, str]
    headers: dict[str, str]  # lower-case keys
    status: int = 0
    counted: bool = False  # counted against the (core) rate limit
    canonical_path: str = ""  # /repos/{owner}/{repo}/... form when the path was a repository alias
    at: datetime | None = None  # world time when received


class _Commit:
    __slots__ = ("sha", "message", "author_login", "author_name", "author_email", "authored_at",
                 "committed_at", "committed_ts", "parents", "history", "index", "tree_sha", "json_item",
                 "json_full")

    def __init__(self, sha, message, author_login, author_name, author_email, authored_at, committed_at,
                 parents, history, index):
        self.sha = sha
        self.message = message
        self.author_login = author_login
        self.author_name = author_name
        self.author_email = author_email
        self.authored_at = authored_at
        self.committed_at = committed_at
        self.committed_ts = committed_at.timestamp()
        self.parents = parents  # SHAs, first parent first (two for a merge commit)
        # The list this commit was pushed onto, in the order the commits list shows it (reversed):
        # history[:index+1] is its ancestry. A merge puts the merged branch's commits before the
        # merge commit, so the list is in topological, not date, order (as on GitHub).
        self.history = history
        self.index = index
        self.tree_sha = _sha1("tree:" + sha)
        self.json_item: bytes | None = None
        self.json_full: bytes | None = None

    def ancestry(self) -> list[str]:
        return self.history[: self.index + 1]


class _Item:
    """Base for mutable items (fields given as keywords): caches its serialized JSON until mutated."""

    def __init__(self, **fields):
        self.json: dict[str, bytes] = {}
        self.__dict__.update(fields)

    def touch(self):
        self.json = {}


class _Pull(_Item):
    pass


class _Release(_Item):
    pass


class _Run(_Item):
    pass


class _Deployment(_Item):
    def __init__(self, **fields):
        self.statuses: list[_DeploymentStatus] = []
        super().__init__(**fields)


class _DeploymentStatus(_Item):
    pass


class FakeRepo:
    """One repository of the fake world.  All mutators are thread-safe and visible immediately."""

    def __init__(self, fake: "FakeGitHub", full_name: str, repo_id: int, default_branch: str, created_at: datetime):
        owner, _, name = full_name.partition("/")
        if not owner or not name or "/" in name:
            raise ValueError(f"full_name must be 'owner/name': {full_name!r}")
        self._fake = fake
        self.full_name = full_name
        self.owner = owner
        self.name = name
        self.id = repo_id
        self.default_branch = default_branch
        self.created_at = created_at
        self.pushed_at = created_at
        self.branches: dict[str, list[str]] = {default_branch: []}
        self.commits: dict[str, _Commit] = {}
        self.pulls: dict[int, _Pull] = {}
        self.releases: dict[int, _Release] = {}
        self.runs: dict[int, _Run] = {}
        self.deployments: dict[int, _Deployment] = {}
        self.workflows: dict[str, dict] = {}  # name -> {"id", "path", "next_number"}
        self.error_status: int | None = None
        self._next_pull_number = 1
        self._version = 0
        self._cache: dict[Any, Any] = {}
        self._json: dict[str, bytes] = {}

    # ---------------------------------------------------------------- internals
    @property
    def _lock(self):
        return self._fake._lock

    def _bump(self):
        self._version += 1
        self._cache.clear()
        self._json.clear()

    def _cached(self, key, fn):
        try:
            return self._cache[key]
        except KeyError:
            if len(self._cache) > 256:
                self._cache.clear()
            value = self._cache[key] = fn()
            return value

    def _at(self, at: datetime | None) -> datetime:
        return _utc(at) if at is not None else _utc(self._fake.now())

    def _resolve_commitish(self, ref: str) -> list[str] | None:
        """History (oldest first) of a branch name or (possibly abbreviated) commit SHA."""
        if ref in self.branches:
            return self.branches[ref]
        if ref.startswith("refs/heads/") and ref[11:] in self.branches:
            return self.branches[ref[11:]]
        c = self._find_commit(ref)
        return c.ancestry() if c is not None else None

    def _find_commit(self, sha: str) -> _Commit | None:
        c = self.commits.get(sha.lower())
        if c is not None:
            return c
        if len(sha) >= 7 and _is_hex_sha(sha):
            matches = [c for s, c in self.commits.items() if s.startswith(sha.lower())]
            if len(matches) == 1:
                return matches[0]
        return None

    def _head_sha(self, branch: str | None) -> str | None:
        hist = self.branches.get(branch or self.default_branch)
        return hist[-1] if hist else None

    # ---------------------------------------------------------------- branches & commits
    def create_branch(self, name: str, from_branch: str | None = None) -> None:
        with self._lock:
            if name in self.branches:
                raise ValueError(f"branch {name!r} already exists in {self.full_name}")
            src = from_branch or self.default_branch
            if src not in self.branches:
                raise KeyError(f"unknown branch {src!r} in {self.full_name}")
            self.branches[name] = list(self.branches[src])
            self._bump()

    def add_commit(self, branch: str | None = None, message: str = "Update README.md", author_login: str | None = "octocat",
                   author_name: str = "The Octocat", authored_at: datetime | None = None,
                   committed_at: datetime | None = None, sha: str | None = None,
                   author_email: str | None = None) -> str:
        """Push one commit on top of ``branch`` (default branch) now; returns its 40-hex SHA."""
        with self._lock:
            branch = branch or self.default_branch
            if branch not in self.branches:
                raise KeyError(f"unknown branch {branch!r} in {self.full_name} (create_branch first)")
            authored = self._at(authored_at)
            committed = _utc(committed_at) if committed_at is not None else authored
            if sha is None:
                sha = self._new_sha(message)
            sha = sha.lower()
            if len(sha) != 40 or not _is_hex_sha(sha):
                raise ValueError(f"sha must be 40 hex characters: {sha!r}")
            if sha in self.commits:
                raise ValueError(f"commit {sha} already exists in {self.full_name}")
            hist = self.branches[branch]
            self._append_commit(hist, sha, message, author_login, author_name, author_email, authored, committed,
                                [hist[-1]] if hist else [])
            return sha

    def _append_commit(self, hist: list[str], sha: str, message: str, author_login: str | None, author_name: str,
                       author_email: str | None, authored: datetime, committed: datetime,
                       parents: list[str]) -> None:
        if author_email is None:
            author_email = f"{author_login or 'nobody'}@users.noreply.github.com"
        hist.append(sha)
        self.commits[sha] = _Commit(sha, message, author_login, author_name, author_email, authored, committed,
                                    parents, hist, len(hist) - 1)
        self.pushed_at = _utc(self._fake.now())
        self._bump()

    def _new_sha(self, message: str) -> str:
        return _sha1(f"{self.full_name}:{self._fake._next('commit')}:{message}")

    def merge(self, source: str, into: str | None = None, message: str | None = None,
              committed_at: datetime | None = None, author_login: str = "octocat") -> str:
        """A merge commit on ``into`` (default branch) with parents [head of into, head of source].
        The commits list of ``into`` then shows the merge commit, the merged commits (newest first),
        then the earlier history of ``into``: topological order, whatever the commits' dates."""
        with self._lock:
            into = into or self.default_branch
            target, merged = self.branches[into], self.branches[source]
            if not target or not merged:
                raise ValueError("both branches need a commit to merge")
            parents = [target[-1], merged[-1]]
            present = set(target)
            target.extend(sha for sha in merged if sha not in present)
            at = self._at(committed_at)
            message = message or f"Merge branch '{source}' into {into}"
            sha = self._new_sha(message)
            self._append_commit(target, sha, message, author_login, author_login, None, at, at, parents)
            return sha

    def rebase(self, branch: str, onto: str | None = None, committed_at: datetime | None = None,
               keep_committer_dates: bool = False) -> list[str]:
        """Rebase ``branch`` onto ``onto`` (default branch) and force-push it: its own commits are
        replayed on the head of ``onto`` with new SHAs, author dates kept, committer dates set to
        ``committed_at`` (now) or, with ``keep_committer_dates`` (``git rebase
        --committer-date-is-author-date``), kept. Returns the new SHAs, oldest first."""
        with self._lock:
            onto = onto or self.default_branch
            base = self.branches[onto]
            in_base = set(base)
            own = [self.commits[sha] for sha in self.branches[branch] if sha not in in_base]
            hist = list(base)
            self.branches[branch] = hist
            at = self._at(committed_at)
            new_shas = []
            for old in own:
                sha = self._new_sha(old.message)
                self._append_commit(hist, sha, old.message, old.author_login, old.author_name, old.author_email,
                                    old.authored_at, old.committed_at if keep_committer_dates else at,
                                    [hist[-1]] if hist else [])
                new_shas.append(sha)
            self._bump()
            return new_shas

    def head(self, branch: str | None = None) -> str | None:
        with self._lock:
            return self._head_sha(branch)

    # ---------------------------------------------------------------- pull requests
    def open_pull(self, title: str, user: str = "octocat", head_ref: str = "feature", head_sha: str | None = None,
                  base: str | None = None, created_at: datetime | None = None, body: str | None = None,
                  draft: bool = False) -> int:
        with self._lock:
            at = self._at(created_at)
            base = base or self.default_branch
            if head_sha is None:
                head_sha = self._head_sha(head_ref) or self._head_sha(base) or _sha1(f"{self.full_name}:{head_ref}:{title}")
            number = self._next_pull_number
            self._next_pull_number += 1
            self.pulls[number] = _Pull(
                number=number, id=self._fake._next("pull"), title=title, user=user, body=body, head_ref=head_ref,
                head_sha=head_sha, base_ref=base, base_sha=self._head_sha(base), state="open", draft=draft,
                created_at=at, updated_at=at, closed_at=None, merged_at=None, merge_commit_sha=None,
                merged_by=None,
            )
            self._bump()
            return number

    def _pull(self, number: int) -> _Pull:
        try:
            return self.pulls[number]
        except KeyError:
            raise KeyError(f"no pull #{number} in {self.full_name}") from None

    def merge_pull(self, number: int, at: datetime | None = None, merge_commit_sha: str | None = None,
                   merged_by: str = "octocat") -> None:
        with self._lock:
            p = self._pull(number)
            at = self._at(at)
            p.state = "closed"
            p.merged_at = p.closed_at = p.updated_at = at
            p.merge_commit_sha = merge_commit_sha or _sha1(f"{self.full_name}:merge:{number}:{iso(at)}")
            p.merged_by = merged_by
            p.touch()
            self._bump()

    def close_pull(self, number: int, at: datetime | None = None) -> None:
        with self._lock:
            p = self._pull(number)
            at = self._at(at)
            p.state = "closed"
            p.closed_at = p.updated_at = at
            p.touch()
            self._bump()

    def reopen_pull(self, number: int, at: datetime | None = None) -> None:
        with self._lock:
            p = self._pull(number)
            if p.merged_at is not None:
                raise ValueError("a merged pull request cannot be reopened")
            p.state = "open"
            p.closed_at = None
            p.updated_at = self._at(at)
            p.touch()
            self._bump()

    def update_pull(self, number: int, at: datetime | None = None, title: str | None = None,
                    head_sha: str | None = None) -> None:
        """Extra: bump ``updated_at`` (e.g. a new comment / push), optionally changing title or head sha."""
        with self._lock:
            p = self._pull(number)
            p.updated_at = self._at(at)
            if title is not None:
                p.title = title
            if head_sha is not None:
                p.head_sha = head_sha
            p.touch()
            self._bump()

    # ---------------------------------------------------------------- releases
    def add_release(self, tag: str, name: str | None = None, author: str = "octocat",
                    created_at: datetime | None = None, published_at: datetime | None = None,
                    draft: bool = False, prerelease: bool = False, body: str | None = None,
                    target_commitish: str | None = None) -> int:
        with self._lock:
            created = self._at(created_at)
            published = None if draft else (_utc(published_at) if published_at is not None else created)
            rid = self._fake._next("release")
            self.releases[rid] = _Release(
                id=rid, tag=tag, name=name if name is not None else tag, author=author, created_at=created,
                published_at=published, updated_at=published or created, draft=draft, prerelease=prerelease,
                body=body if body is not None else f"Release {tag}",
                target_commitish=target_commitish or self.default_branch,
            )
            self._bump()
            return rid

    def publish_release(self, release_id: int, at: datetime | None = None) -> None:
        with self._lock:
            r = self.releases[release_id]
            at = self._at(at)
            r.draft = False
            r.published_at = r.updated_at = at
            r.touch()
            self._bump()

    # ---------------------------------------------------------------- workflow runs
    def add_workflow_run(self, name: str = "CI", head_sha: str | None = None, head_branch: str | None = None,
                         event: str = "push", actor: str = "octocat", created_at: datetime | None = None,
                         status: str = "queued", conclusion: str | None = None, path: str | None = None) -> int:
        with self._lock:
            at = self._at(created_at)
            head_branch = head_branch or self.default_branch
            if head_sha is None:
                head_sha = self._head_sha(head_branch) or self._head_sha(None) or _sha1(f"{self.full_name}:{name}:{iso(at)}")
            wf = self.workflows.get(name)
            if wf is None:
                slug = "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-") or "workflow"
                wf = self.workflows[name] = {"id": self._fake._next("workflow"), "next_number": 1,
                                             "path": path or f".github/workflows/{slug}.yml"}
            rid = self._fake._next("run")
            self.runs[rid] = _Run(
                id=rid, name=name, workflow_id=wf["id"], path=wf["path"], run_number=wf["next_number"],
                run_attempt=1, head_sha=head_sha.lower(), head_branch=head_branch, event=event, actor=actor,
                triggering_actor=actor, status=status, conclusion=conclusion, created_at=at, updated_at=at,
                run_started_at=at, check_suite_id=self._fake._next("check_suite"),
            )
            wf["next_number"] += 1
            self._bump()
            return rid

    def start_run(self, run_id: int, at: datetime | None = None) -> None:
        with self._lock:
            r = self.runs[run_id]
            r.status = "in_progress"
            r.updated_at = self._at(at)
            r.touch()
            self._bump()

    def complete_run(self, run_id: int, conclusion: str = "success", at: datetime | None = None) -> None:
        with self._lock:
            r = self.runs[run_id]
            r.status = "completed"
            r.conclusion = conclusion
            r.updated_at = self._at(at)
            r.touch()
            self._bump()

    def rerun(self, run_id: int, at: datetime | None = None, actor: str | None = None) -> None:
        with self._lock:
            r = self.runs[run_id]
            at = self._at(at)
            r.run_attempt += 1
            r.status = "queued"
            r.conclusion = None
            r.run_started_at = r.updated_at = at
            if actor is not None:
                r.triggering_actor = actor
            r.touch()
            self._bump()

    # ---------------------------------------------------------------- deployments
    def add_deployment(self, environment: str = "production", sha: str | None = None, ref: str | None = None,
                       creator: str = "octocat", created_at: datetime | None = None, task: str = "deploy",
                       description: str | None = None, payload: dict | None = None) -> int:
        with self._lock:
            at = self._at(created_at)
            ref = ref or self.default_branch
            if sha is None:
                hist = self._resolve_commitish(ref)
                sha = hist[-1] if hist else _sha1(f"{self.full_name}:deploy:{ref}:{iso(at)}")
            did = self._fake._next("deployment")
            self.deployments[did] = _Deployment(
                id=did, sha=sha.lower(), ref=ref, task=task, environment=environment, description=description,
                creator=creator, created_at=at, updated_at=at, payload=payload or {},
            )
            self._bump()
            return did

    def add_deployment_status(self, deployment_id: int, state: str, at: datetime | None = None,
                              target_url: str | None = None, environment_url: str | None = None,
                              creator: str = "octocat", description: str | None = None,
                              log_url: str | None = None) -> int:
        with self._lock:
            d = self.deployments[deployment_id]
            at = self._at(at)
            sid = self._fake._next("deployment_status")
            d.statuses.append(_DeploymentStatus(
                id=sid, deployment_id=deployment_id, state=state, creator=creator, description=description or "",
                environment=d.environment, target_url=target_url or "", log_url=log_url or target_url or "",
                environment_url=environment_url or "", created_at=at, updated_at=at,
            ))
            d.updated_at = at
            d.touch()
            self._bump()
            return sid


# --------------------------------------------------------------------------------------------
# rendering (dicts built from the templates)


class _Renderer:
    """Builds GitHub-shaped dicts from the templates.  URLs use ``https://api.github.com`` and
    ``https://github.com``; the serializer rewrites them to the fake's base URL / html_base."""

    def __init__(self):
        self.t = templates()
        self._users: dict[str, dict] = {}
        self._repo_subs: dict[tuple[int, str], dict] = {}

    # ---- users
    def user(self, login: str | None) -> dict | None:
        if login is None:
            return None
        u = self._users.get(login)
        if u is None:
            u = _replace_strings(self.t.user, [("octocat", login)])
            uid = 1 if login == "octocat" else 1000 + zlib.crc32(login.encode()) % 90_000_000
            u["login"] = login
            u["id"] = uid
            u["node_id"] = _node_id("04:User", uid)
            u["type"] = "Bot" if login.endswith("[bot]") else "User"
            u["site_admin"] = False
            self._users[login] = u
        return u

    # ---- repositories
    def repo_full(self, repo: FakeRepo) -> dict:
        t = self.t.repository
        old = t["full_name"]
        d = _replace_strings(t, [(old, repo.full_name)])
        d.pop("parent", None)
        d.pop("source", None)
        d.update(
            id=repo.id, node_id=_node_id("010:Repository", repo.id), name=repo.name, full_name=repo.full_name,
            owner=self.user(repo.owner), private=False, description=f"Fake repository {repo.full_name}", fork=False,
            created_at=iso(repo.created_at), updated_at=iso(repo.pushed_at), pushed_at=iso(repo.pushed_at),
            homepage=None, language=None, license=None, default_branch=repo.default_branch,
            open_issues_count=sum(1 for p in repo.pulls.values() if p.state == "open"),
        )
        d["open_issues"] = d["open_issues_count"]
        d["network_count"] = d["subscribers_count"] = 0
        return d

    def repo_sub(self, template_repo: dict, repo: FakeRepo) -> dict:
        """A nested repository object (pull head/base repo, run repository) shaped like the template's."""
        key = (repo.id, template_repo["full_name"] + ":" + ",".join(template_repo))
        d = self._repo_subs.get(key)
        if d is not None:
            return d
        old_full, old_name = template_repo["full_name"], template_repo["name"]
        d = _replace_strings(template_repo, [(old_full, repo.full_name)])
        d.update(id=repo.id, node_id=_node_id("010:Repository", repo.id), name=repo.name, full_name=repo.full_name,
                 owner=self.user(repo.owner), private=False, description=f"Fake repository {repo.full_name}",
                 fork=False)
        for k, v in {"default_branch": repo.default_branch, "created_at": iso(repo.created_at),
                     "updated_at": iso(repo.created_at), "pushed_at": iso(repo.created_at), "homepage": None,
                     "mirror_url": None, "topics": [], "is_template": False, "template_repository": None,
                     "svn_url": f"https://github.com/{repo.full_name}", "visibility": "public",
                     "language": None, "license": None}.items():
            if k in d:
                d[k] = v
        if old_name != repo.name:
            d = {k: (v.replace(f"/{old_name}.git", f"/{repo.name}.git") if isinstance(v, str) else v)
                 for k, v in d.items()}
        self._repo_subs[key] = d
        return d

    # ---- commits
    def commit(self, repo: FakeRepo, c: _Commit, full: bool = False) -> dict:
        t = self.t.commit_full if full else self.t.commit_item
        api = f"https://api.github.com/repos/{repo.full_name}"
        html = f"https://github.com/{repo.full_name}"
        d: dict[str, Any] = {}
        for k in t:
            if k == "url":
                d[k] = f"{api}/commits/{c.sha}"
            elif k == "sha":
                d[k] = c.sha
            elif k == "node_id":
                d[k] = _node_id("06:Commit", f"{repo.id}:{c.sha}")
            elif k == "html_url":
                d[k] = f"{html}/commit/{c.sha}"
            elif k == "comments_url":
                d[k] = f"{api}/commits/{c.sha}/comments"
            elif k == "commit":
                tc = t["commit"]
                gc = dict(tc)
                gc["url"] = f"{api}/git/commits/{c.sha}"
                gc["author"] = {"name": c.author_name, "email": c.author_email, "date": iso(c.authored_at)}
                gc["committer"] = {"name": c.author_name, "email": c.author_email, "date": iso(c.committed_at)}
                gc["message"] = c.message
                gc["tree"] = {"url": f"{api}/git/trees/{c.tree_sha}", "sha": c.tree_sha}
                gc["comment_count"] = 0
                d[k] = gc
            elif k in ("author", "committer"):
                d[k] = self.user(c.author_login)
            elif k == "parents":
                d[k] = [{"url": f"{api}/commits/{p}", "sha": p, "html_url": f"{html}/commit/{p}"} for p in c.parents]
            elif k == "stats":
                d[k] = {"additions": 0, "deletions": 0, "total": 0}
            elif k == "files":
                d[k] = []
            else:
                d[k] = copy.deepcopy(t[k])
        return d

    # ---- pulls
    def pull(self, repo: FakeRepo, p: _Pull, full: bool = False) -> dict:
        t = self.t.pull
        api = f"https://api.github.com/repos/{repo.full_name}"
        html = f"https://github.com/{repo.full_name}"
        n = p.number
        owner_user = self.user(repo.owner)

        def part(ref: str, sha: str | None) -> dict:
            tp = t["head"]
            return {"label": f"{repo.owner}:{ref}", "ref": ref, "sha": sha, "user": owner_user,
                    "repo": self.repo_sub(tp["repo"], repo)}

        base_sha = repo._head_sha(p.base_ref) or p.base_sha
        subst = {
            "url": f"{api}/pulls/{n}", "id": p.id, "node_id": _node_id("011:PullRequest", p.id),
            "html_url": f"{html}/pull/{n}", "diff_url": f"{html}/pull/{n}.diff", "patch_url": f"{html}/pull/{n}.patch",
            "issue_url": f"{api}/issues/{n}", "commits_url": f"{api}/pulls/{n}/commits",
            "review_comments_url": f"{api}/pulls/{n}/comments", "review_comment_url": f"{api}/pulls/comments{{/number}}",
            "comments_url": f"{api}/issues/{n}/comments", "statuses_url": f"{api}/statuses/{p.head_sha}",
            "number": n, "state": p.state, "locked": False, "title": p.title, "user": self.user(p.user),
            "body": p.body, "labels": [], "milestone": None, "active_lock_reason": None,
            "created_at": iso(p.created_at), "updated_at": iso(p.updated_at), "closed_at": iso(p.closed_at),
            "merged_at": iso(p.merged_at), "merge_commit_sha": p.merge_commit_sha, "assignee": None, "assignees": [],
            "requested_reviewers": [], "requested_teams": [], "head": part(p.head_ref, p.head_sha),
            "base": part(p.base_ref, base_sha),
            "_links": {
                "self": {"href": f"{api}/pulls/{n}"}, "html": {"href": f"{html}/pull/{n}"},
                "issue": {"href": f"{api}/issues/{n}"}, "comments": {"href": f"{api}/issues/{n}/comments"},
                "review_comments": {"href": f"{api}/pulls/{n}/comments"},
                "review_comment": {"href": f"{api}/pulls/comments{{/number}}"},
                "commits": {"href": f"{api}/pulls/{n}/commits"},
                "statuses": {"href": f"{api}/statuses/{p.head_sha}"},
            },
            "author_association": "OWNER" if p.user == repo.owner else "CONTRIBUTOR",
            "auto_merge": None, "draft": p.draft,
        }
        d = {k: (subst[k] if k in subst else copy.deepcopy(v)) for k, v in t.items()}
        if full:
            merged = p.merged_at is not None
            ncommits = 1
            head_hist = repo.branches.get(p.head_ref)
            base_hist = repo.branches.get(p.base_ref)
            if head_hist is not None and base_hist is not None:
                mb = _common_prefix_len(base_hist, head_hist)
                ncommits = max(len(head_hist) - mb, 0)
            d.update({
                "merged": merged,
                "mergeable": None if p.state == "closed" else True,
                "rebaseable": None if p.state == "closed" else True,
                "mergeable_state": "unknown" if p.state == "closed" else "clean",
                "merged_by": self.user(p.merged_by) if merged else None,
                "comments": 0, "review_comments": 0, "maintainer_can_modify": False,
                "commits": ncommits, "additions": 0, "deletions": 0, "changed_files": 0,
            })
        return d

    # ---- releases
    def release(self, repo: FakeRepo, r: _Release) -> dict:
        t = self.t.release
        api = f"https://api.github.com/repos/{repo.full_name}"
        html = f"https://github.com/{repo.full_name}"
        tag = quote(r.tag, safe="")
        subst = {
            "url": f"{api}/releases/{r.id}", "html_url": f"{html}/releases/tag/{tag}",
            "assets_url": f"{api}/releases/{r.id}/assets",
            "upload_url": f"https://uploads.github.com/repos/{repo.full_name}/releases/{r.id}/assets{{?name,label}}",
            "tarball_url": f"{api}/tarball/{tag}", "zipball_url": f"{api}/zipball/{tag}", "id": r.id,
            "node_id": _node_id("07:Release", r.id), "tag_name": r.tag, "target_commitish": r.target_commitish,
            "name": r.name, "body": r.body, "draft": r.draft, "prerelease": r.prerelease, "immutable": False,
            "created_at": iso(r.created_at), "published_at": iso(r.published_at), "author": self.user(r.author),
            "assets": [],
        }
        d: dict[str, Any] = {}
        for k, v in t.items():
            d[k] = subst[k] if k in subst else copy.deepcopy(v)
            if k == "created_at":
                d["updated_at"] = iso(r.updated_at)  # current GitHub responses carry updated_at too
        return d

    # ---- workflow runs
    def run(self, repo: FakeRepo, r: _Run) -> dict:
        t = self.t.run
        api = f"https://api.github.com/repos/{repo.full_name}"
        html = f"https://github.com/{repo.full_name}"
        c = repo.commits.get(r.head_sha)
        if c is not None:
            head_commit = {"id": c.sha, "tree_id": c.tree_sha, "message": c.message, "timestamp": iso(c.committed_at),
                           "author": {"name": c.author_name, "email": c.author_email},
                           "committer": {"name": c.author_name, "email": c.author_email}}
            title = c.message.split("\n", 1)[0]
        else:
            th = t["head_commit"]
            head_commit = dict(th, id=r.head_sha, tree_id=_sha1("tree:" + r.head_sha), message=r.name,
                               timestamp=iso(r.created_at))
            title = r.name
        base = f"{api}/actions/runs/{r.id}"
        subst = {
            "id": r.id, "name": r.name, "node_id": _node_id("WFR_", r.id), "check_suite_id": r.check_suite_id,
            "check_suite_node_id": _node_id("CS_", r.check_suite_id), "head_branch": r.head_branch,
            "head_sha": r.head_sha, "path": r.path, "run_number": r.run_number, "event": r.event,
            "display_title": title, "status": r.status, "conclusion": r.conclusion, "workflow_id": r.workflow_id,
            "url": base, "html_url": f"{html}/actions/runs/{r.id}", "pull_requests": [],
            "created_at": iso(r.created_at), "updated_at": iso(r.updated_at), "actor": self.user(r.actor),
            "run_attempt": r.run_attempt, "run_started_at": iso(r.run_started_at),
            "triggering_actor": self.user(r.triggering_actor), "jobs_url": f"{base}/jobs", "logs_url": f"{base}/logs",
            "check_suite_url": f"{api}/check-suites/{r.check_suite_id}", "artifacts_url": f"{base}/artifacts",
            "cancel_url": f"{base}/cancel", "rerun_url": f"{base}/rerun",
            "workflow_url": f"{api}/actions/workflows/{r.workflow_id}", "head_commit": head_commit,
            "repository": self.repo_sub(t["repository"], repo),
            "head_repository": self.repo_sub(t["head_repository"], repo),
        }
        d: dict[str, Any] = {}
        for k, v in t.items():
            d[k] = subst[k] if k in subst else copy.deepcopy(v)
            if k == "rerun_url":
                d["previous_attempt_url"] = (f"{base}/attempts/{r.run_attempt - 1}" if r.run_attempt > 1 else None)
        return d

    # ---- deployments
    def deployment(self, repo: FakeRepo, dep: _Deployment) -> dict:
        t = self.t.deployment
        api = f"https://api.github.com/repos/{repo.full_name}"
        subst = {
            "url": f"{api}/deployments/{dep.id}", "id": dep.id, "node_id": _node_id("010:Deployment", dep.id),
            "sha": dep.sha, "ref": dep.ref, "task": dep.task, "payload": dep.payload,
            "original_environment": dep.environment, "environment": dep.environment, "description": dep.description,
            "creator": self.user(dep.creator), "created_at": iso(dep.created_at), "updated_at": iso(dep.updated_at),
            "statuses_url": f"{api}/deployments/{dep.id}/statuses", "repository_url": api,
            "transient_environment": False, "production_environment": dep.environment == "production",
        }
        return {k: (subst[k] if k in subst else copy.deepcopy(v)) for k, v in t.items()}

    def deployment_status(self, repo: FakeRepo, s: _DeploymentStatus) -> dict:
        t = self.t.deployment_status
        api = f"https://api.github.com/repos/{repo.full_name}"
        subst = {
            "url": f"{api}/deployments/{s.deployment_id}/statuses/{s.id}", "id": s.id,
            "node_id": _node_id("016:DeploymentStatus", s.id), "state": s.state, "creator": self.user(s.creator),
            "description": s.description, "environment": s.environment, "target_url": s.target_url,
            "created_at": iso(s.created_at), "updated_at": iso(s.updated_at),
            "deployment_url": f"{api}/deployments/{s.deployment_id}", "repository_url": api,
            "environment_url": s.environment_url, "log_url": s.log_url,
        }
        return {k: (subst[k] if k in subst else copy.deepcopy(v)) for k, v in t.items()}


def _common_prefix_len(a: list[str], b: list[str]) -> int:
    n = min(len(a), len(b))
    if n and a[n - 1] == b[n - 1]:
        return n  # common case: one history extends the other
    lo, hi = 0, n  # histories are linear: the shared part is a prefix, so binary search works
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[mid - 1] == b[mid - 1]:
            lo = mid
        else:
            hi = mid - 1
    return lo


# --------------------------------------------------------------------------------------------
# HTTP layer


class _HTTPError(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None, body: Any = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.body = body


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    etag: bool = False  # add an ETag (200 GET)


class FakeGitHub(HTTPFake):
    """Fake api.github.com on ``http://127.0.0.1:<port><api_prefix>``.  See module docstring."""

    server_header = "GitHub.com"

    def __init__(self, token: str = "test-token", latency: float = 0.0, api_prefix: str = "",
                 html_base: str = "https://github.com", rate_limit: int = 5000, host: str = "127.0.0.1",
                 clock_offset: float = 0.0):
        """``clock_offset``: seconds the world clock (timestamps, ``Date`` headers, rate-limit
        resets) is ahead of this host's clock; negative for a server clock that lags behind."""
        super().__init__(host)
        self.token = token
        self.latency = latency
        self.api_prefix = ("/" + api_prefix.strip("/")) if api_prefix.strip("/") else ""
        self.html_base = html_base.rstrip("/")
        self.rate_limit = rate_limit
        self.base_url = ""
        self.requests: list[RequestRecord] = []
        self._offset = float(clock_offset)
        self._repos: dict[str, FakeRepo] = {}
        self._repos_by_id: dict[int, FakeRepo] = {}
        self._counters: dict[str, int] = {}
        self._remaining = rate_limit
        self._reset_at = self._now_epoch() + 3600
        self._renderer = _Renderer()
        self._rewrites: list[tuple[bytes, bytes]] = []

    # ---------------------------------------------------------------- lifecycle (HTTPFake)
    def _started(self, origin: str) -> None:
        self.base_url = origin + self.api_prefix
        rw = [(b"https://api.github.com", self.base_url.encode()), (b"http://api.github.com", self.base_url.encode())]
        if self.html_base != "https://github.com":
            rw.append((b"https://github.com", self.html_base.encode()))
        with self._lock:
            self._rewrites = rw
            self._clear_json_caches()

    # ---------------------------------------------------------------- clock
    def _now_epoch(self) -> float:
        return time.time() + getattr(self, "_offset", 0.0)

    _clock_epoch = _now_epoch  # the Date header

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._now_epoch(), tz=UTC)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds

    # ---------------------------------------------------------------- world
    def _next(self, kind: str) -> int:
        starts = {"repo": 700_000_000, "pull": 1_800_000_000, "release": 150_000_000, "run": 10_000_000_000,
                  "workflow": 60_000_000, "check_suite": 20_000_000_000, "deployment": 1_500_000_000,
                  "deployment_status": 3_000_000_000, "commit": 0}
        with self._lock:
            v = self._counters.get(kind, starts.get(kind, 1)) + 1
            self._counters[kind] = v
            return v

    def add_repo(self, full_name: str, default_branch: str = "main") -> FakeRepo:
        with self._lock:
            key = full_name.lower()
            if key in self._repos:
                raise ValueError(f"repo {full_name} already exists")
            repo = FakeRepo(self, full_name, self._next("repo"), default_branch, _utc(self.now()))
            self._repos[key] = repo
            self._repos_by_id[repo.id] = repo
            return repo

    def repo(self, full_name: str) -> FakeRepo:
        with self._lock:
            return self._repos[full_name.lower()]

    def set_repo_error(self, full_name: str, status: int | None) -> None:
        with self._lock:
            self.repo(full_name).error_status = status

    # ---------------------------------------------------------------- faults & rate limit
    def fail_next(self, count: int = 1, status: int = 502, path_contains: str | None = None,
                  headers: dict | None = None, body: dict | None = None) -> None:
        if body is None:
            body = {"message": "Server Error"} if status >= 500 else {
                "message": HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error",
                "documentation_url": DOCS_URL}
        if path_contains is None:  # every request but /rate_limit
            def match(target: str) -> bool:
                return target.partition("?")[0] != "/rate_limit"
        else:
            def match(target: str) -> bool:
                return path_contains in target
        self._faults.add(Fault(count, status, match, body, dict(headers or {})))

    def drop_next(self, count: int = 1, path_contains: str | None = None) -> None:
        """The next matching requests get no answer: the connection is closed under them."""
        self.fail_next(count, DROPPED, path_contains, body={})

    def secondary_rate_limit_next(self, retry_after: int = 60, path_contains: str | None = None) -> None:
        self.fail_next(1, 403, path_contains, headers={"Retry-After": str(retry_after)},
                       body={"message": SECONDARY_RATE_LIMIT_MESSAGE,
                             "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
                                                  "#about-secondary-rate-limits"})

    def clear_faults(self) -> None:
        self._faults.clear()

    def exhaust_rate_limit(self, reset_in: float = 3600) -> None:
        with self._lock:
            self._remaining = 0
            self._reset_at = self._now_epoch() + reset_in

    @property
    def rate_remaining(self) -> int:
        with self._lock:
            self._roll_rate_window()
            return self._remaining

    @rate_remaining.setter
    def rate_remaining(self, value: int) -> None:
        with self._lock:
            self._roll_rate_window()
            self._remaining = max(0, min(int(value), self.rate_limit))

    @property
    def rate_reset_epoch(self) -> int:
        with self._lock:
            self._roll_rate_window()
            return int(self._reset_at)

    def _roll_rate_window(self) -> None:
        now = self._now_epoch()
        if now >= self._reset_at:
            self._remaining = self.rate_limit
            self._reset_at = now + 3600

    # ---------------------------------------------------------------- serialization helpers
    def _clear_json_caches(self) -> None:
        for repo in self._repos.values():
            repo._json.clear()
            for c in repo.commits.values():
                c.json_item = c.json_full = None
            for coll in (repo.pulls, repo.releases, repo.runs, repo.deployments):
                for it in coll.values():
                    it.touch()
            for d in repo.deployments.values():
                for s in d.statuses:
                    s.touch()

    def _dumps(self, obj: Any) -> bytes:
        b = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        for old, new in self._rewrites:
            if old in b:
                b = b.replace(old, new)
        return b

    def _item_json(self, item: _Item, variant: str, build: Callable[[], dict]) -> bytes:
        b = item.json.get(variant)
        if b is None:
            if len(item.json) > 8:
                item.json.clear()
            b = item.json[variant] = self._dumps(build())
        return b

    def _pull_json(self, repo: FakeRepo, p: _Pull, full: bool = False) -> bytes:
        # pull payloads also depend on the base branch head (and, for the full object, branch lengths)
        bh = repo.branches.get(p.base_ref) or []
        variant = f"{'full' if full else 'item'}:{bh[-1] if bh else ''}"
        if full:
            variant += f":{len(bh)}:{len(repo.branches.get(p.head_ref) or [])}"
        return self._item_json(p, variant, lambda: self._renderer.pull(repo, p, full=full))

    def _commit_json(self, repo: FakeRepo, c: _Commit, full: bool = False) -> bytes:
        if full:
            if c.json_full is None:
                c.json_full = self._dumps(self._renderer.commit(repo, c, full=True))
            return c.json_full
        if c.json_item is None:
            c.json_item = self._dumps(self._renderer.commit(repo, c))
        return c.json_item

    # ---------------------------------------------------------------- request handling
    def _handle_request(self, method: str, raw_path: str, headers) -> _Response:
        if self.latency:
            time.sleep(self.latency)
        split = urlsplit(raw_path)
        path = unquote(split.path)
        query_items = parse_qsl(split.query, keep_blank_values=True)
        query = dict(query_items)
        hdrs = {k.lower(): v for k, v in headers.items()}
        if self.api_prefix:
            if path == self.api_prefix or path.startswith(self.api_prefix + "/"):
                path = path[len(self.api_prefix):] or "/"
            else:
                path = "\0" + path  # outside the API prefix: never routes
        rec = RequestRecord(method=method, path=path.lstrip("\0"), query=query, headers=hdrs)
        with self._lock:
            rec.at = self.now()
            self._record(rec)
            resp = self._process(method, path, split.query, query_items, query, hdrs, rec)
            rec.status = resp.status
            return resp

    def _rate_headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(self._remaining),
            "X-RateLimit-Reset": str(int(self._reset_at)),
            "X-RateLimit-Used": str(self.rate_limit - self._remaining),
            "X-RateLimit-Resource": "core",
        }

    def _json_response(self, status: int, body: Any, headers: dict | None = None) -> _Response:
        h = {"Content-Type": "application/json; charset=utf-8"}
        h.update(headers or {})
        return _Response(status, body if isinstance(body, bytes) else self._dumps(body), h)

    def _error(self, status: int, message: str, headers: dict | None = None) -> _Response:
        return self._json_response(status, {"message": message, "documentation_url": DOCS_URL, "status": str(status)},
                                   headers)

    def _process(self, method, path, raw_query, query_items, query, hdrs, rec: RequestRecord) -> _Response:
        self._roll_rate_window()
        common = {"X-GitHub-Media-Type": "github.v3; format=json", "X-GitHub-Api-Version-Selected": "2022-11-28",
                  "Vary": "Accept, Authorization, Cookie, X-GitHub-OTP"}

        def finish(resp: _Response, counted: bool) -> _Response:
            rec.counted = counted
            if counted and self._remaining > 0:
                self._remaining -= 1
            resp.headers = {**common, **self._rate_headers(), **resp.headers}
            resp.headers.setdefault("Content-Type", "application/json; charset=utf-8")
            return resp

        # --- authentication
        auth = hdrs.get("authorization", "")
        scheme, _, cred = auth.partition(" ")
        if scheme.lower() not in ("token", "bearer") or cred.strip() != self.token:
            return finish(self._json_response(401, {"message": "Bad credentials", "documentation_url": DOCS_URL,
                                                    "status": "401"}), counted=False)

        canonical = self._canonical_path(path)
        rec.canonical_path = canonical
        if path == "/rate_limit":
            return finish(self._json_response(200, self._rate_limit_body()), counted=False)

        # --- primary rate limit
        if self._remaining <= 0:
            return finish(self._json_response(403, {
                "message": "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, "
                           "please include the request ID 0000:0000:0000000:0000000:00000000.",
                "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
                                     "#about-primary-rate-limits"}), counted=True)

        # --- injected faults (first matching entry)
        target = path + ("?" + raw_query if raw_query else "")
        target_c = canonical + ("?" + raw_query if raw_query else "")
        f = self._faults.take(target, target_c)
        if f is not None:
            return finish(self._json_response(f.status, f.body, dict(f.headers)), counted=True)

        # --- route
        if method not in ("GET", "HEAD"):
            return finish(self._error(405 if self._is_known_route(path) else 404,
                                      "Method Not Allowed" if self._is_known_route(path) else "Not Found"),
                          counted=True)
        try:
            resp = self._route(path, query_items, query)
        except _HTTPError as e:
            body = e.body if e.body is not None else {"message": e.message, "documentation_url": DOCS_URL,
                                                      "status": str(e.status)}
            return finish(self._json_response(e.status, body, e.headers), counted=True)

        # --- conditional request
        if resp.status == 200 and resp.etag:
            etag = 'W/"' + hashlib.md5(resp.body).hexdigest() + '"'
            resp.headers["ETag"] = etag
            inm = hdrs.get("if-none-match")
            if inm and _etag_matches(inm, etag):
                r304 = _Response(304, b"", {"ETag": etag})
                r304 = finish(r304, counted=False)
                r304.headers.pop("Content-Type", None)
                for k in [k for k in r304.headers if k.lower() == "link"]:
                    del r304.headers[k]
                return r304
        return finish(resp, counted=True)

    def _rate_limit_body(self) -> dict:
        core = {"limit": self.rate_limit, "used": self.rate_limit - self._remaining, "remaining": self._remaining,
                "reset": int(self._reset_at)}
        other = {"limit": 30, "used": 0, "remaining": 30, "reset": int(self._now_epoch()) + 60}
        gql = {"limit": 5000, "used": 0, "remaining": 5000, "reset": int(self._now_epoch()) + 3600}
        return {"resources": {"core": dict(core, resource="core"), "search": dict(other, resource="search"),
                              "graphql": dict(gql, resource="graphql")},
                "rate": dict(core, resource="core")}

    def _canonical_path(self, path: str) -> str:
        parts = path.split("/")
        if len(parts) >= 3 and parts[1] == "repositories" and parts[2].isdigit():
            repo = self._repos_by_id.get(int(parts[2]))
            if repo is not None:
                return "/repos/" + repo.full_name + ("/" + "/".join(parts[3:]) if len(parts) > 3 else "")
        return path

    def _is_known_route(self, path: str) -> bool:
        return path.startswith(("/repos/", "/repositories/"))

    # ---------------------------------------------------------------- routing
    def _route(self, path: str, query_items: list, query: dict) -> _Response:
        parts = [p for p in path.split("/") if p != ""]
        if not parts:
            return self._ok({"current_user_url": "https://api.github.com/user",
                             "repository_url": "https://api.github.com/repos/{owner}/{repo}"})
        if parts[0] == "repos" and len(parts) >= 3:
            repo = self._repos.get(f"{parts[1]}/{parts[2]}".lower())
            rest = parts[3:]
        elif parts[0] == "repositories" and len(parts) >= 2 and parts[1].isdigit():
            repo = self._repos_by_id.get(int(parts[1]))
            rest = parts[2:]
        elif parts[0] == "users" and len(parts) == 2:
            return self._ok(self._full_user(parts[1]))
        elif parts == ["user"]:
            return self._ok(self._full_user("octocat"))
        else:
            raise _HTTPError(404, "Not Found")
        if repo is None:
            raise _HTTPError(404, "Not Found")
        if repo.error_status is not None:
            st = repo.error_status
            msg = {404: "Not Found", 403: "Resource not accessible by integration", 401: "Bad credentials",
                   451: "Repository access blocked"}.get(st, HTTPStatus(st).phrase if st in HTTPStatus._value2member_map_ else "Error")
            raise _HTTPError(st, msg)
        return self._repo_route(repo, rest, query_items, query)

    def _full_user(self, login: str) -> dict:
        u = dict(self._renderer.user(login))
        u.update({"name": login, "company": None, "blog": "", "location": None, "email": None, "hireable": None,
                  "bio": None, "twitter_username": None, "public_repos": 1, "public_gists": 0, "followers": 0,
                  "following": 0, "created_at": "2011-01-25T18:44:36Z", "updated_at": "2011-01-25T18:44:36Z"})
        return u

    def _ok(self, body: Any, headers: dict | None = None) -> _Response:
        r = self._json_response(200, body, headers)
        r.etag = True
        return r

    def _repo_route(self, repo: FakeRepo, rest: list[str], qi: list, q: dict) -> _Response:
        n = len(rest)
        if n == 0:
            b = repo._json.get("repo")
            if b is None:
                b = repo._json["repo"] = self._dumps(self._renderer.repo_full(repo))
            return self._ok(b)
        head = rest[0]
        if head == "commits":
            if n == 1:
                return self._list_commits(repo, rest, qi, q)
            if n == 2:
                c = repo._find_commit(rest[1])
                if c is None and rest[1] in repo.branches:
                    c = repo.commits[repo.branches[rest[1]][-1]] if repo.branches[rest[1]] else None
                if c is None:
                    raise _HTTPError(422, f"No commit found for SHA: {rest[1]}")
                return self._ok(self._commit_json(repo, c, full=True))
        elif head == "compare" and n >= 2:
            return self._compare(repo, "/".join(rest[1:]), rest, qi, q)
        elif head == "branches":
            if n == 1:
                names = sorted(repo.branches)
                items = [{"name": b, "commit": {"sha": repo.branches[b][-1],
                                                "url": f"https://api.github.com/repos/{repo.full_name}/commits/{repo.branches[b][-1]}"},
                          "protected": False} for b in names if repo.branches[b]]
                return self._paged_list(repo, rest, qi, q, [self._dumps(i) for i in items])
            name = "/".join(rest[1:])
            hist = repo.branches.get(name)
            if not hist:
                raise _HTTPError(404, "Branch not found")
            api = f"https://api.github.com/repos/{repo.full_name}"
            commit = json.loads(self._commit_json(repo, repo.commits[hist[-1]]))
            return self._ok({"name": name, "commit": commit,
                             "_links": {"self": f"{api}/branches/{quote(name)}",
                                        "html": f"https://github.com/{repo.full_name}/tree/{quote(name)}"},
                             "protected": False, "protection": {"enabled": False, "required_status_checks": {
                                 "enforcement_level": "off", "contexts": [], "checks": []}},
                             "protection_url": f"{api}/branches/{quote(name)}/protection"})
        elif head == "pulls":
            if n == 1:
                return self._list_pulls(repo, rest, qi, q)
            if n == 2 and rest[1].isdigit():
                p = repo.pulls.get(int(rest[1]))
                if p is None:
                    raise _HTTPError(404, "Not Found")
                return self._ok(self._pull_json(repo, p, full=True))
        elif head == "releases":
            if n == 1:
                rels = repo._cached(("releases",), lambda: sorted(
                    repo.releases.values(), key=lambda r: (r.created_at, r.id), reverse=True))
                return self._paged_list(repo, rest, qi, q, rels,
                                        lambda r: self._item_json(r, "item", lambda: self._renderer.release(repo, r)))
            if n == 2 and rest[1].isdigit():
                r = repo.releases.get(int(rest[1]))
            elif n == 3 and rest[1] == "tags":
                r = next((x for x in repo.releases.values() if x.tag == rest[2] and not x.draft), None)
            elif n == 2 and rest[1] == "latest":
                pub = [x for x in repo.releases.values() if not x.draft and not x.prerelease]
                r = max(pub, key=lambda x: (x.created_at, x.id)) if pub else None
            else:
                r = None
            if r is None:
                raise _HTTPError(404, "Not Found")
            return self._ok(self._item_json(r, "item", lambda: self._renderer.release(repo, r)))
        elif head == "actions" and n >= 2:
            if rest[1] == "runs":
                if n == 2:
                    return self._list_runs(repo, rest, qi, q, workflow=None)
                if n >= 3 and rest[2].isdigit():
                    r = repo.runs.get(int(rest[2]))
                    if r is None:
                        raise _HTTPError(404, "Not Found")
                    if n == 3:
                        return self._ok(self._item_json(r, "item", lambda: self._renderer.run(repo, r)))
            elif rest[1] == "workflows" and n == 4 and rest[3] == "runs":
                wf = next((w for w in repo.workflows.values()
                           if str(w["id"]) == rest[2] or w["path"].rsplit("/", 1)[-1] == rest[2]), None)
                if wf is None:
                    raise _HTTPError(404, "Not Found")
                return self._list_runs(repo, rest, qi, q, workflow=wf["id"])
        elif head == "deployments":
            if n == 1:
                return self._list_deployments(repo, rest, qi, q)
            if rest[1].isdigit():
                d = repo.deployments.get(int(rest[1]))
                if d is None:
                    raise _HTTPError(404, "Not Found")
                if n == 2:
                    return self._ok(self._item_json(d, "item", lambda: self._renderer.deployment(repo, d)))
                if rest[2] == "statuses":
                    sts = repo._cached(("dstatuses", d.id), lambda: sorted(
                        d.statuses, key=lambda s: (s.created_at, s.id), reverse=True))
                    if n == 3:
                        return self._paged_list(repo, rest, qi, q, sts, lambda s: self._item_json(
                            s, "item", lambda: self._renderer.deployment_status(repo, s)))
                    if n == 4 and rest[3].isdigit():
                        s = next((x for x in d.statuses if x.id == int(rest[3])), None)
                        if s is None:
                            raise _HTTPError(404, "Not Found")
                        return self._ok(self._item_json(s, "item", lambda: self._renderer.deployment_status(repo, s)))
        raise _HTTPError(404, "Not Found")

    # ---------------------------------------------------------------- pagination
    @staticmethod
    def _page_params(q: dict, default: int = 30, maximum: int = 100) -> tuple[int, int]:
        try:
            per_page = int(q.get("per_page", default))
        except ValueError:
            per_page = default
        if per_page < 1:
            per_page = default
        per_page = min(per_page, maximum)
        try:
            page = int(q.get("page", 1))
        except ValueError:
            page = 1
        return max(page, 1), per_page

    def _link_header(self, repo: FakeRepo, rest: list[str], qi: list, page: int, last: int) -> str | None:
        if last <= 1 and page <= 1:
            return None
        base = f"{self.base_url}/repositories/{repo.id}/" + "/".join(quote(p, safe="~.-_") for p in rest)

        def url(p: int) -> str:
            items, seen = [], False
            for k, v in qi:
                if k == "page":
                    if not seen:
                        items.append(("page", str(p)))
                        seen = True
                else:
                    items.append((k, v))
            if not seen:
                items.append(("page", str(p)))
            return base + "?" + urlencode(items)

        links = []
        if page > 1:
            links.append(f'<{url(min(page - 1, max(last, 1)))}>; rel="prev"')
        if page < last:
            links.append(f'<{url(page + 1)}>; rel="next"')
            links.append(f'<{url(last)}>; rel="last"')
        if page > 1:
            links.append(f'<{url(1)}>; rel="first"')
        return ", ".join(links) if links else None

    def _paginate(self, repo, rest, qi, q, items: list, default: int = 30, maximum: int = 100):
        page, per_page = self._page_params(q, default, maximum)
        total = len(items)
        last = max((total + per_page - 1) // per_page, 1)
        start = (page - 1) * per_page
        chunk = items[start:start + per_page]
        link = self._link_header(repo, rest, qi, page, last)
        return chunk, ({"Link": link} if link else {})

    def _paged_list(self, repo, rest, qi, q, items: list, to_json: Callable[[Any], bytes] | None = None) -> _Response:
        chunk, headers = self._paginate(repo, rest, qi, q, items)
        parts = [to_json(i) for i in chunk] if to_json else chunk
        return self._ok(b"[" + b",".join(parts) + b"]", headers)

    # ---------------------------------------------------------------- list endpoints
    def _list_commits(self, repo, rest, qi, q) -> _Response:
        if not repo.commits:
            raise _HTTPError(409, "Git Repository is empty.")
        ref = q.get("sha") or repo.default_branch
        hist = repo._resolve_commitish(ref)
        if not hist:
            raise _HTTPError(404, "Not Found")
        since = self._parse_time_param(q, "since")
        until = self._parse_time_param(q, "until")
        author = q.get("author")
        if author is not None:
            author = author.lower()

        def compute():
            out = []
            commits = repo.commits
            s = since.timestamp() if since else None
            u = until.timestamp() if until else None
            for sha in reversed(hist):
                c = commits[sha]
                if s is not None and c.committed_ts < s:
                    continue
                if u is not None and c.committed_ts > u:
                    continue
                if author is not None and author not in ((c.author_login or "").lower(), c.author_email.lower()):
                    continue
                out.append(c)
            return out

        key = ("commits", ref, len(hist), since, until, author)
        items = repo._cached(key, compute) if (since or until or author) else None
        if items is None:
            # unfiltered: slice the history directly (newest pushed first)
            page, per_page = self._page_params(q)
            total = len(hist)
            last = max((total + per_page - 1) // per_page, 1)
            start = (page - 1) * per_page
            end_idx = total - start
            shas = hist[max(end_idx - per_page, 0):max(end_idx, 0)][::-1] if end_idx > 0 else []
            link = self._link_header(repo, rest, qi, page, last)
            body = b"[" + b",".join(self._commit_json(repo, repo.commits[s]) for s in shas) + b"]"
            return self._ok(body, {"Link": link} if link else {})
        return self._paged_list(repo, rest, qi, q, items, lambda c: self._commit_json(repo, c))

    @staticmethod
    def _parse_time_param(q: dict, name: str) -> datetime | None:
        v = q.get(name)
        if not v:
            return None
        try:
            return _parse_iso(v)[0]
        except ValueError:
            raise _HTTPError(422, f"Invalid value for parameter '{name}': {v}") from None

    def _compare(self, repo, basehead: str, rest, qi, q) -> _Response:
        if "..." not in basehead:
            raise _HTTPError(404, "Not Found")
        base, head = basehead.split("...", 1)
        base = base.split(":", 1)[-1]
        head = head.split(":", 1)[-1]
        bh = repo._resolve_commitish(base)
        hh = repo._resolve_commitish(head)
        if not bh or not hh:
            raise _HTTPError(404, "Not Found")
        mb = _common_prefix_len(bh, hh)
        if mb == 0:
            raise _HTTPError(404, f"No common ancestor between {base} and {head}.")
        ahead, behind = len(hh) - mb, len(bh) - mb
        status = ("identical" if not ahead and not behind else "ahead" if not behind else "behind" if not ahead
                  else "diverged")
        commits = hh[mb:]
        chunk, headers = self._paginate(repo, rest, qi, q, commits, default=250, maximum=1000)
        api = f"https://api.github.com/repos/{repo.full_name}"
        html = f"https://github.com/{repo.full_name}"
        # assemble JSON by hand so cached commit bytes are reused
        head_fields = {
            "url": f"{api}/compare/{base}...{head}", "html_url": f"{html}/compare/{base}...{head}",
            "permalink_url": f"{html}/compare/{repo.owner}:{bh[-1][:7]}...{repo.owner}:{hh[-1][:7]}",
            "diff_url": f"{html}/compare/{base}...{head}.diff", "patch_url": f"{html}/compare/{base}...{head}.patch",
        }
        body = self._dumps(head_fields)[:-1]
        body += b',"base_commit":' + self._commit_json(repo, repo.commits[bh[-1]])
        body += b',"merge_base_commit":' + self._commit_json(repo, repo.commits[bh[mb - 1]])
        body += self._dumps({"status": status, "ahead_by": ahead, "behind_by": behind,
                             "total_commits": len(commits)}).replace(b"{", b",", 1)[:-1]
        body += b',"commits":[' + b",".join(self._commit_json(repo, repo.commits[s]) for s in chunk) + b"]"
        body += b',"files":[]}'
        return self._ok(body, headers)

    def _list_pulls(self, repo, rest, qi, q) -> _Response:
        state = q.get("state", "open")
        sort = q.get("sort", "created")
        direction = q.get("direction") or ("desc" if sort == "created" else "asc")
        if state not in ("open", "closed", "all") or sort not in ("created", "updated", "popularity", "long-running") \
                or direction not in ("asc", "desc"):
            raise _HTTPError(422, "Validation Failed")
        base = q.get("base")
        headf = q.get("head")

        def compute():
            ps = [p for p in repo.pulls.values()
                  if (state == "all" or p.state == state) and (base is None or p.base_ref == base)
                  and (headf is None or f"{repo.owner}:{p.head_ref}" == headf or p.head_ref == headf)]
            if sort == "updated":
                key = lambda p: (p.updated_at, p.number)  # noqa: E731
            else:  # created (popularity / long-running approximated by creation)
                key = lambda p: (p.created_at, p.number)  # noqa: E731
            ps.sort(key=key, reverse=(direction == "desc"))
            return ps

        items = repo._cached(("pulls", state, sort, direction, base, headf), compute)
        return self._paged_list(repo, rest, qi, q, items, lambda p: self._pull_json(repo, p))

    def _list_runs(self, repo, rest, qi, q, workflow: int | None) -> _Response:
        filters = {k: q[k] for k in RUN_FILTER_PARAMS if k in q}
        try:
            created = parse_github_date_range(filters["created"]) if "created" in filters else None
        except ValueError:
            raise _HTTPError(422, f"Invalid value for parameter 'created': {filters['created']}") from None

        def compute():
            runs = sorted(repo.runs.values(), key=lambda r: (r.created_at, r.id), reverse=True)
            out = []
            st = filters.get("status")
            for r in runs:
                if workflow is not None and r.workflow_id != workflow:
                    continue
                if "actor" in filters and r.actor != filters["actor"] and r.triggering_actor != filters["actor"]:
                    continue
                if "branch" in filters and r.head_branch != filters["branch"]:
                    continue
                if "event" in filters and r.event != filters["event"]:
                    continue
                if "head_sha" in filters and r.head_sha != filters["head_sha"].lower():
                    continue
                if "check_suite_id" in filters and str(r.check_suite_id) != filters["check_suite_id"]:
                    continue
                if st is not None and r.status != st and r.conclusion != st:
                    continue
                if created is not None and not created(r.created_at):
                    continue
                out.append(r)
            if filters:
                out = out[:RUNS_FILTER_CAP]
            return out

        items = repo._cached(("runs", workflow, tuple(sorted(filters.items()))), compute)
        chunk, headers = self._paginate(repo, rest, qi, q, items)
        body = (b'{"total_count":' + str(len(items)).encode() + b',"workflow_runs":['
                + b",".join(self._item_json(r, "item", lambda r=r: self._renderer.run(repo, r)) for r in chunk)
                + b"]}")
        return self._ok(body, headers)

    def _list_deployments(self, repo, rest, qi, q) -> _Response:
        f = {k: q[k] for k in ("sha", "ref", "task", "environment") if k in q and q[k] != ""}

        def compute():
            ds = sorted(repo.deployments.values(), key=lambda d: (d.created_at, d.id), reverse=True)
            return [d for d in ds if all(str(getattr(d, k)) == v for k, v in f.items())]

        items = repo._cached(("deployments", tuple(sorted(f.items()))), compute)
        return self._paged_list(repo, rest, qi, q, items,
                                lambda d: self._item_json(d, "item", lambda: self._renderer.deployment(repo, d)))


def _etag_matches(header: str, etag: str) -> bool:
    want = etag.removeprefix("W/").strip('"')
    for candidate in header.split(","):
        c = candidate.strip()
        if c == "*":
            return True
        if c.removeprefix("W/").strip('"') == want:
            return True
    return False
