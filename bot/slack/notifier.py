"""Turns outbox notices into Slack messages: the approval post, its updates, and DMs.

Called by bot.outbox.OutboxWorker for each due row; a row serves one audience
(the channel message or the requester's DMs), so a message that is gone for
good never holds back a DM. Slack errors that no retry can fix
(PERMANENT_ERRORS) end the row at once; the rest are retried with backoff.
Every step is safe to repeat (chat.update of the same content, a DM sent at
most once per success), so a retry after a partial failure converges.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.domain import AccessRequest, Notice, State
from bot.errors import ProviderError
from bot.outbox import DeliveryDeferred, DeliveryFailed
from bot.ports import AccessProvider, Clock, RoleRule
from bot.slack import blocks
from bot.slack.cache import TtlCache
from bot.slack.people import People
from bot.store import Audience, OutboxNotice, Store

log = logging.getLogger(__name__)

# Slack errors that mean "this can never succeed": the message, the channel or
# the person is gone or out of reach. Anything else (429, 5xx, network,
# unknown errors) is retried with backoff.
PERMANENT_ERRORS = frozenset(
    {
        "message_not_found",  # the approval message was deleted
        "channel_not_found",
        "is_archived",
        "not_in_channel",  # the bot was removed from the channel
        "cant_update_message",
        "edit_window_closed",
        "user_not_found",
        "user_not_visible",
        "user_disabled",  # a deactivated member
        "cannot_dm_bot",
        "account_inactive",
    }
)

DmBuilder = Callable[[AccessRequest], blocks.Message]

_DMS: dict[Notice, DmBuilder] = {
    Notice.DENIED: blocks.denied_dm,
    Notice.FAILED: blocks.failed_dm,
    Notice.CANCELLED: blocks.cancelled_dm,
    Notice.REVOKED: blocks.revoked_dm,
    Notice.EXPIRED: blocks.expired_dm,
    Notice.DRIFTED: blocks.drifted_dm,
}


class SlackNotifier:
    """Delivers one notice: keeps the channel message true and tells the requester."""

    def __init__(
        self,
        *,
        client: WebClient,
        store: Store,
        provider: AccessProvider,
        people: People,
        clock: Clock,
        approval_channel: str,
        request_ttl: timedelta | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.provider = provider
        self.people = people
        self.clock = clock
        self.approval_channel = approval_channel
        self.request_ttl = request_ttl
        # a failed read raises and is not cached
        self._role_rules: TtlCache[list[RoleRule]] = TtlCache()

    def deliver(self, notice: OutboxNotice) -> None:
        request = self.store.get(notice.request_id)
        if request is None:
            return
        kind = Notice(notice.kind)
        try:
            if notice.audience == Audience.DM:
                self._tell_requester(kind, request)
            else:
                self._redraw(kind, request)
        except SlackApiError as error:
            raise _failure(error) from None
        except OSError as error:
            raise DeliveryDeferred(f"Slack unreachable: {error}") from None

    def _redraw(self, kind: Notice, request: AccessRequest) -> None:
        """Show the request's state in the channel; an extension also redraws its parent.

        Both messages are tried even if one is gone for good, then that error is raised.
        """
        shown = [request]
        if kind is Notice.EXTENDED and (parent := self.store.get(request.extends or "")):
            shown.append(parent)
        gone: SlackApiError | None = None
        for each in shown:
            try:
                self._show_in_channel(each)
            except SlackApiError as error:
                if not _is_permanent(error):
                    raise
                gone = error
        if gone is not None:
            raise gone

    def _tell_requester(self, kind: Notice, request: AccessRequest) -> None:
        message = self._requester_message(kind, request)
        if message is not None:
            send_dm(self.client, request.requester, message)

    def _requester_message(self, kind: Notice, request: AccessRequest) -> blocks.Message | None:
        if kind is Notice.EXPIRY_WARNING:
            if request.state is not State.ACTIVE:
                return None  # ended or extended meanwhile: nothing to warn about
            return blocks.expiry_warning_dm(request, now=self.clock.now())
        if kind is Notice.GRANTED:
            return blocks.granted_dm(request, tz=self.people.timezone(request.requester))
        if kind is Notice.EXTENDED:
            return blocks.extended_dm(request, tz=self.people.timezone(request.requester))
        if kind is Notice.TIMED_OUT:
            return blocks.timed_out_dm(request, request_ttl=self.request_ttl)
        builder = _DMS.get(kind)
        return builder(request) if builder else None

    def _show_in_channel(self, request: AccessRequest) -> None:
        """Post the approval message once; afterwards update it in place."""
        message = blocks.request_message(
            request, rules=self._rules(request.role), request_ttl=self.request_ttl
        )
        where = self.store.message_of(request.id)
        if where is None:
            response = self.client.chat_postMessage(
                channel=self.approval_channel, text=message.text, blocks=message.blocks
            )
            self.store.set_message(
                request.id, channel=str(response["channel"]), ts=str(response["ts"])
            )
            return
        channel, ts = where
        self.client.chat_update(channel=channel, ts=ts, text=message.text, blocks=message.blocks)

    def _rules(self, role: str) -> list[RoleRule] | None:
        try:
            return self._role_rules.get(role, lambda: self.provider.describe_role(role))
        except ProviderError as error:
            log.warning("cannot read the rules of %s: %s", role, error)
            return None


def send_dm(client: WebClient, user: str, message: blocks.Message) -> None:
    """Open (or find) the DM with `user` and post `message` there."""
    channel = client.conversations_open(users=user)["channel"]["id"]
    client.chat_postMessage(channel=channel, text=message.text, blocks=message.blocks)


def _is_permanent(error: SlackApiError) -> bool:
    return error.response.get("error") in PERMANENT_ERRORS


def _failure(error: SlackApiError) -> DeliveryFailed | DeliveryDeferred:
    """A permanent Slack error ends the notice; anything else is retried (Retry-After on 429)."""
    response = error.response
    said = f"Slack said {response.get('error') or response.status_code}"
    if _is_permanent(error):
        return DeliveryFailed(said)
    retry_after: float | None = None
    if response.status_code == 429:
        header = (response.headers or {}).get("Retry-After") or (response.headers or {}).get(
            "retry-after"
        )
        retry_after = float(header) if header else 1.0
    return DeliveryDeferred(said, retry_after=retry_after)
