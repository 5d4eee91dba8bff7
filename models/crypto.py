"""Encryption of secrets at rest: Fernet with key rotation (MultiFernet).

The newest key (first in ``TEAMSCONNECT_ENCRYPTION_KEYS``) encrypts; every listed key decrypts, so a new key
can be put in front and `teamsconnect keys rotate` re-encrypts all stored secrets under it before the old key
is removed. Ciphertexts are stored as text in columns named ``*_encrypted``; plaintext never is.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from config.settings import ENV_PREFIX, Settings


class SecretBoxError(Exception):
    """Raised when a key is malformed or a stored secret cannot be decrypted with any configured key."""


class SecretBox:
    """Encrypts and decrypts secrets with the configured keys (newest first)."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise SecretBoxError(f"no encryption key configured: set {ENV_PREFIX}ENCRYPTION_KEYS")
        fernets = []
        for position, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.encode()))
            except (ValueError, TypeError):
                raise SecretBoxError(
                    f"{ENV_PREFIX}ENCRYPTION_KEYS: key number {position} is not a valid Fernet key "
                    "(32 url-safe base64-encoded bytes; generate one with `teamsconnect keys generate`)"
                ) from None
        self._fernet = MultiFernet(fernets)
        self.key_count = len(fernets)

    def __repr__(self) -> str:
        return f"SecretBox(keys={self.key_count})"

    def encrypt(self, plaintext: str) -> str:
        """Encrypts under the newest key."""
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str, ttl_s: int | None = None) -> str:
        """Decrypts with whichever configured key made the ciphertext (refused when older than ``ttl_s``)."""
        try:
            return self._fernet.decrypt(ciphertext.encode(), ttl=ttl_s).decode()
        except InvalidToken:
            raise SecretBoxError(
                "a stored secret cannot be decrypted with any configured key: the key that encrypted it was "
                f"removed from {ENV_PREFIX}ENCRYPTION_KEYS; put it back (after the newest) and run "
                "`teamsconnect keys rotate`"
            ) from None

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypts a ciphertext under the newest key (any configured key may have made it)."""
        try:
            return self._fernet.rotate(ciphertext.encode()).decode()
        except InvalidToken:
            raise SecretBoxError("a stored secret cannot be decrypted with any configured key") from None


def generate_key() -> str:
    """A new random Fernet key."""
    return Fernet.generate_key().decode()


def box_from_settings(settings: Settings) -> SecretBox:
    """The secret box of this process: configured keys, or (embedded mode only) a kept local key file."""
    keys = [key.strip() for key in settings.encryption_keys.split(",") if key.strip()]
    if keys:
        return SecretBox(keys)
    if settings.mode == "production":
        raise SecretBoxError(f"production mode needs {ENV_PREFIX}ENCRYPTION_KEYS")
    return SecretBox([_embedded_key(settings.key_file)])


def _embedded_key(path: Path) -> str:
    """Reads the local key file, creating it (mode 0600) on first use."""
    if path.exists():
        return path.read_text().strip()
    if not path.parent.exists():  # the embedded data folder: owner only (0700), as models/db.py makes it
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.parent.chmod(0o700)
    key = generate_key()
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return path.read_text().strip()
    with os.fdopen(descriptor, "w") as key_file:
        key_file.write(key + "\n")
    return key
