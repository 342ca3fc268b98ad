"""Who a Slack user is: their Kubernetes username, timezone, and approver rights.

Backed by users.info and usergroups.users.list with short caches, so a burst of
clicks does not hit Slack's rate limits. A failed read is never cached. When
Slack cannot list a group, its last membership read within
STALE_GROUP_SECONDS stands in (a Slack hiccup must not lock every group
approver out); older than that, nobody is an approver through the group (fail
closed). Used by the listeners, the notifier and, as the ApproverDirectory, by
the service.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.config import IdentitySettings, SlackSettings
from bot.domain import InvalidInput
from bot.errors import DirectoryUnavailable
from bot.slack.cache import TtlCache

log = logging.getLogger(__name__)
STALE_GROUP_SECONDS = 600.0


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
        self,
        client: WebClient,
        *,
        identity: IdentitySettings,
        slack: SlackSettings,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.identity = identity
        self.slack = slack
        self._profiles: TtlCache[Profile] = TtlCache(monotonic=monotonic)
        self._groups: TtlCache[frozenset[str]] = TtlCache(monotonic=monotonic)

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

    def kubernetes_user_of(self, user_id: str) -> str | None:
        """Like kubernetes_user, but None for someone without one (ApproverDirectory).

        Raises DirectoryUnavailable if Slack could not be asked, so rules fail closed.
        """
        try:
            return self.kubernetes_user(user_id)
        except InvalidInput:
            return None
        except (SlackApiError, OSError) as error:
            log.warning("cannot read the Slack profile of %s: %s", user_id, _reason(error))
            raise DirectoryUnavailable(
                f"Slack could not tell the bot who you are just now ({_reason(error)})."
            ) from None

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
        try:
            return self._groups.get(group, lambda: self._load_members(group))
        except (SlackApiError, OSError) as error:
            return self._last_known_members(group, _reason(error))

    def _last_known_members(self, group: str, reason: str) -> frozenset[str]:
        """A recent membership, else nobody: fails closed once the last read is too old."""
        last = self._groups.stale(group, max_age=STALE_GROUP_SECONDS)
        if last is None:
            log.warning("cannot read user group %s (%s); nobody approves through it", group, reason)
            return frozenset()
        age, members = last
        log.warning(
            "cannot read user group %s (%s); using its members of %.0fs ago", group, reason, age
        )
        return members

    def _load_members(self, group: str) -> frozenset[str]:
        response = self.client.usergroups_users_list(usergroup=group)
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


def _reason(error: SlackApiError | OSError) -> str:
    if isinstance(error, SlackApiError):
        return str(error.response.get("error") or error.response.status_code)
    return str(error)
