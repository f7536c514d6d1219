"""A large run sends from a second process while it renders (deliver.Courier): every digest
still arrives exactly once, and a failure of that process loses nothing."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import ConfigFactory, SMTPSink
from helpers import MONTH, digests_by_key, free_port

from digest import pipeline
from digest.config import Config
from digest.demo import capture_days
from digest.errors import DeliveryError, LockHeld
from digest.lock import run_lock
from digest.store import QUEUED, SENT, Store

DAY = dt.date(2026, 1, 13)
FIRST_WEEK = [day for day in capture_days(MONTH) if day <= dt.date(2026, 1, 9)]


def smtp(port: int) -> str:
    return (
        f'[delivery]\ntransport = "smtp"\nhost = "127.0.0.1"\nport = {port}\n'
        'security = "none"\nrate = 0\n'
    )


def states(config: Config) -> Counter[str]:
    store = Store(config.database)
    try:
        return Counter(d.state for d in store.deliveries_in_state(QUEUED, SENT))
    finally:
        store.close()


@pytest.fixture
def in_batches_of_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three subscribers make a large run: each digest is its own batch."""
    monkeypatch.setattr(pipeline, "BATCH", 1)


def recipients(sink: SMTPSink) -> Counter[str]:
    return Counter(to for _, tos in sink.envelopes for to in tos)


@pytest.mark.usefixtures("in_batches_of_one")
def test_a_large_run_sends_each_digest_once_while_it_queues_the_rest(
    make_config: Callable[..., Config], smtp_sink: SMTPSink
) -> None:
    config = make_config(delivery=smtp(smtp_sink.port))

    result = pipeline.run(config, today=DAY)

    assert result.delivery.sent == len(result.planned) == 3
    assert recipients(smtp_sink) == Counter(p.email for p in result.planned)
    assert states(config) == {SENT: 3}
    again = pipeline.run(config, today=DAY)
    assert again.delivery.sent == 0 and len(smtp_sink.messages) == 3


@pytest.mark.usefixtures("in_batches_of_one")
def test_a_large_run_with_the_mail_server_down_keeps_every_digest_for_the_next_run(
    make_config: Callable[..., Config], smtp_sink: SMTPSink
) -> None:
    config = make_config(delivery=smtp(free_port()))
    with pytest.raises(DeliveryError, match="cannot connect"):
        pipeline.run(config, today=DAY)
    assert states(config) == {QUEUED: 3}

    config = make_config(delivery=smtp(smtp_sink.port))
    result = pipeline.run(config, today=DAY)

    assert result.delivery.sent == 3
    assert sorted(recipients(smtp_sink).values()) == [1, 1, 1]


def kill_the_courier_at_the_second_message(accepted: int) -> str | None:
    """The sender dies while it waits for the answer to its second DATA (which the server
    then does not accept: a kill after the server's 250 is `test_crash`'s subject)."""
    if accepted != 1:
        return None
    for child in multiprocessing.active_children():
        os.kill(child.pid or 0, signal.SIGKILL)
    return "451 not accepted"


@pytest.mark.usefixtures("in_batches_of_one")
def test_a_courier_killed_mid_run_fails_the_run_and_the_next_run_sends_the_rest_once(
    make_config: Callable[..., Config], smtp_sink: SMTPSink
) -> None:
    config = make_config(delivery=smtp(smtp_sink.port))
    smtp_sink.before_data = kill_the_courier_at_the_second_message

    with pytest.raises(DeliveryError, match=r"delivery process died \(exit code -9\)"):
        pipeline.run(config, today=DAY)
    assert states(config) == {SENT: 1, QUEUED: 2}

    smtp_sink.before_data = None
    result = pipeline.run(config, today=DAY)

    assert result.delivery.sent == 2
    assert sorted(recipients(smtp_sink).values()) == [1, 1, 1]


def test_a_week_in_batches_of_one_delivers_what_a_week_in_one_batch_does(
    tmp_path: Path, month_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    delivered = []
    for batch in (pipeline.BATCH, 1):
        monkeypatch.setattr(pipeline, "BATCH", batch)
        config = ConfigFactory(tmp_path / f"batch-{batch}", month_server).load()
        for day in FIRST_WEEK:
            pipeline.run(config, today=day)
        delivered.append(digests_by_key(config.delivery.maildir))
    assert delivered[0] == delivered[1]
    assert sum(len(keys) for keys in delivered[0].values()) >= len(FIRST_WEEK)


# A process that queues messages, hands them to a courier and dies at once (SIGKILL).
ORPHANING_RUN = """
import datetime as dt, os, signal, sys
from pathlib import Path
from digest.config import DeliveryConfig
from digest.deliver import Courier
from digest.lock import run_lock
from digest.store import OutboxEntry, Store

data, port, count = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
database = f"sqlite:///{data / 'digest.db'}"
now = dt.datetime.now(dt.UTC)
with run_lock(data):
    store = Store(database)
    store.queue_many(
        [
            OutboxEntry(f"r{n}@example.org", "2026-01-13", dt.date(2026, 1, 13), f"<{n}@x>",
                        f"Message-ID: <{n}@x>\\r\\n\\r\\nbody {n}\\r\\n".encode(), ())
            for n in range(count)
        ],
        now,
    )
    settings = DeliveryConfig("smtp", "127.0.0.1", port, "none", rate=0)
    Courier(database, settings, "digest@example.org", now).queued()
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_courier_whose_run_is_killed_sends_what_was_queued_then_exits_and_frees_the_lock(
    tmp_path: Path, smtp_sink: SMTPSink
) -> None:
    count = 30
    killed = subprocess.run(
        [sys.executable, "-c", ORPHANING_RUN, str(tmp_path), str(smtp_sink.port), str(count)],
        capture_output=True,
        timeout=60,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()

    deadline = time.monotonic() + 30
    while True:  # the orphaned courier still holds the lock while it sends
        try:
            with run_lock(tmp_path):
                break
        except LockHeld:
            assert time.monotonic() < deadline, "the courier never finished"
            time.sleep(0.05)
    assert sorted(recipients(smtp_sink).values()) == [1] * count
    store = Store(f"sqlite:///{tmp_path / 'digest.db'}")
    assert len(store.deliveries_in_state(SENT)) == count
    store.close()
