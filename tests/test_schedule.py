"""The scheduler with APScheduler's own machinery and a fake clock.

`SteppedScheduler` is APScheduler's BaseScheduler with the timer thread taken out: the
test plays the main loop (`_process_jobs()`, then wait as long as it says) while
time-machine moves the clock for every thread, the executor's misfire check included. So
the trigger, coalescing, misfire grace and max_instances below are APScheduler's, driven
by our job settings, not a reimplementation.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
)
from apscheduler.schedulers.base import BaseScheduler

from digest.config import Config, ScheduleConfig, load_config
from digest.lock import run_lock
from digest.schedule import (
    JOB_ID,
    MISFIRE_GRACE_SECONDS,
    add_digest_job,
    build_scheduler,
    caught,
    scheduled_run,
    trigger_for,
)
from digest.store import Store

BERLIN = ZoneInfo("Europe/Berlin")
FINISHED = EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED


class SteppedScheduler(BaseScheduler):  # type: ignore[misc]
    """APScheduler without its timer thread: `_process_jobs()` is called by the test."""

    def shutdown(self, wait: bool = True) -> None:
        super().shutdown(wait)

    def wakeup(self) -> None:
        pass


@dataclass
class Recorder:
    """The job: remembers the (fake) time of each call; can be made to block."""

    calls: list[dt.datetime] = field(default_factory=list)
    running: int = 0
    most_at_once: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    blocking: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self) -> None:
        with self.lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.calls.append(dt.datetime.now(BERLIN))
        if self.blocking:
            self.release.wait(timeout=10)
        with self.lock:
            self.running -= 1


@dataclass
class Clockwork:
    scheduler: SteppedScheduler
    traveller: Any
    job: Recorder
    events: list[JobEvent] = field(default_factory=list)
    finished: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))

    def on_event(self, event: JobEvent) -> None:
        self.events.append(event)
        if event.code & FINISHED:
            self.finished.release()

    def step(self, wait_for_jobs: bool = True) -> float | None:
        submitted = self.count(EVENT_JOB_SUBMITTED)
        seconds: float | None = self.scheduler._process_jobs()
        if wait_for_jobs:
            for _ in range(self.count(EVENT_JOB_SUBMITTED) - submitted):
                assert self.finished.acquire(timeout=10), "the job finished"
        return seconds

    def run_until(self, until: dt.datetime) -> None:
        """What BlockingScheduler's main loop does, on the fake clock."""
        while True:
            seconds = self.step()
            now = dt.datetime.now(dt.UTC)
            if seconds is None or now + dt.timedelta(seconds=seconds) > until:
                self.traveller.move_to(until)
                return
            self.traveller.move_to(now + dt.timedelta(seconds=seconds))

    def count(self, code: int) -> int:
        return sum(1 for event in self.events if event.code == code)

    def run_times(self) -> list[dt.datetime]:
        return [
            e.scheduled_run_time.astimezone(BERLIN)
            for e in self.events
            if e.code == EVENT_JOB_EXECUTED
        ]


@pytest.fixture
def clockwork(
    make_config: Callable[..., Config],
) -> Iterator[Callable[..., Clockwork]]:
    made: list[tuple[SteppedScheduler, Any]] = []

    def make(
        cron: str, at: dt.datetime, *, blocking: bool = False, config: Config | None = None
    ) -> Clockwork:
        config = config or configured(make_config, cron)
        travel = time_machine.travel(at, tick=False)
        traveller = travel.start()
        scheduler = SteppedScheduler(timezone=ZoneInfo(config.timezone))
        job = Recorder(blocking=blocking)
        add_digest_job(scheduler, config, job)
        works = Clockwork(scheduler, traveller, job)
        scheduler.add_listener(works.on_event)
        scheduler.start()
        made.append((scheduler, travel))
        return works

    yield make
    for scheduler, travel in made:
        scheduler.shutdown(wait=False)
        travel.stop()


def configured(
    make_config: Callable[..., Config], cron: str, zone: str = "Europe/Berlin"
) -> Config:
    config = make_config(extra=f'\n[schedule]\ncron = "{cron}"\n')
    # The factory writes timezone = "UTC"; the scheduler tests live in Berlin.
    text = config.path.read_text().replace('timezone = "UTC"', f'timezone = "{zone}"')
    config.path.write_text(text)
    return load_config(config.path)


def berlin(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=BERLIN)


def ran(config: Config, started: dt.datetime, finished: dt.datetime) -> None:
    """Record in the store a run for the day it started that ended well."""
    store = Store(config.database)
    try:
        store.finish_run(store.start_run(started.date(), started), "ok", "", finished)
    finally:
        store.close()


# the trigger alone -----------------------------------------------------------------------


def fire_times(cron: str, start: dt.datetime, count: int) -> list[dt.datetime]:
    trigger = trigger_for(ScheduleConfig(cron), "Europe/Berlin")
    times: list[dt.datetime] = []
    previous = None
    now = start
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, now)
        assert fire is not None
        times.append(fire)
        previous, now = fire, fire + dt.timedelta(seconds=1)
    return times


def test_weekday_runs_fire_monday_to_friday_at_local_time_across_the_dst_change() -> None:
    # Berlin moves to summer time on Sunday 29 March 2026.
    times = fire_times("0 7 * * mon-fri", dt.datetime(2026, 3, 26, 12, 0, tzinfo=BERLIN), 5)
    assert [t.strftime("%a %d") for t in times] == [
        "Fri 27",
        "Mon 30",
        "Tue 31",
        "Wed 01",
        "Thu 02",
    ]
    assert all((t.hour, t.minute) == (7, 0) for t in times)
    assert [t.utcoffset() for t in times] == [dt.timedelta(hours=1)] + [dt.timedelta(hours=2)] * 4


def test_a_wall_clock_time_repeated_by_the_end_of_summer_time_fires_once() -> None:
    # 25 October 2026: 02:30 happens at 00:30 UTC and again at 01:30 UTC. APScheduler's
    # own CronTrigger answers both (and then the second one again and again).
    times = fire_times("30 2 * * *", berlin("2026-10-24T12:00"), 3)
    assert [t.isoformat() for t in times] == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
        "2026-10-27T02:30:00+01:00",
    ]


def test_a_frequent_schedule_moves_forward_through_the_repeated_hour() -> None:
    times = fire_times("*/20 * * * *", berlin("2026-10-25T01:50"), 12)
    instants = [t.astimezone(dt.UTC) for t in times]
    assert instants == sorted(set(instants)), "strictly later each time"
    assert instants[-1] - instants[0] == dt.timedelta(minutes=20 * 11)


def test_the_job_coalesces_runs_one_at_a_time_and_tolerates_hours_of_lateness(
    make_config: Callable[..., Config],
) -> None:
    config = make_config(extra='\n[schedule]\ncron = "30 6 * * mon-fri"\n')
    scheduler = build_scheduler(config)
    [job] = scheduler.get_jobs()
    assert job.id == JOB_ID
    assert job.coalesce is True
    assert job.max_instances == 1
    assert job.misfire_grace_time == MISFIRE_GRACE_SECONDS >= 3600
    assert str(job.trigger.timezone) == "UTC"


# APScheduler on a fake clock -----------------------------------------------------------


def test_the_scheduler_fires_at_seven_local_time_before_and_after_spring_forward(
    clockwork: Callable[..., Clockwork],
) -> None:
    # Started at 14:00, seven hours after Thursday's run time: beyond the grace period.
    works = clockwork("0 7 * * mon-fri", berlin("2026-03-26T14:00"))
    works.run_until(berlin("2026-04-02T12:00"))
    expected = [
        "Fri 27 07:00 +0100",
        "Mon 30 07:00 +0200",
        "Tue 31 07:00 +0200",
        "Wed 01 07:00 +0200",
        "Thu 02 07:00 +0200",
    ]
    assert [t.strftime("%a %d %H:%M %z") for t in works.run_times()] == expected
    # The job itself ran at those instants on the clock, not merely "for" them.
    assert [t.strftime("%a %d %H:%M %z") for t in works.job.calls] == expected
    assert works.count(EVENT_JOB_MISSED) == 0


def test_the_scheduler_fires_once_a_day_at_local_time_across_fall_back(
    clockwork: Callable[..., Clockwork],
) -> None:
    # Summer time ends on Sunday 25 October 2026: 02:00-03:00 happens twice that night.
    works = clockwork("30 2 * * *", berlin("2026-10-23T12:00"))
    works.run_until(berlin("2026-10-27T12:00"))
    days = [t.strftime("%a %d %H:%M") for t in works.run_times()]
    assert days == ["Sat 24 02:30", "Sun 25 02:30", "Mon 26 02:30", "Tue 27 02:30"]
    assert len(works.job.calls) == 4


def test_runs_missed_while_the_machine_slept_coalesce_into_one(
    clockwork: Callable[..., Clockwork],
) -> None:
    works = clockwork("0 7 * * *", berlin("2026-01-05T06:00"))
    works.step()
    assert works.job.calls == []
    # Suspended from Monday 06:00 to Thursday 08:00: four due times went by.
    works.traveller.move_to(berlin("2026-01-08T08:00"))
    works.step()
    assert [t.strftime("%a %H:%M") for t in works.run_times()] == ["Thu 07:00"]
    assert len(works.job.calls) == 1
    assert works.scheduler.get_job(JOB_ID).next_run_time == berlin("2026-01-09T07:00")


def test_a_run_later_than_the_grace_period_is_skipped_until_the_next_morning(
    clockwork: Callable[..., Clockwork],
) -> None:
    works = clockwork("0 7 * * *", berlin("2026-01-05T06:00"))
    works.step()
    late = dt.timedelta(seconds=MISFIRE_GRACE_SECONDS, minutes=30)
    works.traveller.move_to(berlin("2026-01-05T07:00") + late)
    works.step()
    assert works.job.calls == []
    assert works.count(EVENT_JOB_MISSED) == 1
    works.run_until(berlin("2026-01-06T08:00"))
    assert [t.strftime("%a %H:%M") for t in works.job.calls] == ["Tue 07:00"]


def test_never_two_runs_at_once(
    clockwork: Callable[..., Clockwork], caplog: pytest.LogCaptureFixture
) -> None:
    works = clockwork("0 7 * * *", berlin("2026-01-05T06:59"), blocking=True)
    works.traveller.move_to(berlin("2026-01-05T07:00"))
    works.step(wait_for_jobs=False)
    deadline = time.monotonic() + 5
    while works.job.running == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert works.job.running == 1
    # The Monday run is still going when Tuesday's is due.
    with caplog.at_level(logging.WARNING, logger="digest.schedule"):
        works.traveller.move_to(berlin("2026-01-06T07:00"))
        works.step(wait_for_jobs=False)
    assert works.count(EVENT_JOB_MAX_INSTANCES) == 1
    assert "still going on" in caplog.text
    works.job.release.set()
    assert works.finished.acquire(timeout=5)
    assert works.job.most_at_once == 1
    assert len(works.job.calls) == 1
    works.run_until(berlin("2026-01-07T08:00"))
    assert [t.strftime("%a %H:%M") for t in works.job.calls] == ["Mon 07:00", "Wed 07:00"]


def test_the_next_run_time_is_logged_at_start_and_after_each_run(
    clockwork: Callable[..., Clockwork], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="digest.schedule"):
        works = clockwork("0 7 * * mon-fri", berlin("2026-01-09T06:00"))  # a Friday
        works.run_until(berlin("2026-01-09T08:00"))
    lines = [r.getMessage() for r in caplog.records if r.name == "digest.schedule"]
    assert lines == [
        "next run at 2026-01-09T07:00:00+01:00",
        "next run at 2026-01-12T07:00:00+01:00",
    ]


# a scheduler (re)started after a due time ------------------------------------------------


def test_a_scheduler_started_half_an_hour_after_the_due_time_runs_the_missed_run_once(
    clockwork: Callable[..., Clockwork],
) -> None:
    works = clockwork("0 7 * * *", berlin("2026-01-05T07:30"))
    works.run_until(berlin("2026-01-05T12:00"))
    assert [t.strftime("%a %H:%M") for t in works.run_times()] == ["Mon 07:00"]
    assert [t.strftime("%a %H:%M") for t in works.job.calls] == ["Mon 07:30"]


def test_a_scheduler_started_days_late_runs_once_not_once_per_missed_day(
    clockwork: Callable[..., Clockwork],
    make_config: Callable[..., Config],
) -> None:
    config = configured(make_config, "0 7 * * *")
    ran(config, berlin("2026-01-02T07:00"), berlin("2026-01-02T07:01"))
    works = clockwork("0 7 * * *", berlin("2026-01-05T08:00"), config=config)
    works.run_until(berlin("2026-01-05T12:00"))
    assert [t.strftime("%a %H:%M") for t in works.job.calls] == ["Mon 08:00"]


def test_a_restart_after_this_mornings_run_does_not_run_it_again(
    clockwork: Callable[..., Clockwork],
    make_config: Callable[..., Config],
) -> None:
    config = configured(make_config, "0 7 * * *")
    ran(config, berlin("2026-01-05T07:00"), berlin("2026-01-05T07:02"))
    works = clockwork("0 7 * * *", berlin("2026-01-05T07:30"), config=config)
    works.run_until(berlin("2026-01-06T06:00"))
    assert works.job.calls == []
    assert works.scheduler.get_job(JOB_ID).next_run_time == berlin("2026-01-06T07:00")


# the real command ------------------------------------------------------------------------


def test_digest_schedule_logs_the_next_run_and_exits_0_on_sigterm(
    make_config: Callable[..., Config],
) -> None:
    # A time twelve hours away: nothing is due within the grace period at start.
    hour = (dt.datetime.now(dt.UTC).hour + 12) % 24
    config = make_config(extra=f'\n[schedule]\ncron = "0 {hour} * * *"\n')
    process = subprocess.Popen(
        [sys.executable, "-m", "digest.cli", "schedule", "--config", str(config.path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        seen = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            seen.append(line)
            if "next run at" in line or not line:
                break
        assert "next run at" in seen[-1], "".join(seen)
        assert f"T{hour:02d}:00:00+00:00" in seen[-1]
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=10)
        assert time.monotonic() - started < 5
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, "".join(seen) + rest
    assert "stopping the scheduler" in rest


def test_a_signal_that_lands_in_code_catching_every_exception_still_stops_the_wait() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with caught((signal.SIGTERM, signal.SIGINT)) as wait:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
        except BaseException:  # what APScheduler's listeners and logging's emit() do
            pytest.fail("the signal raised into the interrupted code")
        assert wait() == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_scheduled_run_is_a_digest_run_process_whose_summary_is_logged(
    make_config: Callable[..., Config], caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config()
    with caplog.at_level(logging.INFO, logger="digest.schedule"):
        scheduled_run(config)
    store = Store(config.database)
    try:
        runs = store.recent_runs(5)
    finally:
        store.close()
    assert [run.status for run in runs] == ["ok"]
    summary = [r.getMessage() for r in caplog.records if r.name == "digest.schedule"]
    assert any(line.startswith(f"{runs[0].run_date}: fetched ") for line in summary), summary
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_scheduled_run_that_meets_a_run_in_progress_is_skipped_with_a_warning(
    make_config: Callable[..., Config], caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config()
    with run_lock(config.data_dir), caplog.at_level(logging.INFO, logger="digest.schedule"):
        scheduled_run(config)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("skipped: "), warnings
    assert "holds" in warnings[0]


def test_a_scheduled_run_that_fails_logs_why(
    make_config: Callable[..., Config], caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config()
    (config.subscribers_dir / "broken.toml").write_text(
        'email = "x@example.org"\nmax_papers = "many"\n'
    )
    with caplog.at_level(logging.INFO, logger="digest.schedule"):
        scheduled_run(config)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "broken.toml" in errors[0], errors
