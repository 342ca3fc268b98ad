"""Value types shared by the Slack stand-in and the signed-request sender."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TEAM_ID = "T0TEST"
TEAM_DOMAIN = "jitsudo-test"
BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
APP_ID = "A0TEST"
CHANNEL_CREATED = 1_700_000_000

# What an app installed from manifests/slack-app.yaml is granted (tests check they agree).
# Slack sends the granted scopes of the token on every Web API answer (`x-oauth-scopes`).
DEFAULT_SCOPES = (
    "commands",
    "chat:write",
    "im:write",
    "users:read",
    "users:read.email",
    "usergroups:read",
    "channels:read",
    "groups:read",
)


@dataclass(frozen=True)
class SlackUser:
    """A workspace member as `users.info` reports it; `email=None` models a hidden email."""

    id: str
    name: str
    email: str | None = None
    tz: str | None = "UTC"
    tz_offset: int = 0
    is_bot: bool = False
    deleted: bool = False
    real_name: str = ""
    tz_label: str = ""
    team_id: str = TEAM_ID

    def to_api(self) -> dict[str, Any]:
        """Render the `user` object of a `users.info` answer."""
        real_name = self.real_name or self.name
        profile: dict[str, Any] = {
            "real_name": real_name,
            "real_name_normalized": real_name,
            "display_name": self.name,
            "display_name_normalized": self.name,
            "team": self.team_id,
        }
        if self.email is not None:
            profile["email"] = self.email
        return {
            "id": self.id,
            "team_id": self.team_id,
            "name": self.name,
            "real_name": real_name,
            "deleted": self.deleted,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "tz": self.tz,
            "tz_label": self.tz_label or self.tz,
            "tz_offset": self.tz_offset,
            "profile": profile,
        }


@dataclass(frozen=True)
class SlackChannel:
    """A channel as `conversations.info` reports it, and whether the bot is in it.

    Channels nobody declared are public channels the bot is in (`C…`) or legacy
    private ones it is in (`G…`), so a test only declares the channels it cares about.
    """

    id: str
    name: str = ""
    is_private: bool = False
    bot_member: bool = True

    def to_api(self, *, archived: bool) -> dict[str, Any]:
        """Render the `channel` object of a `conversations.info` answer."""
        name = self.name or self.id.lower()
        return {
            "id": self.id,
            "name": name,
            "name_normalized": name,
            "is_channel": True,
            "is_group": False,
            "is_im": False,
            "is_mpim": False,
            "is_private": self.is_private,
            "created": CHANNEL_CREATED,
            "is_archived": archived,
            "is_general": False,
            "is_shared": False,
            "is_org_shared": False,
            "is_ext_shared": False,
            "is_member": self.bot_member,
            "context_team_id": TEAM_ID,
        }


@dataclass(frozen=True)
class Call:
    """One request the stand-in received, in arrival order.

    `status`/`error` say what the stand-in answered (200/None on success), so a
    test can tell a rate-limited attempt from the retry that succeeded.
    `response_url_id` is set for `method == "response_url"` posts.
    """

    method: str
    payload: dict[str, Any]
    at: float
    status: int = 200
    error: str | None = None
    response_url_id: str | None = None


class ApiError(Exception):
    """A Slack `{"ok": false, "error": ...}` answer raised by a method handler."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error
