"""The Kubernetes provider with the real client over HTTP against the API-server stand-in.

The bot authenticates as its ServiceAccount and is authorized only by
manifests/base/rbac/rbac.yaml, so these tests also prove the shipped RBAC suffices.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.domain import Grant, ManagedBinding, Target, new_request_id
from bot.errors import ProviderError
from bot.providers.kubernetes import KubernetesProvider, api_client_from, binding_name
from tests.harness import BOT_USER, MANIFEST
from tests.kubeapi import KubeApiServer

RBAC = "rbac.authorization.k8s.io/v1"
VIEW_REF = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}
EXPIRES = datetime(2026, 11, 27, 12, 30, tzinfo=UTC)


@pytest.fixture
def kube() -> Iterator[KubeApiServer]:
    with KubeApiServer() as api:
        api.apply_manifest(str(MANIFEST))
        api.add_namespace("production")
        yield api


@pytest.fixture
def provider(kube: KubeApiServer, tmp_path: Path) -> KubernetesProvider:
    token = kube.add_token(BOT_USER, groups=["system:serviceaccounts"])
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig", token=token)
    return KubernetesProvider(api_client_from(str(kubeconfig)), managed_label="jitsudo.dev/managed")


def grant(namespace: str | None = "production", role: str = "edit", user: str = "alice") -> Grant:
    return Grant(
        request_id=new_request_id(),
        user=user,
        role=role,
        target=Target(namespace=namespace),
        expires_at=EXPIRES,
    )


def stored(kube: KubeApiServer, g: Grant) -> dict[str, Any] | None:
    name = binding_name(g.request_id)
    if g.target.namespace is None:
        return kube.get(RBAC, "clusterrolebindings", name)
    return kube.get(RBAC, "rolebindings", name, namespace=g.target.namespace)


@pytest.mark.parametrize("namespace", ["production", None])
def test_grant_creates_the_seed_binding(
    kube: KubeApiServer, provider: KubernetesProvider, namespace: str | None
) -> None:
    g = grant(namespace)
    provider.grant(g)
    binding = stored(kube, g)
    assert binding is not None
    assert binding["metadata"]["name"] == f"jitsudo-{g.request_id.lower()}"
    assert binding["metadata"]["labels"] == {"jitsudo.dev/managed": "true"}
    assert binding["metadata"]["annotations"] == {
        "jitsudo.dev/expires-at": "2026-11-27T12:30:00Z",
        "jitsudo.dev/request-id": g.request_id,
        "jitsudo.dev/user": "alice",
    }
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "edit",
    }
    assert binding["subjects"] == [
        {"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}
    ]
    assert provider.is_active(g)
    if namespace is None:  # cluster-wide is never a RoleBinding
        assert kube.list(RBAC, "rolebindings") == [] or all(
            b["metadata"]["name"] != binding_name(g.request_id)
            for b in kube.list(RBAC, "rolebindings")
        )


def test_grant_is_idempotent_but_never_adopts_a_different_binding(
    kube: KubeApiServer, provider: KubernetesProvider
) -> None:
    g = grant()
    provider.grant(g)
    provider.grant(g)  # AlreadyExists with the same subject and role: success
    intruder = Grant(g.request_id, "mallory", "edit", g.target, EXPIRES)
    with pytest.raises(ProviderError, match="will not adopt"):
        provider.grant(intruder)
    other_role = Grant(g.request_id, "alice", "cluster-admin", g.target, EXPIRES)
    with pytest.raises(ProviderError, match="will not adopt"):
        provider.grant(other_role)
    binding = stored(kube, g)
    assert binding is not None and binding["subjects"][0]["name"] == "alice"


def test_preflight_passes_for_a_grantable_request_and_persists_nothing(
    kube: KubeApiServer, provider: KubernetesProvider
) -> None:
    g = grant()
    provider.preflight(g)
    assert stored(kube, g) is None
    dry_runs = [r for r in kube.requests if r.method == "POST" and r.query.get("dryRun")]
    assert len(dry_runs) == 1


@pytest.mark.parametrize(
    ("g", "message"),
    [
        (grant(role="no-such-role"), "ClusterRole `no-such-role` does not exist"),
        (grant(namespace="nope"), "Namespace `nope` does not exist"),
        (grant(namespace="Bad_Name"), "not a valid namespace name"),
        (grant(role="a/b"), "not a valid ClusterRole name"),
        (grant(user=" "), "no Kubernetes username"),
    ],
)
def test_preflight_refuses_what_cannot_be_granted(
    provider: KubernetesProvider, g: Grant, message: str
) -> None:
    with pytest.raises(ProviderError, match=message):
        provider.preflight(g)


def test_preflight_refuses_a_role_the_bot_may_not_bind(
    kube: KubeApiServer, provider: KubernetesProvider
) -> None:
    kube.add_cluster_role(
        "secret-reader", [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]
    )
    with pytest.raises(ProviderError, match=r"403 Forbidden.*RBAC") as caught:
        provider.preflight(grant(role="secret-reader"))
    # The user sees the status; the raw body (the bot's ServiceAccount, its rules) is log-only.
    assert "system:serviceaccount" not in str(caught.value)
    assert "not currently held" in caught.value.detail
    with pytest.raises(ProviderError):
        provider.grant(grant(role="secret-reader"))


def test_revoke_deletes_and_not_found_is_success(
    kube: KubeApiServer, provider: KubernetesProvider
) -> None:
    g = grant()
    provider.grant(g)
    provider.revoke(g.request_id, g.target)
    assert stored(kube, g) is None
    assert not provider.is_active(g)
    provider.revoke(g.request_id, g.target)  # already gone: still success


def test_revoke_failure_is_an_error(kube: KubeApiServer, provider: KubernetesProvider) -> None:
    g = grant()
    provider.grant(g)
    kube.fail_next(method="DELETE", resource="rolebindings", status=500, times=1)
    with pytest.raises(ProviderError) as caught:
        provider.revoke(g.request_id, g.target)
    assert caught.value.retryable
    assert stored(kube, g) is not None


def test_out_of_band_delete_is_seen(kube: KubeApiServer, provider: KubernetesProvider) -> None:
    g = grant(namespace=None, role="view")
    provider.grant(g)
    kube.delete(RBAC, "clusterrolebindings", binding_name(g.request_id))
    assert not provider.is_active(g)


def test_list_managed_pages_through_both_kinds_by_label(
    kube: KubeApiServer, provider: KubernetesProvider
) -> None:
    grants = [grant(namespace="production" if i % 2 else None, role="view") for i in range(230)]
    for g in grants:
        provider.grant(g)
    kube.create(
        {
            "apiVersion": RBAC,
            "kind": "RoleBinding",
            "metadata": {"name": "unmanaged", "namespace": "production"},
            "roleRef": VIEW_REF,
            "subjects": [{"kind": "User", "name": "x", "apiGroup": "rbac.authorization.k8s.io"}],
        }
    )
    found = list(provider.list_managed())
    assert sorted(b.request_id or "" for b in found) == sorted(g.request_id for g in grants)
    assert all(b.expires_at == EXPIRES for b in found)
    lists = [r for r in kube.requests if r.method == "GET" and "limit" in r.query]
    assert len(lists) >= 3  # 230 items at 100 per page: it really paginated
    assert all(r.query.get("labelSelector") == "jitsudo.dev/managed=true" for r in lists)


def test_list_managed_reads_orphans_without_annotations(
    kube: KubeApiServer, provider: KubernetesProvider
) -> None:
    kube.create(
        {
            "apiVersion": RBAC,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "jitsudo-orphan", "labels": {"jitsudo.dev/managed": "true"}},
            "roleRef": VIEW_REF,
            "subjects": [{"kind": "User", "name": "x", "apiGroup": "rbac.authorization.k8s.io"}],
        }
    )
    [orphan] = list(provider.list_managed())
    assert orphan == ManagedBinding(
        "jitsudo-orphan", None, None, request_id=None, role="view", subjects=(("User", "x"),)
    )
    provider.remove(orphan)
    assert kube.get(RBAC, "clusterrolebindings", "jitsudo-orphan") is None


def test_extend_patches_the_annotation_in_place(
    kube: KubeApiServer, provider: KubernetesProvider
) -> None:
    g = grant()
    provider.grant(g)
    before = stored(kube, g)
    assert before is not None
    later = EXPIRES + timedelta(minutes=30)
    provider.extend(g.request_id, g.target, later)
    after = stored(kube, g)
    assert after is not None
    assert after["metadata"]["annotations"]["jitsudo.dev/expires-at"] == "2026-11-27T13:00:00Z"
    assert after["metadata"]["uid"] == before["metadata"]["uid"]  # patched, not recreated


def test_describe_role_reads_the_cluster_role(provider: KubernetesProvider) -> None:
    rules = provider.describe_role("edit")
    assert any("secrets" in rule.resources for rule in rules)
    with pytest.raises(ProviderError):
        provider.describe_role("no-such-role")


def test_ping_and_unreachable_server(
    provider: KubernetesProvider, kube: KubeApiServer, tmp_path: Path
) -> None:
    provider.ping()
    kubeconfig = kube.write_kubeconfig(tmp_path / "dead", token=kube.add_token(BOT_USER))
    text = Path(kubeconfig).read_text().replace(kube.url, "http://127.0.0.1:9")
    Path(kubeconfig).write_text(text)
    dead = KubernetesProvider(api_client_from(str(kubeconfig)), managed_label="jitsudo.dev/managed")
    dead.rbac.api_client.configuration.retries = 0
    with pytest.raises(ProviderError) as caught:
        dead.revoke(new_request_id(), Target("production"))
    assert caught.value.retryable
    with pytest.raises(ProviderError):
        dead.ping()
