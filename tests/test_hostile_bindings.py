"""A cluster user who can write RBAC in a namespace cannot bend jitsudo's bookkeeping.

The managed label is only a claim: anyone with `admin` in a namespace can put
it on a binding, with any name, annotations or expiry. Here the attacker acts
through the real kubernetes client with their own token, authorized by the
API-server stand-in's RBAC, and the bot sweeps with its own (manifests/).
A labelled binding counts as a request's only if its name, kind and
namespace, subject and role all match (ManagedBinding.belongs_to).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from bot import expiry
from bot.domain import AccessRequest, State
from bot.providers.kubernetes import api_client_from
from tests.conftest import FakeClock
from tests.harness import (
    APPROVAL_CHANNEL,
    APPROVER,
    OUTSIDER,
    REQUESTER,
    Harness,
    running_bot,
    wait_until,
)

RBAC = "rbac.authorization.k8s.io/v1"
MALLORY = "mallory@example.com"  # OUTSIDER's Kubernetes identity (identity.source: email)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def h(tmp_path: Path, clock: FakeClock) -> Iterator[Harness]:
    with running_bot(tmp_path, clock=clock) as harness:
        harness.kube.add_namespace("sandbox")
        yield harness


def attacker(h: Harness, tmp_path: Path) -> client.RbacAuthorizationV1Api:
    """Mallory's own client: she is admin in `sandbox`, and nothing more."""
    h.kube.create(
        {
            "apiVersion": RBAC,
            "kind": "RoleBinding",
            "metadata": {"name": "mallory-admin", "namespace": "sandbox"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "admin",
            },
            "subjects": [
                {"kind": "User", "name": MALLORY, "apiGroup": "rbac.authorization.k8s.io"}
            ],
        }
    )
    token = h.kube.add_token(MALLORY)
    kubeconfig = h.kube.write_kubeconfig(tmp_path / "mallory.kubeconfig", token=token)
    return client.RbacAuthorizationV1Api(api_client_from(str(kubeconfig)))


def grant(h: Harness, *, user: str, scope: str, role: str = "edit") -> AccessRequest:
    request = h.request(
        f"request --role {role} --scope {scope} --duration 30m --reason hostile", user=user
    )
    message = h.approval_message(request.id)
    h.sender.block_action(
        "approve", request.id, user=APPROVER, channel=APPROVAL_CHANNEL, message_ts=message["ts"]
    )
    return wait_until(lambda: (r := h.bot.store.get(request.id)) and r.state is State.ACTIVE and r)


def forged(name: str, *, claims: str, user: str) -> dict[str, Any]:
    """A labelled binding in sandbox that says it is `claims`'s grant and expired long ago."""
    return {
        "metadata": {
            "name": name,
            "namespace": "sandbox",
            "labels": {"jitsudo.dev/managed": "true"},
            "annotations": {
                "jitsudo.dev/expires-at": "2020-01-01T00:00:00Z",
                "jitsudo.dev/request-id": claims,
            },
        },
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}],
    }


def binding(h: Harness, request: AccessRequest) -> dict[str, Any] | None:
    name = f"jitsudo-{request.id.lower()}"
    return h.kube.get(RBAC, "rolebindings", name, namespace=request.namespace)


def test_a_copied_label_with_a_victims_id_does_not_end_the_victims_grant(
    h: Harness, tmp_path: Path
) -> None:
    victim = grant(h, user=REQUESTER, scope="production")
    mallory = attacker(h, tmp_path)
    # Same name as the victim's binding, in Mallory's namespace, claiming the victim's ID.
    copy = forged(f"jitsudo-{victim.id.lower()}", claims=victim.id, user="alice@example.com")
    mallory.create_namespaced_role_binding("sandbox", copy)

    result = expiry.sweep(h.bot.service)

    still = h.bot.store.get(victim.id)
    assert still is not None and still.state is State.ACTIVE, still
    assert binding(h, victim) is not None  # the real grant is untouched
    assert result.drifted == 0
    # The forgery is labelled and expired: removed by the seed's rule, and nothing more.
    assert h.kube.get(RBAC, "rolebindings", copy["metadata"]["name"], "sandbox") is None
    assert [e.action for e in h.bot.store.audit_trail(victim.id)][-1] == "granted"


def test_an_unlabelled_grant_and_a_decoy_cannot_fake_an_expiry(
    h: Harness, tmp_path: Path, clock: FakeClock
) -> None:
    """Mallory hides her own grant from the label sweep and plants a decoy claiming it."""
    own = grant(h, user=OUTSIDER, scope="sandbox", role="admin")
    mallory = attacker(h, tmp_path)
    name = f"jitsudo-{own.id.lower()}"
    mallory.patch_namespaced_role_binding(
        name, "sandbox", {"metadata": {"labels": {"jitsudo.dev/managed": None}}}
    )
    mallory.create_namespaced_role_binding(
        "sandbox", forged("jitsudo-decoy", claims=own.id, user=MALLORY)
    )

    result = expiry.sweep(h.bot.service)

    recorded = h.bot.store.get(own.id)
    assert recorded is not None and recorded.state is State.ACTIVE  # no fake "expired"
    assert result.drifted == 0  # the unlabelled binding is still found by its name
    assert h.kube.get(RBAC, "rolebindings", "jitsudo-decoy", "sandbox") is None

    clock.advance(minutes=30, seconds=1)  # at its expiry, it goes by name, label or not
    assert expiry.expire_due(h.bot.service).revoked == 1
    assert binding(h, own) is None
    ended = h.bot.store.get(own.id)
    assert ended is not None and ended.state is State.EXPIRED


def test_a_binding_with_the_right_name_but_another_subject_is_not_the_grant(
    h: Harness, tmp_path: Path
) -> None:
    """Kind, namespace, subject and role must all match; the name alone proves nothing."""
    victim = grant(h, user=REQUESTER, scope="sandbox", role="view")
    mallory = attacker(h, tmp_path)
    name = f"jitsudo-{victim.id.lower()}"
    # Mallory (admin in sandbox) rebinds the victim's grant to herself, keeping the label.
    mallory.patch_namespaced_role_binding(
        name,
        "sandbox",
        {"subjects": [{"kind": "User", "name": MALLORY, "apiGroup": "rbac.authorization.k8s.io"}]},
    )
    result = expiry.sweep(h.bot.service)
    # Not the grant any more: the request's grant is gone (drift), and the imposter is
    # deleted by name as part of ending it, so Mallory keeps nothing.
    assert result.drifted == 1
    assert binding(h, victim) is None
    ended = h.bot.store.get(victim.id)
    assert ended is not None and ended.state is State.EXPIRED


def test_drift_is_not_hidden_by_a_copy_elsewhere(h: Harness, tmp_path: Path) -> None:
    victim = grant(h, user=REQUESTER, scope="production")
    mallory = attacker(h, tmp_path)
    h.kube.delete(RBAC, "rolebindings", f"jitsudo-{victim.id.lower()}", "production")
    copy = forged(f"jitsudo-{victim.id.lower()}", claims=victim.id, user="alice@example.com")
    copy["metadata"]["annotations"]["jitsudo.dev/expires-at"] = "2099-01-01T00:00:00Z"
    mallory.create_namespaced_role_binding("sandbox", copy)
    result = expiry.sweep(h.bot.service)
    assert result.drifted == 1 and result.foreign == 1
    ended = h.bot.store.get(victim.id)
    assert ended is not None and ended.state is State.EXPIRED
