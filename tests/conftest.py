"""Shared fixtures: real servers on loopback, real files, a configuration factory."""

from __future__ import annotations

import email
import email.message
import email.policy
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from helpers import DAY_FILE, MONTH, free_port, paper_from_item
from httpserver import LoopbackServer

from digest.config import Config, load_config
from digest.demo import capture_server
from digest.fetch import Fetcher
from digest.models import Paper
from digest.render import Renderer


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's proxies, CA bundles and secrets must not leak into tests."""
    for name in list(os.environ):
        if name.upper() in {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"} or name in {
            "SSL_CERT_FILE",
            "SSL_CERT_DIR",
            "DIGEST_SECRET",
        }:
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    """A loopback HTTP server the test gives routes to (tests/httpserver.py)."""
    with LoopbackServer() as running:
        yield running


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    """The run's HTTP client, retrying without waiting."""
    with Fetcher(attempts=2, sleep=lambda _seconds: None) as client:
        yield client


@pytest.fixture(scope="session")
def month_server() -> Iterator[str]:
    """The Hugging Face API on loopback, answering January 2026 from real captures."""
    with capture_server(MONTH) as url:
        yield url


SUBSCRIBERS: dict[str, str] = {
    "agents": """\
name = "Agent Reader"
email = "agents@example.org"

[interests]
description = "LLM agents that use tools, browse the web and write code."
keywords = ["agent", "agentic", "tool use"]
""",
    "vision": """\
name = "Zoë Vision"
email = "vision@example.org"

[interests]
description = "Video generation and image synthesis with diffusion models."
keywords = ["video generation", "diffusion", "image generation"]
exclude = ["medical"]
""",
    "reasoning": """\
name = "Reasoning Reader"
email = "reasoning@example.org"
max_papers = 5

[interests]
description = "Reinforcement learning to improve reasoning of language models."
keywords = ["reinforcement learning", "reasoning", "RLVR"]
""",
}


@dataclass
class ConfigFactory:
    """Writes a digest.toml and subscriber files into a folder and loads them."""

    root: Path
    server: str = "http://127.0.0.1:9"
    subscribers: dict[str, str] = field(default_factory=lambda: dict(SUBSCRIBERS))

    def write(self, delivery: str | None = None, extra: str = "") -> Path:
        (self.root / "subscribers").mkdir(parents=True, exist_ok=True)
        for slug, text in self.subscribers.items():
            (self.root / "subscribers" / f"{slug}.toml").write_text(text, encoding="utf-8")
        delivery = delivery or '[delivery]\ntransport = "maildir"\nmaildir = "maildir"\n'
        path = self.root / "digest.toml"
        path.write_text(
            f"""\
[digest]
title = "Test digest"
base_url = "https://papers.example.org"
sender = "Paper digest <digest@example.org>"
timezone = "UTC"
database = "sqlite:///digest.db"
output_dir = "public"
subscribers = "subscribers"
{extra}
[[sources]]
kind = "huggingface"
base_url = "{self.server}"

{delivery}""",
            encoding="utf-8",
        )
        return path

    def load(self, delivery: str | None = None, extra: str = "") -> Config:
        return load_config(self.write(delivery, extra))


@pytest.fixture
def make_config(tmp_path: Path, month_server: str) -> Callable[..., Config]:
    factory = ConfigFactory(tmp_path, month_server)

    def make(**kwargs: Any) -> Config:
        if "server" in kwargs:
            factory.server = kwargs.pop("server")
        if "subscribers" in kwargs:
            factory.subscribers = kwargs.pop("subscribers")
        return factory.load(**kwargs)

    return make


@dataclass
class SMTPSink:
    """What an aiosmtpd server on loopback received, message by message."""

    host: str
    port: int
    messages: list[email.message.EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)
    # Called with the number of messages accepted so far, before accepting the next one;
    # a reply it returns is given instead of accepting.
    before_data: Callable[[int], str | None] | None = None

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.before_data and (reply := self.before_data(len(self.messages))):
            return reply
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(message, email.message.EmailMessage)
        self.messages.append(message)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted"


@pytest.fixture
def smtp_sink() -> Iterator[SMTPSink]:
    sink = SMTPSink("127.0.0.1", free_port())
    controller = Controller(sink, hostname=sink.host, port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def papers() -> list[Paper]:
    """A day of Hugging Face papers, as the email shows them."""
    return [paper_from_item(item) for item in json.loads(DAY_FILE.read_text("utf-8"))]


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(title="Trending papers")
