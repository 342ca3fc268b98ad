"""Turns outbox notices into Slack messages: the approval post, its updates, and DMs.

Called by bot.outbox.OutboxWorker for each due notice. Every step is safe to
repeat (chat.update of the same content, a DM sent at most once per success),
so a retry after a partial failure converges.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.domain import AccessRequest, Notice, State
from bot.errors import ProviderError
from bot.outbox import DeliveryDeferred
from bot.ports import AccessProvider, Clock, RoleRule
from bot.slack import blocks
from bot.slack.cache import TtlCache
from bot.slack.people import People
from bot.store import OutboxNotice, Store

log = logging.getLogger(__name__)

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
            self._deliver(kind, request)
        except SlackApiError as error:
            raise _deferred(error) from None
        except OSError as error:
            raise DeliveryDeferred(f"Slack unreachable: {error}") from None

    def _deliver(self, kind: Notice, request: AccessRequest) -> None:
        if kind is Notice.EXPIRY_WARNING:
            if request.state is State.ACTIVE:
                self._dm(request, blocks.expiry_warning_dm(request, now=self.clock.now()))
            return
        self._show_in_channel(request)
        if kind is Notice.GRANTED:
            tz = self.people.timezone(request.requester)
            self._dm(request, blocks.granted_dm(request, tz=tz))
        elif kind is Notice.EXTENDED:
            parent = self.store.get(request.extends or "")
            if parent is not None:
                self._show_in_channel(parent)
            tz = self.people.timezone(request.requester)
            self._dm(request, blocks.extended_dm(request, tz=tz))
        elif kind is Notice.TIMED_OUT:
            self._dm(request, blocks.timed_out_dm(request, request_ttl=self.request_ttl))
        elif kind in _DMS:
            self._dm(request, _DMS[kind](request))

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

    def _dm(self, request: AccessRequest, message: blocks.Message) -> None:
        send_dm(self.client, request.requester, message)

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


def _deferred(error: SlackApiError) -> DeliveryDeferred:
    response = error.response
    retry_after: float | None = None
    if response.status_code == 429:
        header = (response.headers or {}).get("Retry-After") or (response.headers or {}).get(
            "retry-after"
        )
        retry_after = float(header) if header else 1.0
    return DeliveryDeferred(
        f"Slack said {response.get('error') or response.status_code}", retry_after=retry_after
    )
