"""Turning a URL into what the authorizer sees (``endpoints/request.RequestInfoFactory``).

Resource requests live under ``/api/v1/...`` and ``/apis/<group>/<version>/...``;
everything else (``/version``, ``/api``, ``/apis``...) is a non-resource request
whose verb is the lower-cased HTTP method. As upstream, ``/api/v1/namespaces/x``
carries namespace ``x``, so a RoleBinding in ``x`` can grant ``get`` on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

_VERBS = {
    "POST": "create",
    "GET": "get",
    "HEAD": "get",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}
_NAMESPACE_SUBRESOURCES = ("status", "finalize")


@dataclass(frozen=True)
class RequestInfo:
    resource_request: bool
    path: str
    verb: str
    group: str = ""
    version: str = ""
    namespace: str = ""
    resource: str = ""
    name: str = ""
    subresource: str = ""
    depth: int = 0  # path segments after the resource; more than 3 is never routable
    namespace_in_path: bool = False


def parse_request_info(method: str, path: str, query: dict[str, list[str]]) -> RequestInfo:
    segments = [unquote(s) for s in path.strip("/").split("/")] if path.strip("/") else []
    plain = RequestInfo(False, path, method.lower())
    if not segments or segments[0] not in ("api", "apis"):
        return plain
    if segments[0] == "api":
        if len(segments) < 3:
            return plain
        group, version, rest = "", segments[1], segments[2:]
    else:
        if len(segments) < 4:
            return plain
        group, version, rest = segments[1], segments[2], segments[3:]
    verb = _VERBS.get(method, "")
    namespace, in_path = "", False
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest, in_path = rest[2:], True
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if not name and verb == "get":
        watch = query.get("watch", [""])[-1].lower() in ("true", "1")
        verb = "watch" if watch else "list"
    if not name and verb == "delete":
        verb = "deletecollection"
    return RequestInfo(
        True, path, verb, group, version, namespace, resource, name, subresource, len(rest), in_path
    )


def forbidden_reason(user: str, info: RequestInfo) -> str:
    """``responsewriters.forbiddenMessage``."""
    if not info.resource_request:
        return f'User "{user}" cannot {info.verb} path "{info.path}"'
    resource = f"{info.resource}/{info.subresource}" if info.subresource else info.resource
    text = f'User "{user}" cannot {info.verb} resource "{resource}" in API group "{info.group}"'
    if info.namespace:
        return f'{text} in the namespace "{info.namespace}"'
    return f"{text} at the cluster scope"
