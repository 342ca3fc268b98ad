"""Object validation that yields 422 Invalid, mirroring the real validators.

Name rules differ per type, exactly as upstream: namespaces are DNS-1123
labels, service accounts and leases DNS-1123 subdomains, while RBAC objects
only need to be valid path segments (``pkg/apis/rbac/validation``:
``minimalNameRequirements``) -- so ``system:foo`` and ``a_b`` are fine there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .errors import (
    JSON,
    FieldError,
    GoValue,
    go_repr,
    invalid_value,
    not_supported,
    required,
)
from .resources import RBAC, Resource

DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + "(\\." + DNS1123_LABEL_FMT + ")*"
QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
LABEL_VALUE_FMT = "(" + QUALIFIED_NAME_FMT + ")?"

_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character"
)
_QNAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character"
)
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', "
    "'_' or '.', and must start and end with an alphanumeric character"
)

NameCheck = Callable[[str], list[str]]


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    """``validation.RegexError``, including its double space before "or"."""
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def _max_len(n: int) -> str:
    return f"must be no more than {n} characters"


def dns1123_label(value: str) -> list[str]:
    errs = [_max_len(63)] if len(value) > 63 else []
    if not re.fullmatch(DNS1123_LABEL_FMT, value):
        errs.append(_regex_error(_LABEL_MSG, DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def dns1123_subdomain(value: str) -> list[str]:
    errs = [_max_len(253)] if len(value) > 253 else []
    if not re.fullmatch(DNS1123_SUBDOMAIN_FMT, value):
        errs.append(_regex_error(_SUBDOMAIN_MSG, DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def path_segment(value: str) -> list[str]:
    """``path.IsValidPathSegmentName``: the only rule RBAC object names must meet."""
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{bad}'" for bad in ("/", "%") if bad in value]


def qualified_name(value: str) -> list[str]:
    """``validation.IsQualifiedName``: label and annotation keys."""
    parts = value.split("/")
    errs: list[str] = []
    if len(parts) > 2:
        return [
            "a qualified name "
            + _regex_error(_QNAME_MSG, QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    name = parts[-1]
    if len(parts) == 2:
        if not parts[0]:
            errs.append("prefix part must be non-empty")
        else:
            errs += ["prefix part " + m for m in dns1123_subdomain(parts[0])]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part " + _max_len(63))
    if not re.fullmatch(QUALIFIED_NAME_FMT, name):
        errs.append(
            "name part "
            + _regex_error(_QNAME_MSG, QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
        )
    return errs


def label_value(value: str) -> list[str]:
    errs = [_max_len(63)] if len(value) > 63 else []
    if not re.fullmatch(LABEL_VALUE_FMT, value):
        errs.append(_regex_error(_LABEL_VALUE_MSG, LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


NAME_CHECKS: dict[str, NameCheck] = {
    "namespaces": dns1123_label,
    "serviceaccounts": dns1123_subdomain,
    "leases": dns1123_subdomain,
    "clusterroles": path_segment,
    "clusterrolebindings": path_segment,
    "roles": path_segment,
    "rolebindings": path_segment,
}


def validate_meta(resource: Resource, meta: JSON) -> list[FieldError]:
    """``ValidateObjectMeta``: name, namespace, labels, annotations."""
    errs: list[FieldError] = []
    name = meta.get("name", "")
    if not name:
        errs.append(required("metadata.name", "name or generateName is required"))
    else:
        check = NAME_CHECKS.get(resource.plural, dns1123_subdomain)
        errs += [invalid_value("metadata.name", name, m) for m in check(name)]
    if resource.namespaced and not meta.get("namespace"):
        errs.append(required("metadata.namespace"))
    if not resource.namespaced and meta.get("namespace"):
        errs.append(FieldError("Forbidden", "metadata.namespace", None, "not allowed on this type"))
    for key, value in sorted(meta.get("labels", {}).items()):
        errs += [invalid_value("metadata.labels", key, m) for m in qualified_name(key)]
        errs += [invalid_value("metadata.labels", value, m) for m in label_value(value)]
    annotations = meta.get("annotations", {})
    for key in sorted(annotations):
        errs += [invalid_value("metadata.annotations", key, m) for m in qualified_name(key.lower())]
    if sum(len(k) + len(v) for k, v in annotations.items()) > 256 * 1024:
        errs.append(
            FieldError(
                "Invalid", "metadata.annotations", GoValue(""), "must have at most 262144 bytes"
            )
        )
    return errs + validate_finalizers(meta.get("finalizers", []))


def validate_finalizers(finalizers: list[str]) -> list[FieldError]:
    """``ValidateFinalizers``: qualified names, and not both GC policies at once."""
    errs = [
        invalid_value("metadata.finalizers", f, m) for f in finalizers for m in qualified_name(f)
    ]
    if "orphan" in finalizers and "foregroundDeletion" in finalizers:
        errs.append(
            invalid_value(
                "metadata.finalizers",
                finalizers,
                "finalizer orphan and foregroundDeletion cannot be both set",
            )
        )
    return errs


def _go_pointer(value: Any) -> GoValue:
    """How ``field.Error`` prints a ``*metav1.Time`` or ``*int64``: nil is "null"."""
    if value is None:
        return GoValue('"null"')
    if isinstance(value, str):
        try:
            stamp = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            return GoValue(go_repr(value))
        return GoValue(stamp.strftime("%Y-%m-%d %H:%M:%S +0000 UTC"))
    return GoValue(str(value))


def validate_meta_update(new: JSON, old: JSON) -> list[FieldError]:
    """``ValidateObjectMetaUpdate``: identity and deletion fields never change, and an
    object being deleted takes no new finalizers."""
    errs = []
    if "deletionTimestamp" in old:
        extra = sorted(set(new.get("finalizers", [])) - set(old.get("finalizers", [])))
        if extra:
            why = (
                "no new finalizers can be added if the object is being deleted, "
                f"found new finalizers {go_repr(extra)}"
            )
            errs.append(FieldError("Forbidden", "metadata.finalizers", None, why))
    for key in ("name", "namespace", "uid", "creationTimestamp"):
        if new.get(key, "") != old.get(key, ""):
            errs.append(invalid_value(f"metadata.{key}", new.get(key, ""), "field is immutable"))
    for key in ("deletionTimestamp", "deletionGracePeriodSeconds"):
        if new.get(key) != old.get(key):
            value = _go_pointer(new.get(key))
            errs.append(invalid_value(f"metadata.{key}", value, "field is immutable"))
    return errs


def _role_ref_repr(ref: JSON) -> GoValue:
    return GoValue(
        f'rbac.RoleRef{{APIGroup:"{ref.get("apiGroup", "")}", Kind:"{ref.get("kind", "")}", '
        f'Name:"{ref.get("name", "")}"}}'
    )


def _validate_binding(obj: JSON, namespaced: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    ref = obj.get("roleRef", {})
    if ref.get("apiGroup", "") != RBAC:
        errs.append(not_supported("roleRef.apiGroup", ref.get("apiGroup", ""), [RBAC]))
    kinds = ["Role", "ClusterRole"] if namespaced else ["ClusterRole"]
    if ref.get("kind", "") not in kinds:
        errs.append(not_supported("roleRef.kind", ref.get("kind", ""), kinds))
    if not ref.get("name"):
        errs.append(required("roleRef.name"))
    else:
        errs += [invalid_value("roleRef.name", ref["name"], m) for m in path_segment(ref["name"])]
    for i, subject in enumerate(obj.get("subjects", [])):
        errs += _validate_subject(subject, namespaced, f"subjects[{i}]")
    return errs


def _validate_subject(subject: JSON, namespaced: bool, at: str) -> list[FieldError]:
    errs: list[FieldError] = []
    name, kind, group = (
        subject.get("name", ""),
        subject.get("kind", ""),
        subject.get("apiGroup", ""),
    )
    if not name:
        errs.append(required(f"{at}.name"))
    if kind == "ServiceAccount":
        if name:
            errs += [invalid_value(f"{at}.name", name, m) for m in dns1123_subdomain(name)]
        if group:
            errs.append(not_supported(f"{at}.apiGroup", group, [""]))
        if not namespaced and not subject.get("namespace"):
            errs.append(required(f"{at}.namespace"))
    elif kind in ("User", "Group"):
        if not name:
            what = "user" if kind == "User" else "group"
            errs.append(invalid_value(f"{at}.name", name, f"{what} name cannot be empty"))
        if group != RBAC:
            errs.append(not_supported(f"{at}.apiGroup", group, [RBAC]))
    else:
        errs.append(not_supported(f"{at}.kind", kind, ["ServiceAccount", "User", "Group"]))
    return errs


def _validate_rules(obj: JSON, namespaced: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, rule in enumerate(obj.get("rules", [])):
        at = f"rules[{i}]"
        if not rule.get("verbs"):
            errs.append(required(f"{at}.verbs", "verbs must contain at least one value"))
        urls = rule.get("nonResourceURLs", [])
        if urls:
            if namespaced:
                errs.append(
                    invalid_value(
                        f"{at}.nonResourceURLs",
                        urls,
                        "namespaced rules cannot apply to non-resource URLs",
                    )
                )
            if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
                errs.append(
                    invalid_value(
                        f"{at}.nonResourceURLs",
                        urls,
                        "rules cannot apply to both regular resources and non-resource URLs",
                    )
                )
            continue
        if not rule.get("apiGroups"):
            errs.append(
                required(f"{at}.apiGroups", "resource rules must supply at least one api group")
            )
        if not rule.get("resources"):
            errs.append(
                required(f"{at}.resources", "resource rules must supply at least one resource")
            )
        if rule.get("resourceNames") and len(rule.get("resources", [])) > 1:
            errs.append(
                required(f"{at}.resourceNames", "resource names cannot apply to multiple resources")
            )
    return errs


def _validate_lease(obj: JSON) -> list[FieldError]:
    spec, errs = obj.get("spec", {}), []
    if "leaseDurationSeconds" in spec and spec["leaseDurationSeconds"] <= 0:
        errs.append(
            invalid_value(
                "spec.leaseDurationSeconds", spec["leaseDurationSeconds"], "must be greater than 0"
            )
        )
    if "leaseTransitions" in spec and spec["leaseTransitions"] < 0:
        errs.append(
            invalid_value(
                "spec.leaseTransitions",
                spec["leaseTransitions"],
                "must be greater than or equal to 0",
            )
        )
    return errs


def validate(resource: Resource, obj: JSON, old: JSON | None = None) -> list[FieldError]:
    """All field errors for a create (``old`` is None) or an update."""
    errs = validate_meta(resource, obj["metadata"])
    plural = resource.plural
    if plural in ("rolebindings", "clusterrolebindings"):
        errs += _validate_binding(obj, plural == "rolebindings")
    elif plural in ("roles", "clusterroles"):
        errs += _validate_rules(obj, plural == "roles")
    elif plural == "leases":
        errs += _validate_lease(obj)
    if old is not None:
        errs += validate_meta_update(obj["metadata"], old["metadata"])
        if "roleRef" in old and obj.get("roleRef") != old["roleRef"]:
            errs.append(
                invalid_value(
                    "roleRef", _role_ref_repr(obj.get("roleRef", {})), "cannot change roleRef"
                )
            )
    return errs
