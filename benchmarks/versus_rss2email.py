"""One day's papers to 100 recipients: `digest run` against rss2email, wall clock.

    python benchmarks/versus_rss2email.py [--recipients 100] [--runs 3] [--venv DIR]

The same work as a user sees it. rss2email cannot filter per person, so it reads our
public Atom feed (public/feeds/papers.atom of a digest run: the 24 papers of 2026-01-13),
served by the same loopback HTTP server as the Hugging Face API, once per recipient (one
r2e feed per recipient, each with its own `to`), and sends one plain-text message per
paper per recipient, over SMTP, to the same aiosmtpd sink; no digest mode. digest runs
end to end for the first 100 generated subscribers (fetch, match, render, feeds, deliver)
and sends each recipient one digest of the papers that fit them. Both are timed as
commands, median of the runs, each run from a fresh data folder; the figures are also
given per recipient and per paper delivered.

rss2email (PyPI) lives in its own virtual environment, never in the project's: the script
creates it with `python -m venv` and `pip install rss2email` when it is missing.
"""

from __future__ import annotations

import argparse
import configparser
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import (
    SENDER,
    Sink,
    load_average,
    loopback_server,
    measure_command,
    median,
    sink_process,
    subscribers_dir,
)
from end_to_end import one_run

DEFAULT_VENV = Path(tempfile.gettempdir()) / "digest-bench-rss2email"


def rss2email(venv: Path = DEFAULT_VENV) -> Path:
    """The `r2e` command of a separate virtual environment, installed if missing."""
    command = venv / "bin" / "r2e"
    if not command.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "rss2email"]
        subprocess.run(pip, check=True)
    return command


def version(r2e: Path) -> str:
    result = subprocess.run([str(r2e), "--version"], capture_output=True, text=True, check=True)
    return (result.stdout or result.stderr).strip()


def r2e_folder(folder: Path, r2e: Path, feed_url: str, recipients: list[str], port: int) -> Path:
    """A fresh rss2email configuration: `r2e new`, then SMTP to the sink and one feed per
    recipient (what `r2e add NAME URL ADDRESS` appends, written directly)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    config, data = folder / "r2e.cfg", folder / "r2e.json"
    subprocess.run(
        [str(r2e), "-c", str(config), "-d", str(data), "new", "digest@example.org"],
        check=True,
        capture_output=True,
    )
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(config)
    parser["DEFAULT"].update(
        {
            "from": SENDER.split("<")[1].rstrip(">"),
            "email-protocol": "smtp",
            "smtp-server": "127.0.0.1",
            "smtp-port": str(port),
            "smtp-ssl": "False",
            "smtp-auth": "False",
            "html-mail": "False",
            "digest": "False",
            "verbose": "warning",
        }
    )
    for number, address in enumerate(recipients):
        parser[f"feed.reader{number:05d}"] = {"url": feed_url, "to": address}
    with config.open("w") as out:
        parser.write(out)
    return config


def compare(
    work: Path, recipients: int, runs: int, server: str, files: Path, sink: Sink, r2e: Path
) -> dict[str, Any]:
    subscribers = subscribers_dir(work, recipients)
    ours = [one_run(work / f"versus-digest-{n}", subscribers, server, sink) for n in range(runs)]
    atom = work / "versus-digest-0" / "public" / "feeds" / "papers.atom"
    shutil.copyfile(atom, files / "papers.atom")
    papers_in_feed = atom.read_bytes().count(b"<entry>")
    addresses = [f"reader{n:05d}@example.org" for n in range(recipients)]
    theirs = []
    for n in range(runs):
        folder = work / f"versus-r2e-{n}"
        config = r2e_folder(folder, r2e, f"{server}/files/papers.atom", addresses, sink.port)
        sink.reset()
        command = [str(r2e), "-c", str(config), "-d", str(folder / "r2e.json"), "run"]
        measured = measure_command(command, output=folder / "output.txt")
        arrived = sink.reset()
        if measured.returncode != 0 or arrived["messages"] != recipients * papers_in_feed:
            raise SystemExit(f"r2e run: exit {measured.returncode}, the sink got {arrived}")
        theirs.append(
            {
                "seconds": measured.seconds,
                "peak_rss_mb": measured.peak_rss_mb,
                "messages": int(arrived["messages"]),
                "mean_message_bytes": round(arrived["bytes"] / arrived["messages"]),
                "smtp_connections": int(arrived["connections"]),
            }
        )
    digest_seconds = median([r["seconds"] for r in ours])
    r2e_seconds = median([r["seconds"] for r in theirs])
    digest_papers = ours[-1]["papers_sent"]
    r2e_papers = theirs[-1]["messages"]
    return {
        "recipients": recipients,
        "runs": runs,
        "papers_in_feed": papers_in_feed,
        "rss2email_version": version(r2e),
        "digest": {
            "seconds_median": digest_seconds,
            "messages": ours[-1]["digests_sent"],
            "papers_delivered": digest_papers,
            "ms_per_recipient": round(digest_seconds / recipients * 1000, 2),
            "ms_per_paper_delivered": round(digest_seconds / max(digest_papers, 1) * 1000, 2),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in ours),
        },
        "rss2email": {
            "seconds_median": r2e_seconds,
            "messages": r2e_papers,
            "papers_delivered": r2e_papers,
            "ms_per_recipient": round(r2e_seconds / recipients * 1000, 2),
            "ms_per_paper_delivered": round(r2e_seconds / r2e_papers * 1000, 2),
            "messages_per_second": round(r2e_papers / r2e_seconds, 1),
            "mean_message_bytes": theirs[-1]["mean_message_bytes"],
            "smtp_connections": theirs[-1]["smtp_connections"],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in theirs),
        },
        "speedup_wall_clock": round(r2e_seconds / digest_seconds, 2),
        "each_run": {"digest": ours, "rss2email": theirs},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--recipients", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="rss2email's venv")
    parser.add_argument("--work", type=Path, help="keep the data folders here")
    args = parser.parse_args()
    r2e = rss2email(args.venv)
    with tempfile.TemporaryDirectory(prefix="digest-bench-") as scratch:
        work = args.work or Path(scratch)
        files = work / "files"
        files.mkdir(parents=True, exist_ok=True)
        with loopback_server(files) as server, sink_process() as sink:
            before = load_average()
            result = compare(work, args.recipients, args.runs, server, files, sink, r2e)
    result = {"benchmark": "versus_rss2email", "load_average_before": before, **result}
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
