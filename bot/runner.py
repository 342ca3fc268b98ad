"""`jitsudo-bot serve`: start the timers and the outbox, the HTTP server, then Slack.

The HTTP server (bot.server) runs in both modes on slack.port: /healthz,
/readyz and /metrics always, /slack/events in HTTP mode. In Socket Mode the
WebSocket connects in the background and retries until it is up, so a Slack
outage or a wrong SLACK_APP_TOKEN at start leaves a running process that says
so in its log and metrics instead of one that exits.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from slack_bolt.adapter.socket_mode import SocketModeHandler

from bot.config import Settings
from bot.firstrun import setup_gaps, setup_report
from bot.leader import Leadership
from bot.scheduler import Timers
from bot.server import make_http_server
from bot.wiring import Bot, build_bot

log = logging.getLogger(__name__)
MAX_CONNECT_BACKOFF = 60.0  # seconds between Socket Mode connection attempts, at most


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
    """Socket Mode: an outbound WebSocket, so no public URL is needed.

    Its logger sits under slack_sdk, which bot.logs keeps at INFO or above:
    at DEBUG the Socket Mode client prints every raw frame Slack sends.
    """
    app_token = bot.settings.secrets.slack_app_token.get_secret_value()
    if not app_token:
        raise SystemExit("slack.mode is socket but SLACK_APP_TOKEN is not set")
    return SocketModeHandler(
        bot.app, app_token, logger=logging.getLogger("slack_sdk.socket_mode.jitsudo")
    )


class SocketModeConnection:
    """Connects Socket Mode in the background, retrying with backoff until it is up.

    Bolt's handler raises when its first connection fails (Slack unreachable,
    a revoked or wrong app token) and would end the process; once connected,
    the client reconnects on its own.
    """

    def __init__(self, handler: SocketModeHandler) -> None:
        self.handler = handler
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._connect, name="socket-mode", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.handler.close()  # type: ignore[no-untyped-call]

    def _connect(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            try:
                self.handler.connect()  # type: ignore[no-untyped-call]
            except Exception as error:  # noqa: BLE001  (whatever it was, try again later)
                log.error(
                    "Socket Mode: cannot connect to Slack (%s: %s); retrying in %.0fs",
                    type(error).__name__,
                    error,
                    delay,
                )
                self._stop.wait(delay)
                delay = min(delay * 2, MAX_CONNECT_BACKOFF)
            else:
                log.info("Socket Mode: connected to Slack")
                return


def check_secrets(settings: Settings) -> None:
    """Refuse to start without what the chosen mode needs, naming every gap at once."""
    report = setup_report(setup_gaps(settings.slack, settings.secrets))
    if report:
        raise SystemExit(report)


def serve(settings: Settings) -> None:
    check_secrets(settings)
    bot = build_bot(settings)
    timers = start_background(bot)
    socket = (
        SocketModeConnection(socket_mode_handler(bot)) if settings.slack.mode == "socket" else None
    )
    try:
        port = settings.slack.port
        server: Any = make_http_server(bot.wsgi(), host="0.0.0.0", port=port)  # noqa: S104
        signal.signal(signal.SIGTERM, _exit_cleanly)
        if socket is None:
            log.info("HTTP mode on port %d: POST /slack/events, /healthz, /readyz, /metrics", port)
        else:
            log.info("Socket Mode; port %d serves /healthz, /readyz, /metrics", port)
            socket.start()
        server.run()  # returns on SIGTERM
        log.info("SIGTERM: stopping; the leadership lease is released")
    finally:
        if socket is not None:
            socket.stop()
        timers.stop()
        bot.outbox.stop()


def _exit_cleanly(signum: int, frame: object) -> None:
    """SIGTERM stops waitress the way it expects: SystemExit in the main thread ends its
    loop. (Closing its socket from here instead makes select() fail with EBADF, and the
    process die with a traceback and exit code 1.)"""
    raise SystemExit(0)
