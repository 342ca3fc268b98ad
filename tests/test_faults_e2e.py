"""Faults end to end: the real bot over HTTP, the stand-ins, the real timers.

Transient API-server errors leave an approved request "granting, retrying"
until the cluster answers; a huge error text never stalls the tick on
PostgreSQL; a flood of commands from one member is refused and stores nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.domain import AccessRequest, State
from tests.harness import (
    APPROVAL_CHANNEL,
    APPROVER,
    REQUESTER,
    Harness,
    running_bot,
    wait_until,
)

RBAC = "rbac.authorization.k8s.io/v1"


def approve(h: Harness, request: AccessRequest) -> str:
    """Click Approve; returns the approver's ephemeral reply."""
    count = len(h.replies())
    message = h.approval_message(request.id)
    response = h.sender.block_action(
        "approve", request.id, user=APPROVER, channel=APPROVAL_CHANNEL, message_ts=message["ts"]
    )
    assert response.status == 200, response.body
    return json.dumps(wait_until(lambda: h.replies()[count:])[-1])


def stored(h: Harness, request_id: str) -> AccessRequest:
    request = h.bot.store.get(request_id)
    assert request is not None
    return request


def binding(h: Harness, request: AccessRequest) -> dict[str, object] | None:
    name = f"jitsudo-{request.id.lower()}"
    return h.kube.get(RBAC, "rolebindings", name, namespace=request.namespace)


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    with running_bot(tmp_path, timers=True) as harness:
        yield harness


def test_a_5xx_during_the_grant_is_retried_until_the_cluster_answers(h: Harness) -> None:
    request = h.request("request --role view --scope staging --duration 10m --reason retry")
    h.kube.fail_next(method="POST", resource="rolebindings", status=503, times=2)
    reply = approve(h, request)
    assert "did not answer" in reply and "keeps trying" in reply
    waiting = stored(h, request.id)
    assert waiting.state is State.APPROVED and (waiting.cause or "").startswith("retrying")
    # The channel shows it, instead of the buttons of a request nobody decided.
    wait_until(lambda: "granting, retrying" in json.dumps(h.approval_message(request.id)))
    granted = wait_until(
        lambda: (r := stored(h, request.id)).state is State.ACTIVE and r, timeout=15
    )
    assert binding(h, granted) is not None
    wait_until(lambda: any("active until" in json.dumps(d) for d in h.dms_to(REQUESTER)))
    assert not [e for e in h.bot.store.audit_trail(request.id) if e.action == "grant_failed"]


def test_a_flood_of_commands_is_refused_and_stores_nothing(h: Harness) -> None:
    limit = h.settings.policy.commands_per_minute
    for _ in range(limit):
        h.command("list")
    before = h.bot.store.find()
    reply = h.command("request --role view --scope staging --duration 5m --reason flood")
    assert "commands in the last minute" in reply and '"response_type": "ephemeral"' in reply
    assert h.bot.store.find() == before
    other = h.command("list", user=APPROVER)  # another member is not affected
    assert "commands in the last minute" not in other


def test_a_huge_kubernetes_error_never_stalls_the_tick_on_postgresql(
    tmp_path: Path, postgres_url: str
) -> None:
    with running_bot(tmp_path, database=postgres_url, timers=True) as h:
        due = h.request("request --role view --scope staging --duration 3s --reason due")
        approve(h, due)
        wait_until(lambda: stored(h, due.id).state is State.ACTIVE)
        doomed = h.request("request --role edit --scope production --duration 5m --reason x")
        huge = "attempting to grant RBAC permissions not currently held: " + "{rule} " * 1500
        h.kube.fail_next(method="POST", resource="rolebindings", status=403, message=huge)
        reply = approve(h, doomed)
        assert "grant failed" in reply and "not currently held" not in reply
        assert stored(h, doomed.id).state is State.FAILED
        # The other grant still ends on time: the tick was never stuck on the failed write.
        wait_until(lambda: stored(h, due.id).state is State.EXPIRED, timeout=6)
        assert binding(h, due) is None


def creates_of(h: Harness, request: AccessRequest) -> int:
    """Real (not dry-run) POSTs that tried to create this request's binding."""
    return sum(
        1
        for r in h.kube.requests
        if r.method == "POST"
        and r.path.endswith(f"/namespaces/{request.namespace}/rolebindings")
        and "dryRun" not in r.query
    )


def test_a_create_that_timed_out_but_succeeded_ends_active_never_failed(h: Harness) -> None:
    request = h.request("request --role view --scope staging --duration 10m --reason slow")
    h.bot.provider.timeout = (3.0, 0.5)  # the client gives up after half a second...
    h.kube.delay_next(method="POST", resource="rolebindings", seconds=1.5, after=True)
    reply = approve(h, request)  # ...while the server did create the binding
    assert "did not answer" in reply
    seen: set[State] = set()

    def active() -> AccessRequest | None:
        current = stored(h, request.id)
        seen.add(current.state)
        return current if current.state is State.ACTIVE else None

    granted = wait_until(active, timeout=15)
    assert State.FAILED not in seen
    assert binding(h, granted) is not None
    assert creates_of(h, request) == 2  # the retry found it (409, same grant) and adopted it


def test_a_slow_grant_is_never_run_twice(h: Harness) -> None:
    """The approver's attempt takes seconds; the ticks meanwhile leave it alone (the claim)."""
    request = h.request("request --role view --scope staging --duration 10m --reason slow")
    h.kube.delay_next(method="POST", resource="rolebindings", seconds=4, after=False)
    approve(h, request)
    granted = wait_until(lambda: (r := stored(h, request.id)).state is State.ACTIVE and r)
    assert binding(h, granted) is not None
    assert creates_of(h, request) == 1


def test_a_slow_sweep_does_not_delay_an_expiry(tmp_path: Path, database_url: str) -> None:
    with running_bot(
        tmp_path, database=database_url, timers=True, scheduler={"sweep_interval": "1s"}
    ) as h:
        # Every all-namespaces list (the sweep's) takes 8 s; reads by name stay fast.
        h.kube.delay_next(
            method="GET", resource="rolebindings", namespace="", seconds=8, times=1000
        )
        wait_until(
            lambda: any(
                r.method == "GET"
                and r.path.endswith("/rolebindings")
                and "/namespaces/" not in r.path
                for r in h.kube.requests
            )
        )
        request = h.request("request --role view --scope staging --duration 2s --reason x")
        approve(h, request)
        active = wait_until(lambda: (r := stored(h, request.id)).state is State.ACTIVE and r)
        assert active.expires_at is not None
        deadline = (active.expires_at - datetime.now(UTC)).total_seconds() + 2
        wait_until(lambda: binding(h, active) is None, timeout=max(deadline, 0.1))
        h.kube.clear_faults()
