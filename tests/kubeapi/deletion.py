"""Finalizers and deletion, after the generic registry (``registry/generic/registry/store.go``).

None of the types served here deletes gracefully (only pods do), so upstream's
``Delete`` has two outcomes. Without finalizers the object is removed and the
answer is a ``Status``. With finalizers ``markAsDeleting`` stamps
``deletionTimestamp`` (now, or kept if already set) and
``deletionGracePeriodSeconds: 0``, stores that, and the answer is 200 with the
object itself, which stays readable, listable and -- for bindings -- in force:
the RBAC authorizer never looks at ``deletionTimestamp``. A second DELETE
changes nothing (etcd skips an identical write, so even the resourceVersion
stays). Whoever owns a finalizer removes it with an update or patch; once
none is left, ``ShouldDeleteDuringUpdate`` removes the object and the answer is
the object as the update left it (``deleteWithoutFinalizers`` returns "the
object in the request", since clients expect an object from a PUT).

No garbage collector runs here, so ``propagationPolicy``/``orphanDependents``
add no ``orphan``/``foregroundDeletion`` finalizers, and namespaces are still
deleted at once with their contents (the namespace controller's work).
"""

from __future__ import annotations

import copy

from .errors import JSON
from .store import now_rfc3339


def held_by_finalizers(obj: JSON) -> bool:
    return bool(obj["metadata"].get("finalizers"))


def mark_deleting(obj: JSON) -> JSON:
    """``markAsDeleting``: a copy of ``obj`` as a DELETE leaves it while finalizers remain."""
    marked = copy.deepcopy(obj)
    meta = marked["metadata"]
    meta.setdefault("deletionTimestamp", now_rfc3339())
    meta["deletionGracePeriodSeconds"] = 0
    return marked


def should_delete_during_update(obj: JSON, old: JSON) -> bool:
    """``ShouldDeleteDuringUpdate``: the last finalizer left an object being deleted."""
    old_meta = old["metadata"]
    return (
        not obj["metadata"].get("finalizers")
        and "deletionTimestamp" in old_meta
        and old_meta.get("deletionGracePeriodSeconds", 0) == 0
    )
