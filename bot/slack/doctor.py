"""Doctor checks on the Slack side: the bot token, its scopes, its approval channels.

Called by `jitsudo-bot doctor` through bot.wiring.doctor_sections. Read-only:
auth.test and conversations.info, nothing is posted. The token is never put
in a line; Slack's error codes are.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.doctor import Check, failed, passed, skipped

# The bot scopes of manifests/slack-app.yaml (a test keeps the two equal). The
# last two are read-only and only for this module: conversations.info needs
# channels:read for a public channel and groups:read for a private one.
REQUIRED_SCOPES = (
    "commands",
    "chat:write",
    "im:write",
    "users:read",
    "users:read.email",
    "usergroups:read",
    "channels:read",
    "groups:read",
)
REINSTALL = (
    "add them under OAuth & Permissions > Bot Token Scopes (or update the app from "
    "manifests/slack-app.yaml) and reinstall the app to the workspace"
)
TIMEOUT = 10  # seconds; Slack answers in well under one


def check(client: WebClient, *, channels: Sequence[str]) -> Iterator[Check]:
    """auth.test, then the granted scopes, then the bot's membership of each channel."""
    if not client.token:
        yield failed(
            "slack auth.test",
            "SLACK_BOT_TOKEN is not set; export the app's Bot User OAuth Token (xoxb-...)",
        )
        yield skipped("slack scopes, slack approval channel", "auth.test passes")
        return
    client.timeout = TIMEOUT
    try:
        auth = client.auth_test()
    except (SlackApiError, OSError) as error:
        yield failed("slack auth.test", _auth_problem(error, client.base_url))
        yield skipped("slack scopes, slack approval channel", "auth.test passes")
        return
    bot_name = str(auth.get("user") or "jitsudo")
    yield passed("slack auth.test", f"workspace {auth.get('team')}, bot @{bot_name}")
    yield _scopes(auth.headers)
    for channel in channels:
        yield _membership(client, channel, bot_name=bot_name)


def _auth_problem(error: SlackApiError | OSError, base_url: str) -> str:
    if isinstance(error, OSError):
        return (
            f"cannot reach Slack at {base_url} ({type(error).__name__}); check the network "
            "and proxy, or SLACK_API_URL if it is set"
        )
    code = error.response.get("error") or f"HTTP {error.response.status_code}"
    if code in ("invalid_auth", "not_authed", "token_revoked", "account_inactive"):
        return (
            f"Slack refused the bot token ({code}); set SLACK_BOT_TOKEN to the Bot User OAuth "
            "Token (xoxb-...) under OAuth & Permissions, reinstalling the app if it was revoked"
        )
    return f"Slack answered {code}; see https://api.slack.com/methods/auth.test"


def _scopes(headers: Mapping[str, Any]) -> Check:
    """Slack lists the token's scopes in `x-oauth-scopes` on every Web API answer."""
    granted = _header(headers, "x-oauth-scopes")
    if granted is None:
        return failed(
            "slack scopes",
            "Slack did not say which scopes the token has (no x-oauth-scopes header); "
            "is SLACK_API_URL a real Slack Web API?",
        )
    have = {scope.strip() for scope in granted.split(",") if scope.strip()}
    missing = [scope for scope in REQUIRED_SCOPES if scope not in have]
    if missing:
        return failed("slack scopes", f"the bot token lacks {', '.join(missing)}; {REINSTALL}")
    return passed("slack scopes", " ".join(REQUIRED_SCOPES))


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    """Header names are case-insensitive; slack_sdk keeps them as the server sent them."""
    for key, value in headers.items():
        if key.lower() == name:
            return str(value[0] if isinstance(value, list) else value)
    return None


def _membership(client: WebClient, channel: str, *, bot_name: str) -> Check:
    name = f"slack approval channel {channel}" if channel else "slack approval channel"
    if not channel:
        return failed(name, "slack.approval_channel is empty; set it to the channel's ID")
    invite = f"type /invite @{bot_name} in that channel"
    try:
        found = client.conversations_info(channel=channel)["channel"]
    except SlackApiError as error:
        return failed(name, _channel_problem(error, channel, invite=invite))
    except OSError as error:
        return failed(name, f"cannot reach Slack ({type(error).__name__}); try again")
    label = f"#{found.get('name')}" if found.get("name") else channel
    if found.get("is_archived"):
        return failed(
            name, f"{label} is archived; unarchive it or set slack.approval_channel to another"
        )
    if not found.get("is_member"):
        return failed(name, f"the bot is not a member of {label}; {invite}")
    return passed(name, f"{label}, the bot is a member")


def _channel_problem(error: SlackApiError, channel: str, *, invite: str) -> str:
    code = str(error.response.get("error") or error.response.status_code)
    if code == "channel_not_found":
        return (
            f"Slack shows the bot no channel {channel}; check slack.approval_channel (the ID "
            f"under the channel's name > About, e.g. C0123456789), and if it is private, {invite}"
        )
    if code == "missing_scope":
        needed = error.response.get("needed") or "channels:read, groups:read"
        return f"cannot look at the channel: the bot token lacks {needed}; {REINSTALL}"
    return f"conversations.info answered {code}"
