"""A run's batches split over forked processes (for `digest.index`).

The batches of a large run are independent of each other. This process and `workers` - 1
forked copies of it each take the next batch nobody has taken yet, until none is left,
so the work splits evenly however busy the machine is; the copies share what was built
before the fork (the index of the papers) instead of being sent it. A copy sends each
batch's result as soon as it is done, and this process finishes it (`finish`) between
batches of its own: that work is shared out as the batches are, and little is left once
the last batch is done. A thread per copy reads what it sends, so that no copy waits for
this process to be free to read. Whatever a copy did not send (it failed, or died) is
done again here, where an error reaches the caller.
"""

from __future__ import annotations

import contextlib
import fcntl
import multiprocessing
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Generic, TypeVar

from digest.errors import DigestError

if TYPE_CHECKING:
    from multiprocessing.sharedctypes import Synchronized

    # The next batch not yet taken, shared by the processes.
    Counter = Synchronized[int]

R = TypeVar("R")  # what running a batch gives (sent between processes)
F = TypeVar("F")  # what this process makes of it

# What a copy sends: a batch done (its number and result), or None when it has ended.
Sent = tuple[int, R] | None
# What a copy's pipe holds where the system allows it (Linux lets anyone ask for 1 MiB):
# a batch's result is about a megabyte. In a pipe of 64 KiB the copy waits a dozen times
# a batch for this process's reader thread, which waits for the interpreter lock each time.
PIPE_SIZE = 1 << 20


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def in_processes(
    run: Callable[[int], R], count: int, finish: Callable[[R], F], workers: int
) -> list[F]:
    """`[finish(run(n)) for n in range(count)]`, the runs shared by this process and
    `workers` - 1 forked copies of it (`can_fork` must be true)."""
    context = multiprocessing.get_context("fork")
    counter = context.Value("l", 0)
    copies = [_start(context, run, count, counter) for _ in range(workers - 1)]
    arrived: queue.SimpleQueue[Sent[R]] = queue.SimpleQueue()
    readers = [threading.Thread(target=_receive, args=(c, arrived), daemon=True) for c in copies]
    for reader in readers:
        reader.start()
    done: dict[int, F] = {}
    try:
        running = len(copies)
        for n, result in _take(run, count, counter):
            done[n] = finish(result)
            running -= _arrived(arrived, finish, done, wait=False)
        while running:
            running -= _arrived(arrived, finish, done, wait=True)
        for n in range(count):
            if n not in done:
                done[n] = finish(run(n))  # a copy failed: done again here
    finally:
        for copy in copies:
            if copy.process.is_alive():
                copy.process.terminate()
            copy.process.join()
        for reader in readers:
            reader.join()
        for copy in copies:
            copy.results.close()
    return [done[n] for n in range(count)]


def _take(run: Callable[[int], R], count: int, counter: Counter) -> Iterator[tuple[int, R]]:
    """Run the batches nobody has taken yet, one at a time."""
    while True:
        with counter.get_lock():
            taken = counter.value
            counter.value = taken + 1
        if taken >= count:
            return
        yield taken, run(taken)


@dataclass(frozen=True)
class _Copy(Generic[R]):
    process: multiprocessing.process.BaseProcess
    results: Connection


def _start(
    context: multiprocessing.context.ForkContext,
    run: Callable[[int], R],
    count: int,
    counter: Counter,
) -> _Copy[R]:
    receive, send = pipe(context)
    process = context.Process(target=_copy, args=(run, count, counter, send), daemon=True)
    process.start()
    send.close()
    return _Copy(process, receive)


def pipe(
    context: multiprocessing.context.ForkContext,
) -> tuple[Connection, Connection]:
    """A one-way pipe (receiving end, sending end) that holds PIPE_SIZE bytes where the
    system lets it, else as much as it holds by default."""
    receive, send = context.Pipe(duplex=False)
    resize = getattr(fcntl, "F_SETPIPE_SZ", None)  # (Linux only)
    if resize is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(send.fileno(), resize, PIPE_SIZE)
    return receive, send


def _copy(run: Callable[[int], R], count: int, counter: Counter, send: Connection) -> None:
    """A forked copy's life: batches until none is left, each sent when done."""
    try:
        for finished in _take(run, count, counter):
            send.send(finished)
        send.send(None)
    except DigestError:
        send.send(None)  # this process redoes the work and reports it, with its own traceback
    finally:
        send.close()


def _receive(copy: _Copy[R], arrived: queue.SimpleQueue[Sent[R]]) -> None:
    """What a copy sends, as it comes, then None when it has ended (or died)."""
    try:
        while (finished := copy.results.recv()) is not None:
            arrived.put(finished)
    except (EOFError, OSError):
        pass
    finally:
        arrived.put(None)


def _arrived(
    arrived: queue.SimpleQueue[Sent[R]],
    finish: Callable[[R], F],
    done: dict[int, F],
    *,
    wait: bool,
) -> int:
    """The batches copies have sent so far (waiting for something first, if `wait`),
    finished into `done`: how many copies have ended meanwhile."""
    ended = 0
    try:
        finished = arrived.get(block=wait)
        while True:
            if finished is None:
                ended += 1
            else:
                done[finished[0]] = finish(finished[1])
            finished = arrived.get(block=False)
    except queue.Empty:
        return ended
