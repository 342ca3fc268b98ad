"""Workspace state and Web API method handlers of the stand-in (no HTTP here).

Answers follow the shapes in the Slack Web API reference closely enough that
`slack_sdk.WebClient` and the bot see what they would see against real Slack.
"""

from __future__ import annotations

import copy
import itertools
import secrets
import time
from collections.abc import Callable
from typing import Any

from tests.slackapi.models import (
    APP_ID,
    BOT_ID,
    BOT_USER_ID,
    CHANNEL_CREATED,
    DEFAULT_SCOPES,
    TEAM_DOMAIN,
    TEAM_ID,
    ApiError,
    SlackChannel,
    SlackUser,
)

Handler = Callable[[dict[str, Any]], dict[str, Any]]

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_TEXT = 40_000
TRIGGER_TTL = 3.0  # Slack's trigger_id expires three seconds after the interaction
_TEXT_LIMITS = {"section": 3000, "header": 150}
# The scopes each method accepts (any one will do), from the Web API reference;
# methods not listed need none (auth.test, views.*). conversations.info depends
# on the kind of channel, see SlackState.accepted_scopes.
METHOD_SCOPES: dict[str, tuple[str, ...]] = {
    "chat.postMessage": ("chat:write",),
    "chat.update": ("chat:write",),
    "chat.delete": ("chat:write",),
    "chat.postEphemeral": ("chat:write",),
    "users.info": ("users:read",),
    "conversations.open": ("im:write", "channels:manage", "groups:write", "mpim:write"),
    "usergroups.users.list": ("usergroups:read",),
}


def check_blocks(blocks: Any, limit: int, error: str = "invalid_blocks") -> None:
    """Reject what Slack would refuse with `invalid_blocks` (a light subset of its rules)."""
    if blocks is None:
        return
    if not isinstance(blocks, list) or len(blocks) > limit:
        raise ApiError(error)
    for block in blocks:
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise ApiError(error)
        text = block.get("text")
        limit_for_type = _TEXT_LIMITS.get(block["type"])
        if (
            limit_for_type
            and isinstance(text, dict)
            and len(str(text.get("text"))) > limit_for_type
        ):
            raise ApiError(error)
        if block["type"] == "actions" and len(block.get("elements") or []) > 25:
            raise ApiError(error)


def _check_channel(channel: Any) -> str:
    if not isinstance(channel, str) or channel[:1] not in ("C", "D", "G"):
        raise ApiError("channel_not_found")
    return channel


def _check_text(payload: dict[str, Any]) -> None:
    if not payload.get("text") and not payload.get("blocks"):
        raise ApiError("no_text")
    if len(str(payload.get("text") or "")) > MAX_TEXT:
        raise ApiError("msg_too_long")


class SlackState:
    """Users, usergroups, channel messages and open views; callers hold the lock."""

    def __init__(self) -> None:
        self.users: dict[str, SlackUser] = {}
        self.usergroups: dict[str, list[str]] = {}
        self.messages: dict[str, list[dict[str, Any]]] = {}
        self.archived: set[str] = set()
        self.channels: dict[str, SlackChannel] = {}
        self.scopes: tuple[str, ...] = DEFAULT_SCOPES
        self.views: dict[str, dict[str, Any]] = {}
        self.triggers: dict[str, float] = {}
        self._seq = itertools.count(1)
        self.handlers: dict[str, Handler] = {
            "auth.test": self.auth_test,
            "users.info": self.users_info,
            "conversations.open": self.conversations_open,
            "conversations.info": self.conversations_info,
            "chat.postMessage": self.chat_post_message,
            "chat.update": self.chat_update,
            "chat.delete": self.chat_delete,
            "chat.postEphemeral": self.chat_post_ephemeral,
            "views.open": self.views_open,
            "views.push": self.views_open,
            "views.update": self.views_update,
            "usergroups.users.list": self.usergroups_users_list,
        }

    # -- helpers -------------------------------------------------------------

    def next_ts(self) -> str:
        """Unique, increasing message timestamps like `1700000000.000100`."""
        micros = next(self._seq) * 100
        return f"{1_700_000_000 + micros // 1_000_000}.{micros % 1_000_000:06d}"

    def new_trigger_id(self) -> str:
        trigger_id = f"{next(self._seq)}.{TEAM_ID[1:]}.{secrets.token_hex(16)}"
        self.triggers[trigger_id] = time.monotonic()
        return trigger_id

    def find_message(self, channel: str, ts: str) -> dict[str, Any] | None:
        for message in self.messages.get(channel, []):
            if message["ts"] == ts:
                return message
        return None

    def api_message(self, stored: dict[str, Any]) -> dict[str, Any]:
        """The `message` object Slack returns, and embeds in block_actions payloads."""
        message: dict[str, Any] = {
            "type": "message",
            "user": stored["user"],
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": TEAM_ID,
            "text": stored["text"],
            "ts": stored["ts"],
        }
        if stored["blocks"] is not None:
            message["blocks"] = copy.deepcopy(stored["blocks"])
        if stored.get("thread_ts"):
            message["thread_ts"] = stored["thread_ts"]
        return message

    def channel(self, channel_id: str) -> SlackChannel:
        """A declared channel, or the implicit one an undeclared ID stands for."""
        return self.channels.get(channel_id) or SlackChannel(
            id=channel_id, is_private=channel_id.startswith("G")
        )

    def accepted_scopes(self, method: str, payload: dict[str, Any]) -> tuple[str, ...]:
        """The scopes that let this call through (any one), as `x-accepted-oauth-scopes`."""
        if method != "conversations.info":
            return METHOD_SCOPES.get(method, ())
        channel = str(payload.get("channel") or "")
        if channel.startswith("D"):
            return ("im:read",)
        return ("groups:read",) if self.channel(channel).is_private else ("channels:read",)

    def latest_view(self, callback_id: str) -> dict[str, Any] | None:
        matches = [v for v in self.views.values() if v.get("callback_id") == callback_id]
        return matches[-1] if matches else None

    # -- methods -------------------------------------------------------------

    def auth_test(self, _: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": f"https://{TEAM_DOMAIN}.slack.com/",
            "team": "Jitsudo Test",
            "user": "jitsudo",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def users_info(self, p: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(str(p.get("user", "")))
        if user is None:
            raise ApiError("user_not_found")
        rendered = user.to_api()
        if "users:read.email" not in self.scopes:  # Slack leaves the address out without it
            rendered["profile"].pop("email", None)
        return {"ok": True, "user": rendered}

    def conversations_open(self, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("channel"):
            return {"ok": True, "channel": {"id": _check_channel(p["channel"])}}
        raw = p.get("users") or ""
        ids = raw if isinstance(raw, list) else [u for u in str(raw).split(",") if u]
        if not ids:
            raise ApiError("users_list_not_supplied")
        for uid in ids:
            if uid not in self.users:
                raise ApiError("user_not_found")
            if self.users[uid].deleted:
                raise ApiError("user_disabled")
            if self.users[uid].is_bot:
                raise ApiError("cannot_dm_bot")
        channel_id = f"D{ids[0]}" if len(ids) == 1 else "G" + "".join(sorted(ids))
        return {"ok": True, "channel": {"id": channel_id}}

    def conversations_info(self, p: dict[str, Any]) -> dict[str, Any]:
        channel_id = _check_channel(p.get("channel"))
        if channel_id.startswith("D"):
            user = channel_id[1:]
            if user not in self.users:
                raise ApiError("channel_not_found")
            im = {"id": channel_id, "created": CHANNEL_CREATED, "is_im": True, "user": user}
            return {"ok": True, "channel": {**im, "is_org_shared": False}}
        channel = self.channel(channel_id)
        if channel.is_private and not channel.bot_member:
            raise ApiError("channel_not_found")  # a private channel is invisible to non-members
        return {"ok": True, "channel": channel.to_api(archived=channel_id in self.archived)}

    def _writable(self, channel: Any) -> str:
        channel = _check_channel(channel)
        if channel in self.archived:
            raise ApiError("is_archived")
        return channel

    def _postable(self, channel_id: str) -> None:
        """Slack refuses a post where the bot is not a member (chat:write.public aside)."""
        channel = self.channel(channel_id)
        if channel.bot_member:
            return
        if channel.is_private:
            raise ApiError("channel_not_found")
        if "chat:write.public" not in self.scopes:
            raise ApiError("not_in_channel")

    def chat_post_message(self, p: dict[str, Any]) -> dict[str, Any]:
        self._postable(_check_channel(p.get("channel")))
        return self._post(p)

    def _post(self, p: dict[str, Any]) -> dict[str, Any]:
        """Store a message; a response_url post lands here too, member or not (as in Slack)."""
        channel = self._writable(p.get("channel"))
        _check_text(p)
        check_blocks(p.get("blocks"), MAX_MESSAGE_BLOCKS)
        stored = {
            "ts": self.next_ts(),
            "channel": channel,
            "text": p.get("text") or "",
            "blocks": p.get("blocks"),
            "user": BOT_USER_ID,
            "thread_ts": p.get("thread_ts"),
        }
        self.messages.setdefault(channel, []).append(stored)
        return {
            "ok": True,
            "channel": channel,
            "ts": stored["ts"],
            "message": self.api_message(stored),
        }

    def chat_update(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._writable(p.get("channel"))
        stored = self.find_message(channel, str(p.get("ts", "")))
        if stored is None:
            raise ApiError("message_not_found")
        if "text" not in p and "blocks" not in p:
            raise ApiError("no_text")
        check_blocks(p.get("blocks"), MAX_MESSAGE_BLOCKS)
        if "text" in p:
            stored["text"] = p["text"] or ""
        if "blocks" in p:  # Slack keeps old blocks unless new ones (or []) are sent
            stored["blocks"] = p["blocks"] or None
        return {
            "ok": True,
            "channel": channel,
            "ts": stored["ts"],
            "text": stored["text"],
            "message": self.api_message(stored),
        }

    def chat_delete(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._writable(p.get("channel"))
        stored = self.find_message(channel, str(p.get("ts", "")))
        if stored is None:
            raise ApiError("message_not_found")
        self.messages[channel].remove(stored)
        return {"ok": True, "channel": channel, "ts": stored["ts"]}

    def chat_post_ephemeral(self, p: dict[str, Any]) -> dict[str, Any]:
        _check_channel(p.get("channel"))
        if not p.get("user"):
            raise ApiError("user_not_in_channel")
        _check_text(p)
        check_blocks(p.get("blocks"), MAX_MESSAGE_BLOCKS)
        return {"ok": True, "message_ts": self.next_ts()}

    def _check_view(self, view: Any) -> dict[str, Any]:
        if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
            raise ApiError("invalid_arguments")
        check_blocks(view.get("blocks", []), MAX_VIEW_BLOCKS, "invalid_arguments")
        return view

    def _render_view(self, view_id: str, view: dict[str, Any], root: str) -> dict[str, Any]:
        rendered: dict[str, Any] = {
            "id": view_id,
            "team_id": TEAM_ID,
            "type": view["type"],
            "blocks": copy.deepcopy(view.get("blocks", [])),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "title": view.get("title"),
            "close": view.get("close"),
            "submit": view.get("submit"),
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "previous_view_id": None,
            "root_view_id": root,
            "app_id": APP_ID,
            "external_id": view.get("external_id", ""),
            "app_installed_team_id": TEAM_ID,
            "bot_id": BOT_ID,
        }
        self.views[view_id] = rendered
        return copy.deepcopy(rendered)

    def views_open(self, p: dict[str, Any]) -> dict[str, Any]:
        trigger_id = p.get("trigger_id") or p.get("interactivity_pointer")
        if not trigger_id:
            raise ApiError("invalid_arguments")
        issued = self.triggers.get(str(trigger_id))
        if issued is not None and time.monotonic() - issued > TRIGGER_TTL:
            raise ApiError("expired_trigger_id")
        view = self._check_view(p.get("view"))
        view_id = f"V0TEST{next(self._seq):05d}"
        return {"ok": True, "view": self._render_view(view_id, view, view_id)}

    def views_update(self, p: dict[str, Any]) -> dict[str, Any]:
        current: dict[str, Any] | None = None
        if p.get("view_id"):
            current = self.views.get(str(p["view_id"]))
        elif p.get("external_id"):
            found = [v for v in self.views.values() if v["external_id"] == p["external_id"]]
            current = found[-1] if found else None
        if current is None:
            raise ApiError("not_found")
        if p.get("hash") and p["hash"] != current["hash"]:
            raise ApiError("hash_conflict")
        view = self._check_view(p.get("view"))
        return {
            "ok": True,
            "view": self._render_view(current["id"], view, current["root_view_id"]),
        }

    def usergroups_users_list(self, p: dict[str, Any]) -> dict[str, Any]:
        members = self.usergroups.get(str(p.get("usergroup", "")))
        if members is None:
            raise ApiError("no_such_subteam")
        return {"ok": True, "users": list(members)}

    def apply_response_url(self, target: tuple[str, str] | None, body: dict[str, Any]) -> None:
        """Mirror what a response_url post does to the message it was issued for."""
        if target is None:
            return
        channel, ts = target
        stored = self.find_message(channel, ts)
        if body.get("delete_original") and stored is not None:
            self.messages[channel].remove(stored)
        elif body.get("replace_original") and stored is not None:
            stored["text"] = body.get("text") or ""
            stored["blocks"] = body.get("blocks")
        elif body.get("response_type") == "in_channel" and channel[:1] in ("C", "D", "G"):
            self._post({**body, "channel": channel})
