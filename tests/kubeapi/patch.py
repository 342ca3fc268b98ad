"""The three PATCH formats the python client can send.

``merge-patch+json`` is RFC 7386. ``strategic-merge-patch+json`` is applied as a
merge patch: for the types served here upstream declares no list merge keys
(subjects, rules are replaced whole), so the results agree except for
``$patch`` directives and metadata lists like finalizers. ``json-patch+json``
is RFC 6902 with add/remove/replace/move/copy/test.
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import ApiError, bad_request

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _unprocessable(message: str) -> ApiError:
    return ApiError(422, "Invalid", message, {})


def _parse_pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _unprocessable(f"JSON pointer {path!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str], path: str) -> tuple[Any, str]:
    node = doc
    for part in parts[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise _unprocessable(f'doc is missing path: "{path}": missing value')
    return node, parts[-1]


def _get(doc: Any, path: str) -> Any:
    parts = _parse_pointer(path)
    if not parts:
        return doc
    node, last = _parent(doc, parts, path)
    if isinstance(node, dict) and last in node:
        return node[last]
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        return node[int(last)]
    raise _unprocessable(f'doc is missing path: "{path}": missing value')


def _remove(doc: Any, path: str) -> Any:
    parts = _parse_pointer(path)
    node, last = _parent(doc, parts, path)
    if isinstance(node, dict) and last in node:
        return node.pop(last)
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        return node.pop(int(last))
    raise _unprocessable(
        f'remove operation does not apply: doc is missing path: "{path}": missing value'
    )


def _add(doc: Any, path: str, value: Any, *, replace: bool = False) -> Any:
    parts = _parse_pointer(path)
    if not parts:
        return copy.deepcopy(value)
    node, last = _parent(doc, parts, path)
    if isinstance(node, dict):
        if replace and last not in node:
            raise _unprocessable(
                f"replace operation does not apply: doc is missing key: {path}: missing value"
            )
        node[last] = copy.deepcopy(value)
    elif isinstance(node, list):
        if last == "-" and not replace:
            node.append(copy.deepcopy(value))
        elif last.isdigit() and int(last) <= len(node) - (1 if replace else 0):
            if replace:
                node[int(last)] = copy.deepcopy(value)
            else:
                node.insert(int(last), copy.deepcopy(value))
        else:
            raise _unprocessable(f"add operation does not apply: doc is missing path: {path}")
    else:
        raise _unprocessable(f'doc is missing path: "{path}": missing value')
    return doc


def json_patch(target: Any, ops: Any) -> Any:
    """RFC 6902; a malformed patch is 400, one that does not apply is 422."""
    if not isinstance(ops, list) or not all(isinstance(op, dict) for op in ops):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(target)
    for op in ops:
        kind, path = op.get("op"), op.get("path")
        if not isinstance(path, str):
            raise bad_request(f"Unexpected kind: {kind}")
        if kind in ("add", "replace", "test") and "value" not in op:
            raise _unprocessable(f"Unexpected kind: {kind} is missing value")
        if kind == "add":
            doc = _add(doc, path, op["value"])
        elif kind == "replace":
            doc = _add(doc, path, op["value"], replace=True)
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "test":
            if _get(doc, path) != op["value"]:
                raise _unprocessable(f"testing value {path} failed: test failed")
        elif kind in ("move", "copy"):
            source = op.get("from")
            if not isinstance(source, str):
                raise _unprocessable(f"{kind} operation is missing from")
            value = _remove(doc, source) if kind == "move" else copy.deepcopy(_get(doc, source))
            doc = _add(doc, path, value)
        else:
            raise bad_request(f"Unexpected kind: {kind}")
    return doc


def check_patch_type(content_type: str) -> str:
    """The media type of a PATCH, or 415 as the real handler answers before reading it."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media in (JSON_PATCH, MERGE, STRATEGIC):
        return media
    raise ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{JSON_PATCH}, {MERGE}, {STRATEGIC}"
        + (" (server-side apply is not implemented by this stand-in)" if media == APPLY else ""),
        {},
    )


def apply_patch(content_type: str, target: Any, patch: Any) -> Any:
    media = check_patch_type(content_type)
    if media == JSON_PATCH:
        return json_patch(target, patch)
    if not isinstance(patch, dict):
        raise bad_request(
            "json: cannot unmarshal array into Go value of type map[string]interface {}"
        )
    return merge_patch(target, {k: v for k, v in patch.items() if not k.startswith("$")})
