"""`digest schedule`: run on `[schedule] cron` in the configured time zone, in the foreground.

Correctness never depends on the scheduler: a double trigger meets the run lock, a
re-trigger after a crash meets the ledger. The settings below only make it behave as a
daily job should: a run missed while the machine slept still happens (misfire grace of
hours, not APScheduler's default one second), missed runs collapse into one (coalesce), and
never two at once. A scheduler (re)started within the grace period after a fire time that
no successful run followed runs at once: a restart at 07:05 does not skip the 07:00 run.

SIGTERM stops it cleanly (exit status 0); a run in progress is finished first.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_SCHEDULER_STARTED,
    JobEvent,
    SchedulerEvent,
)
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.cron import CronTrigger

from digest.config import Config, ScheduleConfig
from digest.errors import LockHeld
from digest.store import Store

log = logging.getLogger(__name__)

JOB_ID = "digest-run"
MISFIRE_GRACE_SECONDS = 6 * 3600


class SteadyCronTrigger(CronTrigger):  # type: ignore[misc]
    """APScheduler 3's CronTrigger, never going back in time.

    Around the night a zone leaves summer time, CronTrigger (3.11.3) can answer a fire time
    that is not after the previous one: a 02:30 job fires at 02:30 summer time, then again
    at 02:30 winter time, and a frequent schedule cycles through the repeated hour forever
    (the scheduler then loops collecting run times). Like cron, a wall-clock time runs once:
    an answer that is not later than the previous fire time, or repeats its wall-clock
    time, is replaced by the first fire time after it.
    """

    def get_next_fire_time(
        self, previous_fire_time: dt.datetime | None, now: dt.datetime
    ) -> dt.datetime | None:
        fire: dt.datetime | None = super().get_next_fire_time(previous_fire_time, now)
        if previous_fire_time is None:
            return fire
        # Aware datetimes sharing a tzinfo compare by wall clock, blind to DST: use UTC.
        previous = previous_fire_time.astimezone(dt.UTC)
        for _ in range(48):
            if fire is None:
                return None
            wall = fire.replace(tzinfo=None, fold=0) == previous_fire_time.replace(
                tzinfo=None, fold=0
            )
            if fire.astimezone(dt.UTC) > previous and not wall:
                return fire
            probe = max(fire.astimezone(dt.UTC), previous) + dt.timedelta(minutes=1)
            fire = super().get_next_fire_time(None, probe.astimezone(self.timezone))
        return fire


def trigger_for(schedule: ScheduleConfig, timezone: str) -> CronTrigger:
    # Day names (mon-fri) rather than numbers: APScheduler 3 counts 0 = Monday, cron 0 = Sunday.
    return SteadyCronTrigger.from_crontab(schedule.cron, timezone=ZoneInfo(timezone))


def missed_fire_time(config: Config, trigger: CronTrigger, now: dt.datetime) -> dt.datetime | None:
    """The latest fire time within the grace period before `now` that no successful run
    started after, if any: the run this process's start would otherwise skip."""
    grace = dt.timedelta(seconds=MISFIRE_GRACE_SECONDS)
    latest: dt.datetime | None = None
    fire: dt.datetime | None = trigger.get_next_fire_time(None, now - grace)
    while fire is not None and fire <= now:
        latest = fire
        fire = trigger.get_next_fire_time(fire, fire + dt.timedelta(seconds=1))
    if latest is None:
        return None
    store = Store(config.database)
    try:
        runs = store.recent_runs(50)
    finally:
        store.close()
    for past in runs:
        started = dt.datetime.fromisoformat(past.started_at)
        if past.status == "ok" and started >= latest:
            return None
    return latest


def add_digest_job(
    scheduler: BaseScheduler,
    config: Config,
    job: Callable[[], None] | None = None,
    now: dt.datetime | None = None,
) -> None:
    """The daily job, with the settings that make a scheduler trustworthy (see above)."""
    trigger = trigger_for(config.schedule or ScheduleConfig(), config.timezone)
    now = now or dt.datetime.now(ZoneInfo(config.timezone))
    options: dict[str, Any] = {}
    missed = missed_fire_time(config, trigger, now)
    if missed is not None:
        log.info("the run due at %s has not happened yet: running it now", missed.isoformat())
        options["next_run_time"] = missed
    scheduler.add_job(
        job or partial(scheduled_run, config),
        trigger,
        id=JOB_ID,
        name="digest run",
        replace_existing=True,
        coalesce=True,
        max_instances=1,
        misfire_grace_time=MISFIRE_GRACE_SECONDS,
        **options,
    )
    scheduler.add_listener(
        partial(_log_next_run, scheduler),
        EVENT_SCHEDULER_STARTED
        | EVENT_JOB_EXECUTED
        | EVENT_JOB_ERROR
        | EVENT_JOB_MISSED
        | EVENT_JOB_MAX_INSTANCES,
    )


def _log_next_run(scheduler: BaseScheduler, event: SchedulerEvent) -> None:
    if isinstance(event, JobEvent) and event.code == EVENT_JOB_MAX_INSTANCES:
        log.warning("the previous run is still going on: this one is skipped")
    job = scheduler.get_job(JOB_ID)
    if job is None:
        return
    upcoming: dt.datetime | None = job.next_run_time
    run_time = getattr(event, "scheduled_run_time", None)
    if isinstance(run_time, dt.datetime):
        # Reported from the executor's thread, possibly before the scheduler has moved the
        # job on: ask the trigger what follows this run.
        now = dt.datetime.now(run_time.tzinfo)
        after = max(now, run_time + dt.timedelta(seconds=1))
        upcoming = job.trigger.get_next_fire_time(run_time, after)
    if upcoming is not None:
        log.info("next run at %s", upcoming.isoformat())


def build_scheduler(config: Config) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone=ZoneInfo(config.timezone))
    add_digest_job(scheduler, config)
    return scheduler


def scheduled_run(config: Config) -> None:
    """One `digest run`, as a process of its own.

    It reads the configuration afresh (edited subscriber files count), its memory goes
    back when it ends, a crash stays inside it, and a large run forks its courier and
    matching workers from a process with one thread, not from this one with the
    scheduler's threads. It runs in a session of its own, so the Ctrl-C meant for the
    scheduler does not cut it short: the scheduler waits for it before exiting. What it
    prints is logged here.
    """
    command = [sys.executable, "-m", "digest.cli", "run", "--config", str(config.path)]
    done = subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        start_new_session=True,
        check=False,
    )
    for line in done.stdout.splitlines():
        log.info("%s", line.strip())
    problem = " ".join(done.stderr.split())[-500:] or f"exit status {done.returncode}"
    if done.returncode == LockHeld.exit_code:
        log.warning("skipped: %s", problem)
    elif done.returncode != 0:
        log.error("run failed: %s", problem)


def run_forever(config: Config) -> None:
    """Run the scheduler until SIGTERM or Ctrl-C.

    The scheduler works in its own threads; this one only waits for the signal. Nothing
    happens inside the signal handler: raising from it was swallowed whenever the signal
    landed inside APScheduler's or logging's `except` blocks (the run went on), and
    shutting down from it can deadlock on a lock the interrupted code holds.
    """
    scheduler = build_scheduler(config)
    with caught((signal.SIGTERM, signal.SIGINT)) as wait:  # before the first log line
        scheduler.start()
        try:
            log.info("signal %d: stopping the scheduler", wait())
        finally:
            scheduler.shutdown(wait=False)
    log.info("scheduler stopped")


@contextmanager
def caught(signals: tuple[signal.Signals, ...]) -> Iterator[Callable[[], int]]:
    """Within the block, `signals` are only noted; the function it gives blocks until one
    arrives and returns its number. The C-level handler writes the number into a pipe
    (`signal.set_wakeup_fd`), which that function reads."""
    read, write = os.pipe()
    os.set_blocking(write, False)
    previous = {signum: signal.signal(signum, _ignore) for signum in signals}
    old_fd = signal.set_wakeup_fd(write)

    def wait() -> int:
        while True:
            received = os.read(read, 1)[0]
            if received in signals:
                return received

    try:
        yield wait
    finally:
        signal.set_wakeup_fd(old_fd)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        os.close(read)
        os.close(write)


def _ignore(_signum: int, _frame: FrameType | None) -> None:
    """The Python-level handler: the wake-up pipe carries the news."""
