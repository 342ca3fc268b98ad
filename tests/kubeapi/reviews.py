"""Access reviews and discovery: the endpoints that are computed, not stored.

``SelfSubjectAccessReview`` answers for the caller, ``SubjectAccessReview`` for
``spec.user``/``spec.groups`` exactly as given (no implicit groups), both with
the same authorizer as real requests. Discovery is just enough for clients
that look before they leap.
"""

from __future__ import annotations

from typing import Any

from .decode import decode_object
from .errors import JSON, FieldError, invalid, invalid_value, path_not_found
from .rbac import Attributes, Authorizer, UserInfo
from .resources import RESOURCES, Resource

KUBE_VERSION = {
    "major": "1",
    "minor": "33",
    "emulationMajor": "1",
    "emulationMinor": "33",
    "minCompatibilityMajor": "1",
    "minCompatibilityMinor": "32",
    "gitVersion": "v1.33.0",
    "gitCommit": "60a317eadfcb839692a68eab88b2096f4d708f4f",
    "gitTreeState": "clean",
    "buildDate": "2025-04-23T13:04:38Z",
    "goVersion": "go1.24.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def validate_review(resource: Resource, spec: JSON) -> list[FieldError]:
    """(Self)SubjectAccessReview spec checks."""
    errs: list[FieldError] = []
    has_res, has_nonres = (
        bool(spec.get("resourceAttributes")),
        bool(spec.get("nonResourceAttributes")),
    )
    if has_res == has_nonres:
        value: Any = spec.get("resourceAttributes")
        errs.append(
            invalid_value(
                "spec.resourceAttributes",
                value,
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )
        )
    if (
        resource.plural == "subjectaccessreviews"
        and not spec.get("user")
        and not spec.get("groups")
    ):
        errs.append(
            invalid_value(
                "spec.user", spec.get("user", ""), "at least one of user or group must be specified"
            )
        )
    return errs


def review(authorizer: Authorizer, resource: Resource, user: UserInfo, body: Any) -> JSON:
    obj, _ = decode_object(resource, body, "Ignore")
    spec: JSON = obj.get("spec", {})
    errs = validate_review(resource, spec)
    if errs:
        raise invalid(resource.group, resource.kind, "", errs)
    if resource.plural == "subjectaccessreviews":
        user = UserInfo(spec.get("user", ""), tuple(spec.get("groups", [])))
    if spec.get("resourceAttributes"):
        ra = spec["resourceAttributes"]
        attrs = Attributes(
            user,
            ra.get("verb", ""),
            ra.get("group", ""),
            ra.get("resource", ""),
            ra.get("namespace", ""),
            ra.get("name", ""),
            ra.get("subresource", ""),
        )
    else:
        nra = spec["nonResourceAttributes"]
        attrs = Attributes(
            user, nra.get("verb", ""), path=nra.get("path", ""), resource_request=False
        )
    allowed, reason = authorizer.authorize(attrs)
    status: JSON = {"allowed": allowed}
    if reason:
        status["reason"] = reason
    return {
        "kind": resource.kind,
        "apiVersion": resource.api_version,
        "metadata": {},
        "spec": spec,
        "status": status,
    }


def _group_versions() -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for r in RESOURCES:
        if r.group and r.version not in groups.setdefault(r.group, []):
            groups[r.group].append(r.version)
    return groups


def _api_group(name: str, versions: list[str]) -> JSON:
    listed = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": listed, "preferredVersion": listed[0]}


def discovery(path: str, host: str) -> JSON:
    """``/version``, ``/api``, ``/apis`` and the per-group-version resource lists."""
    parts = [p for p in path.split("/") if p]
    groups = _group_versions()
    if parts == ["version"]:
        return dict(KUBE_VERSION)
    if parts == ["api"]:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
        }
    if parts == ["apis"]:
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [_api_group(g, v) for g, v in groups.items()],
        }
    if len(parts) == 2 and parts[0] == "apis" and parts[1] in groups:
        return {"kind": "APIGroup", "apiVersion": "v1", **_api_group(parts[1], groups[parts[1]])}
    if parts == ["api", "v1"] or (len(parts) == 3 and parts[0] == "apis"):
        group, version = ("", "v1") if parts[0] == "api" else (parts[1], parts[2])
        served = [r for r in RESOURCES if r.group == group and r.version == version]
        if served:
            return {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": served[0].api_version,
                "resources": [_api_resource(r) for r in served],
            }
    raise path_not_found()


def _api_resource(r: Resource) -> JSON:
    out: JSON = {
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": r.verbs,
    }
    if r.short_names:
        out["shortNames"] = list(r.short_names)
    return out
