"""The provider against a real cluster (kind, k3d, ...): skipped unless JITSUDO_LIVE_KUBECONFIG.

Set JITSUDO_LIVE_KUBECONFIG to an admin kubeconfig. The suite applies
manifests/base/rbac/rbac.yaml, then acts as the bot's ServiceAccount by impersonation,
so it proves the shipped RBAC on a real API server too. A SubjectAccessReview
checks that the user can do what the role allows while granted, and cannot
after revoke. Everything it creates is labelled or namespaced and removed.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config, utils
from kubernetes.client.exceptions import ApiException

from bot.domain import Grant, Target, new_request_id
from bot.errors import ProviderError
from bot.providers.kubernetes import KubernetesProvider

KUBECONFIG = os.environ.get("JITSUDO_LIVE_KUBECONFIG")
pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not KUBECONFIG, reason="set JITSUDO_LIVE_KUBECONFIG to run against a cluster"
    ),
]
MANIFEST = Path(__file__).parents[2] / "manifests" / "base" / "rbac" / "rbac.yaml"
BOT = "system:serviceaccount:jitsudo:jitsudo-bot"


@pytest.fixture(scope="module")
def admin() -> client.ApiClient:
    configuration = client.Configuration()
    config.load_kube_config(config_file=KUBECONFIG, client_configuration=configuration)
    api = client.ApiClient(configuration)
    for document in yaml.safe_load_all(MANIFEST.read_text()):
        if document:
            try:
                utils.create_from_dict(api, document)
            except utils.FailToCreateError as error:
                if not all(e.status == 409 for e in error.api_exceptions):
                    raise
    return api


@pytest.fixture(scope="module")
def provider(admin: client.ApiClient) -> KubernetesProvider:
    """The bot's own permissions: impersonate its ServiceAccount."""
    configuration = client.Configuration()
    config.load_kube_config(config_file=KUBECONFIG, client_configuration=configuration)
    api = client.ApiClient(configuration)
    api.set_default_header("Impersonate-User", BOT)
    api.set_default_header("Impersonate-Group", "system:serviceaccounts")
    return KubernetesProvider(api, managed_label="jitsudo.dev/managed")


@pytest.fixture
def namespace(admin: client.ApiClient) -> Iterator[str]:
    name = f"jitsudo-live-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(admin)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


def allowed(admin: client.ApiClient, user: str, verb: str, resource: str, ns: str | None) -> bool:
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=user,
            resource_attributes=client.V1ResourceAttributes(
                verb=verb, resource=resource, group="apps", namespace=ns
            ),
        )
    )
    result = client.AuthorizationV1Api(admin).create_subject_access_review(review)
    return bool(result.status.allowed)


def grant_for(user: str, role: str, namespace: str | None) -> Grant:
    expires = datetime.now(UTC) + timedelta(minutes=5)
    return Grant(new_request_id(), user, role, Target(namespace), expires)


@pytest.mark.parametrize("cluster_wide", [False, True])
def test_grant_allows_then_revoke_removes(
    admin: client.ApiClient, provider: KubernetesProvider, namespace: str, cluster_wide: bool
) -> None:
    user = f"jitsudo-live-{uuid.uuid4().hex[:8]}@example.com"
    target_ns = None if cluster_wide else namespace
    grant = grant_for(user, "edit", target_ns)
    assert not allowed(admin, user, "create", "deployments", namespace)
    provider.preflight(grant)
    provider.grant(grant)
    try:
        provider.grant(grant)  # idempotent on a real server too
        assert provider.is_active(grant)
        assert allowed(admin, user, "create", "deployments", namespace)
        managed = {b.request_id for b in provider.list_managed()}
        assert grant.request_id in managed
        provider.extend(grant.request_id, grant.target, grant.expires_at + timedelta(minutes=5))
    finally:
        provider.revoke(grant.request_id, grant.target)
    assert not provider.is_active(grant)
    assert not allowed(admin, user, "create", "deployments", namespace)
    provider.revoke(grant.request_id, grant.target)  # NotFound is success


def test_preflight_refuses_on_a_real_server(
    admin: client.ApiClient, provider: KubernetesProvider, namespace: str
) -> None:
    with pytest.raises(ProviderError, match="does not exist"):
        provider.preflight(grant_for("u", "edit", f"{namespace}-missing"))
    with pytest.raises(ProviderError, match="does not exist"):
        provider.preflight(grant_for("u", "no-such-role-jitsudo", namespace))
    rbac = client.RbacAuthorizationV1Api(admin)
    role = f"jitsudo-live-unbindable-{uuid.uuid4().hex[:6]}"
    rbac.create_cluster_role(
        client.V1ClusterRole(
            metadata=client.V1ObjectMeta(name=role),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["secrets"], verbs=["get"])],
        )
    )
    try:
        with pytest.raises(ProviderError):  # no `bind` on it: escalation prevention says no
            provider.preflight(grant_for("u", role, namespace))
    finally:
        with contextlib.suppress(ApiException):
            rbac.delete_cluster_role(role)
