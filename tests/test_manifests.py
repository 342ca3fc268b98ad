"""The deploy manifests: schema-valid, and granting the bot exactly what it needs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.kubeapi import KubeApiServer

MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"
RBAC_MANIFEST = MANIFESTS / "rbac.yaml"
KUBERNETES_VERSION = "1.33.0"
BOT = "system:serviceaccount:jitsudo:jitsudo-bot"
RBAC = "rbac.authorization.k8s.io"
BINDABLE = ["view", "edit", "admin", "cluster-admin"]


def kubernetes_documents() -> list[tuple[str, int, dict[str, Any]]]:
    """Every Kubernetes object in manifests/*.yaml; other YAML (a Slack app manifest) is skipped."""
    found = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for index, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc:
                found.append((path.name, index, doc))
    return found


DOCUMENTS = kubernetes_documents()


def test_the_rbac_manifest_has_the_expected_objects() -> None:
    kinds = [
        (doc["kind"], doc["metadata"]["name"]) for name, _, doc in DOCUMENTS if name == "rbac.yaml"
    ]
    assert kinds == [
        ("Namespace", "jitsudo"),
        ("ServiceAccount", "jitsudo-bot"),
        ("ClusterRole", "jitsudo-rbac-manager"),
        ("ClusterRoleBinding", "jitsudo-rbac-manager"),
    ]


@pytest.mark.parametrize(
    "doc", [d for _, _, d in DOCUMENTS], ids=[f"{n}#{i}-{d['kind']}" for n, i, d in DOCUMENTS]
)
def test_documents_validate_against_the_kubernetes_schema(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_validator_does_catch_mistakes() -> None:
    bad = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "x"},
        "rules": [{"apiGroups": [""], "resource": ["pods"], "verbs": ["get"]}],
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)


@pytest.fixture(scope="module")
def cluster() -> Iterator[KubeApiServer]:
    """The manifest applied to a fresh stand-in cluster (also proves it is accepted)."""
    with KubeApiServer() as api:
        api.add_namespace("production")
        api.add_cluster_role(
            "custom", rules=[{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]
        )
        api.apply_manifest(RBAC_MANIFEST)
        yield api


@pytest.mark.parametrize("resource", ["rolebindings", "clusterrolebindings"])
@pytest.mark.parametrize("verb", ["create", "get", "list", "delete", "patch"])
def test_bot_manages_both_kinds_of_binding(
    cluster: KubeApiServer, resource: str, verb: str
) -> None:
    namespace = "production" if resource == "rolebindings" else None
    assert cluster.can(BOT, verb, resource, namespace=namespace)


@pytest.mark.parametrize("resource", ["rolebindings", "clusterrolebindings"])
@pytest.mark.parametrize("verb", ["update", "watch", "deletecollection", "escalate"])
def test_bot_has_no_other_verbs_on_bindings(
    cluster: KubeApiServer, resource: str, verb: str
) -> None:
    assert not cluster.can(BOT, verb, resource, namespace="production")


@pytest.mark.parametrize("role", BINDABLE)
def test_bot_binds_exactly_the_policy_roles(cluster: KubeApiServer, role: str) -> None:
    assert cluster.can(BOT, "bind", "clusterroles", name=role)
    assert cluster.can(BOT, "bind", "clusterroles", name=role, namespace="production")


@pytest.mark.parametrize("role", ["custom", "system:basic-user", "jitsudo-rbac-manager", ""])
def test_bot_binds_nothing_else(cluster: KubeApiServer, role: str) -> None:
    assert not cluster.can(BOT, "bind", "clusterroles", name=role)
    assert not cluster.can(BOT, "bind", "roles", name=role, namespace="production")


def test_bot_reads_roles_and_namespaces_for_preflight(cluster: KubeApiServer) -> None:
    assert cluster.can(BOT, "get", "clusterroles", name="edit")
    assert cluster.can(BOT, "get", "namespaces", api_group="", name="production")
    assert cluster.can(BOT, "list", "namespaces", api_group="")


@pytest.mark.parametrize(
    ("verb", "resource", "group", "namespace"),
    [
        ("create", "clusterroles", RBAC, None),
        ("update", "clusterroles", RBAC, None),
        ("list", "clusterroles", RBAC, None),
        ("create", "roles", RBAC, "production"),
        ("get", "secrets", "", "production"),
        ("list", "secrets", "", None),
        ("get", "pods", "", "production"),
        ("delete", "namespaces", "", None),
        ("create", "namespaces", "", None),
        ("create", "selfsubjectaccessreviews", "authorization.k8s.io", None),
        ("create", "subjectaccessreviews", "authorization.k8s.io", None),
        ("impersonate", "users", "", None),
        ("get", "leases", "coordination.k8s.io", "production"),
        ("delete", "leases", "coordination.k8s.io", "jitsudo"),
    ],
)
def test_bot_cannot_do_anything_else(
    cluster: KubeApiServer, verb: str, resource: str, group: str, namespace: str | None
) -> None:
    allowed = cluster.can(BOT, verb, resource, api_group=group, namespace=namespace)
    # every authenticated user may create self reviews (system:basic-user); that is not ours
    assert allowed is (resource == "selfsubjectaccessreviews")


@pytest.mark.parametrize("verb", ["get", "create", "update"])
def test_bot_needs_no_leases(cluster: KubeApiServer, verb: str) -> None:
    """Leadership is a PostgreSQL advisory lock, so no Lease rights are shipped."""
    assert not cluster.can(
        BOT, verb, "leases", api_group="coordination.k8s.io", namespace="jitsudo"
    )
