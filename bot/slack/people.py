"""Who a Slack user is: their Kubernetes username, timezone, and approver rights.

Backed by users.info and usergroups.users.list with short caches, so a burst of
clicks does not hit Slack's rate limits. Used by the listeners and the notifier.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.config import IdentitySettings, SlackSettings
from bot.domain import InvalidInput
from bot.slack.cache import TtlCache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Profile:
    user_id: str
    email: str | None
    tz: str | None
    is_bot: bool
    deleted: bool


class People:
    """Slack user lookups and the approver directory (implements ApproverDirectory)."""

    def __init__(
        self, client: WebClient, *, identity: IdentitySettings, slack: SlackSettings
    ) -> None:
        self.client = client
        self.identity = identity
        self.slack = slack
        self._profiles = TtlCache()
        self._groups = TtlCache()

    def profile(self, user_id: str) -> Profile:
        return self._profiles.get(user_id, lambda: self._load_profile(user_id))

    def kubernetes_user(self, user_id: str) -> str:
        """identity.map wins; else by identity.source; username_prefix is prepended."""
        mapped = self.identity.map.get(user_id)
        if mapped:
            return self.identity.username_prefix + mapped
        if self.identity.source == "slack_id":
            return self.identity.username_prefix + user_id
        if self.identity.source == "map":
            raise InvalidInput(
                "You have no Kubernetes identity configured (identity.map). "
                "Ask an admin to add your Slack ID to identity.map."
            )
        profile = self.profile(user_id)
        if profile.deleted or profile.is_bot or not profile.email:
            raise InvalidInput(
                "Your Slack profile has no email address the bot can read, so it cannot tell "
                "your Kubernetes username. Ask an admin to add you to identity.map."
            )
        return self.identity.username_prefix + profile.email

    def timezone(self, user_id: str) -> str | None:
        try:
            return self.profile(user_id).tz
        except SlackApiError:
            return None

    def is_approver(self, user: str) -> bool:
        if user in self.slack.approvers:
            return True
        return any(user in self._members(group) for group in self.slack.approver_groups)

    def is_admin(self, user: str) -> bool:
        return user in self.slack.admins

    def _members(self, group: str) -> frozenset[str]:
        return self._groups.get(group, lambda: self._load_members(group))

    def _load_members(self, group: str) -> frozenset[str]:
        """Fails closed: if Slack cannot say, nobody is an approver through this group."""
        try:
            response = self.client.usergroups_users_list(usergroup=group)
        except SlackApiError as error:
            log.warning("cannot read user group %s: %s", group, error.response.get("error"))
            return frozenset()
        return frozenset(response.get("users") or [])

    def _load_profile(self, user_id: str) -> Profile:
        user = self.client.users_info(user=user_id)["user"]
        return Profile(
            user_id=user_id,
            email=(user.get("profile") or {}).get("email"),
            tz=user.get("tz"),
            is_bot=bool(user.get("is_bot")),
            deleted=bool(user.get("deleted")),
        )
