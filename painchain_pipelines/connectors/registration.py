"""Register connector types (metadata/<id>.json) with the backend, as the connector guide asks:
on startup, with retries, and a clear failure when the backend never answers."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

from painchain_pipelines.connectors.backend_client import BackendClient, BackendError, BackendUnavailable
from painchain_pipelines.paths import METADATA_DIR

log = logging.getLogger(__name__)


class RegistrationFailed(Exception):
    pass


def load_metadata(connector_id: str, directory: Path = METADATA_DIR) -> dict:
    path = directory / f"{connector_id}.json"
    try:
        metadata = json.loads(path.read_text())
    except FileNotFoundError:
        raise RegistrationFailed(f"connector metadata {path} not found") from None
    except json.JSONDecodeError as exc:
        raise RegistrationFailed(f"{path} is not valid JSON: {exc}") from None
    if metadata.get("id") != connector_id:
        raise RegistrationFailed(f"{path}: 'id' must be {connector_id!r}")
    return metadata


def available_connectors(directory: Path = METADATA_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.json"))


def register(
    client: BackendClient,
    connector_ids: list[str],
    *,
    attempts: int = 5,
    first_delay: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    directory: Path = METADATA_DIR,
) -> None:
    """Upsert each connector type; up to `attempts` tries with doubling delays, then raise."""
    for connector_id in connector_ids:
        metadata = load_metadata(connector_id, directory)
        delay = first_delay
        for attempt in range(1, attempts + 1):
            try:
                client.register_type(metadata)
                log.info("✓ Registered connector type: %s", metadata["displayName"])
                break
            except BackendError as exc:  # our metadata is wrong: retrying will not help
                raise RegistrationFailed(f"backend refused connector type {connector_id!r}: {exc}") from exc
            except BackendUnavailable as exc:
                if attempt == attempts:
                    raise RegistrationFailed(
                        f"could not register connector type {connector_id!r} with {client.api_url} "
                        f"after {attempts} attempts: {exc}"
                    ) from exc
                log.warning("registration of %s failed (attempt %d/%d), retrying in %.0f s: %s",
                            connector_id, attempt, attempts, delay, exc)
                sleep(delay)
                delay *= 2
