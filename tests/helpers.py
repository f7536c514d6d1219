"""Small helpers the tests share (fixtures live in conftest.py)."""

from __future__ import annotations

import email
import email.message
import email.policy
import socket
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
MONTH = FIXTURES / "hf" / "api-month"


def free_port() -> int:
    """A port nothing listens on (aiosmtpd cannot bind port 0; a refused connection needs one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def maildir_messages(path: Path) -> list[email.message.EmailMessage]:
    messages = []
    for file in sorted((path / "new").iterdir()):
        message = email.message_from_bytes(file.read_bytes(), policy=email.policy.default)
        assert isinstance(message, email.message.EmailMessage)
        messages.append(message)
    return messages
