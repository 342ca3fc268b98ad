"""Builds the Bolt app and its WebClient from settings; nothing runs at import time.

Every Slack Web API call, from the notifier and from the listeners alike, goes
through one CountingWebClient, which counts failed calls by API method
(jitsudo_slack_api_errors_total, bot.metrics).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import App, BoltContext, BoltResponse
from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError
from slack_sdk.web import SlackResponse

from bot.config import Settings
from bot.logs import acting
from bot.metrics import Metrics
from bot.slack import listeners

log = logging.getLogger(__name__)


class CountingWebClient(WebClient):
    """A WebClient that counts every failed API call by method.

    Every Web API method (chat_postMessage, views_open, ...) funnels through
    api_call, so one override sees them all: error answers (ok: false, 4xx,
    5xx, 429) raise SlackApiError, transport failures OSError.
    """

    def __init__(self, *, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metrics = metrics

    def api_call(self, api_method: str, **kwargs: Any) -> SlackResponse:
        try:
            return super().api_call(api_method, **kwargs)
        except (SlackClientError, OSError):
            self.metrics.slack_api_error(api_method)
            raise


def web_client(settings: Settings, *, metrics: Metrics) -> WebClient:
    """The bot's WebClient; SLACK_API_URL points it at GovSlack or a test server."""
    token = settings.secrets.slack_bot_token.get_secret_value()
    if settings.secrets.slack_api_url:
        return CountingWebClient(
            metrics=metrics, token=token, base_url=settings.secrets.slack_api_url
        )
    return CountingWebClient(metrics=metrics, token=token)


def build_app(settings: Settings, deps: listeners.Deps, client: WebClient) -> App:
    """A sync Bolt app: listeners run on Bolt's thread pool after the ack is sent."""
    app = App(
        client=client,
        signing_secret=settings.secrets.slack_signing_secret.get_secret_value() or None,
        request_verification_enabled=settings.slack.mode == "http",
        process_before_response=False,
        logger=logging.getLogger("bot.slack.bolt"),
    )
    app.middleware(_shared_client(client))
    app.error(_on_error)
    listeners.register(app, deps)
    return app


def _shared_client(client: WebClient) -> Callable[..., BoltResponse]:
    """Hand listeners the bot's own (counting) client.

    Bolt gives each request a fresh plain WebClient, so that a listener may
    change its token safely; ours never does, and a WebClient is safe to share
    between threads (the outbox thread already does).
    """

    def middleware(context: BoltContext, next: Callable[[], BoltResponse]) -> BoltResponse:
        context["client"] = client
        return next()

    return middleware


def _on_error(error: Exception, body: dict[str, Any] | None = None, respond: Any = None) -> None:
    """The one handler for anything a listener did not expect: log it, tell the user."""
    with acting(actor=listeners.acting_user(body or {})):
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
