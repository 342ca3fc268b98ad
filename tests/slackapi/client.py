"""Slack's side of requests to the bot: signed slash commands and interaction payloads.

Requests go over real HTTP with slack_sdk's own signing, so the bot's signature
check and Bolt's body parsing run exactly as they would behind Slack.
"""

from __future__ import annotations

import itertools
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

from tests.slackapi.models import APP_ID, TEAM_DOMAIN, TEAM_ID
from tests.slackapi.server import SlackApiServer

FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class SenderResponse:
    """What the bot answered (its ack), and how long it took."""

    status: int
    body: str
    elapsed: float
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)


class SlackSender:
    """Sends signed requests to the bot the way Slack's servers do."""

    def __init__(
        self,
        bot_url: str,
        signing_secret: str,
        slack: SlackApiServer,
        *,
        timeout: float = 10.0,
    ) -> None:
        self.bot_url = bot_url
        self.verifier = SignatureVerifier(signing_secret)
        self.slack = slack
        self.timeout = timeout
        self._seq = itertools.count(1)

    # -- transport -----------------------------------------------------------

    def sign(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """Headers Slack adds: `X-Slack-Request-Timestamp` and `X-Slack-Signature`."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        signature = self.verifier.generate_signature(timestamp=ts, body=body)
        return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature or ""}

    def raw(self, body: bytes, headers: dict[str, str]) -> SenderResponse:
        """POST exactly these bytes and headers (for forged or stale signatures)."""
        all_headers = {"Content-Type": FORM, **headers}
        request = urllib.request.Request(self.bot_url, data=body, headers=all_headers)
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                status, data, resp_headers = resp.status, resp.read(), resp.headers
        except urllib.error.HTTPError as err:
            status, data, resp_headers = err.code, err.read(), err.headers
        elapsed = time.perf_counter() - started
        return SenderResponse(
            status=status,
            body=data.decode("utf-8"),
            elapsed=elapsed,
            headers=dict(resp_headers.items()),
        )

    def send_form(self, fields: dict[str, str]) -> SenderResponse:
        body = urlencode(fields).encode("utf-8")
        return self.raw(body, self.sign(body))

    def send_interaction(self, payload: dict[str, Any]) -> SenderResponse:
        """Interactions arrive as a form with one `payload` field holding JSON."""
        return self.send_form({"payload": json.dumps(payload)})

    # -- payload builders ----------------------------------------------------

    def _user_name(self, user: str) -> str:
        known = self.slack.state.users.get(user)
        return known.name if known else user.lower()

    def _user(self, user: str) -> dict[str, str]:
        name = self._user_name(user)
        return {"id": user, "username": name, "name": name, "team_id": TEAM_ID}

    @staticmethod
    def _channel_name(channel: str) -> str:
        return {"D": "directmessage", "G": "privategroup"}.get(channel[:1], channel.lower())

    def command_form(
        self, command: str, text: str = "", *, user: str = "U1", channel: str = "C1"
    ) -> dict[str, str]:
        """The form fields Slack posts for a slash command (also for hand-forged requests)."""
        return {
            "token": "verification-token-unused",
            "team_id": TEAM_ID,
            "team_domain": TEAM_DOMAIN,
            "channel_id": channel,
            "channel_name": self._channel_name(channel),
            "user_id": user,
            "user_name": self._user_name(user),
            "command": command,
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": self.slack.response_url(f"cmd-{next(self._seq)}", channel=channel),
            "trigger_id": self.slack.trigger_id(),
        }

    def command(
        self, command: str, text: str = "", *, user: str = "U1", channel: str = "C1"
    ) -> SenderResponse:
        """A signed slash command, form-encoded like Slack's."""
        return self.send_form(self.command_form(command, text, user=user, channel=channel))

    def block_action(
        self,
        action_id: str,
        value: str,
        *,
        user: str,
        channel: str,
        message_ts: str | None = None,
        message: dict[str, Any] | None = None,
        block_id: str | None = None,
    ) -> SenderResponse:
        """A button click on a message; the message is taken from the stand-in if known."""
        ts = message_ts or (message or {}).get("ts")
        with self.slack.lock:
            if ts is None and self.slack.state.messages.get(channel):
                ts = self.slack.state.messages[channel][-1]["ts"]
            stored = self.slack.state.find_message(channel, ts) if ts else None
            if message is None and stored is not None:
                message = self.slack.state.api_message(stored)
        if ts is None:
            raise ValueError(f"no message in {channel}; pass message_ts or message")
        block_id = block_id or _find_block_id(message, action_id) or f"b{next(self._seq)}"
        action = {
            "action_id": action_id,
            "block_id": block_id,
            "text": {"type": "plain_text", "text": action_id, "emoji": True},
            "value": value,
            "type": "button",
            "action_ts": f"{time.time():.6f}",
        }
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": self._user(user),
            "api_app_id": APP_ID,
            "token": "verification-token-unused",
            "container": {
                "type": "message",
                "message_ts": ts,
                "channel_id": channel,
                "is_ephemeral": False,
            },
            "trigger_id": self.slack.trigger_id(),
            "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel, "name": self._channel_name(channel)},
            "state": {"values": {}},
            "response_url": self.slack.response_url(
                f"act-{next(self._seq)}", channel=channel, message_ts=ts
            ),
            "actions": [action],
        }
        if message is not None:
            payload["message"] = message
        return self.send_interaction(payload)

    def view_submission(
        self,
        callback_id: str,
        values: dict[str, dict[str, dict[str, Any]]],
        *,
        user: str = "U1",
        private_metadata: str | None = None,
    ) -> SenderResponse:
        """A modal submit; id, hash, blocks and metadata come from the last opened view."""
        with self.slack.lock:
            opened = self.slack.state.latest_view(callback_id)
        view: dict[str, Any] = dict(opened) if opened else _synthetic_view(callback_id)
        if private_metadata is not None:
            view["private_metadata"] = private_metadata
        view["state"] = {"values": values}
        payload = {
            "type": "view_submission",
            "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
            "user": self._user(user),
            "api_app_id": APP_ID,
            "token": "verification-token-unused",
            "trigger_id": self.slack.trigger_id(),
            "view": view,
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }
        return self.send_interaction(payload)


def _find_block_id(message: dict[str, Any] | None, action_id: str) -> str | None:
    for block in (message or {}).get("blocks") or []:
        elements = list(block.get("elements") or [])
        if isinstance(block.get("accessory"), dict):
            elements.append(block["accessory"])
        if any(isinstance(e, dict) and e.get("action_id") == action_id for e in elements):
            return str(block.get("block_id", "")) or None
    return None


def _synthetic_view(callback_id: str) -> dict[str, Any]:
    return {
        "id": "V0SYNTHETIC",
        "team_id": TEAM_ID,
        "type": "modal",
        "blocks": [],
        "private_metadata": "",
        "callback_id": callback_id,
        "hash": "1700000000.synthetic",
        "title": {"type": "plain_text", "text": "Request"},
        "clear_on_close": False,
        "notify_on_close": False,
        "previous_view_id": None,
        "root_view_id": "V0SYNTHETIC",
        "app_id": APP_ID,
        "external_id": "",
        "app_installed_team_id": TEAM_ID,
        "bot_id": "BBOT",
    }
