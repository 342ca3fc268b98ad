"""The REST verbs on stored resources: get, list, create, update, patch, delete.

Each write runs in upstream's order -- decode (400), namespace check (404),
escalation check (403), preconditions (409), validation (422), storage (409)
-- under the store lock, so a call is atomic. ``user=None`` is the direct test
API: no escalation check, but the same defaulting and validation. Finalizers
hold a deleted object back as upstream does (see ``deletion``).
"""

from __future__ import annotations

import secrets
from typing import Any

from .admission import (
    apply_defaults,
    check_escalation,
    check_namespace_delete,
    prepare_for_create,
    prepare_for_update,
    require_namespace,
)
from .decode import decode_object
from .deletion import held_by_finalizers, mark_deleting, should_delete_during_update
from .errors import (
    JSON,
    ApiError,
    GoValue,
    bad_request,
    conflict,
    details,
    invalid,
    invalid_value,
    not_found,
    unknown,
)
from .patch import apply_patch
from .rbac import Authorizer, UserInfo
from .resources import NAMESPACES, SERVICE_ACCOUNTS, Resource
from .selectors import matches_fields, matches_labels, parse_field_selector, parse_label_selector
from .store import Store
from .validation import validate

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # names.SimpleNameGenerator's alphabet


def typed(resource: Resource, obj: JSON) -> JSON:
    """An object as served on its own: ``apiVersion`` and ``kind`` first."""
    return {"apiVersion": resource.api_version, "kind": resource.kind, **obj}


def _precondition(resource: Resource, name: str, what: str, want: str, have: str) -> ApiError:
    why = f"Precondition failed: {what} in precondition: {want}, {what} in object meta: {have}"
    return conflict(resource.plural, resource.group, name, why)


class Crud:
    def __init__(self, store: Store, authorizer: Authorizer) -> None:
        self.store = store
        self.authorizer = authorizer

    # ---- reads ----

    def get(self, resource: Resource, namespace: str, name: str) -> JSON:
        found = self.store.get(resource, namespace, name)
        if found is None:
            raise not_found(resource.plural, resource.group, name)
        return typed(resource, found)

    def list_objects(self, resource: Resource, namespace: str, query: dict[str, str]) -> JSON:
        labels = query.get("labelSelector", "")
        fields = query.get("fieldSelector", "")
        reqs = parse_label_selector(labels) if labels else []
        terms = parse_field_selector(fields, resource.plural, resource.namespaced) if fields else []
        try:
            limit = int(query.get("limit") or 0)
        except ValueError:
            raise bad_request(f"invalid limit: {query.get('limit')!r}") from None
        with self.store.lock:
            items = [
                o
                for o in self.store.items(resource, namespace or None)
                if matches_labels(reqs, o) and matches_fields(terms, o)
            ]
            page, meta = self.store.page(
                resource, items, limit, query.get("continue", ""), count=not (reqs or terms)
            )
        return {
            "kind": resource.list_kind,
            "apiVersion": resource.api_version,
            "metadata": meta,
            "items": page,
        }

    # ---- writes ----

    @staticmethod
    def _set_namespace(resource: Resource, namespace: str, meta: JSON) -> None:
        """``EnsureObjectNamespaceMatchesRequestNamespace``."""
        if not resource.namespaced:
            meta.pop("namespace", None)
            return
        if meta.get("namespace") and meta["namespace"] != namespace:
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on the "
                "request"
            )
        meta["namespace"] = namespace

    def create(
        self,
        resource: Resource,
        namespace: str,
        body: Any,
        *,
        user: UserInfo | None,
        dry_run: bool = False,
        field_validation: str | None = None,
    ) -> tuple[JSON, list[str]]:
        obj, warnings = decode_object(resource, body, field_validation)
        meta = obj["metadata"]
        self._set_namespace(resource, namespace, meta)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(
                secrets.choice(_NAME_CHARS) for _ in range(5)
            )
        apply_defaults(resource, obj)
        with self.store.lock:
            return self._create(resource, obj, user, dry_run), warnings

    def _create(self, resource: Resource, obj: JSON, user: UserInfo | None, dry_run: bool) -> JSON:
        meta = obj["metadata"]
        require_namespace(self.store, resource, meta.get("namespace", ""))
        check_escalation(self.authorizer, user, resource, obj, None)
        prepare_for_create(resource, obj)
        errs = validate(resource, obj)
        if errs:
            raise invalid(resource.group, resource.kind, meta.get("name", ""), errs)
        if meta.get("resourceVersion"):  # a plain storage error upstream: 500, no reason
            raise unknown(500, "resourceVersion should not be set on objects to be created")
        created = self.store.create(resource, obj, dry_run=dry_run)
        if resource is NAMESPACES and not dry_run:  # the service account controller's job
            sa = {"metadata": {"name": "default", "namespace": meta["name"]}}
            self.store.create(SERVICE_ACCOUNTS, sa)
        return typed(resource, created)

    def update(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        body: Any,
        *,
        user: UserInfo | None,
        dry_run: bool = False,
        field_validation: str | None = None,
    ) -> tuple[JSON, bool, list[str]]:
        """PUT; returns (object, created, warnings). RBAC objects and leases may be created."""
        obj, warnings = decode_object(resource, body, field_validation)
        meta = obj["metadata"]
        if meta.get("name", "") != name:
            raise bad_request(
                f"the name of the object ({meta.get('name', '')}) does not match the name on "
                f"the URL ({name})"
            )
        self._set_namespace(resource, namespace, meta)
        apply_defaults(resource, obj)
        with self.store.lock:
            old = self.store.get(resource, namespace, name)
            uid = meta.get("uid", "")
            if old is None:
                if not resource.allow_create_on_update:
                    raise not_found(resource.plural, resource.group, name)
                if uid:
                    raise _precondition(resource, name, "UID", uid, "")
                meta.pop("resourceVersion", None)
                return self._create(resource, obj, user, dry_run), True, warnings
            if uid and uid != old["metadata"]["uid"]:
                raise _precondition(resource, name, "UID", uid, old["metadata"]["uid"])
            check_escalation(self.authorizer, user, resource, obj, old, name)
            return self._update(resource, obj, old, dry_run), False, warnings

    def patch(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        content_type: str,
        patch: Any,
        *,
        user: UserInfo | None,
        dry_run: bool = False,
        field_validation: str | None = None,
    ) -> tuple[JSON, list[str]]:
        with self.store.lock:
            old = self.store.get(resource, namespace, name)
            if old is None:
                raise not_found(resource.plural, resource.group, name)
            patched = apply_patch(content_type, typed(resource, old), patch)
            obj, warnings = decode_object(resource, patched, field_validation)
            if resource.namespaced and not obj["metadata"].get("namespace"):
                obj["metadata"]["namespace"] = namespace
            apply_defaults(resource, obj)
            check_escalation(self.authorizer, user, resource, obj, old, name)
            return self._update(resource, obj, old, dry_run), warnings

    def _update(self, resource: Resource, obj: JSON, old: JSON, dry_run: bool) -> JSON:
        meta, name = obj["metadata"], old["metadata"]["name"]
        version = meta.get("resourceVersion", "")
        if not version:
            if not resource.allow_unconditional_update:
                err = invalid_value(
                    "metadata.resourceVersion", GoValue("0x0"), "must be specified for an update"
                )
                raise invalid(resource.group, resource.plural, name, [err])
        elif not version.isdigit():
            raise bad_request(f"invalid resourceVersion: {version!r}")
        elif version != old["metadata"]["resourceVersion"]:
            raise conflict(resource.plural, resource.group, name)
        prepare_for_update(resource, obj, old)
        errs = validate(resource, obj, old)
        if errs:
            raise invalid(resource.group, resource.kind, meta.get("name", ""), errs)
        if should_delete_during_update(obj, old):  # the last finalizer is gone: so is the object
            self.store.delete(resource, meta.get("namespace", ""), name, dry_run=dry_run)
            meta["resourceVersion"] = old["metadata"]["resourceVersion"]
            return typed(resource, obj)
        return typed(resource, self.store.replace(resource, obj, dry_run=dry_run))

    def delete(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        *,
        dry_run: bool = False,
        preconditions: JSON | None = None,
    ) -> JSON:
        """DELETE; answers the ``Status`` success body the real server sends, or -- while
        finalizers hold the object -- the object marked as being deleted."""
        with self.store.lock:
            old = self.store.get(resource, namespace, name)
            if old is None:
                raise not_found(resource.plural, resource.group, name)
            if resource is NAMESPACES:
                check_namespace_delete(name)
            have = old["metadata"]
            for key, what in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
                want = (preconditions or {}).get(key)
                if want and want != have[key]:
                    raise _precondition(resource, name, what, want, have[key])
            if held_by_finalizers(old) and resource is not NAMESPACES:
                marked = self.store.replace(resource, mark_deleting(old), dry_run=dry_run)
                return typed(resource, marked)
            self.store.delete(resource, namespace, name, dry_run=dry_run)
            if resource is NAMESPACES and not dry_run:
                self.store.delete_namespace_contents(name)
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": details(name, resource.group, resource.plural, uid=have["uid"]),
        }
