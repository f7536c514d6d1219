"""Per-subscriber secrets: unsubscribe tokens and private feed paths.

Both are HMACs of the subscriber's address under the instance secret, so they cannot be
guessed from the address, need no table to look up, and stay the same on every run. The
secret comes from `DIGEST_SECRET`, or is generated once into the data folder.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from digest.errors import ConfigError

SECRET_ENV = "DIGEST_SECRET"
_SECRET_FILE = "secret"


def load_secret(data_dir: Path) -> bytes:
    """The instance secret: from the environment, else from (or newly into) `data_dir`."""
    from_env = os.environ.get(SECRET_ENV)
    if from_env is not None:
        if len(from_env) < 16:
            raise ConfigError(SECRET_ENV, "the secret must be at least 16 characters long")
        return from_env.encode()
    path = data_dir / _SECRET_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def token(secret: bytes, email: str, purpose: str) -> str:
    """A URL-safe token naming this subscriber for one purpose ("unsubscribe", "feed")."""
    message = f"{purpose}:{email.strip().lower()}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()[:20]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def find_subscriber(
    secret: bytes, value: str, emails: Iterable[str], purpose: str = "unsubscribe"
) -> str | None:
    """The address whose token this is, or None for a forged or altered token."""
    for email in emails:
        if hmac.compare_digest(token(secret, email, purpose), value):
            return email
    return None
