"""What every GitHub stream is: a `Stream` (its requests, state, change probe and transform), the
repository it reads, and the helpers shared by several streams' transforms.

External ids are stable per change and state: github:<repo>:<kind>:<id>[:<state>]. Every event's
`data` has `url` (the page to open), the identifiers of the object and, where there is one, the
commit `sha` it concerns, which is what links a PR to its CI runs and deployments.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from painchain_pipelines.connectors.base import Event, TimeWindow
from painchain_pipelines.connectors.github.client import GitHubReader, Page

if TYPE_CHECKING:
    from painchain_pipelines.connectors.github.connector import Tuning

CONNECTOR = "github"
LIST_PARAMS = {"per_page": 100}
# Items seen in progress (runs, deployments) that a repository's state remembers, newest kept.
MAX_PENDING = 200

# A named part of a stream and its events, read lazily: the name is what SyncStats counts and
# what a failure is reported under ("commits:main", "pulls"). Commits have one part per branch.
Part = tuple[str, Iterable[Event]]


@dataclass
class Repo:
    """One repository as this sync sees it."""

    name: str  # owner/repo as GitHub spells it
    default_branch: str
    branches: tuple[str, ...]
    html_url: str  # its web page, on github.com or the Enterprise host

    @property
    def path(self) -> str:
        return f"/repos/{self.name}"


@dataclass(frozen=True)
class FirstPage:
    """The first page of a list that live syncs read conditionally. Its ETag is saved under `key`
    in the repository's `etags`, and the change probe sends this very request, so that an
    unchanged list answers 304."""

    key: str
    path: str
    params: Mapping[str, Any]


@dataclass(frozen=True)
class Probe:
    """A conditional request of the change check: a 304 means nothing changed there."""

    label: str  # named in the change check's reason
    path: str
    params: Mapping[str, Any]
    etag: str | None


@dataclass
class LiveRead:
    """One repository's live sync as its streams see it; every time is on GitHub's clock."""

    reader: GitHubReader
    repo: Repo
    lower: dt.datetime  # changes are read from here (since - overlap, or now - lookback)
    now: dt.datetime  # GitHub's clock when the repository's reads began
    etags: dict[str, str]  # first-page ETags of all the repository's streams, saved as they are

    def first_page(self, page: FirstPage) -> Page | None:
        """The first page, or None when it is unchanged since the saved ETag (a 304)."""
        answer = self.reader.get(page.path, dict(page.params), self.etags.get(page.key))
        if answer.status == 304:
            return None
        self.etags[page.key] = answer.etag
        return answer


class Stream(ABC):
    """One kind of GitHub event. The connector runs every stream of a repository in turn, counts
    and sinks its events, and records a part that fails without stopping the others.

    A stream's live state is its own keys of the repository's saved state (say `pending_runs`),
    copied by `live_state` and updated in place while `read_live` reads, so that what was read
    before a failure is kept; `saved_state` gives what is saved of it."""

    name: str

    def __init__(self, tuning: Tuning):
        self.tuning = tuning

    @abstractmethod
    def read_window(self, reader: GitHubReader, repo: Repo, window: TimeWindow) -> Iterator[Part]:
        """The events around `window` (the connector keeps those inside it)."""
        ...

    def first_pages(self, repo: Repo) -> list[FirstPage]:
        """The lists a live sync reads first, conditionally; they are this stream's change probe."""
        return []

    def live_state(self, repo_state: dict[str, Any]) -> dict[str, Any]:
        """A working copy of this stream's keys of the saved repository state."""
        return {}

    @abstractmethod
    def read_live(self, live: LiveRead, state: dict[str, Any]) -> Iterator[Part]:
        """The changes since `live.lower`, updating `state` as it reads."""
        ...

    def saved_state(self, state: dict[str, Any]) -> dict[str, Any]:
        return state

    def complete_until(self, live: LiveRead, state: dict[str, Any]) -> dt.datetime:
        """Up to when this stream has read everything once `read_live` is done."""
        return live.now

    def probes(self, repo: Repo, repo_state: dict[str, Any]) -> Iterator[Probe]:
        """The change probe: the first pages with their saved ETags."""
        etags = repo_state.get("etags", {})
        for page in self.first_pages(repo):
            yield Probe(page.key, page.path, page.params, etags.get(page.key))

    def pending_probes(self, repo: Repo, repo_state: dict[str, Any]) -> Iterator[Probe]:
        """Probes of the items seen in progress, asked after every stream's first pages."""
        return iter(())

    def due(self, repo_state: dict[str, Any], now: dt.datetime) -> str | None:
        """Why a live sync is due even if no probe shows a change (None: it is not)."""
        return None


def login(user: Any) -> str | None:
    return user.get("login") if isinstance(user, dict) else None


def short_sha(sha: str | None) -> str:
    return (sha or "")[:7]


def newest(pending: dict[str, Any]) -> dict[str, Any]:
    """The `MAX_PENDING` most recently added items in progress."""
    return dict(list(pending.items())[-MAX_PENDING:])
