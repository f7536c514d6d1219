"""The `digest` command as a user runs it: flags, output, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import feedparser
import pytest
from conftest import ConfigFactory
from helpers import FIXTURES, free_port, maildir_messages
from httpserver import LoopbackServer

from digest.cli import main
from digest.config import Config
from digest.lock import run_lock


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_run_delivers_and_says_what_it_did(
    make_config: Callable[..., Config], capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_config()
    code, out, err = run_cli(capsys, "run", "--config", str(config.path), "--date", "2026-01-05")
    assert (code, err) == (0, "")
    assert "2026-01-05" in out and "sent" in out
    assert config.delivery.maildir is not None
    assert len(maildir_messages(config.delivery.maildir)) >= 2
    code, out, err = run_cli(capsys, "run", "--config", str(config.path), "--date", "2026-01-05")
    assert code == 0 and "nothing new" in out


def test_a_broken_subscriber_file_stops_run_and_check_before_anything_is_fetched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with LoopbackServer() as server:
        factory = ConfigFactory(tmp_path, server.url)
        factory.subscribers["broken"] = (
            'email = "broken@example.org"\nmax_papers = "ten"\n\n[interests]\nkeywords = ["x"]\n'
        )
        path = factory.write()
        for command in ("run", "check"):
            code, _, err = run_cli(capsys, command, "--config", str(path))
            assert code == 2
            assert err.count("\n") == 1, err
            assert "broken.toml" in err and "max_papers" in err and "line 2" in err
        assert server.requests == []


def test_an_unreachable_source_exits_1_with_one_line_naming_source_and_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = ConfigFactory(tmp_path, f"http://127.0.0.1:{free_port()}").write()
    code, _, err = run_cli(capsys, "run", "--config", str(path), "--date", "2026-01-06")
    assert code == 1
    assert err.count("\n") == 1, err
    assert "huggingface" in err and "/api/daily_papers?date=2026-01-06" in err
    assert not (tmp_path / "maildir").exists() or not list((tmp_path / "maildir" / "new").iterdir())


def test_a_second_run_while_one_holds_the_lock_exits_75(
    make_config: Callable[..., Config], capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_config()
    with run_lock(config.data_dir):
        code, _, err = run_cli(capsys, "run", "--config", str(config.path))
    assert code == 75
    assert f"pid {os.getpid()}" in err


def test_a_missing_configuration_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "check", "--config", str(tmp_path / "nope.toml"))
    assert code == 2 and "nope.toml" in err


def test_check_reports_a_valid_configuration(
    make_config: Callable[..., Config], capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_config()
    code, out, _ = run_cli(capsys, "check", "--config", str(config.path))
    assert code == 0 and "3 subscribers" in out


def test_rank_prints_the_design_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    profile = tmp_path / "profile.toml"
    profile.write_text(
        'email = "r@example.org"\nmax_papers = 3\n\n[interests]\n'
        'keywords = ["video generation", "diffusion"]\n'
    )
    items = json.loads((FIXTURES / "hf" / "api-month" / "2026-01-05.json").read_bytes())
    papers = tmp_path / "papers.jsonl"
    papers.write_text(
        "\n".join(
            json.dumps(
                {
                    "id": item["paper"]["id"],
                    "title": item["paper"]["title"],
                    "abstract": item["paper"]["summary"],
                    "authors": [a["name"] for a in item["paper"]["authors"]],
                    "upvotes": item["paper"]["upvotes"],
                }
            )
            for item in items
        )
    )
    code, out, err = run_cli(
        capsys, "rank", "--profile", str(profile), "--papers", str(papers), "--json"
    )
    assert code == 0, err
    ranked = json.loads(out)
    assert isinstance(ranked, list) and 0 < len(ranked) <= 3
    assert all(set(entry) == {"id", "score", "reasons"} for entry in ranked)
    assert [e["score"] for e in ranked] == sorted((e["score"] for e in ranked), reverse=True)
    assert all(entry["reasons"] for entry in ranked)


def test_status_and_preview_show_what_was_sent(
    make_config: Callable[..., Config], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = make_config()
    run_cli(capsys, "run", "--config", str(config.path), "--date", "2026-01-05")
    code, out, err = run_cli(capsys, "status", "--config", str(config.path))
    assert code == 0
    assert "2026-01-05  ok" in out
    assert "agents@example.org" in out
    code, out, err = run_cli(
        capsys,
        "preview",
        "agents",
        "--config",
        str(config.path),
        "--date",
        "2026-01-05",
        "--output",
        str(tmp_path / "preview"),
    )
    assert code == 0, err
    written = sorted(p.suffix for p in (tmp_path / "preview").iterdir())
    assert written == [".eml", ".html", ".txt"]


def test_demo_runs_offline_and_writes_emails_and_valid_feeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "demo", "--output", str(tmp_path / "demo"))
    assert code == 0, err
    assert "Maildir" in out and "Feeds" in out
    messages = maildir_messages(tmp_path / "demo" / "maildir")
    recipients = {m["To"].addresses[0].addr_spec for m in messages}
    assert len(recipients) >= 3
    bodies = {
        r: {
            m.get_body(("plain",)).get_content()
            for m in messages  # type: ignore[union-attr]
            if m["To"].addresses[0].addr_spec == r
        }
        for r in recipients
    }
    assert len({frozenset(b) for b in bodies.values()}) == len(recipients)
    feeds = list((tmp_path / "demo" / "public").rglob("*.atom")) + list(
        (tmp_path / "demo" / "public").rglob("*.rss")
    )
    assert len(feeds) >= 2 + len(recipients)
    for feed in feeds:
        assert feedparser.parse(feed.read_bytes()).bozo == 0, feed
    # Running it again starts afresh rather than failing or piling up.
    assert run_cli(capsys, "demo", "--output", str(tmp_path / "demo"))[0] == 0
    assert len(maildir_messages(tmp_path / "demo" / "maildir")) == len(messages)


def test_the_installed_console_script_runs() -> None:
    script = Path(sys.executable).parent / "digest"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout.startswith("digest ")
