"""`jitsudo-bot serve | doctor | sweep | db upgrade | audit [ID]`: the operator's entry points."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable

from bot.config import (
    ConfigError,
    Secrets,
    Settings,
    SlackSettings,
    config_path,
    load_settings,
    read_secrets,
)
from bot.database import open_store

log = logging.getLogger("bot")


CONFIG_HELP = "YAML config (default: $JITSUDO_CONFIG or ./jitsudo.yaml)"
CONFIG_ORDER = (
    "--config may come before or after the command (jitsudo-bot --config FILE serve and "
    "jitsudo-bot serve --config FILE are the same); given in both places, the one after "
    "the command wins."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jitsudo-bot", description=__doc__, epilog=CONFIG_ORDER)
    parser.add_argument("--config", help=CONFIG_HELP)
    parser.add_argument(
        "--log-format",
        choices=["json", "console"],
        help="log lines as JSON objects (default) or console text; wins over $JITSUDO_LOG_FORMAT",
    )
    # Every command takes --config too. SUPPRESS leaves the attribute unset when it
    # is not given there, so it cannot erase a --config given before the command.
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument(
        "--config", default=argparse.SUPPRESS, help=f"{CONFIG_HELP}; wins over one given before"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name, parents=[config], help=summary, description=summary, epilog=CONFIG_ORDER
        )

    command("serve", "run the bot (Socket Mode or HTTP, per slack.mode)")
    command("doctor", "check the config, database, Slack and cluster set-up; one line per check")
    command("sweep", "run the expiry sweeper once and print its counts")
    db = command("db", "database maintenance")
    db.add_argument("action", choices=["upgrade"], help="apply migrations")
    _audit_arguments(command("audit", AUDIT_HELP))
    return parser


AUDIT_HELP = (
    "the audit log: print it as JSON lines (all, or one REQUEST_ID), verify its hash chain, "
    "or export it with the hashes"
)


def _audit_arguments(audit: argparse.ArgumentParser) -> None:
    """One positional, not sub-commands: `audit REQUEST_ID` must keep working beside them."""
    from bot.audit import FORMATS, TIME_FORMS, parse_target, parse_time

    audit.add_argument(
        "target",
        nargs="?",
        type=parse_target,
        metavar="verify | export | REQUEST_ID",
        help="verify: check the chain (exit 0 intact, 1 broken); export: print every event "
        "with seq, prev_hash and hash; REQUEST_ID: only this request's trail",
    )
    audit.add_argument(
        "--since",
        type=parse_time,
        metavar="TIME",
        help=f"export: events at or after TIME; {TIME_FORMS}",
    )
    audit.add_argument("--format", choices=FORMATS, help="export: jsonl (default) or csv")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    from bot.logs import choose_format, configure_logging

    log_format, complaint = choose_format(args.log_format, os.environ.get("JITSUDO_LOG_FORMAT"))
    configure_logging(os.environ.get("JITSUDO_LOG_LEVEL") or "INFO", log_format)
    if complaint:
        log.warning(complaint)
    if args.command == "doctor":
        return _doctor(args.config)
    try:
        settings = load_settings(args.config)
    except ConfigError as error:
        if args.command == "serve":  # serve names everything it lacks, not just the file
            _report_gaps(None, read_secrets(os.environ), config=args.config, error=error)
            return 2
        print(f"jitsudo-bot: {error}", file=sys.stderr)
        return 2
    verbs: dict[str, Callable[[], int]] = {
        "db": lambda: _db_upgrade(settings),
        "audit": lambda: _audit(settings, args),
        "sweep": lambda: _sweep(settings),
        "serve": lambda: _serve(settings, config=args.config),
    }
    return verbs[args.command]()


def _db_upgrade(settings: Settings) -> int:
    open_store(settings.database.url)
    print("database is up to date")
    return 0


def _audit(settings: Settings, args: argparse.Namespace) -> int:
    from bot.audit import run

    return run(
        settings.database.url,
        target=args.target,
        since=args.since,
        output=args.format,
        out=sys.stdout,
        err=sys.stderr,
    )


def _doctor(config: str | None) -> int:
    """The doctor loads the config itself: a config that fails is its first FAIL line."""
    from bot.doctor import run
    from bot.wiring import doctor_sections

    return run(config, sections=doctor_sections())


def _sweep(settings: Settings) -> int:
    """One sweep under the same lease as the replicas: never beside a live leader."""
    from bot.expiry import sweep
    from bot.leader import Leadership
    from bot.wiring import build_bot

    bot = build_bot(settings)
    leadership = Leadership(bot.store.engine, lease=settings.scheduler.leader_lease)
    if not leadership.check():
        print(
            "jitsudo-bot: another replica leads and sweeps on its own; nothing done. "
            "Stop it first to sweep by hand.",
            file=sys.stderr,
        )
        return 3
    leadership.start_renewing()
    try:
        result = sweep(bot.service, leading=leadership.holds)
        bot.outbox.may_deliver = leadership.holds
        bot.outbox.run_once()
    finally:
        leadership.release()
    counts = {
        "revoked": result.revoked,
        "drifted": result.drifted,
        "foreign": result.foreign,
        "failed": result.failed,
    }
    print(json.dumps(counts))
    return 0 if result.failed == 0 else 1


def _serve(settings: Settings, *, config: str | None) -> int:
    from bot.runner import serve

    if _report_gaps(settings.slack, settings.secrets, config=config):
        return 2
    serve(settings)
    return 0


def _report_gaps(
    slack: SlackSettings | None,
    secrets: Secrets,
    *,
    config: str | None,
    error: ConfigError | None = None,
) -> bool:
    """Before anything starts, print every piece serve lacks with its fix (bot.firstrun)."""
    from bot.firstrun import setup_gaps, setup_report

    path = config_path(config, os.environ)
    report = setup_report(setup_gaps(slack, secrets, config=path, config_error=error))
    if report:
        print(report, file=sys.stderr)
    return bool(report)


if __name__ == "__main__":
    sys.exit(main())
