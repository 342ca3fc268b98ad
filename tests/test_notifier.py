"""The Slack notifier against the Slack stand-in: one audience per row, permanent vs retry.

Errors that no retry can fix end a notice (DeliveryFailed); rate limits and
outages are retried (DeliveryDeferred), as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from slack_sdk import WebClient

from bot.config import IdentitySettings, SlackSettings
from bot.domain import AccessRequest, Notice, State
from bot.outbox import DeliveryDeferred, DeliveryFailed
from bot.slack.notifier import SlackNotifier
from bot.slack.people import People
from bot.store import Audience, OutboxNotice, Store
from tests.conftest import FakeClock
from tests.factories import NOW, access_request
from tests.fakes import FakeProvider
from tests.slackapi import SlackApiServer, SlackUser

TOKEN = "xoxb-t"
CHANNEL = "CAPPROVALS"


@pytest.fixture
def slack() -> Iterator[SlackApiServer]:
    with SlackApiServer(bot_token=TOKEN) as server:
        server.add_user(SlackUser(id="U1", name="alice", email="alice@example.com"))
        server.add_user(SlackUser(id="UGONE", name="gone", deleted=True))
        server.add_user(SlackUser(id="UROBOT", name="robot", is_bot=True))
        yield server


@pytest.fixture
def notifier(slack: SlackApiServer, store: Store) -> SlackNotifier:
    client = WebClient(token=TOKEN, base_url=slack.base_url)
    people = People(client, identity=IdentitySettings(), slack=SlackSettings())
    return SlackNotifier(
        client=client,
        store=store,
        provider=FakeProvider(),
        people=people,
        clock=FakeClock(),
        approval_channel=CHANNEL,
    )


def posted(store: Store, slack: SlackApiServer, **changes: object) -> AccessRequest:
    """A request (revoked unless told otherwise) whose approval message was posted."""
    values: dict[str, object] = {
        "state": State.REVOKED,
        "expires_at": NOW + timedelta(minutes=30),
        "ended_at": NOW,
        **changes,
    }
    request = access_request(**values)
    store.insert(request, actor="U1", notice=None)
    ts = WebClient(token=TOKEN, base_url=slack.base_url).chat_postMessage(
        channel=CHANNEL, text="pending"
    )["ts"]
    store.set_message(request.id, channel=CHANNEL, ts=ts)
    return request


def row(request: AccessRequest, audience: Audience, kind: Notice = Notice.REVOKED) -> OutboxNotice:
    return OutboxNotice(
        id=1, request_id=request.id, kind=kind, audience=audience, created_at=NOW, due_at=NOW
    )


def test_a_row_serves_only_its_audience(
    notifier: SlackNotifier, store: Store, slack: SlackApiServer
) -> None:
    request = posted(store, slack)
    slack.reset_calls()
    notifier.deliver(row(request, Audience.CHANNEL))
    assert [c.method for c in slack.calls] == ["chat.update"]
    slack.reset_calls()
    notifier.deliver(row(request, Audience.DM))
    assert [c.method for c in slack.calls] == ["conversations.open", "chat.postMessage"]


@pytest.mark.parametrize(
    ("audience", "requester", "error"),
    [
        (Audience.CHANNEL, "U1", "message_not_found"),
        (Audience.DM, "UGONE", "user_disabled"),
        (Audience.DM, "UROBOT", "cannot_dm_bot"),
        (Audience.DM, "UNOBODY", "user_not_found"),
    ],
)
def test_permanent_errors_fail_the_notice(
    notifier: SlackNotifier,
    store: Store,
    slack: SlackApiServer,
    audience: Audience,
    requester: str,
    error: str,
) -> None:
    request = posted(store, slack, requester=requester)
    slack.delete_message(CHANNEL, slack.messages(CHANNEL)[-1]["ts"])
    with pytest.raises(DeliveryFailed, match=error):
        notifier.deliver(row(request, audience))


@pytest.mark.parametrize(
    ("fault", "retry_after"),
    [({"status": 429, "retry_after": 7}, 7.0), ({"status": 500}, None)],
)
def test_rate_limits_and_outages_are_retried(
    notifier: SlackNotifier,
    store: Store,
    slack: SlackApiServer,
    fault: dict[str, int],
    retry_after: float | None,
) -> None:
    request = posted(store, slack)
    slack.fail("chat.update", **fault)
    with pytest.raises(DeliveryDeferred) as caught:
        notifier.deliver(row(request, Audience.CHANNEL))
    assert caught.value.retry_after == retry_after


def test_extension_redraws_its_parent_even_if_its_own_message_is_gone(
    notifier: SlackNotifier, store: Store, slack: SlackApiServer
) -> None:
    parent = posted(store, slack, state=State.ACTIVE, ended_at=None)
    extension = posted(store, slack, state=State.EXTENDED, extends=parent.id, ended_at=None)
    slack.delete_message(CHANNEL, slack.messages(CHANNEL)[-1]["ts"])  # the extension's
    with pytest.raises(DeliveryFailed, match="message_not_found"):
        notifier.deliver(row(extension, Audience.CHANNEL, Notice.EXTENDED))
    [parent_message] = slack.messages(CHANNEL)
    assert parent_message["text"] != "pending" and parent.id in str(parent_message["blocks"])
