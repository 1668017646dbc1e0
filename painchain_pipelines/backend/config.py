"""Backend settings, read from the environment in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from painchain_pipelines.paths import data_dir


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

    @classmethod
    def from_env(cls, **overrides) -> "BackendSettings":
        directory = Path(overrides.pop("data_dir", None) or data_dir())
        values = dict(
            data_dir=directory,
            database_url=os.environ.get("PAINCHAIN_DATABASE_URL") or _default_database_url(directory),
            api_token=os.environ.get("PAINCHAIN_API_TOKEN") or None,
            secret_key=os.environ.get("PAINCHAIN_SECRET_KEY") or None,
        )
        values.update(overrides)
        return cls(**values)

    @property
    def auth_required(self) -> bool:
        return bool(self.api_token)
