"""Fetching and parsing: papers parsed per second, and what an unchanged poll costs.

    python benchmarks/fetch.py [--json]

1. Parse rate: every Hugging Face and arXiv capture in tests/fixtures, parsed into Papers
   by our parsers, against a baseline of `json.loads` / `lxml` alone on the same bytes (the
   floor any parser pays), measured in the same run.
2. Polling: the 22 January 2026 days served on loopback (with ETags, as the real API does)
   fetched twice through the run's Fetcher and store: the second, unchanged poll should
   cost 304s only. The baseline is the first (cold) poll.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from lxml import etree

from digest.demo import capture_days, capture_server
from digest.fetch import Fetcher
from digest.sources import arxiv, huggingface
from digest.store import Store

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
MONTH = FIXTURES / "hf" / "api-month"
DAY = dt.date(2026, 1, 5)


def captures() -> list[tuple[str, bytes, Callable[[bytes], int], Callable[[bytes], object]]]:
    """(name, bytes, our parser returning a paper count, baseline parser) per capture."""
    found: list[tuple[str, bytes, Callable[[bytes], int], Callable[[bytes], object]]] = []
    for path in sorted((FIXTURES / "hf" / "api").glob("*.json")) + sorted(MONTH.glob("*.json")):
        found.append(
            (
                path.name,
                path.read_bytes(),
                lambda b: len(huggingface.parse_api(b, day=DAY)),
                json.loads,
            )
        )
    page = FIXTURES / "hf" / "html" / "daily_2024-08-01.html"
    found.append(
        (
            page.name,
            page.read_bytes(),
            lambda b: len(huggingface.parse_day_page(b, day=DAY)),
            etree.HTML,
        )
    )
    for path in sorted((FIXTURES / "arxiv" / "api").glob("*.xml")):
        if "error" in path.name:
            continue
        found.append(
            (
                path.name,
                path.read_bytes(),
                lambda b: len(arxiv.parse_api(b, day=DAY)),
                etree.fromstring,
            )
        )
    listing = (FIXTURES / "arxiv" / "rss" / "atom_cs.AI_2025-08-20_truncated.xml").read_bytes()
    listing = listing[: listing.rindex(b"</entry>") + 8] + b"</feed>"
    found.append(
        (
            "atom_cs.AI_2025-08-20 (repaired)",
            listing,
            lambda b: len(arxiv.parse_listing(b, day=DAY)),
            etree.fromstring,
        )
    )
    return found


def best_of(runs: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def parse_rate(runs: int = 5) -> dict[str, float]:
    items = captures()
    papers = sum(parse(data) for _, data, parse, _ in items)
    ours = best_of(runs, lambda: [parse(data) for _, data, parse, _ in items])
    floor = best_of(runs, lambda: [base(data) for _, data, _, base in items])
    return {
        "captures": len(items),
        "papers": papers,
        "bytes": sum(len(data) for _, data, _, _ in items),
        "seconds": round(ours, 4),
        "papers_per_second": round(papers / ours),
        "baseline_decode_only_seconds": round(floor, 4),
        "overhead_over_decode": round(ours / floor, 2),
    }


def poll(fetcher: Fetcher, base: str) -> dict[str, int]:
    requests = bytes_ = not_modified = 0
    for day in capture_days(MONTH):
        params = {"date": day.isoformat(), "limit": 50, "p": 0}
        response = fetcher.get(f"{base}/api/daily_papers", params)
        requests += 1
        not_modified += response.not_modified
        bytes_ += 0 if response.not_modified else len(response.content)
    return {"requests": requests, "body_bytes": bytes_, "answered_304": not_modified}


def polling() -> dict[str, dict[str, int]]:
    with tempfile.TemporaryDirectory() as folder, capture_server(MONTH) as base:
        store = Store(f"sqlite:///{Path(folder) / 'digest.db'}")
        with Fetcher(cache=store) as fetcher:
            cold = poll(fetcher, base)
        with Fetcher(cache=store) as fetcher:
            warm = poll(fetcher, base)
        store.close()
    return {"first_poll (baseline)": cold, "second_unchanged_poll": warm}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    started = time.perf_counter()
    result = {
        "benchmark": "fetch",
        "parse": parse_rate(),
        "polling": polling(),
        "seconds": 0.0,
        "peak_rss_mb": 0.0,
    }
    result["seconds"] = round(time.perf_counter() - started, 2)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if not args.json:
        parse = result["parse"]
        assert isinstance(parse, dict)
        print(
            f"parse: {parse['papers']} papers from {parse['captures']} captures in "
            f"{parse['seconds']} s = {parse['papers_per_second']} papers/s "
            f"({parse['overhead_over_decode']}x the bare JSON/XML decode)"
        )
        for name, numbers in result["polling"].items():  # type: ignore[union-attr]
            print(f"{name}: {numbers}")
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
