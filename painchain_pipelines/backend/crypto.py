"""Encryption at rest for integration secrets (configSchema fields of type `password`)."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from painchain_pipelines.paths import private_dir

log = logging.getLogger(__name__)

ENCRYPTED_PREFIX = "enc:v1:"
MASK = "********"


class SecretDecryptionError(Exception):
    pass


def _fernet_from_material(material: str) -> Fernet:
    try:
        return Fernet(material.encode())
    except (ValueError, TypeError):
        # Not a Fernet key: treat it as a passphrase and derive one.
        digest = hashlib.sha256(b"painchain-secret-key:" + material.encode()).digest()
        return Fernet(base64.urlsafe_b64encode(digest))


def load_or_create_key_file(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    private_dir(path.parent)
    key = Fernet.generate_key().decode()
    # Create with 0600 atomically; another process may win the race, then we read its key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    log.info("Generated a new secret key at %s (set PAINCHAIN_SECRET_KEY to manage it yourself)", path)
    return key


class SecretBox:
    def __init__(self, key_material: str):
        self._fernet = _fernet_from_material(key_material)

    @classmethod
    def from_settings(cls, secret_key: str | None, data_dir: Path) -> "SecretBox":
        return cls(secret_key or load_or_create_key_file(data_dir / "secret.key"))

    def encrypt(self, plaintext: str) -> str:
        return ENCRYPTED_PREFIX + self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, stored: str) -> str:
        if not is_encrypted(stored):
            return stored
        try:
            return self._fernet.decrypt(stored[len(ENCRYPTED_PREFIX):].encode()).decode()
        except InvalidToken as exc:
            raise SecretDecryptionError("cannot be decrypted with the current PAINCHAIN_SECRET_KEY") from exc


def is_encrypted(value: object) -> bool:
    return isinstance(value, str) and value.startswith(ENCRYPTED_PREFIX)
