"""Backend settings, read from the environment in one place."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from painchain_pipelines.backend.database import DEFAULT_READ_TIMEOUT, DEFAULT_WRITE_TIMEOUT
from painchain_pipelines.backend.middleware import allowed_hosts_from
from painchain_pipelines.paths import data_dir


class SettingsError(ValueError):
    """An environment variable holds a value the backend cannot use (the message names it)."""


# PostgreSQL takes a statement_timeout of at most 2^31 - 1 milliseconds: a larger budget would
# fail every write.
MAX_SECONDS = 2_147_483


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 <= value <= MAX_SECONDS:  # NaN included
        raise SettingsError(f"environment variable {name}={raw!r} must be a number of seconds from 0 to "
                            f"{MAX_SECONDS:,} (about 24 days)")
    return value


def _positive_days(name: str) -> int | None:
    """Whole days, or None when unset or empty."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise SettingsError(f"environment variable {name}={raw!r} must be a positive whole number of days "
                            "(leave it unset to keep every event)")
    return value


def _default_database_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'painchain.db'}"


@dataclass(frozen=True)
class BackendSettings:
    data_dir: Path
    database_url: str
    # Service token: when set, every /api route but /api/health requires it (or a tenant token).
    api_token: str | None = None
    # Fernet key or passphrase for secrets at rest; generated into the data directory when unset.
    secret_key: str | None = None
    max_request_bytes: int = 16 * 1024 * 1024
    max_batch_events: int = 1000
    max_event_data_bytes: int = 64 * 1024
    max_logo_bytes: int = 256 * 1024
    default_page_limit: int = 50
    max_page_limit: int = 500
    serve_ui: bool = True
    # Time budgets of API queries, in seconds (0: none); past them a request answers 503.
    query_timeout: float = DEFAULT_READ_TIMEOUT
    write_timeout: float = DEFAULT_WRITE_TIMEOUT
    # Host names this server answers to (see middleware.WebPageGuard): loopback by default.
    allowed_hosts: tuple[str, ...] = allowed_hosts_from(None)
    # Events older than this many days are deleted (services/retention.py); None keeps everything.
    retention_days: int | None = None
    # The orchestrator's POLLING_INTERVAL (seconds between change checks), read from the same
    # environment: only reported in /metrics, for alerts on integrations not synced for long.
    sync_interval: float = 60.0

    @classmethod
    def from_env(cls, *, bind_host: str | None = None, **overrides) -> "BackendSettings":
        """Settings from the environment; `bind_host` (the address served on) is answered too."""
        directory = Path(overrides.pop("data_dir", None) or data_dir())
        values = dict(
            data_dir=directory,
            database_url=os.environ.get("PAINCHAIN_DATABASE_URL") or _default_database_url(directory),
            api_token=os.environ.get("PAINCHAIN_API_TOKEN") or None,
            secret_key=os.environ.get("PAINCHAIN_SECRET_KEY") or None,
            allowed_hosts=allowed_hosts_from(os.environ.get("PAINCHAIN_ALLOWED_HOSTS"), bind_host),
            query_timeout=_seconds("PAINCHAIN_QUERY_TIMEOUT_SECONDS", DEFAULT_READ_TIMEOUT),
            write_timeout=_seconds("PAINCHAIN_WRITE_TIMEOUT_SECONDS", DEFAULT_WRITE_TIMEOUT),
            retention_days=_positive_days("PAINCHAIN_RETENTION_DAYS"),
            sync_interval=_seconds("POLLING_INTERVAL", 60.0),
        )
        values.update(overrides)
        return cls(**values)

    @property
    def auth_required(self) -> bool:
        return bool(self.api_token)
