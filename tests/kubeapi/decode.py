"""Request-body decoding, as strict as the Go JSON decoder behind the real server.

Go decodes into typed structs: a wrong JSON type is a 400, ``null`` means "not
set", and unknown fields are dropped with a warning (``fieldValidation=Warn``,
the default since 1.27), silently (``Ignore``) or rejected (``Strict``).
"""

from __future__ import annotations

import json
from typing import Any

from .errors import JSON, ApiError, bad_request
from .resources import ANY, STR_MAP, Resource, Schema

FIELD_VALIDATION = ("Ignore", "Warn", "Strict")


def parse_json(raw: bytes, what: str) -> Any:
    """Parse a body; malformed JSON is a 400 like the real decoder's."""
    try:
        return json.loads(raw.decode("utf-8") or "null")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request(
            f"the object provided is unrecognized (must be of type {what}): "
            f"couldn't get version/kind; json parse error: {exc}"
        ) from exc


def decode_object(
    resource: Resource, body: Any, field_validation: str | None
) -> tuple[JSON, list[str]]:
    """Type-check ``body`` against the resource; returns (object, warnings)."""
    mode = field_validation or "Warn"
    if mode not in FIELD_VALIDATION:
        raise bad_request(
            f'fieldValidation parameter unsupported: "{mode}", valid values: '
            '"Ignore", "Warn", "Strict"'
        )
    if not isinstance(body, dict):
        raise bad_request(
            f"the object provided is unrecognized (must be of type {resource.kind}): "
            f"couldn't get version/kind; json parse error: expected an object"
        )
    api_version = body.get("apiVersion")
    if api_version and api_version != resource.api_version:
        raise bad_request(
            f"the API version in the data ({api_version}) does not match the expected "
            f"API version ({resource.api_version})"
        )
    kind = body.get("kind")
    if kind and kind != resource.kind:
        raise bad_request(
            f'{resource.kind} in version "{resource.version}" cannot be handled as a {kind}: '
            f"the kind in the data ({kind}) does not match the expected kind ({resource.kind})"
        )
    unknown: list[str] = []
    obj = _walk(resource, resource.schema, body, "", unknown)
    if unknown and mode == "Strict":
        raise bad_request(
            "strict decoding error: " + ", ".join(f'unknown field "{f}"' for f in unknown)
        )
    warnings = [f'unknown field "{f}"' for f in unknown] if mode == "Warn" else []
    assert isinstance(obj, dict)
    obj.pop("apiVersion", None)
    obj.pop("kind", None)
    meta = obj.setdefault("metadata", {})
    for key in [k for k, v in meta.items() if v in ([], {})]:
        del meta[key]  # every ObjectMeta field is omitempty: [] and {} are never stored
    return obj, warnings


def _type_error(resource: Resource, path: str, value: Any, want: str) -> ApiError:
    got = {bool: "bool", int: "number", float: "number", str: "string", list: "array"}.get(
        type(value), "object"
    )
    return bad_request(
        f'{resource.kind} in version "{resource.version}" cannot be handled as a '
        f"{resource.kind}: json: cannot unmarshal {got} into Go struct field "
        f"{resource.kind}.{path} of type {want}"
    )


def _walk(resource: Resource, schema: Schema, value: Any, path: str, unknown: list[str]) -> Any:
    if schema == ANY:
        return value
    if schema == STR_MAP:
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise _type_error(resource, path, value, "map[string]string")
        return dict(value)
    if isinstance(schema, list):
        if not isinstance(value, list):
            raise _type_error(resource, path, value, "[]" + _go_name(schema[0]))
        return [_walk(resource, schema[0], item, path, unknown) for item in value]
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            raise _type_error(resource, path, value, "struct")
        out: JSON = {}
        for key, item in value.items():
            sub = f"{path}.{key}" if path else key
            if key not in schema:
                unknown.append(sub)
            elif item is not None:  # JSON null leaves a Go field at its zero value
                out[key] = _walk(resource, schema[key], item, sub, unknown)
        return out
    ok = isinstance(value, schema) and not (schema is int and isinstance(value, bool))
    if not ok:
        raise _type_error(resource, path, value, _go_name(schema))
    return value


def _go_name(schema: Schema) -> str:
    if isinstance(schema, type):
        return {str: "string", int: "int32", bool: "bool"}.get(schema, "struct")
    return "struct"
