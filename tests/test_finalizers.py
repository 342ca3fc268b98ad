""" "Gone" means gone: a binding held by a finalizer keeps authorizing, so it is not revoked.

Anyone who can patch a binding can add a finalizer; its DELETE then only marks
it (deletionTimestamp) and it keeps granting access. The bot confirms with a
GET, removes the finalizers from its own binding, and records the end only
once the binding is really gone; until then the request stays revoking and
the tick retries, logging at ERROR.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.domain import AccessRequest, State
from bot.errors import ProviderError
from tests.harness import APPROVAL_CHANNEL, APPROVER, Harness, running_bot, wait_until

RBAC = "rbac.authorization.k8s.io/v1"


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    with running_bot(tmp_path, timers=True) as harness:
        yield harness


def grant(h: Harness, duration: str) -> AccessRequest:
    request = h.request(f"request --role view --scope staging --duration {duration} --reason f")
    message = h.approval_message(request.id)
    h.sender.block_action(
        "approve", request.id, user=APPROVER, channel=APPROVAL_CHANNEL, message_ts=message["ts"]
    )
    return wait_until(lambda: (r := h.bot.store.get(request.id)) and r.state is State.ACTIVE and r)


def name_of(request: AccessRequest) -> str:
    return f"jitsudo-{request.id.lower()}"


def binding(h: Harness, request: AccessRequest) -> dict[str, object] | None:
    return h.kube.get(RBAC, "rolebindings", name_of(request), namespace=request.namespace)


def test_a_finalizer_does_not_keep_an_expired_grant_alive(h: Harness) -> None:
    request = grant(h, "2s")
    h.kube.add_finalizer(RBAC, "rolebindings", name_of(request), request.namespace)
    wait_until(lambda: binding(h, request) is None, timeout=5)
    ended = wait_until(lambda: (r := h.bot.store.get(request.id)) and r.state.is_final and r)
    assert ended.state is State.EXPIRED


def test_while_the_binding_stands_the_request_stays_revoking_and_is_retried(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    request = grant(h, "2s")
    h.kube.add_finalizer(RBAC, "rolebindings", name_of(request), request.namespace)
    # The bot may not remove the finalizer (say, a webhook refuses it): the binding stands.
    h.kube.fail_next(method="PATCH", resource="rolebindings", status=403, times=1000)
    with caplog.at_level(logging.ERROR, logger="bot.ending"):
        wait_until(
            lambda: sum("NOT gone yet" in r.getMessage() for r in caplog.records) >= 2, timeout=8
        )
    standing = binding(h, request)
    assert standing is not None and standing["metadata"]["deletionTimestamp"]  # type: ignore[index]
    ending = h.bot.store.get(request.id)
    assert ending is not None and ending.state is State.REVOKING  # never recorded as ended
    assert "expired" not in [e.action for e in h.bot.store.audit_trail(request.id)]

    h.kube.clear_faults()
    wait_until(lambda: binding(h, request) is None, timeout=5)
    ended = wait_until(lambda: (r := h.bot.store.get(request.id)) and r.state.is_final and r)
    assert ended.state is State.EXPIRED


def test_revoke_by_a_person_waits_for_the_binding_to_be_gone(h: Harness) -> None:
    request = grant(h, "10m")
    h.kube.add_finalizer(RBAC, "rolebindings", name_of(request), request.namespace)
    h.kube.fail_next(method="PATCH", resource="rolebindings", status=500, times=3)
    reply = h.command(f"revoke {request.id}")
    assert "in progress" in reply  # said honestly: the binding is not gone yet
    wait_until(lambda: binding(h, request) is None, timeout=8)
    ended = wait_until(lambda: (r := h.bot.store.get(request.id)) and r.state.is_final and r)
    assert ended.state is State.REVOKED


def test_the_provider_reports_a_binding_that_survives_its_delete(h: Harness) -> None:
    request = grant(h, "10m")
    h.kube.add_finalizer(RBAC, "rolebindings", name_of(request), request.namespace)
    h.kube.fail_next(method="PATCH", resource="rolebindings", status=403, times=1)
    with pytest.raises(ProviderError, match="403 Forbidden"):  # it could not lift the hold
        h.bot.provider.revoke(request.id, request.target)
    h.bot.provider.revoke(request.id, request.target)  # the finalizer goes; so does it
    assert binding(h, request) is None
