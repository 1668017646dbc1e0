"""A local fake of the GitLab REST API (v4) on a real socket, serving a ``GitLabWorld``.

The real python-gitlab client works against it unchanged::

    world = GitLabWorld(now=datetime(2026, 11, 2, 12, tzinfo=timezone.utc))
    p = world.add_project("acme/platform/api")
    with FakeGitLab(world, token="glpat-test") as fake:
        gl = gitlab.Gitlab(fake.url, private_token="glpat-test", retry_transient_errors=False)
        gl.projects.get("acme/platform/api").commits.list(get_all=True)

Only the standard library is used (``http.server.ThreadingHTTPServer``).  Behaviour modelled on
GitLab.com: offset and keyset pagination headers, RateLimit-* headers, ETag / 304, the ``Date``
header from the world clock, GitLab's error bodies, and injectable faults.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import re
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, quote, unquote, urlencode

from .gitlab_world import (
    DEPLOYMENT_STATUSES,
    PIPELINE_STATUSES,
    Deployment,
    GitLabWorld,
    Group,
    MergeRequest,
    Pipeline,
    Project,
    iso,
)
from .http_fake import DROPPED, Fault, HTTPFake

__all__ = ["FakeGitLab", "GitLabWorld", "RequestRecord"]

UTC = timezone.utc
MAX_COUNTED_TOTAL = 10_000  # above this GitLab omits X-Total / X-Total-Pages / rel="last"
VERSION = {"version": "18.6.0-ee", "revision": "4c5d1b3a0f2", "kas": {"enabled": True,
           "externalUrl": "wss://kas.gitlab.example.com", "externalK8sProxyUrl": None, "version": "18.6.0"},
           "enterprise": True}


@dataclass
class RequestRecord:
    method: str
    path: str  # decoded, without the path prefix, e.g. /api/v4/projects/acme/platform/api/pipelines
    query: dict[str, str]
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)  # request headers, lower-case keys
    at: datetime | None = None  # world time when received
    raw_path: str = ""  # as sent (still %-encoded), without the prefix


class _Resp:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, body: bytes = b"", headers: dict | None = None):
        self.status = status
        self.body = body
        self.headers = headers or {}


class ApiError(Exception):
    def __init__(self, status: int, body: dict | str):
        super().__init__(status)
        self.status = status
        self.body = body


def _not_found(what: str = "") -> ApiError:
    return ApiError(404, {"message": f"404 {what + ' ' if what else ''}Not Found"})


# --------------------------------------------------------------------------------------------
# parameter parsing (Grape's error wording)


class _Params:
    def __init__(self, q: dict[str, str]):
        self.q = q

    def has(self, name: str) -> bool:
        return name in self.q and self.q[name] != ""

    def str(self, name: str, default: str | None = None) -> str | None:
        v = self.q.get(name)
        return default if v is None or v == "" else v

    def enum(self, name: str, allowed, default: str | None = None) -> str | None:
        v = self.str(name)
        if v is None:
            return default
        if v not in allowed:
            raise ApiError(400, {"error": f"{name} does not have a valid value"})
        return v

    def bool(self, name: str, default: bool = False) -> bool:
        v = self.str(name)
        if v is None:
            return default
        lv = v.lower()
        if lv in ("true", "1", "yes", "t"):
            return True
        if lv in ("false", "0", "no", "f"):
            return False
        raise ApiError(400, {"error": f"{name} is invalid"})

    def int(self, name: str, default: int | None = None) -> int | None:
        v = self.str(name)
        if v is None:
            return default
        try:
            return int(v)
        except ValueError:
            raise ApiError(400, {"error": f"{name} is invalid"}) from None

    def datetime(self, name: str) -> datetime | None:
        v = self.str(name)
        if v is None:
            return None
        s = v.strip()
        # a literal "+" in an unencoded query string arrives as a space
        s = re.sub(r"(T\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d:?\d\d)$", r"\1+\2", s)
        try:
            if len(s) == 10:
                d = date.fromisoformat(s)
                return datetime(d.year, d.month, d.day, tzinfo=UTC)
            if s.endswith(("z", "Z")):
                s = s[:-1] + "+00:00"
            dt = datetime.fromisoformat(s)
        except ValueError:
            raise ApiError(400, {"error": f"{name} is invalid"}) from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.astimezone(UTC)

    def date(self, name: str) -> date | None:
        v = self.str(name)
        if v is None:
            return None
        try:
            return date.fromisoformat(v.strip()[:10])
        except ValueError:
            raise ApiError(400, {"error": f"{name} is invalid"}) from None


def _sort_key_desc(sort: str) -> bool:
    return sort == "desc"


# --------------------------------------------------------------------------------------------


class FakeGitLab(HTTPFake):
    """Fake GitLab at ``fake.url`` (``http://127.0.0.1:PORT{path_prefix}``); the API is under ``/api/v4``."""

    server_header = "nginx"
    drop_with_reset = True

    def __init__(self, world: GitLabWorld, token: str = "glpat-test-token", path_prefix: str = "",
                 host: str = "127.0.0.1", latency_s: float = 0.0, rate_limit_per_minute: int | None = 2000,
                 tls: bool = False, rewrite_web_urls: bool = True):
        super().__init__(host)
        self.world = world
        self.token = token
        self.path_prefix = ("/" + path_prefix.strip("/")) if path_prefix.strip("/") else ""
        self.latency_s = latency_s
        self.rate_limit_per_minute = rate_limit_per_minute
        # DeploymentsFinder: production GitLab does NOT reject `updated_*` without order_by=updated_at
        # (track_and_raise_for_dev_exception only raises in dev/test): it silently re-sorts by
        # updated_at.  Set True to get the dev/test behaviour: 400.
        self.deployments_strict_pairing = False
        # Compare's commit list capped to the newest N (reordered oldest first), as GitLab does for
        # anonymous callers (MergeRequestDiff::COMMITS_SAFE_SIZE = 100, behind a feature flag).
        # None: every commit, as for authenticated callers.
        self.compare_commits_limit: int | None = None
        self.tls = tls
        self.ca_path: str | None = None
        self.rewrite_web_urls = rewrite_web_urls
        self.url = ""
        self.requests: list[RequestRecord] = []
        self._denied: dict[str, int] = {}
        self._rl: dict[str, list] = {}  # token -> [window_start_monotonic, used]
        self._tmpdir: tempfile.TemporaryDirectory | None = None

    # ---------------------------------------------------------------- lifecycle (HTTPFake)
    def _clock_epoch(self) -> float:
        return self.world.now.timestamp()

    def _prepare_server(self, srv) -> str:
        if not self.tls:
            return "http"
        self._tmpdir = tempfile.TemporaryDirectory(prefix="fakegitlab-tls-")
        d = Path(self._tmpdir.name)
        cert, key = d / "cert.pem", d / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
             "-days", "2", "-subj", f"/CN={self.host}", "-addext", f"subjectAltName=IP:{self.host},DNS:localhost"],
            check=True, capture_output=True)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        self.ca_path = str(cert)
        return "https"

    def _started(self, origin: str) -> None:
        self.url = origin + self.path_prefix

    def _stopped(self) -> None:
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    # ---------------------------------------------------------------- test controls
    def fail(self, path_regex: str, status: int = 500, times: int = 1, body: Any = None,
             headers: dict | None = None) -> None:
        """The next ``times`` requests whose decoded path matches get ``status`` (0: connection dropped)."""
        self._faults.add(Fault(times, status, re.compile(path_regex).search, body, headers or {}))

    def rate_limit(self, path_regex: str, times: int = 1, retry_after: int = 2, header: str = "Retry-After") -> None:
        """The next ``times`` matching requests get 429 ``Retry later`` (header: Retry-After seconds,
        or RateLimit-Reset = world-clock epoch seconds + retry_after)."""
        if header not in ("Retry-After", "RateLimit-Reset"):
            raise ValueError("header must be 'Retry-After' or 'RateLimit-Reset'")
        self._faults.add(Fault(times, 429, re.compile(path_regex).search, kind="rate_limit",
                               retry_after=retry_after, header=header))

    def deny(self, project_path: str, status: int = 404) -> None:
        if status not in (401, 403, 404):
            raise ValueError("status must be 401, 403 or 404")
        with self._lock:
            self._denied[project_path] = status

    def allow(self, project_path: str) -> None:
        with self._lock:
            self._denied.pop(project_path, None)

    # ---------------------------------------------------------------- request handling
    def _handle_request(self, method: str, raw: str, headers) -> _Resp:
        if self.latency_s:
            time.sleep(self.latency_s)
        raw_path, _, qs = raw.partition("?")
        query: dict[str, str] = {}
        for k, v in parse_qsl(qs, keep_blank_values=True):
            query[k] = v
        hdrs = {k.lower(): v for k, v in headers.items()}
        pfx = self.path_prefix
        in_prefix = raw_path == pfx or raw_path.startswith(pfx + "/") if pfx else True
        sub = raw_path[len(pfx):] if in_prefix else raw_path
        rec = RequestRecord(method, unquote(sub), query, 0, hdrs, self.world.now, sub)
        seq = self._record(rec)
        resp = self._dispatch(method, sub, query, hdrs, in_prefix, rec, seq)
        rec.status = resp.status
        return resp

    def _json_resp(self, status: int, body: Any, extra: dict | None = None) -> _Resp:
        data = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
        h = {"Content-Type": "application/json", "Cache-Control": "no-cache", "Vary": "Origin",
             "X-Content-Type-Options": "nosniff", "X-Frame-Options": "SAMEORIGIN"}
        if extra:
            h.update(extra)
        return _Resp(status, data, h)

    def _rate_headers(self, token_key: str, count: bool = True) -> tuple[dict, bool]:
        """RateLimit-* headers; second value True when over the limit."""
        limit = self.rate_limit_per_minute
        now_m = time.monotonic()
        with self._lock:
            st = self._rl.get(token_key)
            if st is None or now_m - st[0] >= 60:
                st = self._rl[token_key] = [now_m, 0]
            if count:
                st[1] += 1
            used = st[1]
            left = max(0.0, 60 - (now_m - st[0]))
        reset_epoch = int(self.world.now.timestamp() + left) + 1
        if limit is None:
            return {}, False
        h = {"RateLimit-Name": "throttle_authenticated_api", "RateLimit-Limit": str(limit),
             "RateLimit-Observed": str(used), "RateLimit-Remaining": str(max(0, limit - used)),
             "RateLimit-Reset": str(reset_epoch),
             "RateLimit-ResetTime": email.utils.formatdate(reset_epoch, usegmt=True)}
        return h, used > limit

    def _dispatch(self, method, sub, query, hdrs, in_prefix, rec, seq) -> _Resp:
        req_id = f"01JFAKE{seq:019d}"
        base_h = {"X-Request-Id": req_id, "X-Runtime": "0.012345", "X-Gitlab-Meta":
                  json.dumps({"correlation_id": req_id, "version": "1"})}
        fault = self._faults.take(rec.path)
        if fault is not None:
            if fault.status == DROPPED:
                return _Resp(DROPPED)
            if fault.kind == "rate_limit":
                h = {"Content-Type": "text/plain", **base_h}
                rl, _ = self._rate_headers(self._token_key(hdrs), count=False)
                h.update(rl)
                if fault.header == "Retry-After":
                    h["Retry-After"] = str(fault.retry_after)
                else:
                    reset = int(self.world.now.timestamp()) + fault.retry_after
                    h["RateLimit-Reset"] = str(reset)
                    h["RateLimit-ResetTime"] = email.utils.formatdate(reset, usegmt=True)
                    h["RateLimit-Remaining"] = "0"
                return _Resp(429, b"Retry later\n", h)
            body = fault.body
            if body is None:
                reason = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
                          504: "Gateway Timeout"}.get(fault.status, "Error")
                body = {"message": f"{fault.status} {reason}"}
            if isinstance(body, str):
                resp = _Resp(fault.status, body.encode(), {"Content-Type": "text/html", **base_h})
            else:
                resp = self._json_resp(fault.status, body, base_h)
            if fault.headers:
                resp.headers.update(fault.headers)
            return resp

        if not in_prefix or not (sub == "/api/v4" or sub.startswith("/api/v4/")):
            return _Resp(404, b"<html><body><h1>404 Not Found</h1></body></html>\n",
                         {"Content-Type": "text/html; charset=utf-8", **base_h})

        token = hdrs.get("private-token")
        if token is None:
            auth = hdrs.get("authorization", "")
            if auth.lower().startswith("bearer "):
                token = auth[7:].strip()
        key = self._token_key(hdrs)
        rl, over = self._rate_headers(key)
        if token != self.token:
            return self._json_resp(401, {"message": "401 Unauthorized"}, {**base_h, **rl})
        if over:
            h = {"Content-Type": "text/plain", **base_h, **rl}
            h["Retry-After"] = str(max(1, int(rl["RateLimit-Reset"]) - int(self.world.now.timestamp())))
            return _Resp(429, b"Retry later\n", h)
        if method not in ("GET", "HEAD"):
            return self._json_resp(403, {"error": "insufficient_scope", "error_description":
                                         "The request requires higher privileges than provided by the access token.",
                                         "scope": "api"}, {**base_h, **rl})
        segs = [unquote(s) for s in sub[len("/api/v4"):].split("/")[1:]]
        if segs and segs[-1] == "":
            segs.pop()
        try:
            with self.world.lock:
                status, body, extra = self._route(segs, _Params(query), sub, query)
        except ApiError as e:
            return self._json_resp(e.status, e.body, {**base_h, **rl})
        if isinstance(body, (list, dict)):
            body = json.dumps(body, separators=(",", ":")).encode()
        if self.rewrite_web_urls and self.world.web_url != self.url:
            body = body.replace(self.world.web_url.encode(), self.url.encode())
        etag = 'W/"' + hashlib.md5(body).hexdigest() + '"'
        h = {**base_h, **rl, **(extra or {}), "ETag": etag}
        inm = hdrs.get("if-none-match")
        if inm and etag in [x.strip() for x in inm.split(",")]:
            h.pop("Content-Type", None)
            return _Resp(304, b"", {k: v for k, v in h.items()
                                    if not k.startswith(("X-Total", "X-Page", "X-Per", "X-Next", "X-Prev"))})
        resp = self._json_resp(status, body, h)
        resp.headers["Cache-Control"] = "max-age=0, private, must-revalidate"
        return resp

    def _token_key(self, hdrs) -> str:
        tok = hdrs.get("private-token") or hdrs.get("authorization") or ""
        return hashlib.sha1(tok.encode()).hexdigest()[:12] if tok else "anonymous"

    # ---------------------------------------------------------------- routing
    def _project(self, ident: str) -> Project:
        w = self.world
        p = None
        if ident.isdigit():
            p = w.projects.get(int(ident))
        else:
            p = w.projects_by_path.get(ident)
        if p is None or not self._readable(p):
            raise _not_found("Project")
        st = self._denied.get(p.path_with_namespace)
        if st == 404:
            raise _not_found("Project")
        if st == 403:
            raise ApiError(403, {"message": "403 Forbidden"})
        if st == 401:
            raise ApiError(401, {"message": "401 Unauthorized"})
        return p

    @staticmethod
    def _readable(p: Project) -> bool:
        """A member project, or one the token's user can read without being a member."""
        return p.member or p.visibility in ("public", "internal")

    def _visible_projects(self, membership: bool = False) -> list[Project]:
        """Projects the token can read (``membership``: only those its user is a member of)."""
        return [p for p in self.world.projects.values() if p.path_with_namespace not in self._denied
                and self._readable(p) and (p.member or not membership)]

    def _group(self, ident: str) -> Group:
        w = self.world
        g = w.groups_by_id.get(int(ident)) if ident.isdigit() else w.groups.get(ident)
        if g is None:
            raise _not_found("Group")
        return g

    def _route(self, segs: list[str], q: _Params, sub: str, query: dict):
        n = len(segs)
        w = self.world
        if segs == ["user"]:
            u = w.token_user
            d = u.to_json() | {
                "created_at": iso(u.created_at), "bio": "", "location": "", "public_email": None, "skype": "",
                "linkedin": "", "twitter": "", "discord": "", "website_url": "", "organization": "",
                "job_title": "", "pronouns": None, "bot": False, "work_information": None, "local_time": None,
                "last_sign_in_at": None, "confirmed_at": iso(u.created_at), "last_activity_on": str(w.now.date()),
                "email": u.email, "theme_id": 3, "color_scheme_id": 1, "projects_limit": 100000,
                "current_sign_in_at": None, "identities": [], "can_create_group": True, "can_create_project": True,
                "two_factor_enabled": False, "external": False, "private_profile": False,
                "commit_email": u.email, "preferred_language": "en"}
            return 200, d, None
        if segs == ["personal_access_tokens", "self"]:
            return 200, {"id": 4242, "name": "painchain", "revoked": False, "created_at": iso(w.now - timedelta(days=30)),
                         "description": "PainChain read access", "scopes": ["read_api"], "user_id": w.token_user.id,
                         "last_used_at": iso(w.now), "active": True,
                         "expires_at": str((w.now + timedelta(days=300)).date())}, None
        if segs == ["version"]:
            return 200, VERSION, None
        if segs == ["metadata"]:
            return 200, VERSION, None
        if segs == ["events"]:
            return self._instance_events(q, sub, query)
        if n >= 1 and segs[0] == "projects":
            if n == 1:
                return self._projects_list(self._visible_projects(membership=q.bool("membership")), q, sub, query)
            p = self._project(segs[1])
            rest = segs[2:]
            if not rest:
                return 200, p.to_json(), None
            return self._project_route(p, rest, q, sub, query)
        if n >= 2 and segs[0] == "groups":
            g = self._group(segs[1])
            rest = segs[2:]
            if not rest:
                return 200, g.to_json(), None
            if rest == ["projects"]:
                sub_ok = q.bool("include_subgroups")
                ps = [p for p in self._visible_projects()
                      if (p.namespace is g or (sub_ok and p.namespace.is_descendant_of(g)))]
                return self._projects_list(ps, q, sub, query)
            if rest == ["merge_requests"]:
                non_archived = q.bool("non_archived", True)
                ps = [p for p in self._visible_projects() if p.namespace.is_descendant_of(g)
                      and not (non_archived and p.archived)]
                return self._mrs(ps, q, sub, query)
            if rest == ["releases"]:
                ps = [p for p in self._visible_projects() if p.namespace.is_descendant_of(g)]
                return self._releases(ps, q, sub, query, group=True)
            if rest == ["subgroups"] or rest == ["descendant_groups"]:
                gs = [x for x in w.groups.values() if x is not g and (
                    x.parent is g if rest == ["subgroups"] else x.is_descendant_of(g))]
                gs.sort(key=lambda x: x.full_path)
                return self._paginate(gs, lambda x: x.to_json(), q, sub, query)
        raise _not_found()

    def _project_route(self, p: Project, rest: list[str], q: _Params, sub: str, query: dict):
        n = len(rest)
        now = self.world.now
        if rest[0] == "repository" and n >= 2:
            kind = rest[1]
            if kind == "branches":
                if n == 2:
                    bs = [b for b in p.branches.values() if b.entries]
                    s = q.str("search")
                    if s:
                        bs = [b for b in bs if s.lower() in b.name.lower()]
                    bs.sort(key=lambda b: b.name)
                    return self._paginate(bs, p.branch_json, q, sub, query)
                if n == 3:
                    b = p.branches.get(rest[2])
                    if b is None or not b.entries:
                        raise _not_found("Branch")
                    return 200, p.branch_json(b), None
            if kind == "commits":
                if n == 2:
                    return self._commits(p, q, sub, query)
                if n == 3:
                    c = p.find_commit(rest[2])
                    if c is None:
                        raise _not_found("Commit")
                    return 200, c.to_full_json(), None
                if n == 4 and rest[3] == "merge_requests":
                    c = p.find_commit(rest[2])
                    if c is None:
                        raise _not_found("Commit")
                    mrs = [m for m in p.merge_requests if m.created_at <= now and
                           (m.sha == c.sha or (m.state == "merged" and m.merge_commit_sha == c.sha))]
                    return self._paginate(mrs, lambda m: m.json_bytes(), q, sub, query)
            if kind == "compare" and n == 2:
                return self._compare(p, q)
            if kind == "tags":
                if n == 2:
                    return self._tags(p, q, sub, query)
                if n == 3:
                    t = p.tags.get(rest[2])
                    if t is None or t.created_at > now:
                        raise _not_found("Tag")
                    return 200, t.to_json(), None
        if rest[0] == "merge_requests":
            if n == 1:
                return self._mrs([p], q, sub, query)
            if n == 2:
                iid = rest[1]
                for m in p.merge_requests:
                    if str(m.iid) == iid and m.created_at <= now:
                        return 200, m.to_single_json(), None
                raise _not_found()
        if rest[0] == "pipelines":
            if n == 1:
                return self._pipelines(p, q, sub, query)
            if n == 2:
                pl = p.pipelines_by_id.get(int(rest[1])) if rest[1].isdigit() else None
                if pl is None or pl.created_at > now:
                    raise _not_found()
                return 200, pl.to_full_json(), None
        if rest[0] == "deployments":
            if n == 1:
                return self._deployments(p, q, sub, query)
            if n == 2:
                for d in p.deployments:
                    if str(d.id) == rest[1] and d.created_at <= now:
                        return 200, d.to_json(), None
                raise _not_found()
        if rest[0] == "releases":
            if n == 1:
                return self._releases([p], q, sub, query)
            if n == 2:
                r = p.releases.get(rest[1])
                if r is None or r.created_at > now:
                    raise _not_found()
                return 200, r.to_json(), None
        if rest == ["events"]:
            return self._events(p, q, sub, query)
        if rest == ["environments"]:
            envs = sorted(p.environments.values(), key=lambda e: e.id)
            return self._paginate(envs, lambda e: {"id": e.id, "name": e.name, "slug": e.name,
                                                   "external_url": e.external_url, "state": "available",
                                                   "tier": e.name if e.name in ("production", "staging") else "other"},
                                  q, sub, query)
        raise _not_found()

    # ---------------------------------------------------------------- pagination
    def _page_params(self, q: _Params) -> tuple[int, int]:
        page = q.int("page", 1)
        per_page = q.int("per_page", 20)
        if page < 1:
            page = 1
        if per_page < 1:
            per_page = 20
        return page, min(per_page, 100)

    def _link(self, sub: str, query: dict, **over) -> str:
        qd = dict(query)
        for k, v in over.items():
            qd[k] = str(v)
        return f"{self.url}{sub}?{urlencode(qd)}"

    def _paginate(self, items: list, render: Callable[[Any], Any], q: _Params, sub: str, query: dict,
                  fake_total: bool = False):
        page, per_page = self._page_params(q)
        off = (page - 1) * per_page
        chunk = items[off: off + per_page]
        total = (off + len(chunk) + 1) if fake_total else len(items)
        pages = max(1, -(-total // per_page))
        h = {"X-Page": str(page), "X-Per-Page": str(per_page),
             "X-Next-Page": str(page + 1) if page < pages else "",
             "X-Prev-Page": str(page - 1) if page > 1 and page - 1 <= pages else ""}
        links = []
        if page > 1:
            links.append(f'<{self._link(sub, query, page=min(page - 1, pages), per_page=per_page)}>; rel="prev"')
        if page < pages:
            links.append(f'<{self._link(sub, query, page=page + 1, per_page=per_page)}>; rel="next"')
        links.append(f'<{self._link(sub, query, page=1, per_page=per_page)}>; rel="first"')
        if total <= MAX_COUNTED_TOTAL:
            h["X-Total"] = str(total)
            h["X-Total-Pages"] = str(pages)
            links.append(f'<{self._link(sub, query, page=pages, per_page=per_page)}>; rel="last"')
        h["Link"] = ", ".join(links)
        body = b"[" + b",".join(self._render(render, x) for x in chunk) + b"]"
        return 200, body, h

    @staticmethod
    def _render(render, x) -> bytes:
        v = render(x)
        if isinstance(v, bytes):
            return v
        return json.dumps(v, separators=(",", ":")).encode()

    # ---------------------------------------------------------------- lists
    def _projects_list(self, ps: list[Project], q: _Params, sub: str, query: dict):
        simple = q.bool("simple")
        q.bool("membership")
        q.bool("owned")
        order_by = q.enum("order_by", ("id", "name", "path", "created_at", "updated_at", "last_activity_at",
                                       "similarity", "star_count", "storage_size", "repository_size"), "created_at")
        sort = q.enum("sort", ("asc", "desc"), "desc")
        la = q.datetime("last_activity_after")
        lb = q.datetime("last_activity_before")
        ua = q.datetime("updated_after")
        ub = q.datetime("updated_before")
        if (ua or ub) and q.has("order_by") and order_by != "updated_at":
            raise ApiError(400, {"message": "400 Bad request - `updated_at` filter and `updated_at` sorting must be paired"})
        search = q.str("search")
        archived = q.str("archived")
        out = []
        for p in ps:
            if la and not p.last_activity_at > la:
                continue
            if lb and not p.last_activity_at < lb:
                continue
            if ua and not p.updated_at > ua:
                continue
            if ub and not p.updated_at < ub:
                continue
            if search and search.lower() not in p.path_with_namespace.lower():
                continue
            if archived is not None and q.bool("archived") != p.archived:
                continue
            out.append(p)
        if (ua or ub) and not q.has("order_by"):
            order_by = "updated_at"
        keys = {"id": lambda p: p.id, "name": lambda p: (p.name, p.id), "path": lambda p: (p.path, p.id),
                "created_at": lambda p: (p.created_at, p.id), "updated_at": lambda p: (p.updated_at, p.id),
                "last_activity_at": lambda p: (p.last_activity_at, p.id)}
        out.sort(key=keys.get(order_by, keys["id"]), reverse=sort == "desc")

        def render(p):
            return p.to_json(simple=simple)

        if q.str("pagination") == "keyset":
            if order_by != "id" or not q.has("order_by"):
                raise ApiError(405, {"message": "405 Method Not Allowed"})
            per_page = self._page_params(q)[1]
            after = q.int("id_after")
            before = q.int("id_before")
            if sort == "asc" and after is not None:
                out = [p for p in out if p.id > after]
            if sort == "desc" and before is not None:
                out = [p for p in out if p.id < before]
            chunk = out[:per_page]
            h = {}
            if len(out) > per_page:
                last = chunk[-1].id
                qd = {k: v for k, v in query.items() if k not in ("id_after", "id_before", "page")}
                nxt = (dict(qd, id_after=last) if sort == "asc" else dict(qd, id_before=last))
                h["Link"] = f'<{self._link(sub, nxt)}>; rel="next"'
            body = b"[" + b",".join(self._render(render, x) for x in chunk) + b"]"
            return 200, body, h
        return self._paginate(out, render, q, sub, query)

    def _commits(self, p: Project, q: _Params, sub: str, query: dict):
        since = q.datetime("since")
        until = q.datetime("until")
        first_parent = q.bool("first_parent")
        all_refs = q.bool("all")
        q.bool("with_stats")
        q.bool("trailers")
        q.enum("order", ("default", "topo"), "default")  # topo: served like default (git log order)
        path = q.str("path")
        author = q.str("author")
        ref = q.str("ref_name") or p.default_branch
        if all_refs:
            seen: dict[str, Any] = {}
            for b in p.branches.values():
                for e in b.entries:
                    if first_parent and not e[3]:
                        continue
                    seen.setdefault(e[2].sha, e[2])
            hist = sorted(seen.values(), key=lambda c: c.seq)
        else:
            # like `git log <ref>`: a date-ordered walk of the graph from the ref's head (not push order)
            walked = p.walk(ref, first_parent=first_parent)
            if walked is None:
                if ref != p.default_branch:
                    raise _not_found("Commit")
                walked = []
            hist = walked[::-1]
        out = []
        for c in reversed(hist):
            if since is not None and c.committed_date < since:
                break  # git log --since: the walk stops at the first commit older than since
            if until is not None and c.committed_date > until:
                continue
            if author and author.lower() not in (c.author_name.lower() + " " + c.author_email.lower()):
                continue
            out.append(c)
        fake_total = bool(all_refs or path or q.has("since") or q.has("until") or first_parent or author)
        return self._paginate(out, lambda c: c.json_bytes(), q, sub, query, fake_total=fake_total)

    def _compare(self, p: Project, q: _Params):
        """GitLab's compare: with ``straight=false`` (default) the commits reachable from ``to`` and
        not from ``from`` (``git log from...to`` from their merge base), oldest first; ``commit``
        is the newest of them (the head of ``to``) or null.  Unknown ``from``/``to``: 404.
        Authenticated callers get every commit (no cap), as on GitLab."""
        frm, to = q.str("from"), q.str("to")
        if not frm or not to:
            raise ApiError(400, {"error": "from is missing" if not frm else "to is missing"})
        q.bool("straight", False)  # changes the diff's base only; the commit list is the same set
        a = p.ref_head(frm)
        b = p.ref_head(to)
        if a is None or b is None:
            raise _not_found("Ref")
        commits = p.walk(b, stop=p.reachable(a))
        if self.compare_commits_limit is not None:
            commits = commits[: self.compare_commits_limit]  # the newest N
        commits = commits[::-1]
        return 200, {
            "commit": commits[-1].to_json() if commits else None,
            "commits": [c.to_json() for c in commits], "diffs": [], "compare_timeout": False,
            "compare_same_ref": frm == to, "web_url": f"{p.web_url}/-/compare/{quote(frm)}...{quote(to)}",
        }, None

    def _tags(self, p: Project, q: _Params, sub: str, query: dict):
        now = self.world.now
        order_by = q.enum("order_by", ("name", "updated", "version"), "updated")
        sort = q.enum("sort", ("asc", "desc"), "desc")
        search = q.str("search")
        ts = [t for t in p.tags.values() if t.created_at <= now]
        if search:
            if search.startswith("^"):
                ts = [t for t in ts if t.name.startswith(search[1:])]
            elif search.endswith("$"):
                ts = [t for t in ts if t.name.endswith(search[:-1])]
            else:
                ts = [t for t in ts if search in t.name]

        def vkey(name: str):
            return [(0, int(x)) if x.isdigit() else (1, x) for x in re.split(r"[.\-]", name.lstrip("v"))]

        if order_by == "name":
            ts.sort(key=lambda t: t.name, reverse=sort == "desc")
        elif order_by == "version":
            ts.sort(key=lambda t: vkey(t.name), reverse=sort == "desc")
        else:  # updated: the tagged commit's date
            ts.sort(key=lambda t: (p.commits[t.sha].committed_date if t.sha in p.commits else t.created_at),
                    reverse=sort == "desc")
        return self._paginate(ts, lambda t: t.to_json(), q, sub, query)

    def _mrs(self, ps: list[Project], q: _Params, sub: str, query: dict):
        now = self.world.now
        state = q.enum("state", ("opened", "closed", "locked", "merged", "all"), "all")
        order_by = q.enum("order_by", ("created_at", "updated_at", "merged_at", "label_priority", "priority",
                                       "title"), "created_at")
        sort = q.enum("sort", ("asc", "desc"), "desc")
        q.enum("scope", ("created_by_me", "assigned_to_me", "reviews_for_me", "all"), "all")
        view = q.enum("view", ("simple",), None)
        ua, ub = q.datetime("updated_after"), q.datetime("updated_before")
        ca, cb = q.datetime("created_after"), q.datetime("created_before")
        sb, tb = q.str("source_branch"), q.str("target_branch")
        out: list[MergeRequest] = []
        for p in ps:
            for m in p.merge_requests:
                if m.created_at > now:
                    continue
                if state != "all" and m.state != state:
                    continue
                if ua and m.updated_at < ua:
                    continue
                if ub and m.updated_at > ub:
                    continue
                if ca and m.created_at < ca:
                    continue
                if cb and m.created_at > cb:
                    continue
                if sb and m.source_branch != sb:
                    continue
                if tb and m.target_branch != tb:
                    continue
                out.append(m)
        if order_by == "updated_at":
            key = lambda m: (m.updated_at, m.id)  # noqa: E731
        elif order_by == "merged_at":
            key = lambda m: (m.merged_at or datetime.min.replace(tzinfo=UTC), m.id)  # noqa: E731
        elif order_by == "title":
            key = lambda m: (m.title, m.id)  # noqa: E731
        else:
            key = lambda m: (m.created_at, m.id)  # noqa: E731
        out.sort(key=key, reverse=sort == "desc")
        if view == "simple":
            def render(m):
                return {"id": m.id, "iid": m.iid, "project_id": m.project.id, "title": m.title,
                        "description": m.description, "state": m.state, "created_at": iso(m.created_at),
                        "updated_at": iso(m.updated_at), "web_url": m.web_url}
        else:
            def render(m):
                return m.json_bytes()
        return self._paginate(out, render, q, sub, query)

    def _pipelines(self, p: Project, q: _Params, sub: str, query: dict):
        now = self.world.now
        scope = q.enum("scope", ("running", "pending", "finished", "branches", "tags"), None)
        status = q.enum("status", PIPELINE_STATUSES, None)
        order_by = q.enum("order_by", ("id", "status", "ref", "updated_at", "user_id"), "id")
        sort = q.enum("sort", ("asc", "desc"), "desc")
        ref, sha = q.str("ref"), q.str("sha")
        source = q.str("source")
        ua, ub = q.datetime("updated_after"), q.datetime("updated_before")
        ca, cb = q.datetime("created_after"), q.datetime("created_before")
        username = q.str("username")
        out: list[Pipeline] = []
        for pl in p.pipelines:
            if pl.created_at > now:
                continue
            if scope == "running" and pl.status != "running":
                continue
            if scope == "pending" and pl.status != "pending":
                continue
            if scope == "finished" and pl.status not in ("success", "failed", "canceled", "skipped"):
                continue
            if scope == "tags" and not pl.tag:
                continue
            if scope == "branches" and pl.tag:
                continue
            if status and pl.status != status:
                continue
            if ref and pl.ref != ref:
                continue
            if sha and pl.sha != sha:
                continue
            if source and pl.source != source:
                continue
            if username and pl.user.username != username:
                continue
            if ua and pl.updated_at < ua:
                continue
            if ub and pl.updated_at > ub:
                continue
            if ca and pl.created_at < ca:
                continue
            if cb and pl.created_at > cb:
                continue
            out.append(pl)
        keys = {"id": lambda x: x.id, "status": lambda x: (x.status, x.id), "ref": lambda x: (x.ref, x.id),
                "updated_at": lambda x: (x.updated_at, x.id), "user_id": lambda x: (x.user.id, x.id)}
        out.sort(key=keys[order_by], reverse=sort == "desc")
        return self._paginate(out, lambda x: x.json_bytes(), q, sub, query)

    def _deployments(self, p: Project, q: _Params, sub: str, query: dict):
        now = self.world.now
        order_by = q.enum("order_by", ("id", "iid", "created_at", "updated_at", "finished_at", "ref"), "id")
        sort = q.enum("sort", ("asc", "desc"), "asc")
        status = q.enum("status", DEPLOYMENT_STATUSES, None)
        env = q.str("environment")
        ua, ub = q.datetime("updated_after"), q.datetime("updated_before")
        fa, fb = q.datetime("finished_after"), q.datetime("finished_before")

        def bad(msg):
            return ApiError(400, {"message": f"400 Bad request - {msg}"})

        by_updated = ua is not None or ub is not None
        by_finished = fa is not None or fb is not None
        if by_updated and by_finished:
            raise bad("Both `updated_at` filter and `finished_at` filter can not be specified")
        if self.deployments_strict_pairing and by_updated != (order_by == "updated_at"):
            raise bad("`updated_at` filter and `updated_at` sorting must be paired")
        if by_finished != (order_by == "finished_at"):
            raise bad("`finished_at` filter and `finished_at` sorting must be paired")
        if by_finished and status != "success":
            raise bad("`finished_at` filter must be combined with `success` status filter.")
        out: list[Deployment] = []
        for d in p.deployments:
            if d.created_at > now:
                continue
            # UpdatedAtFilterable: updated_after >=, updated_before <= (inclusive, as for MRs/pipelines)
            if ua and d.updated_at < ua:
                continue
            if ub and d.updated_at > ub:
                continue
            if fa and not (d.finished_at and d.finished_at >= fa):
                continue
            if fb and not (d.finished_at and d.finished_at < fb):
                continue
            if env and d.environment.name != env:
                continue
            if status and d.status != status:
                continue
            out.append(d)
        if by_updated:
            order_by = "updated_at"  # DeploymentsFinder#optimize_sort_params!
        far = datetime.max.replace(tzinfo=UTC)
        keys = {"id": lambda x: x.id, "iid": lambda x: x.id, "created_at": lambda x: x.id,
                "updated_at": lambda x: (x.updated_at, x.id), "finished_at": lambda x: (x.finished_at or far, x.id),
                "ref": lambda x: (x.ref, x.id)}
        out.sort(key=keys[order_by], reverse=sort == "desc")
        return self._paginate(out, lambda x: x.json_bytes(), q, sub, query)

    def _releases(self, ps: list[Project], q: _Params, sub: str, query: dict, group: bool = False):
        now = self.world.now
        if group:
            order_by = "released_at"
            q.bool("simple")
        else:
            order_by = q.enum("order_by", ("released_at", "created_at"), "released_at")
        sort = q.enum("sort", ("asc", "desc"), "desc")
        ua, ub = q.datetime("updated_after"), q.datetime("updated_before")
        out = []
        for p in ps:
            for r in p.releases.values():
                if r.created_at > now:
                    continue
                if ua and r.updated_at < ua:
                    continue
                if ub and r.updated_at > ub:
                    continue
                out.append(r)
        if order_by == "created_at":
            out.sort(key=lambda r: (r.created_at, r.tag_name), reverse=sort == "desc")
        else:
            out.sort(key=lambda r: (r.released_at, r.created_at), reverse=sort == "desc")
        return self._paginate(out, lambda r: r.to_json(), q, sub, query)

    def _events(self, p: Project, q: _Params, sub: str, query: dict):
        return self._event_list(p.events, q, sub, query)

    def _instance_events(self, q: _Params, sub: str, query: dict):
        """``GET /events``: the authenticated user's events; ``scope=all``: the events of every
        project the user is a member of (not of public projects it can merely read; denied
        projects are left out)."""
        scope = q.str("scope")
        user = self.world.token_user
        events = [e for p in self._visible_projects(membership=scope == "all") for e in p.events
                  if scope == "all" or e.author is user]
        return self._event_list(events, q, sub, query)

    def _event_list(self, events, q: _Params, sub: str, query: dict):
        now = self.world.now
        action = q.enum("action", ("approved", "closed", "commented", "created", "destroyed", "expired", "joined",
                                   "left", "merged", "pushed", "reopened", "updated"), None)
        target_type = q.enum("target_type", ("issue", "milestone", "merge_request", "note", "project", "snippet",
                                             "user", "wiki", "design"), None)
        sort = q.enum("sort", ("asc", "desc"), "desc")
        # after/before are dates (UTC), both exclusive: after=D means from the start of D + 1 day
        after, before = q.date("after"), q.date("before")
        lo = datetime(after.year, after.month, after.day, tzinfo=UTC) + timedelta(days=1) if after else None
        hi = datetime(before.year, before.month, before.day, tzinfo=UTC) if before else None
        out = []
        for e in events:
            if e.created_at > now:
                continue
            if action and e.action != action:
                continue
            if target_type == "merge_request" and e.target_type != "MergeRequest":
                continue
            if target_type and target_type != "merge_request":
                continue
            if lo and e.created_at < lo:
                continue
            if hi and e.created_at >= hi:
                continue
            out.append(e)
        # GitLab orders by id; ids follow creation time there.  Here an event created with a past
        # date gets a later id, so order by (created_at, id) to keep that correspondence.
        out.sort(key=lambda e: (e.created_at, e.id), reverse=sort == "desc")
        return self._paginate(out, lambda e: e.json_bytes(), q, sub, query)
