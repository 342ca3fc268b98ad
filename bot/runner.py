"""`jitsudo-bot serve`: start the timers and the outbox, then Slack (Socket Mode or HTTP)."""

from __future__ import annotations

import logging
import signal
from typing import Any

from slack_bolt.adapter.socket_mode import SocketModeHandler

from bot.config import Settings, missing_secrets
from bot.leader import Leadership
from bot.scheduler import Timers
from bot.server import make_http_server
from bot.wiring import Bot, build_bot

log = logging.getLogger(__name__)


def start_background(bot: Bot) -> Timers:
    """Timers and outbox delivery; both follow the leadership."""
    timers = Timers(
        bot.service,
        leadership=Leadership(bot.store.engine, lease=bot.settings.scheduler.leader_lease),
        outbox=bot.outbox,
        sweep_interval=bot.settings.scheduler.sweep_interval,
    )
    bot.outbox.start()
    timers.start()
    return timers


def socket_mode_handler(bot: Bot) -> SocketModeHandler:
    """Socket Mode: an outbound WebSocket, so no public URL is needed."""
    app_token = bot.settings.secrets.slack_app_token.get_secret_value()
    if not app_token:
        raise SystemExit("slack.mode is socket but SLACK_APP_TOKEN is not set")
    return SocketModeHandler(bot.app, app_token)


def check_secrets(settings: Settings) -> None:
    """Refuse to start without the secrets the chosen mode needs, naming the variable."""
    missing = missing_secrets(settings)
    if not settings.slack.approval_channel:
        missing.append("slack.approval_channel in the config file")
    if missing:
        raise SystemExit("jitsudo-bot: not set: " + ", ".join(missing))


def serve(settings: Settings) -> None:
    check_secrets(settings)
    bot = build_bot(settings)
    timers = start_background(bot)
    try:
        if settings.slack.mode == "http":
            server: Any = make_http_server(bot.wsgi(), host="0.0.0.0", port=settings.slack.port)  # noqa: S104
            signal.signal(signal.SIGTERM, lambda *_: server.close())
            log.info("HTTP mode on port %d: POST /slack/events", settings.slack.port)
            server.run()
        else:
            log.info("Socket Mode: connecting to Slack")
            socket_mode_handler(bot).start()  # type: ignore[no-untyped-call]
    finally:
        timers.stop()
        bot.outbox.stop()
