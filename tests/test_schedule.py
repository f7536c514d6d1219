"""The scheduler's trigger and job settings (firing itself is APScheduler's, tested there)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from zoneinfo import ZoneInfo

from digest.config import Config, ScheduleConfig
from digest.schedule import MISFIRE_GRACE_SECONDS, build_scheduler, trigger_for

BERLIN = ZoneInfo("Europe/Berlin")


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


def test_the_job_coalesces_runs_one_at_a_time_and_tolerates_hours_of_lateness(
    make_config: Callable[..., Config],
) -> None:
    config = make_config(extra='\n[schedule]\ncron = "30 6 * * mon-fri"\n')
    scheduler = build_scheduler(config)
    [job] = scheduler.get_jobs()
    assert job.coalesce is True
    assert job.max_instances == 1
    assert job.misfire_grace_time == MISFIRE_GRACE_SECONDS >= 3600
    assert str(job.trigger.timezone) == "UTC"
