"""Builds the Bolt app and its WebClient from settings; nothing runs at import time."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.config import Settings
from bot.slack import listeners

log = logging.getLogger(__name__)


def web_client(settings: Settings) -> WebClient:
    """The bot's WebClient; SLACK_API_URL points it at GovSlack or a test server."""
    token = settings.secrets.slack_bot_token.get_secret_value()
    if settings.secrets.slack_api_url:
        return WebClient(token=token, base_url=settings.secrets.slack_api_url)
    return WebClient(token=token)


def build_app(settings: Settings, deps: listeners.Deps, client: WebClient) -> App:
    """A sync Bolt app: listeners run on Bolt's thread pool after the ack is sent."""
    app = App(
        client=client,
        signing_secret=settings.secrets.slack_signing_secret.get_secret_value() or None,
        request_verification_enabled=settings.slack.mode == "http",
        process_before_response=False,
        logger=logging.getLogger("bot.slack.bolt"),
    )
    app.error(_on_error)
    listeners.register(app, deps)
    return app


def _on_error(error: Exception, respond: Any = None) -> None:
    """The one handler for anything a listener did not expect: log it, tell the user."""
    log.error("unhandled error in a Slack listener", exc_info=error)
    if respond is not None:
        try:
            respond(
                text=":x: Something went wrong on the bot's side; an admin can find the "
                "details in its logs. Nothing was changed unless a later message says so.",
                response_type="ephemeral",
                replace_original=False,
            )
        except Exception:  # noqa: BLE001  (the user cannot be told; already logged above)
            log.warning("could not tell the user about the error")
