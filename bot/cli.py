"""`jitsudo-bot serve | sweep | db upgrade | audit [ID]`: the operator's entry points."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from bot.config import ConfigError, Settings, load_settings
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
    command("sweep", "run the expiry sweeper once and print its counts")
    db = command("db", "database maintenance")
    db.add_argument("action", choices=["upgrade"], help="apply migrations")
    audit = command("audit", "print the audit trail as JSON lines")
    audit.add_argument("request_id", nargs="?", help="only this request")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    from bot.logs import choose_format, configure_logging

    log_format, complaint = choose_format(args.log_format, os.environ.get("JITSUDO_LOG_FORMAT"))
    configure_logging(os.environ.get("JITSUDO_LOG_LEVEL") or "INFO", log_format)
    if complaint:
        log.warning(complaint)
    try:
        settings = load_settings(args.config)
    except ConfigError as error:
        print(f"jitsudo-bot: {error}", file=sys.stderr)
        return 2
    if args.command == "db":
        open_store(settings.database.url)
        print("database is up to date")
        return 0
    if args.command == "audit":
        return _audit(settings, args.request_id)
    if args.command == "sweep":
        return _sweep(settings)
    return _serve(settings)


def _audit(settings: Settings, request_id: str | None) -> int:
    store = open_store(settings.database.url)
    for event in store.audit_trail(request_id):
        print(
            json.dumps(
                {
                    "at": event.at.isoformat(),
                    "actor": event.actor,
                    "action": event.action,
                    "request": event.request_id,
                    "details": json.loads(event.details),
                }
            )
        )
    return 0


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


def _serve(settings: Settings) -> int:
    from bot.runner import serve

    serve(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
