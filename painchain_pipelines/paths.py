"""Where PainChain keeps its local state (SQLite database, secret key, Dagster home)."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
METADATA_DIR = Path(os.environ.get("PAINCHAIN_METADATA_DIR", PROJECT_ROOT / "metadata"))


def data_dir() -> Path:
    """The data directory: `PAINCHAIN_DATA_DIR`, or `.painchain/` under the working directory."""
    return Path(os.environ.get("PAINCHAIN_DATA_DIR") or Path.cwd() / ".painchain").resolve()
