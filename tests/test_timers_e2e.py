"""Issue 4 end to end: real seconds-long grants, the real scheduler, polling to deadlines.

Deadlines here are generous bounds for "it happened at all, in the right
order"; the latency figures come from `make bench`, not from these tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.domain import DRIFT_CAUSE, AccessRequest, State
from tests.harness import APPROVAL_CHANNEL, APPROVER, REQUESTER, Harness, running_bot, wait_until

RBAC = "rbac.authorization.k8s.io/v1"


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    with running_bot(
        tmp_path,
        timers=True,
        scheduler={"sweep_interval": "2s"},
        expiry_warning="3s",
        request_ttl="3s",
    ) as harness:
        yield harness


def grant(h: Harness, duration: str, *, namespace: str = "staging") -> AccessRequest:
    request = h.request(
        f"request --role view --scope {namespace} --duration {duration} --reason timers"
    )
    message = h.approval_message(request.id)
    h.sender.block_action(
        "approve", request.id, user=APPROVER, channel=APPROVAL_CHANNEL, message_ts=message["ts"]
    )
    return wait_until(lambda: (r := h.bot.store.get(request.id)) and r.state is State.ACTIVE and r)


def binding(h: Harness, request: AccessRequest) -> dict[str, Any] | None:
    name = f"jitsudo-{request.id.lower()}"
    return h.kube.get(RBAC, "rolebindings", name, namespace=request.namespace)


def revoked_by_deadline(h: Harness, request: AccessRequest, *, grace: float = 2.0) -> None:
    """The issue's promise, as a deadline to poll to: gone within `grace` s of expires-at."""
    assert request.expires_at is not None
    deadline = (request.expires_at - datetime.now(UTC)).total_seconds() + grace
    wait_until(lambda: binding(h, request) is None, timeout=max(deadline, 0.1))


def dm_texts(h: Harness) -> list[str]:
    return [json.dumps(payload) for payload in h.dms_to(REQUESTER)]


def test_grant_is_revoked_on_time_and_the_user_told(h: Harness) -> None:
    request = grant(h, "3s")
    assert binding(h, request) is not None
    revoked_by_deadline(h, request)
    ended = wait_until(lambda: (r := h.bot.store.get(request.id)) and r.state.is_final and r)
    assert ended.state is State.EXPIRED and ended.cause == "expired"
    wait_until(lambda: any("ended at" in text for text in dm_texts(h)))
    final = h.approval_message(request.id)
    assert "Expired" in json.dumps(final)
    assert not [b for b in final["blocks"] if b["type"] == "actions"]


def test_binding_deleted_by_hand_is_detected_within_one_sweep(h: Harness) -> None:
    request = grant(h, "10m")
    h.kube.delete(RBAC, "rolebindings", f"jitsudo-{request.id.lower()}", namespace="staging")
    drifted = wait_until(
        lambda: (r := h.bot.store.get(request.id)) and r.state is State.EXPIRED and r, timeout=6
    )
    assert drifted.cause == DRIFT_CAUSE
    wait_until(lambda: any("outside jitsudo" in text for text in dm_texts(h)))


def test_planted_expired_orphan_is_deleted(h: Harness) -> None:
    h.kube.create(
        {
            "apiVersion": RBAC,
            "kind": "ClusterRoleBinding",
            "metadata": {
                "name": "jitsudo-req_01j8kz4q2m3n5p6r7s8t9vwxyz",
                "labels": {"jitsudo.dev/managed": "true"},
                "annotations": {"jitsudo.dev/expires-at": "2026-01-01T00:00:00Z"},
            },
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [{"kind": "User", "name": "eve", "apiGroup": "rbac.authorization.k8s.io"}],
        }
    )
    wait_until(
        lambda: (
            h.kube.get(RBAC, "clusterrolebindings", "jitsudo-req_01j8kz4q2m3n5p6r7s8t9vwxyz")
            is None
        ),
        timeout=6,
    )


def test_pending_request_times_out(h: Harness) -> None:
    request = h.request("request --role view --scope staging --duration 5m --reason slow")
    timed_out = wait_until(
        lambda: (r := h.bot.store.get(request.id)) and r.state is State.TIMED_OUT and r, timeout=8
    )
    assert timed_out.ended_at is not None
    message = wait_until(
        lambda: (m := h.approval_message(request.id)) and "Timed out" in json.dumps(m) and m
    )
    assert not [b for b in message["blocks"] if b["type"] == "actions"]
    wait_until(lambda: any("timed out" in text for text in dm_texts(h)))


def test_expiry_warning_then_extend_moves_the_annotation(h: Harness) -> None:
    request = grant(h, "6s")
    warning = wait_until(
        lambda: next((p for p in h.dms_to(REQUESTER) if "ends in" in json.dumps(p)), None),
        timeout=6,
    )
    assert "revoke_now" in json.dumps(warning) and "extend" in json.dumps(warning)
    before = binding(h, request)
    assert before is not None
    h.sender.command("/jitsudo", f"extend {request.id} --duration 1m --reason more", user=REQUESTER)
    extension = wait_until(lambda: next((r for r in h.bot.store.find() if r.extends), None))
    assert extension.state is State.PENDING
    message = h.approval_message(extension.id)
    h.sender.block_action(
        "approve", extension.id, user=APPROVER, channel=APPROVAL_CHANNEL, message_ts=message["ts"]
    )
    applied = wait_until(
        lambda: (r := h.bot.store.get(extension.id)) and r.state is State.EXTENDED and r
    )
    parent = h.bot.store.get(request.id)
    assert parent is not None and parent.state is State.ACTIVE
    assert parent.expires_at == applied.expires_at
    after = binding(h, request)
    assert after is not None
    assert after["metadata"]["uid"] == before["metadata"]["uid"]  # patched, never recreated
    assert after["metadata"]["annotations"]["jitsudo.dev/expires-at"] == (
        parent.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    assert request.expires_at is not None and parent.expires_at > request.expires_at
    wait_until(lambda: any("now lasts until" in text for text in dm_texts(h)))


def test_restart_in_the_middle_of_a_grant_still_revokes_on_time(h: Harness) -> None:
    request = grant(h, "4s")
    h.stop()  # the bot is down while the grant runs
    h.start()
    revoked_by_deadline(h, request)
    wait_until(lambda: (r := h.bot.store.get(request.id)) and r.state is State.EXPIRED)


def test_slack_outage_delays_the_dm_but_not_the_revocation(h: Harness) -> None:
    request = grant(h, "3s")
    wait_until(lambda: any("active until" in text for text in dm_texts(h)))
    h.slack.fail(method="chat.postMessage", status=429, retry_after=2, times=2)
    h.slack.fail(method="chat.update", status=500, times=2)
    revoked_by_deadline(h, request)
    wait_until(lambda: (r := h.bot.store.get(request.id)) and r.state is State.EXPIRED)
    wait_until(lambda: any("ended at" in text for text in dm_texts(h)), timeout=15)
    statuses = [c.status for c in h.slack.calls_to("chat.postMessage")]
    assert 429 in statuses  # it really was refused first, then retried
