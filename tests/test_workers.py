"""A run's batches split over forked processes (digest.workers): each batch is done
once, finished here in order, and whatever a copy does not deliver is done here."""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from digest.errors import ConfigError
from digest.workers import PIPE_SIZE, can_fork, in_processes, pipe

pytestmark = pytest.mark.skipif(not can_fork(), reason="needs fork")


def test_every_batch_is_done_once_and_finished_here_in_order() -> None:
    here = os.getpid()

    def run(n: int) -> tuple[int, int]:
        time.sleep(0.01)  # long enough for the copy to take its share
        return n, os.getpid()

    done = in_processes(run, 40, lambda result: result, workers=2)
    assert [n for n, _ in done] == list(range(40))
    by = {pid for _, pid in done}
    assert here in by and len(by) == 2, "both processes took batches"


def test_the_batches_of_a_copy_that_dies_are_done_here() -> None:
    here = os.getpid()

    def run(n: int) -> int:
        if os.getpid() != here:
            os._exit(1)  # the copy dies at its first batch
        time.sleep(0.005)
        return n * n

    assert in_processes(run, 12, lambda result: result + 1, workers=2) == [
        n * n + 1 for n in range(12)
    ]


def test_an_error_in_a_batch_reaches_the_caller_whichever_process_met_it_first() -> None:
    def run(n: int) -> int:
        if n == 3:
            raise ConfigError("subscribers/empty.toml", "interests give nothing to match")
        time.sleep(0.005)
        return n

    with pytest.raises(ConfigError, match=r"empty\.toml"):
        in_processes(run, 10, lambda result: result, workers=2)


def pipes_may_hold_a_batch() -> bool:
    """Whether this system lets a process give a pipe PIPE_SIZE bytes (Linux: up to
    fs.pipe-max-size, 1 MiB unless an administrator lowered it; root: any size)."""
    limit = Path("/proc/sys/fs/pipe-max-size")
    if not sys.platform.startswith("linux") or not limit.exists():
        return False
    return os.geteuid() == 0 or int(limit.read_text()) >= PIPE_SIZE


@pytest.mark.skipif(not pipes_may_hold_a_batch(), reason="this system caps pipe sizes")
def test_a_copys_pipe_holds_a_whole_batch_result_without_this_process_reading() -> None:
    receive, send = pipe(multiprocessing.get_context("fork"))
    result = os.urandom(PIPE_SIZE * 9 // 10)  # about what a batch of 2,048 sends
    writer = threading.Thread(target=send.send_bytes, args=(result,), daemon=True)
    writer.start()
    writer.join(timeout=5)
    sent = not writer.is_alive()
    assert receive.recv_bytes() == result
    assert sent, "the copy had to wait for this process to read"
