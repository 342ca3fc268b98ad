"""The object store: etcd-like revisions, server-set metadata, ordered paging.

One global revision counter stamps every write (``resourceVersion``), keys sort
the way etcd keys do (``<namespace>/<name>``), and ``continue`` tokens have the
real shape (base64 JSON with ``v``/``rv``/``start``). A single re-entrant lock
makes each API call atomic: handlers hold it across read-check-write.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import threading
import uuid
from datetime import UTC, datetime

from .errors import JSON, ApiError, already_exists, bad_request, not_found
from .resources import Resource

EXPIRED_MSG = (
    "The provided continue parameter is too old to display a consistent list result. "
    "You can start a new list without the continue parameter, or use the continue token "
    "in this response to retrieve the remainder of the results. Continuing with the "
    "provided token results in an inconsistent list - objects that were created, "
    "modified, or deleted between the time the first chunk was returned and now may "
    "show up in the list."
)


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key(resource: Resource, namespace: str, name: str) -> str:
    return f"{namespace}/{name}" if resource.namespaced else name


class Store:
    """All persisted objects, by resource then etcd-style key."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._revision = 0
        self._compacted = 0
        self._objects: dict[Resource, dict[str, JSON]] = {}

    @property
    def revision(self) -> str:
        return str(self._revision)

    def compact(self) -> None:
        """Forget history: continue tokens issued so far now answer 410 Expired."""
        with self.lock:
            self._revision += 1
            self._compacted = self._revision

    def _bucket(self, resource: Resource) -> dict[str, JSON]:
        return self._objects.setdefault(resource, {})

    def get(self, resource: Resource, namespace: str, name: str) -> JSON | None:
        with self.lock:
            found = self._bucket(resource).get(_key(resource, namespace, name))
            return copy.deepcopy(found) if found is not None else None

    def items(self, resource: Resource, namespace: str | None = None) -> list[JSON]:
        """Every object (optionally in one namespace), in etcd key order."""
        with self.lock:
            bucket = self._bucket(resource)
            return [
                copy.deepcopy(bucket[k])
                for k in sorted(bucket)
                if namespace is None or bucket[k]["metadata"].get("namespace") == namespace
            ]

    def create(self, resource: Resource, obj: JSON, *, dry_run: bool = False) -> JSON:
        """Stamp uid/creationTimestamp/resourceVersion and insert; 409 if the name is taken."""
        meta = obj["metadata"]
        key = _key(resource, meta.get("namespace", ""), meta["name"])
        with self.lock:
            bucket = self._bucket(resource)
            if key in bucket:
                raise already_exists(resource.plural, resource.group, meta["name"])
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            meta.pop("resourceVersion", None)
            if dry_run:  # a dry-run create is never given a revision
                return copy.deepcopy(obj)
            self._revision += 1
            meta["resourceVersion"] = str(self._revision)
            bucket[key] = copy.deepcopy(obj)
            return copy.deepcopy(obj)

    def replace(self, resource: Resource, obj: JSON, *, dry_run: bool = False) -> JSON:
        """Store a new state of an existing object; an unchanged object keeps its revision."""
        meta = obj["metadata"]
        key = _key(resource, meta.get("namespace", ""), meta["name"])
        with self.lock:
            bucket = self._bucket(resource)
            old = bucket.get(key)
            if old is None:
                raise not_found(resource.plural, resource.group, meta["name"])
            meta["resourceVersion"] = old["metadata"]["resourceVersion"]
            if dry_run or obj == old:
                return copy.deepcopy(obj)
            self._revision += 1
            meta["resourceVersion"] = str(self._revision)
            bucket[key] = copy.deepcopy(obj)
            return copy.deepcopy(obj)

    def delete(
        self, resource: Resource, namespace: str, name: str, *, dry_run: bool = False
    ) -> JSON:
        with self.lock:
            bucket = self._bucket(resource)
            key = _key(resource, namespace, name)
            if key not in bucket:
                raise not_found(resource.plural, resource.group, name)
            if dry_run:
                return copy.deepcopy(bucket[key])
            self._revision += 1
            return bucket.pop(key)

    def delete_namespace_contents(self, namespace: str) -> None:
        """What the namespace controller does, done at once."""
        with self.lock:
            for resource, bucket in self._objects.items():
                if resource.namespaced:
                    for key in [k for k in bucket if k.startswith(namespace + "/")]:
                        del bucket[key]
                        self._revision += 1

    # ---- paging ----

    def encode_continue(self, resource: Resource, last: JSON) -> str:
        meta = last["metadata"]
        start = _key(resource, meta.get("namespace", ""), meta["name"]) + "\x00"
        token = {"v": "meta.k8s.io/v1", "rv": self._revision, "start": start}
        return base64.urlsafe_b64encode(json.dumps(token).encode()).decode()

    def decode_continue(self, token: str) -> str:
        """The key to resume after; 400 for garbage, 410 once compacted past it."""
        try:
            data = json.loads(base64.urlsafe_b64decode(token.encode()))
            if not isinstance(data, dict) or data.get("v") != "meta.k8s.io/v1":
                raise ValueError("server does not recognize this encoded version")
            start, rv = data["start"], int(data["rv"])
            if not isinstance(start, str) or not start.endswith("\x00"):
                raise ValueError("continue key is not valid")
        except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise bad_request(f"invalid continue token: continue key is not valid: {exc}") from exc
        if rv < self._compacted:
            raise ApiError(410, "Expired", EXPIRED_MSG)
        return start[:-1]

    def page(
        self, resource: Resource, items: list[JSON], limit: int, token: str, count: bool
    ) -> tuple[list[JSON], JSON]:
        """Slice ``items`` (already in key order) into one page and its list metadata."""
        meta: JSON = {"resourceVersion": self.revision}
        if token:
            after = self.decode_continue(token)
            items = [
                o
                for o in items
                if _key(resource, o["metadata"].get("namespace", ""), o["metadata"]["name"]) > after
            ]
        if limit > 0 and len(items) > limit:
            meta["continue"] = self.encode_continue(resource, items[limit - 1])
            if count:  # unknowable once selectors filter, so the real server omits it
                meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        return items, meta
