"""What the benchmark scripts share: paths, timing, peak memory, generated subscribers, and
the SMTP sink that runs in a process of its own.

Not a benchmark itself; `run_all.py` and the stage scripts import it (they run as
`python benchmarks/<name>.py`, so this folder is on `sys.path`).
"""

from __future__ import annotations

import json
import os
import random
import re
import resource
import smtplib
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from urllib.parse import urlsplit

from digest.demo import CaptureHandler, CaptureServer, serving
from digest.text import STOP_WORDS

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
FIXTURES = ROOT / "tests" / "fixtures"
MONTH = FIXTURES / "hf" / "api-month"
CORPUS = FIXTURES / "corpus"
# The Hugging Face day every benchmark delivers: 24 papers.
DAY = "2026-01-13"
SENDER = "Paper digest <digest@example.org>"


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def rate(count: float, seconds: float) -> float:
    return round(count / seconds, 1) if seconds else 0.0


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


# ---------------------------------------------------------------------------------------
# Generated subscribers

# Title words that say nothing about a topic; the matcher's own stop words come on top.
_GENERIC = """
    towards toward via using based new novel approach approaches method methods model models
    framework frameworks learning large language study benchmark benchmarks data dataset
    scaling better efficient effective unified general generalizable improving improved
    enhancing beyond simple through across multi task tasks system systems analysis
    evaluation evaluating open one two make makes making without
"""
_SKIP = STOP_WORDS | frozenset(_GENERIC.split())
_TITLE_WORD = re.compile(r"[A-Za-z][A-Za-z-]{2,}")


def corpus_vocabulary(corpus: Path = CORPUS) -> Counter[str]:
    """Keywords as readers write them, taken from the corpus titles: single words and
    two-word phrases, each with the number of titles it is in; only those in at least three
    (a topic, not one paper's coinage)."""
    counts: Counter[str] = Counter()
    seen: set[str] = set()
    with (corpus / "seed_entries.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            item = json.loads(line)
            if item["id"] in seen:
                continue
            seen.add(item["id"])
            title = item["title"].split(":", 1)[-1]  # "Name: what it is" → what it is
            words = [w.lower() for w in _TITLE_WORD.findall(title)]
            content = [w if w not in _SKIP and len(w) > 3 else "" for w in words]
            terms = {w for w in content if w}
            terms |= {f"{a} {b}" for a, b in pairwise(content) if a and b}
            counts.update(terms)
    return Counter({term: n for term, n in counts.items() if n >= 3})


def corpus_titles(corpus: Path = CORPUS) -> list[str]:
    with (corpus / "seed_entries.jsonl").open(encoding="utf-8") as lines:
        return sorted({json.loads(line)["title"] for line in lines})


def subscriber_toml(
    number: int, rng: random.Random, terms: list[str], weights: list[float], titles: list[str]
) -> str:
    """One subscriber file: three to six keywords, a description in the reader's words,
    sometimes an exclusion, a few with a lower `max_papers`."""
    keywords: list[str] = []
    wanted = rng.randint(3, 6)
    while len(keywords) < wanted:
        term = rng.choices(terms, weights)[0]
        if term not in keywords:
            keywords.append(term)
    liked_title = rng.choice(titles).replace('"', "'").replace("\\", " ")
    description = (
        f"I follow {keywords[0]} and {keywords[1]}; papers like “{liked_title}” interest me."
    )
    lines = [f'name = "Reader {number}"', f'email = "reader{number:05d}@example.org"']
    if rng.random() < 0.2:
        lines.append(f"max_papers = {rng.randint(3, 8)}")
    lines += [
        "",
        "[interests]",
        f'description = "{description}"',
        "keywords = [" + ", ".join(f'"{k}"' for k in keywords) + "]",
    ]
    if rng.random() < 0.1:
        lines.append(f'exclude = ["{rng.choice(terms)}"]')
    return "\n".join(lines) + "\n"


def write_subscribers(folder: Path, count: int, day_text: str, seed: int = 8) -> None:
    """`count` subscriber files in `folder`, the same ones for the same seed.

    Readers follow popular topics more often than rare ones, so a term is drawn in
    proportion to the number of corpus titles it is in; terms the day's papers mention
    (`day_text`, lower case) are drawn four times as often, so most readers get a few
    papers from one day rather than none.
    """
    rng = random.Random(seed)
    vocabulary = corpus_vocabulary()
    terms = sorted(vocabulary)
    weights = [vocabulary[t] * (4.0 if t in day_text else 1.0) for t in terms]
    titles = corpus_titles()
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(count):
        text = subscriber_toml(number, rng, terms, weights, titles)
        (folder / f"reader{number:05d}.toml").write_text(text, encoding="utf-8")


def day_text(day: str = DAY) -> str:
    """The titles and abstracts of a captured day, lower case."""
    items = json.loads((MONTH / f"{day}.json").read_bytes())
    return "\n".join(
        f"{item['paper']['title']}\n{item['paper'].get('summary', '')}".lower() for item in items
    )


def subscribers_dir(work: Path, count: int) -> Path:
    """The generated subscriber files (made once per work folder and count)."""
    folder = work / f"subscribers-{count}"
    if not (folder / f"reader{count - 1:05d}.toml").exists():
        write_subscribers(folder, count, day_text())
    return folder


def write_config(
    folder: Path, *, server: str, smtp_port: int, subscribers: Path | None = None
) -> Path:
    """A digest.toml for a benchmark run: one Hugging Face source, SMTP to the sink with
    no rate limit (the default of 10/s would measure the limit, not the program)."""
    path = folder / "digest.toml"
    path.write_text(
        f"""\
[digest]
title = "Trending papers"
base_url = "https://papers.example.org"
sender = "{SENDER}"
timezone = "UTC"
database = "sqlite:///digest.db"
output_dir = "public"
subscribers = "{subscribers or folder / "subscribers"}"

[[sources]]
kind = "huggingface"
base_url = "{server}"

[delivery]
transport = "smtp"
host = "127.0.0.1"
port = {smtp_port}
security = "none"
rate = 0
""",
        encoding="utf-8",
    )
    return path


# ---------------------------------------------------------------------------------------
# The SMTP sink, in its own process, and the fastest client of it

_SINK_SCRIPT = BENCHMARKS / "smtp_sink.py"


@dataclass
class Sink:
    """Talks to `smtp_sink.py` over its stdin/stdout."""

    process: subprocess.Popen[str]
    port: int

    def _ask(self, command: str) -> dict[str, float]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        answer: dict[str, float] = json.loads(self.process.stdout.readline())
        return answer

    def counts(self) -> dict[str, float]:
        """What arrived since the last reset: messages, recipients, bytes, connections
        (EHLOs), and the arrival times (time.time()) of the first and last message."""
        return self._ask("counts")

    def reset(self) -> dict[str, float]:
        return self._ask("reset")


@contextmanager
def sink_process() -> Iterator[Sink]:
    """An aiosmtpd server on a loopback port, in a separate Python process, so it never
    shares a GIL with what is being measured."""
    process = subprocess.Popen(
        [sys.executable, str(_SINK_SCRIPT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready = json.loads(process.stdout.readline())
        yield Sink(process, int(ready["port"]))
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def minimal_client(port: int, messages: list[tuple[str, bytes]]) -> float:
    """The machine's limit: the least a client can do to hand these (recipient, bytes)
    messages to the server, over one connection. Returns the seconds it took."""
    start = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as connection:
        for recipient, message in messages:
            connection.sendmail("digest@example.org", [recipient], message)
    return time.perf_counter() - start


def arrival_rate(counts: dict[str, float]) -> float:
    """Messages per second as the server saw them arrive, first to last."""
    span = counts["last"] - counts["first"]
    return round((counts["messages"] - 1) / span, 1) if span > 0 else 0.0


# ---------------------------------------------------------------------------------------
# The Hugging Face API and our public feed, on one loopback HTTP server


class _Handler(CaptureHandler):
    """The demo's capture handler (the Daily Papers API), plus the files of one folder
    under /files/ (the public Atom feed that rss2email reads)."""

    server: _Server

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if not path.startswith("/files/"):
            super().do_GET()
            return
        file = self.server.files / path.removeprefix("/files/")
        if "/.." in path or not file.is_file():
            self._reply(404, b"")
            return
        body = file.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/atom+xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(CaptureServer):
    def __init__(self, folder: Path, files: Path) -> None:
        super().__init__(folder)
        self.RequestHandlerClass = _Handler
        self.files = files


@contextmanager
def loopback_server(files: Path) -> Iterator[str]:
    """`digest.demo.capture_server` over the January 2026 captures, also serving `files`
    at /files/; yields the base URL. Runs in threads of this process, which only waits
    for the measured ones (`digest run`, `r2e run`) to finish."""
    with serving(_Server(MONTH, files)) as url:
        yield url


# ---------------------------------------------------------------------------------------
# Measuring a command


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_rss_mb: float
    returncode: int


# Linux counts the parent's peak RSS at fork into the child's (the copied address space
# keeps its high-water mark through exec), so a large benchmark process would inflate
# every figure it measures. The command is started by a small launcher instead, which
# times it and reports its own child's usage: `os.wait4` for that one process.
_LAUNCHER = """
import json, os, sys, time
output = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
print(json.dumps([seconds, usage.ru_maxrss, os.waitstatus_to_exitcode(status)]))
"""


def measure_command(command: list[str], *, output: Path) -> Measured:
    """Run `command` with its output into `output`: its wall time and its own peak RSS."""
    launcher = [sys.executable, "-S", "-c", _LAUNCHER, str(output), *command]
    result = subprocess.run(launcher, check=True, capture_output=True, text=True)
    seconds, maxrss_kib, returncode = json.loads(result.stdout)
    return Measured(round(seconds, 3), round(maxrss_kib / 1024, 1), returncode)


def digest_command(config: Path) -> list[str]:
    return [
        str(Path(sys.executable).parent / "digest"),
        "run",
        "--config",
        str(config),
        "--date",
        DAY,
    ]


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]
