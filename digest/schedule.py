"""`digest schedule`: run on `[schedule] cron` in the configured time zone, in the foreground.

Correctness never depends on the scheduler: a double trigger meets the run lock, a
re-trigger after a crash meets the ledger. The settings below only make it behave as a
daily job should: a run missed while the machine slept still happens (misfire grace of
hours, not APScheduler's default one second), missed runs collapse into one (coalesce), and
never two at once.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
from types import FrameType
from zoneinfo import ZoneInfo

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from digest.config import Config, ScheduleConfig
from digest.errors import DigestError
from digest.pipeline import run

log = logging.getLogger(__name__)

MISFIRE_GRACE_SECONDS = 6 * 3600


def trigger_for(schedule: ScheduleConfig, timezone: str) -> CronTrigger:
    # Day names (mon-fri) rather than numbers: APScheduler 3 counts 0 = Monday, cron 0 = Sunday.
    return CronTrigger.from_crontab(schedule.cron, timezone=ZoneInfo(timezone))


def build_scheduler(config: Config) -> BlockingScheduler:
    scheduler = BlockingScheduler(timezone=ZoneInfo(config.timezone))
    scheduler.add_job(
        _scheduled_run,
        trigger_for(config.schedule or ScheduleConfig(), config.timezone),
        args=(config,),
        id="digest-run",
        replace_existing=True,
        coalesce=True,
        max_instances=1,
        misfire_grace_time=MISFIRE_GRACE_SECONDS,
    )
    return scheduler


def _scheduled_run(config: Config) -> None:
    try:
        result = run(config)
        log.warning("run for %s: %d digests queued", result.run_date, len(result.planned))
    except DigestError as error:
        log.error("run failed: %s", error)


def run_forever(config: Config) -> None:
    scheduler = build_scheduler(config)

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.warning("signal %d: stopping the scheduler", signum)
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    trigger = trigger_for(config.schedule or ScheduleConfig(), config.timezone)
    now = dt.datetime.now(ZoneInfo(config.timezone))
    log.warning("next run at %s", trigger.get_next_fire_time(None, now))
    scheduler.start()
