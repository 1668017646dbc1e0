"""Where PainChain keeps its local state (SQLite database, secret key, Dagster home)."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
METADATA_DIR = Path(os.environ.get("PAINCHAIN_METADATA_DIR", PROJECT_ROOT / "metadata"))


def data_dir() -> Path:
    """The data directory: `PAINCHAIN_DATA_DIR`, or `.painchain/` under the working directory."""
    return Path(os.environ.get("PAINCHAIN_DATA_DIR") or Path.cwd() / ".painchain").resolve()


def private_dir(path: Path) -> Path:
    """Create the data directory readable by its owner only (it holds the database, the secret
    key and Dagster's state). An existing one is left as it is, with a warning if others can
    read it (it may be a directory the operator chose and shares on purpose)."""
    import logging
    import stat

    if not path.exists():
        path.mkdir(parents=True, mode=0o700)
        path.chmod(0o700)  # mkdir's mode is filtered by the umask
    elif path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        logging.getLogger("painchain").warning(
            "the data directory %s can be read by other users; `chmod 700` it unless that is wanted", path)
    return path


def private_file(path: Path) -> None:
    """Create `path` empty with mode 0600 if missing (SQLite then creates its -wal and -shm files
    with the same mode), or take group and other permissions away from an existing one."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
