"""What happens to a write between decoding and storage, in upstream order.

Defaulting (RBAC apiGroups, namespace labels, lease MicroTimes), the
NamespaceLifecycle admission plugin (no objects in missing namespaces, no
deleting ``default``/``kube-system``/``kube-public``) and the RBAC registry's
escalation checks, which run before validation exactly as upstream: so a
caller without ``bind`` referencing a missing role gets 404 for the role.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .errors import JSON, bad_request, forbidden, not_found
from .rbac import Attributes, Authorizer, UserInfo, escalation_allowed
from .resources import (
    CLUSTER_ROLE_BINDINGS,
    CLUSTER_ROLES,
    LEASES,
    NAMESPACES,
    RBAC,
    ROLE_BINDINGS,
    ROLES,
    Resource,
)
from .seed import CLUSTER_ADMIN
from .seed import NAMESPACES as IMMORTAL_NAMESPACES
from .store import Store

BINDINGS = (ROLE_BINDINGS, CLUSTER_ROLE_BINDINGS)
ROLE_KINDS = (ROLES, CLUSTER_ROLES)


def apply_defaults(resource: Resource, obj: JSON) -> None:
    """Scheme defaulting, which upstream runs while decoding every body."""
    if resource in BINDINGS:
        ref = obj.setdefault("roleRef", {})
        if not ref.get("apiGroup"):
            ref["apiGroup"] = RBAC
        for subject in obj.get("subjects", []):
            if not subject.get("apiGroup") and subject.get("kind") in ("User", "Group"):
                subject["apiGroup"] = RBAC
    elif resource is NAMESPACES:
        name = obj["metadata"].get("name", "")
        if name:
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
    elif resource is LEASES:
        spec = obj.get("spec", {})
        for key in ("acquireTime", "renewTime"):
            if key in spec:
                spec[key] = _micro_time(spec[key])


def _micro_time(value: str) -> str:
    """Re-render a ``MicroTime`` the way the server stores it."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise bad_request(
            f'Lease in version "v1" cannot be handled as a Lease: parsing time "{value}" as '
            f'"2006-01-02T15:04:05.000000Z07:00": cannot parse'
        ) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def prepare_for_create(resource: Resource, obj: JSON) -> None:
    """``rest.BeforeCreate``: a new object is never already being deleted."""
    obj["metadata"].pop("deletionTimestamp", None)
    obj["metadata"].pop("deletionGracePeriodSeconds", None)
    if resource is NAMESPACES:
        obj["status"] = {"phase": "Active"}
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])


def prepare_for_update(resource: Resource, obj: JSON, old: JSON) -> None:
    """Server-owned fields come from the stored object, as in ``rest.BeforeUpdate``."""
    meta, old_meta = obj["metadata"], old["metadata"]
    if not meta.get("uid"):
        meta["uid"] = old_meta["uid"]
    meta["creationTimestamp"] = old_meta["creationTimestamp"]
    # "an update can never remove/change a deletion timestamp" (nor drop the grace period)
    if "deletionTimestamp" in old_meta:
        meta["deletionTimestamp"] = old_meta["deletionTimestamp"]
    if "deletionGracePeriodSeconds" in old_meta:
        meta.setdefault("deletionGracePeriodSeconds", old_meta["deletionGracePeriodSeconds"])
    if resource is NAMESPACES:
        obj["status"] = old.get("status", {})
        obj["spec"] = old.get("spec", {})


def require_namespace(store: Store, resource: Resource, namespace: str) -> None:
    """NamespaceLifecycle on create."""
    if resource.namespaced and store.get(NAMESPACES, "", namespace) is None:
        raise not_found("namespaces", "", namespace)


def check_namespace_delete(name: str) -> None:
    if name in IMMORTAL_NAMESPACES:
        raise forbidden("namespaces", "", name, "this namespace may not be deleted")


def _prune(value: Any) -> Any:
    """Semantic equality treats empty and absent containers alike."""
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in ({}, [], None)}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def only_gc_fields_changed(obj: JSON, old: JSON) -> bool:
    """``IsOnlyMutatingGCFields``: owner references and finalizers are free to change."""
    copied = {**obj, "metadata": dict(obj["metadata"])}
    for key in ("ownerReferences", "finalizers", "selfLink", "managedFields"):
        copied["metadata"].pop(key, None)
        if key in old["metadata"]:
            copied["metadata"][key] = old["metadata"][key]
    return bool(_prune(copied) == _prune(old))


def check_escalation(
    authorizer: Authorizer,
    user: UserInfo | None,
    resource: Resource,
    obj: JSON,
    old: JSON | None,
    request_name: str = "",
) -> None:
    """RBAC registry storage: refuse to grant what the caller does not hold (403)."""
    if user is None or escalation_allowed(user) or resource not in BINDINGS + ROLE_KINDS:
        return
    name = obj["metadata"].get("name", "")
    namespace = obj["metadata"].get("namespace", "") if resource.namespaced else ""
    if resource in ROLE_KINDS:
        escalate = Attributes(
            user, "escalate", resource.group, resource.plural, namespace, request_name
        )
        if authorizer.allowed(escalate):
            return
    if old is not None and only_gc_fields_changed(obj, old):
        return
    if resource in BINDINGS:
        ref = obj.get("roleRef", {})
        if authorizer.binding_authorized(user, ref, namespace):
            return
        rules = authorizer.role_rules(ref, namespace)
    else:
        rules = obj.get("rules", [])
    message = authorizer.escalation_error(user, namespace, rules)
    if message:
        raise forbidden(resource.plural, resource.group, name, message)
    aggregates = resource is CLUSTER_ROLES and obj.get("aggregationRule")
    if aggregates and authorizer.escalation_error(user, namespace, CLUSTER_ADMIN):
        raise forbidden(
            resource.plural,
            resource.group,
            name,
            "must have cluster-admin privileges to use the aggregationRule",
        )
