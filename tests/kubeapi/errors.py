"""Kubernetes-shaped failures.

Every error leaves the stand-in as a ``Status`` body with the same code, reason,
message and details the real API server would produce, because bot code (and
the python client's ``ApiException``) keys on exactly those. Shapes and wording
follow ``k8s.io/apimachinery/pkg/api/errors`` and ``.../util/validation/field``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]

OPTIMISTIC_LOCK_MSG = (
    "the object has been modified; please apply your changes to the latest version and try again"
)

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class ApiError(Exception):
    """A failed API call; ``status_body`` is what goes on the wire."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: JSON | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    @property
    def status_body(self) -> JSON:
        body: JSON = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
        }
        if self.reason:  # StatusReasonUnknown is "" and omitted, like Go's omitempty
            body["reason"] = self.reason
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def qualified(resource: str, group: str) -> str:
    """``schema.GroupResource.String()``: ``rolebindings.rbac.authorization.k8s.io``."""
    return f"{resource}.{group}" if group else resource


def details(name: str = "", group: str = "", kind: str = "", **extra: Any) -> JSON:
    """``StatusDetails`` with Go's omitempty: empty fields are left out."""
    out: JSON = {k: v for k, v in (("name", name), ("group", group), ("kind", kind)) if v}
    out.update({k: v for k, v in extra.items() if v})
    return out


def not_found(resource: str, group: str, name: str) -> ApiError:
    msg = f"{qualified(resource, group)} {go_quote(name)} not found"
    return ApiError(404, "NotFound", msg, details(name, group, resource))


def already_exists(resource: str, group: str, name: str) -> ApiError:
    msg = f"{qualified(resource, group)} {go_quote(name)} already exists"
    return ApiError(409, "AlreadyExists", msg, details(name, group, resource))


def conflict(resource: str, group: str, name: str, why: str = OPTIMISTIC_LOCK_MSG) -> ApiError:
    msg = f"Operation cannot be fulfilled on {qualified(resource, group)} {go_quote(name)}: {why}"
    return ApiError(409, "Conflict", msg, details(name, group, resource))


def forbidden(resource: str, group: str, name: str, why: str) -> ApiError:
    if not resource and not group:
        msg = f"forbidden: {why}"
    elif name:
        msg = f"{qualified(resource, group)} {go_quote(name)} is forbidden: {why}"
    else:
        msg = f"{qualified(resource, group)} is forbidden: {why}"
    return ApiError(403, "Forbidden", msg, details(name, group, resource))


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def path_not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def method_not_allowed() -> ApiError:
    msg = "the server does not allow this method on the requested resource"
    return ApiError(405, "MethodNotAllowed", msg, {})


def internal(message: str) -> ApiError:
    """``errors.NewInternalError``."""
    details = {"causes": [{"message": message}]}
    return ApiError(500, "InternalError", f"Internal error occurred: {message}", details)


def unknown(code: int, message: str) -> ApiError:
    """A plain Go error that reached the handler: reason is StatusReasonUnknown ("")."""
    return ApiError(code, "", message)


def for_code(
    code: int, message: str, resource: str = "", group: str = "", name: str = ""
) -> ApiError:
    """An error of any code (fault injection), with the reason Kubernetes uses for it."""
    return ApiError(code, _REASONS.get(code, ""), message, details(name, group, resource))


# ---- field errors (k8s.io/apimachinery/pkg/util/validation/field) ----


class GoValue(str):
    """A value already rendered the way Go's ``%#v`` would, printed verbatim."""


def go_quote(value: str) -> str:
    """Go's ``%q`` for the strings we meet (close enough: JSON string escaping)."""
    return json.dumps(value, ensure_ascii=False)


def go_repr(value: Any) -> str:
    if isinstance(value, GoValue):
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "[]string{" + ", ".join(go_quote(v) for v in value) + "}"
    return json.dumps(value, sort_keys=True)


_FIELD_TYPES = {
    "Invalid": ("FieldValueInvalid", "Invalid value"),
    "Required": ("FieldValueRequired", "Required value"),
    "NotSupported": ("FieldValueNotSupported", "Unsupported value"),
    "Forbidden": ("FieldValueForbidden", "Forbidden"),
    "Duplicate": ("FieldValueDuplicate", "Duplicate value"),
}


@dataclass(frozen=True)
class FieldError:
    """One ``field.Error``; ``kind`` is Invalid/Required/NotSupported/Forbidden/Duplicate."""

    kind: str
    field: str
    value: Any = None
    detail: str = ""

    def body(self) -> str:
        label = _FIELD_TYPES[self.kind][1]
        text = (
            label if self.kind in ("Required", "Forbidden") else f"{label}: {go_repr(self.value)}"
        )
        return f"{text}: {self.detail}" if self.detail else text

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}"


def invalid_value(field: str, value: Any, detail: str) -> FieldError:
    return FieldError("Invalid", field, value, detail)


def required(field: str, detail: str = "") -> FieldError:
    return FieldError("Required", field, None, detail)


def not_supported(field: str, value: Any, supported: list[str]) -> FieldError:
    detail = "supported values: " + ", ".join(go_quote(v) for v in supported)
    return FieldError("NotSupported", field, value, detail)


def invalid(group: str, kind: str, name: str, errs: list[FieldError]) -> ApiError:
    """``errors.NewInvalid``: 422 with one cause per field error."""
    texts: list[str] = []
    for err in errs:  # ToAggregate de-duplicates identical messages
        if str(err) not in texts:
            texts.append(str(err))
    agg = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    what = f"{kind}.{group}" if group else kind
    causes = [
        {"reason": _FIELD_TYPES[e.kind][0], "message": e.body(), "field": e.field} for e in errs
    ]
    msg = f"{what} {go_quote(name)} is invalid: {agg}"
    return ApiError(422, "Invalid", msg, details(name, group, kind, causes=causes))
