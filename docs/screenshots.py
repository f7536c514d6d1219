"""Regenerate the README's screenshots of the email from `digest demo`, in headless Chromium.

    .venv/bin/python docs/screenshots.py            # writes docs/email-{light,dark,phone}.png
    .venv/bin/python docs/screenshots.py --output /tmp/shots

It runs the demo (real captured Hugging Face days, offline), takes the HTML part of one of
its emails (the one whose paper count is nearest to five, so the picture shows a typical
issue), and photographs it as a desktop reader would see it, in light and in dark mode
(Chromium emulating a dark colour-scheme preference, which is what `@media
(prefers-color-scheme: dark)` in the email answers), and at a phone's width. Chromium runs
with a throw-away profile and HOME, and with its background networking off; the email
loads nothing from the network.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from digest.demo import run_demo

DOCS = Path(__file__).resolve().parent
TYPICAL_PAPERS = 5


@dataclass(frozen=True)
class Shot:
    name: str
    width: int
    height: int
    dark: bool = False


SHOTS = (
    Shot("email-light.png", 700, 1600),
    Shot("email-dark.png", 700, 1600, dark=True),
    Shot("email-phone.png", 390, 1300),
)


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if found := shutil.which(name):
            return found
    return None


def typical_email(maildir: Path) -> str:
    """The HTML part of the demo email nearest to `TYPICAL_PAPERS` papers (ties: the
    earliest file name, so the choice is the same on every machine)."""
    best: tuple[int, str, str] | None = None
    for path in sorted((maildir / "new").iterdir()):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        part = message.get_body(("html",))
        if part is None:
            continue
        html = str(part.get_content())
        distance = abs(html.count('class="paper-cell"') - TYPICAL_PAPERS)
        if best is None or (distance, path.name) < best[:2]:
            best = (distance, path.name, html)
    if best is None:
        raise SystemExit(f"no email with an HTML part in {maildir}")
    return best[2]


def chromium_command(chromium: str, work: Path, shot: Shot, page: Path) -> list[str]:
    command = [
        chromium,
        "--headless",
        "--no-sandbox",  # root in containers and CI
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={work / ('profile-' + shot.name)}",
        f"--window-size={shot.width},{shot.height}",
        f"--screenshot={work / shot.name}",
    ]
    if shot.dark:
        command.append("--blink-settings=preferredColorScheme=0")  # 0 = dark
    return [*command, page.as_uri()]


def take(chromium: str, html: str, output: Path, work: Path) -> list[Path]:
    page = work / "email.html"
    page.write_text(html, encoding="utf-8")
    home = work / "home"
    home.mkdir(exist_ok=True)
    environ = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
    }
    written = []
    output.mkdir(parents=True, exist_ok=True)
    for shot in SHOTS:
        subprocess.run(
            chromium_command(chromium, work, shot, page),
            env=environ,
            check=True,
            capture_output=True,
            timeout=120,
        )
        target = output / shot.name
        shutil.copyfile(work / shot.name, target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DOCS, help="folder for the PNGs")
    parser.add_argument("--chromium", help="the browser to run (default: found on PATH)")
    args = parser.parse_args(argv)
    chromium = args.chromium or find_chromium()
    if chromium is None:
        print("chromium not found: apt-get install chromium", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="digest-shots-") as temp:
        work = Path(temp)
        demo = run_demo(work / "demo")
        for path in take(chromium, typical_email(demo.maildir), args.output, work):
            print(f"{path}  {path.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
