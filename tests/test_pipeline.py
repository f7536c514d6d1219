"""A whole run, end to end: captured Hugging Face days on loopback → Maildir and feeds."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import feedparser
import pytest
from conftest import ConfigFactory
from helpers import MONTH, digests_by_key, free_port, maildir_messages, month_papers, paper_ids

from digest.config import Config
from digest.demo import capture_days, capture_server
from digest.errors import SourceError
from digest.fetch import Fetcher
from digest.pipeline import plan_digests, run
from digest.store import Store

MONTH_DAYS = capture_days(MONTH)


def quick_fetcher() -> Fetcher:
    """Retries without waiting, so failure tests stay fast."""
    return Fetcher(attempts=2, sleep=lambda seconds: None, timeout=2.0, connect_timeout=1.0)


def received(config: Config) -> dict[str, list[list[str]]]:
    """Per recipient, the paper ids of each email in the Maildir, in arrival order."""
    assert config.delivery.maildir is not None
    by_recipient: dict[str, list[list[str]]] = {}
    if not (config.delivery.maildir / "new").exists():
        return by_recipient
    for message in maildir_messages(config.delivery.maildir):
        to = message["To"].addresses[0].addr_spec
        by_recipient.setdefault(to, []).append(paper_ids(message))
    return by_recipient


def feed_bytes(config: Config) -> dict[Path, bytes]:
    return {
        path: path.read_bytes() for path in sorted(config.output_dir.rglob("*")) if path.is_file()
    }


def month_titles() -> dict[str, str]:
    titles = {}
    for path in sorted(MONTH.glob("*.json")):
        for item in json.loads(path.read_bytes()):
            titles[item["paper"]["id"]] = " ".join(item["paper"]["title"].split()).lower()
    return titles


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory, month_server: str) -> Config:
    """A configuration after replaying every weekday of January 2026 in date order.

    Shared by the tests of this module: none of them may change what it holds (the rerun
    test asserts exactly that).
    """
    config = ConfigFactory(tmp_path_factory.mktemp("month"), month_server).load()
    for day in MONTH_DAYS:
        run(config, today=day)
    return config


def test_the_january_captures_are_twenty_two_weekdays() -> None:
    assert len(MONTH_DAYS) == 22
    assert all(day.weekday() < 5 for day in MONTH_DAYS)


def test_a_month_of_runs_sends_each_matching_paper_to_each_subscriber_exactly_once(
    month: Config,
) -> None:
    inbox = received(month)
    titles = month_titles()
    listing_day = {
        item["paper"]["id"]: dt.date.fromisoformat(path.stem)
        for path in MONTH.glob("*.json")
        for item in json.loads(path.read_bytes())
    }
    assert set(inbox) == {s.email for s in month.subscribers}
    for subscriber in month.subscribers:
        emails = inbox[subscriber.email]
        ids = [paper for message in emails for paper in message]
        duplicates = [paper for paper, count in Counter(ids).items() if count > 1]
        assert duplicates == [], f"{subscriber.email} got papers twice: {duplicates}"
        assert set(ids) <= set(titles), "only papers of the month are sent"
        assert all(0 < len(message) <= subscriber.max_papers for message in emails)
        # A paper with one of the subscriber's phrases in its title is squarely on topic:
        # it must have reached them.
        phrases = [k.lower() for k in subscriber.interests.keywords if " " in k]
        on_topic = {pid for pid, title in titles.items() if any(p in title for p in phrases)}
        excluded = {
            pid
            for pid, title in titles.items()
            if any(x.lower() in title for x in subscriber.interests.exclude)
        }
        assert not excluded & set(ids)
        # Unless max_papers left no room: a paper stays a candidate on its own day's run
        # and the next one, and both of those digests must then be full.
        by_key = digests_by_key(month.delivery.maildir)[subscriber.email]
        for missed in sorted(on_topic - excluded - set(ids)):
            day = listing_day[missed]
            runs = [d.isoformat() for d in MONTH_DAYS if d >= day][:2]
            full = [len(by_key.get(key, [])) == subscriber.max_papers for key in runs]
            assert all(full), f"{missed} ({day}) missed by {subscriber.email}, digests not full"
    # Different interests, different emails.
    sets = [frozenset(p for m in inbox[s.email] for p in m) for s in month.subscribers]
    assert len(set(sets)) == len(sets)


def test_rerunning_any_date_sends_nothing_and_rewrites_feeds_byte_for_byte(month: Config) -> None:
    before_mail = received(month)
    before_feeds = feed_bytes(month)
    assert any(path.suffix == ".atom" for path in before_feeds)
    for day in (MONTH_DAYS[0], MONTH_DAYS[10], MONTH_DAYS[-1]):
        result = run(month, today=day)
        assert result.planned == ()
        assert received(month) == before_mail
        assert feed_bytes(month) == before_feeds


def test_every_feed_parses_without_errors(month: Config) -> None:
    files = [path for path in month.output_dir.rglob("*") if path.suffix in (".atom", ".rss")]
    assert len(files) == 2 + len(month.subscribers)
    for path in files:
        parsed = feedparser.parse(path.read_bytes())
        assert parsed.bozo == 0, (path, parsed.get("bozo_exception"))
        assert parsed.entries


def test_an_unreachable_source_sends_nothing_and_the_next_run_catches_the_day_up(
    make_config: Callable[..., Config], month_server: str
) -> None:
    config = make_config()
    run(config, today=dt.date(2026, 1, 5))
    sent_before = received(config)

    dead_url = f"http://127.0.0.1:{free_port()}"
    dead = make_config(server=dead_url)
    with pytest.raises(SourceError) as failure:
        run(dead, today=dt.date(2026, 1, 6), fetcher=quick_fetcher())
    # The catch-up window starts at the last good run, so the first URL tried is its day.
    assert str(failure.value).startswith(
        f"source huggingface: {dead_url}/api/daily_papers?date=2026-01-05"
    )
    assert received(dead) == sent_before

    store = Store(config.database)
    assert store.last_fetched_day("huggingface", dt.date(2026, 1, 6)) == dt.date(2026, 1, 5)
    assert store.papers_between(dt.date(2026, 1, 6), dt.date(2026, 1, 6)) == []
    store.close()

    back = make_config(server=month_server)
    result = run(back, today=dt.date(2026, 1, 7))
    assert result.days == (dt.date(2026, 1, 5), dt.date(2026, 1, 6), dt.date(2026, 1, 7))
    caught_up = {pid for messages in received(back).values() for m in messages[-1:] for pid in m}
    jan6 = {item["paper"]["id"] for item in json.loads((MONTH / "2026-01-06.json").read_bytes())}
    assert caught_up & jan6, "papers of the missed day arrive with the next run"


def test_papers_added_to_a_day_after_its_run_go_out_on_the_next_run(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    folder = tmp_path / "captures"
    folder.mkdir()
    items = json.loads((MONTH / "2026-01-05.json").read_bytes())
    (folder / "2026-01-05.json").write_text(json.dumps(items[:3]))
    with capture_server(folder) as server:
        config = make_config(server=server)
        run(config, today=dt.date(2026, 1, 5))
        first = {pid for ms in received(config).values() for m in ms for pid in m}
        (folder / "2026-01-05.json").write_text(json.dumps(items))
        run(config, today=dt.date(2026, 1, 6))
    everything = [pid for ms in received(config).values() for m in ms for pid in m]
    late = {item["paper"]["id"] for item in items[3:]}
    assert set(everything) - first, "the second run sent something"
    assert (set(everything) - first) <= late
    for messages in received(config).values():
        ids = [pid for m in messages for pid in m]
        assert len(ids) == len(set(ids))


def test_a_quiet_day_sends_no_email_unless_the_subscriber_asks_for_empty_ones(
    make_config: Callable[..., Config],
) -> None:
    quiet = """\
email = "{email}"
send_empty = {send_empty}

[interests]
keywords = ["submillimetre galaxy surveys"]
"""
    config = make_config(
        subscribers={
            "quiet": quiet.format(email="quiet@example.org", send_empty="false"),
            "always": quiet.format(email="always@example.org", send_empty="true"),
        }
    )
    run(config, today=dt.date(2026, 1, 5))
    inbox = received(config)
    assert "quiet@example.org" not in inbox
    assert inbox["always@example.org"] == [[]]


def test_a_weekly_subscriber_gets_the_week_on_their_weekday_only(
    make_config: Callable[..., Config],
) -> None:
    config = make_config(
        subscribers={
            "weekly": """\
email = "weekly@example.org"
frequency = "weekly"
weekday = "fri"
max_papers = 50

[interests]
keywords = ["agent", "reasoning", "video", "model"]
"""
        }
    )
    for day in MONTH_DAYS[2:7]:  # Mon 5 .. Fri 9 January
        run(config, today=day)
    inbox = received(config)
    assert len(inbox["weekly@example.org"]) == 1
    days = set()
    store = Store(config.database)
    for pid in inbox["weekly@example.org"][0]:
        days.add(store.papers_by_id([pid])[pid].day)
    store.close()
    assert len(days) > 1, "the weekly digest spans several days of the week"
    [message] = maildir_messages(config.delivery.maildir)
    text = message.get_body(("plain",))
    assert text is not None
    viewed = text.get_content().split("View in browser:")[1].split()[0]
    assert viewed == f"{config.base_url}/archive/index.html", "the list of days, not one day"
    assert (config.output_dir / "archive" / "index.html").exists()


def test_a_liked_paper_from_an_earlier_run_selects_its_follow_up_and_is_named_as_the_reason(
    make_config: Callable[..., Config],
) -> None:
    liked = month_papers("2026-01-05")[0]
    profile = """\
email = "{email}"

[interests]
keywords = ["submillimetre galaxy surveys"]
liked = [{liked}]
"""
    config = make_config(
        subscribers={
            "liker": profile.format(email="liker@example.org", liked=f'"{liked.id}"'),
            "other": profile.format(email="other@example.org", liked=""),
        }
    )
    run(config, today=dt.date(2026, 1, 5))  # the liked paper is in the store from now on
    follow_up = dataclasses.replace(liked, id="2601.99999", day=dt.date(2026, 1, 6))
    store = Store(config.database)
    store.record_papers([follow_up], dt.datetime.now(dt.UTC))
    day = dt.date(2026, 1, 6)
    digests = plan_digests(config, store, day, day)
    store.close()
    assert [(d.subscriber.email, [m.paper.id for m in d.matches]) for d in digests] == [
        ("liker@example.org", ["2601.99999"])
    ]
    assert f"like {liked.id}" in digests[0].matches[0].reasons


def test_a_dry_run_plans_digests_but_records_and_sends_nothing(
    make_config: Callable[..., Config],
) -> None:
    config = make_config()
    result = run(config, today=dt.date(2026, 1, 5), dry_run=True)
    assert result.planned
    assert received(config) == {}
    store = Store(config.database)
    assert store.recent_runs() == []
    store.close()
    real = run(config, today=dt.date(2026, 1, 5))
    assert [p.paper_ids for p in real.planned] == [p.paper_ids for p in result.planned]


def test_a_run_for_an_empty_weekend_day_sends_nothing(make_config: Callable[..., Config]) -> None:
    config = make_config()
    result = run(config, today=dt.date(2026, 1, 3))
    assert result.sources[0].papers == 0
    assert received(config) == {}


def test_the_demo_serves_unaltered_captures_of_the_month() -> None:
    from digest.demo import CAPTURES

    assert len(list(CAPTURES.glob("*.json"))) == 5
    for path in CAPTURES.glob("*.json"):
        assert path.read_bytes() == (MONTH / path.name).read_bytes()


def test_a_run_removes_temp_files_a_killed_run_left_in_the_output(
    make_config: Callable[..., Config],
) -> None:
    config = make_config()
    private = config.output_dir / "feeds" / "private"
    private.mkdir(parents=True)
    leftover = private / ".abc.atom.x1y2.tmp"
    leftover.write_bytes(b"<feed")
    run(config, today=dt.date(2026, 1, 5))
    assert not leftover.exists()
    assert not list(config.output_dir.rglob("*.tmp"))
