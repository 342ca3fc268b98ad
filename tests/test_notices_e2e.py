"""Channel updates and DMs are separate notices: a dead approval message never blocks a DM.

End to end over real HTTP: the approval message is deleted (or its channel
archived) in the Slack stand-in, the grant then ends, and the requester is
still told, while the dead message is tried exactly once.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.domain import State
from tests.harness import (
    APPROVAL_CHANNEL,
    APPROVER,
    REQUESTER,
    Harness,
    running_bot,
    wait_until,
)


def granted(h: Harness, duration: str) -> str:
    """An active grant whose granted notices (message update and DM) are all done."""
    request = h.request(f"request --role view --scope staging --duration {duration} --reason x")
    message = h.approval_message(request.id)
    h.sender.block_action(
        "approve", request.id, user=APPROVER, channel=APPROVAL_CHANNEL, message_ts=message["ts"]
    )
    wait_until(lambda: (r := h.bot.store.get(request.id)) and r.state is State.ACTIVE)
    wait_until(lambda: dms_about(h, request.id, "active until"))
    wait_until(h.notices_settled)
    return request.id


def dms_about(h: Harness, request_id: str, words: str) -> list[str]:
    texts = [json.dumps(payload) for payload in h.dms_to(REQUESTER)]
    return [text for text in texts if request_id in text and words in text]


def kill_message(h: Harness, request_id: str, how: str) -> None:
    if how == "deleted":
        h.slack.delete_message(APPROVAL_CHANNEL, h.approval_message(request_id)["ts"])
    else:
        h.slack.archive_channel(APPROVAL_CHANNEL)


def assert_tried_once(h: Harness, request_id: str, error: str) -> None:
    wait_until(h.notices_settled)
    updates = h.slack.calls_to("chat.update")
    assert [call.error for call in updates] == [error]
    [channel_row] = [n for n in h.outbox(request_id) if n.audience == "channel" and n.last_error]
    assert error in (channel_row.last_error or "") and channel_row.attempts == 1


@pytest.mark.parametrize(("how", "error"), [("deleted", "message_not_found")])
def test_revoked_grant_is_dmed_although_its_message_is_gone(
    tmp_path: Path, how: str, error: str
) -> None:
    with running_bot(tmp_path) as h:
        request_id = granted(h, "10m")
        kill_message(h, request_id, how)
        h.slack.reset_calls()
        h.command(f"revoke {request_id}", user=REQUESTER)
        wait_until(lambda: dms_about(h, request_id, "revoked"))
        assert_tried_once(h, request_id, error)


@pytest.mark.parametrize(
    ("how", "error"), [("deleted", "message_not_found"), ("archived", "is_archived")]
)
def test_expired_grant_is_dmed_although_its_message_is_gone(
    tmp_path: Path, how: str, error: str
) -> None:
    with running_bot(tmp_path, timers=True, expiry_warning="1s") as h:
        request_id = granted(h, "3s")
        kill_message(h, request_id, how)
        h.slack.reset_calls()
        wait_until(lambda: dms_about(h, request_id, "ended at"), timeout=15)
        assert_tried_once(h, request_id, error)
