"""One HTTP request through the server, in the real filter-chain order.

authentication (401) -> record -> authorization (403) -> injected delay ->
injected fault -> routing (404/405) -> the verb -> injected delay (``after``).
Kept apart from ``server.py`` so the request logic has no socket code in it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import parse_qs, urlsplit

from .crud import Crud
from .decode import parse_json
from .errors import (
    JSON,
    ApiError,
    bad_request,
    forbidden,
    internal,
    invalid,
    method_not_allowed,
    not_supported,
    path_not_found,
    unauthorized,
)
from .faults import Delay, Faults
from .patch import check_patch_type
from .rbac import Attributes, Authorizer, UserInfo
from .requestinfo import RequestInfo, forbidden_reason, parse_request_info
from .resources import Resource, lookup
from .reviews import discovery, review
from .selectors import exact_name, parse_field_selector
from .store import Store

_OPTIONS_KIND = {"POST": "CreateOptions", "PUT": "UpdateOptions", "PATCH": "PatchOptions"}


class RecordedRequest(NamedTuple):
    """One request as the server saw it; ``user`` is None when unauthenticated."""

    method: str
    path: str
    query: dict[str, str]
    user: str | None


@dataclass
class Response:
    code: int
    body: JSON
    headers: list[tuple[str, str]] = field(default_factory=list)


class Api:
    """The server minus the sockets: state plus ``handle()``."""

    def __init__(self) -> None:
        self.store = Store()
        self.authorizer = Authorizer(self.store)
        self.crud = Crud(self.store, self.authorizer)
        self.tokens: dict[str, UserInfo] = {}
        self.requests: list[RecordedRequest] = []
        self.faults = Faults()
        self._lock = threading.Lock()
        self.host = ""

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Response:
        split = urlsplit(target)
        path = split.path or "/"
        query = parse_qs(split.query, keep_blank_values=True)
        auth = headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        user = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        with self._lock:
            flat = {k: v[-1] for k, v in query.items()}
            self.requests.append(RecordedRequest(method, path, flat, user.name if user else None))
        delay: Delay | None = None
        try:
            if user is None:
                raise unauthorized()
            info = parse_request_info(method, path, query)
            self._authorize(user, info, flat)
            delay = self.faults.take_delay(method, info)
            if delay is not None and not delay.after:
                self.faults.sleep(delay.seconds)
            fault = self.faults.take_fault(method, info)
            if fault is not None:
                raise fault.error(info)
            response = self._route(method, info, query, headers, body, user)
        except ApiError as exc:
            response = Response(exc.code, exc.status_body, list(exc.headers.items()))
        except Exception as exc:  # a stand-in bug: answer 500 rather than drop the connection
            response = Response(500, internal(f"{type(exc).__name__}: {exc}").status_body)
        if delay is not None and delay.after:  # done (or failed) for real; the answer is late
            self.faults.sleep(delay.seconds)
        return response

    def _authorize(self, user: UserInfo, info: RequestInfo, query: dict[str, str]) -> None:
        name = info.name
        if info.resource_request and not name and info.verb in ("list", "watch"):
            try:  # a list pinned to one name is authorized as that name
                fields = query.get("fieldSelector", "")
                name = exact_name(parse_field_selector(fields, info.resource, True))
            except ApiError:
                name = ""
        attrs = Attributes(
            user,
            info.verb,
            info.group,
            info.resource,
            info.namespace,
            name,
            info.subresource,
            info.path,
            info.resource_request,
        )
        if not self.authorizer.allowed(attrs):
            why = forbidden_reason(user.name, info)
            if info.resource_request:
                raise forbidden(info.resource, info.group, info.name, why)
            raise forbidden("", "", "", why)

    def _route(
        self,
        method: str,
        info: RequestInfo,
        query: dict[str, list[str]],
        headers: Mapping[str, str],
        raw: bytes,
        user: UserInfo,
    ) -> Response:
        if not info.resource_request:
            if method != "GET":
                raise method_not_allowed()
            return Response(200, discovery(info.path, self.host))
        resource = lookup(info.group, info.version, info.resource)
        if (
            resource is None
            or info.depth > 2
            or (info.namespace_in_path and not resource.namespaced)
            or (resource.namespaced and info.name and not info.namespace_in_path)
        ):
            raise path_not_found()
        if info.verb == "watch":  # not implemented: see the package docstring
            raise method_not_allowed()
        if not resource.stored:
            if method != "POST" or info.name:
                raise method_not_allowed()
            return Response(
                201, review(self.authorizer, resource, user, parse_json(raw, resource.kind))
            )
        return self._verb(method, resource, info, query, headers, raw, user)

    def _verb(
        self,
        method: str,
        resource: Resource,
        info: RequestInfo,
        query: dict[str, list[str]],
        headers: Mapping[str, str],
        raw: bytes,
        user: UserInfo,
    ) -> Response:
        flat = {k: v[-1] for k, v in query.items()}
        ns, name = info.namespace if resource.namespaced else "", info.name
        if method == "GET":
            if name:
                return Response(200, self.crud.get(resource, ns, name))
            return Response(200, self.crud.list_objects(resource, ns, flat))
        if method == "DELETE" and name:
            options = parse_json(raw, "DeleteOptions") if raw.strip() else {}
            in_body = (options.get("dryRun") or []) if isinstance(options, dict) else []
            if not isinstance(options, dict) or not isinstance(in_body, list):
                raise bad_request("the body of a DELETE must be a DeleteOptions object")
            dry = _dry_run(query.get("dryRun", []) + in_body, "DeleteOptions")
            done = self.crud.delete(
                resource, ns, name, dry_run=dry, preconditions=options.get("preconditions")
            )
            return Response(200, done)
        if method not in _OPTIONS_KIND or bool(name) == (method == "POST"):
            raise method_not_allowed()
        if method == "POST" and resource.namespaced and not info.namespace_in_path:
            raise method_not_allowed()
        content_type = headers.get("Content-Type", "")
        if method == "PATCH":
            check_patch_type(content_type)
        dry = _dry_run(query.get("dryRun", []), _OPTIONS_KIND[method])
        validation = flat.get("fieldValidation")
        if method == "PATCH":
            obj, warnings = self.crud.patch(
                resource,
                ns,
                name,
                content_type,
                parse_json(raw, resource.kind),
                user=user,
                dry_run=dry,
                field_validation=validation,
            )
            return _with_warnings(200, obj, warnings)
        body = parse_json(raw, resource.kind)
        if method == "POST":
            obj, warnings = self.crud.create(
                resource, ns, body, user=user, dry_run=dry, field_validation=validation
            )
            return _with_warnings(201, obj, warnings)
        obj, created, warnings = self.crud.update(
            resource, ns, name, body, user=user, dry_run=dry, field_validation=validation
        )
        return _with_warnings(201 if created else 200, obj, warnings)


def _dry_run(values: list[str], options_kind: str) -> bool:
    """``ValidateDryRun``: only ``All``; anything else is 422 on the options kind."""
    if any(v != "All" for v in values):
        err = not_supported("dryRun", values, ["All"])
        raise invalid("meta.k8s.io", options_kind, "", [err])
    return bool(values)


def _with_warnings(code: int, obj: JSON, warnings: list[str]) -> Response:
    escaped = [w.replace('"', '\\"') for w in warnings]
    return Response(code, obj, [("Warning", f'299 - "{w}"') for w in escaped])
