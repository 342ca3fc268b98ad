"""The resource types the stand-in serves, with just enough schema to decode bodies.

Each ``Resource`` carries what the real server derives from its scheme: the URL
plural, the kind, scope, list kind, and a small field schema. The schema lets
the stand-in reject wrongly-typed bodies with 400 (as Go's JSON decoder does)
and drop or refuse unknown fields per ``fieldValidation`` (Warn by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Schema nodes: a Python type, STR_MAP (map[string]string), ANY, [node] or {field: node}.
STR_MAP = "map[string]string"
ANY = "any"
Schema = Any

OWNER_REF = {
    "apiVersion": str,
    "kind": str,
    "name": str,
    "uid": str,
    "controller": bool,
    "blockOwnerDeletion": bool,
}
METADATA = {
    "name": str,
    "generateName": str,
    "namespace": str,
    "selfLink": str,
    "uid": str,
    "resourceVersion": str,
    "generation": int,
    "creationTimestamp": str,
    "deletionTimestamp": str,
    "deletionGracePeriodSeconds": int,
    "labels": STR_MAP,
    "annotations": STR_MAP,
    "ownerReferences": [OWNER_REF],
    "finalizers": [str],
    "managedFields": [ANY],
}
POLICY_RULE = {
    "verbs": [str],
    "apiGroups": [str],
    "resources": [str],
    "resourceNames": [str],
    "nonResourceURLs": [str],
}
ROLE_REF = {"apiGroup": str, "kind": str, "name": str}
SUBJECT = {"kind": str, "apiGroup": str, "name": str, "namespace": str}
RESOURCE_ATTRIBUTES = {
    "namespace": str,
    "verb": str,
    "group": str,
    "version": str,
    "resource": str,
    "subresource": str,
    "name": str,
    "fieldSelector": ANY,
    "labelSelector": ANY,
}
NON_RESOURCE_ATTRIBUTES = {"path": str, "verb": str}
SAR_STATUS = {"allowed": bool, "denied": bool, "reason": str, "evaluationError": str}


@dataclass(frozen=True, eq=False)  # identity hash: each resource is a singleton
class Resource:
    """One REST resource, e.g. ``rolebindings`` in ``rbac.authorization.k8s.io/v1``."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    fields: dict[str, Schema]
    allow_create_on_update: bool = False
    allow_unconditional_update: bool = True
    stored: bool = True  # access reviews are computed, never stored
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def schema(self) -> dict[str, Schema]:
        return {"apiVersion": str, "kind": str, "metadata": METADATA, **self.fields}

    @property
    def verbs(self) -> list[str]:
        if not self.stored:
            return ["create"]
        return ["create", "delete", "get", "list", "patch", "update"]


RBAC = "rbac.authorization.k8s.io"
AUTHZ = "authorization.k8s.io"
COORDINATION = "coordination.k8s.io"

RESOURCES: tuple[Resource, ...] = (
    Resource(
        "",
        "v1",
        "namespaces",
        "Namespace",
        False,
        {"spec": {"finalizers": [str]}, "status": {"phase": str, "conditions": [ANY]}},
        short_names=("ns",),
    ),
    Resource(
        "",
        "v1",
        "serviceaccounts",
        "ServiceAccount",
        True,
        {"secrets": [ANY], "imagePullSecrets": [ANY], "automountServiceAccountToken": bool},
        short_names=("sa",),
    ),
    Resource(
        RBAC,
        "v1",
        "clusterroles",
        "ClusterRole",
        False,
        {"rules": [POLICY_RULE], "aggregationRule": {"clusterRoleSelectors": [ANY]}},
        allow_create_on_update=True,
    ),
    Resource(
        RBAC,
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        False,
        {"roleRef": ROLE_REF, "subjects": [SUBJECT]},
        allow_create_on_update=True,
    ),
    Resource(RBAC, "v1", "roles", "Role", True, {"rules": [POLICY_RULE]}, True),
    Resource(
        RBAC,
        "v1",
        "rolebindings",
        "RoleBinding",
        True,
        {"roleRef": ROLE_REF, "subjects": [SUBJECT]},
        allow_create_on_update=True,
    ),
    Resource(
        COORDINATION,
        "v1",
        "leases",
        "Lease",
        True,
        {
            "spec": {
                "holderIdentity": str,
                "leaseDurationSeconds": int,
                "acquireTime": str,
                "renewTime": str,
                "leaseTransitions": int,
                "strategy": str,
                "preferredHolder": str,
            }
        },
        allow_create_on_update=True,
        allow_unconditional_update=False,
    ),
    Resource(
        AUTHZ,
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        False,
        {
            "spec": {
                "resourceAttributes": RESOURCE_ATTRIBUTES,
                "nonResourceAttributes": NON_RESOURCE_ATTRIBUTES,
            },
            "status": SAR_STATUS,
        },
        stored=False,
    ),
    Resource(
        AUTHZ,
        "v1",
        "subjectaccessreviews",
        "SubjectAccessReview",
        False,
        {
            "spec": {
                "resourceAttributes": RESOURCE_ATTRIBUTES,
                "nonResourceAttributes": NON_RESOURCE_ATTRIBUTES,
                "user": str,
                "groups": [str],
                "extra": ANY,
                "uid": str,
            },
            "status": SAR_STATUS,
        },
        stored=False,
    ),
)

_BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
_BY_KIND = {(r.api_version, r.kind): r for r in RESOURCES}


def lookup(group: str, version: str, plural: str) -> Resource | None:
    return _BY_PATH.get((group, version, plural))


def by_kind(api_version: str, kind: str) -> Resource | None:
    return _BY_KIND.get((api_version, kind))


def by_api_version(api_version: str, plural: str) -> Resource:
    """For the direct (test) API: ``("rbac.authorization.k8s.io/v1", "rolebindings")``."""
    group, _, version = api_version.rpartition("/")
    found = lookup(group, version, plural)
    if found is None:
        raise KeyError(f"unknown resource {plural!r} in {api_version!r}")
    return found


NAMESPACES = by_api_version("v1", "namespaces")
SERVICE_ACCOUNTS = by_api_version("v1", "serviceaccounts")
CLUSTER_ROLES = by_api_version(f"{RBAC}/v1", "clusterroles")
CLUSTER_ROLE_BINDINGS = by_api_version(f"{RBAC}/v1", "clusterrolebindings")
ROLES = by_api_version(f"{RBAC}/v1", "roles")
ROLE_BINDINGS = by_api_version(f"{RBAC}/v1", "rolebindings")
LEASES = by_api_version(f"{COORDINATION}/v1", "leases")
