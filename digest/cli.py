"""The `digest` command: parses flags, calls the library, prints the outcome.

This is the only place where errors become exit codes: 0 done (also "nothing new"),
1 failure, 2 bad configuration or usage, 75 another run holds the lock.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from digest import __version__
from digest.config import Config, load_config
from digest.errors import DigestError, UsageError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="digest",
        description="A personal daily newsletter of trending research papers.",
    )
    parser.add_argument("--version", action="version", version=f"digest {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        type=Path,
        default=Path("digest.toml"),
        metavar="FILE",
        help="the configuration file (default: ./digest.toml)",
    )
    common.add_argument(
        "-v", "--verbose", action="store_true", help="log progress; show tracebacks"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", parents=[common], help="fetch, match and deliver once")
    run.add_argument("--date", type=_date, help="treat this day as today (YYYY-MM-DD)")
    run.add_argument("--dry-run", action="store_true", help="show what would be sent; send nothing")

    demo = commands.add_parser(
        "demo", help="the whole pipeline offline on bundled captures, into a local Maildir"
    )
    demo.add_argument(
        "--output",
        type=Path,
        default=Path("demo-output"),
        metavar="DIR",
        help="where the demo writes its Maildir, feeds and database (default: ./demo-output)",
    )
    demo.add_argument("-v", "--verbose", action="store_true", help="log progress; show tracebacks")

    rank = commands.add_parser("rank", help="rank papers for one subscriber file")
    rank.add_argument("--profile", type=Path, required=True, metavar="F", help="a subscriber file")
    rank.add_argument("--papers", type=Path, required=True, metavar="J", help="JSONL of papers")
    rank.add_argument("--json", action="store_true", help="print JSON (the default output)")
    rank.add_argument("-v", "--verbose", action="store_true", help="show tracebacks")

    preview = commands.add_parser("preview", parents=[common], help="write one email to files")
    preview.add_argument("subscriber", help="subscriber file name (without .toml) or address")
    preview.add_argument("--date", type=_date, help="the digest's day (default: today)")
    preview.add_argument(
        "--output", type=Path, default=Path("."), metavar="DIR", help="folder for the files"
    )

    check = commands.add_parser("check", parents=[common], help="validate the configuration")
    check.add_argument("--smtp", action="store_true", help="also log in to the mail server")

    commands.add_parser("status", parents=[common], help="last runs, deliveries, outbox")
    commands.add_parser(
        "schedule", parents=[common], help="run on [schedule] cron, in the foreground"
    )

    serve = commands.add_parser(
        "serve", parents=[common], help="serve output_dir and the unsubscribe links (web app)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on (8080)")

    subscribers = commands.add_parser(
        "subscribers", parents=[common], help="every subscriber and its state"
    )
    change = subscribers.add_mutually_exclusive_group()
    change.add_argument(
        "--unsubscribe", metavar="ADDRESS", help="stop sending to ADDRESS (as its link would)"
    )
    change.add_argument(
        "--activate",
        metavar="ADDRESS",
        help="send to an unsubscribed or suppressed ADDRESS again; forget its hard failures",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # The long-running commands log what they do, with times, as a service should.
    service = args.command in ("schedule", "serve")
    logging.basicConfig(
        level=logging.INFO if args.verbose or service else logging.ERROR,
        format=("%(asctime)s " if service else "") + "%(levelname)s %(name)s: %(message)s",
    )
    if service and not args.verbose:
        logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        return _dispatch(args)
    except DigestError as error:
        if args.verbose:
            raise
        print(f"digest: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    command: str = args.command
    if command == "rank":
        return _rank(args)
    if command == "demo":
        return _demo(args)

    config = load_config(args.config)
    if command == "check":
        return _check(args, config)
    if command == "run":
        return _run(args, config)
    if command == "preview":
        return _preview(args, config)
    if command == "status":
        return _status(config)
    if command == "serve":
        from digest.serve import serve

        serve(config, args.host, args.port)
        return EXIT_OK
    if command == "subscribers":
        return _subscribers(args, config)
    if command == "schedule":
        from digest.schedule import run_forever

        run_forever(config)
        return EXIT_OK
    raise UsageError(f"unknown command {command!r}")


def _rank(args: argparse.Namespace) -> int:
    from digest.match import rank_file

    print(json.dumps(rank_file(args.profile, args.papers), indent=2, ensure_ascii=False))
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from digest.demo import run_demo

    result = run_demo(args.output)
    print(
        f"Demo: {len(result.days)} days of Hugging Face Daily Papers "
        f"({result.days[0]} to {result.days[-1]}) served from {result.server_url}"
    )
    for subscriber, count in result.emails.items():
        print(f"  {subscriber}: {count} email{'s' if count != 1 else ''}")
    print(f"Emails (Maildir):  {result.maildir}")
    print(f"Feeds:             {result.feeds_dir}")
    for path in result.feed_files:
        print(f"  {path}")
    print(f"Open one email:    {result.sample_email}")
    return EXIT_OK


def _check(args: argparse.Namespace, config: Config) -> int:
    from digest.deliver import check_smtp

    if args.smtp:
        check_smtp(config.delivery)
    print(
        f"{args.config}: ok ({len(config.subscribers)} subscribers, "
        f"{len(config.sources)} sources{', SMTP login ok' if args.smtp else ''})"
    )
    return EXIT_OK


def _run(args: argparse.Namespace, config: Config) -> int:
    from digest.lock import run_lock

    # The lock first: a second run exits 75 before spending time on imports.
    with run_lock(config.data_dir):
        from digest.pipeline import run

        result = run(config, today=args.date, dry_run=args.dry_run, locked=True)
    days = f"{result.days[0]}" + (f"..{result.days[-1]}" if len(result.days) > 1 else "")
    fetched = ", ".join(f"{s.name} {s.papers}" for s in result.sources)
    print(f"{result.run_date}: fetched {days} ({fetched} papers)")
    verb = "would send" if result.dry_run else "queued"
    for planned in result.planned:
        print(f"  {verb} {planned.key} to {planned.email}: {len(planned.paper_ids)} papers")
    if not result.planned:
        print("  nothing new for anyone")
    if not result.dry_run:
        report = result.delivery
        print(f"  sent {report.sent}, deferred {report.deferred}, failed {report.failed}")
        if report.skipped or report.suppressed:
            print(f"  skipped {report.skipped} (unsubscribed), suppressed {report.suppressed}")
    return EXIT_OK


def _preview(args: argparse.Namespace, config: Config) -> int:
    from digest.preview import preview

    for path in preview(config, args.subscriber, day=args.date, output=args.output):
        print(path)
    return EXIT_OK


def _subscribers(args: argparse.Namespace, config: Config) -> int:
    from digest.store import ACTIVE, UNSUBSCRIBED, Store
    from digest.subscribers import format_rows, set_state, subscriber_rows

    store = Store(config.database)
    try:
        if args.unsubscribe or args.activate:
            address = args.unsubscribe or args.activate
            state = UNSUBSCRIBED if args.unsubscribe else ACTIVE
            changed = set_state(config, store, address, state, "set by the operator")
            print(f"{address}: {state}" + ("" if changed else " (already)"))
            return EXIT_OK
        for line in format_rows(subscriber_rows(config, store)):
            print(line)
    finally:
        store.close()
    return EXIT_OK


def _status(config: Config) -> int:
    from digest.status import status_lines

    for line in status_lines(config):
        print(line)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
