"""The crash test, small: `digest run` as a real process, killed with SIGKILL while it
fetches, renders and sends, then rerun until it finishes. Nobody loses their digest and
nobody gets two different ones; a second copy (same Message-ID) only for the message in
flight when a kill fell between the server's 250 and our commit.

It runs the code of `benchmarks/crash.py` (the full-size run: 200 subscribers, 30 kills).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "crash_benchmark", ROOT / "benchmarks" / "crash.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_runs_killed_at_random_moments_deliver_each_digest_once_and_lose_none(
    tmp_path: Path,
) -> None:
    crash = load_benchmark()
    plan = ["fetch", "render", "data", "rcpt", "data", "anytime"]
    report = crash.run_campaign(tmp_path, subscribers=24, kills=len(plan), seed=3, plan=plan)
    log = report.attempt_log
    assert report.kills == len(plan), log
    assert report.final_exit_code == 0, log
    assert report.subscribers_missing == 0
    assert report.subscribers_with_two_message_ids == 0
    assert report.subscribers_with_one_message_id == 24
    assert report.final_states == {"sent": 24}
    # The phases the kills fell in, as the servers and the run's own log tell them.
    assert {"fetch", "render/queue", "sending"} <= set(report.kills_by_phase), log
    # Each kill inside the server's DATA handling left a message the server had accepted
    # and the run had not recorded: it went out again, with the same Message-ID.
    assert report.data_kills >= 1, log
    assert report.duplicates_in_the_250_to_commit_gap >= report.data_kills
    assert report.duplicates_unexplained == 0
    assert report.duplicate_copies == report.duplicates_in_the_250_to_commit_gap
    assert report.messages_received == 24 + report.duplicate_copies
    assert report.ok
