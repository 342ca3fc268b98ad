"""Hand-written fakes of the service's ports that record every call."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime

from bot.domain import Grant, ManagedBinding, Target
from bot.errors import DirectoryUnavailable, ProviderError
from bot.ports import RoleRule


@dataclass
class FakeProvider:
    """Keeps bindings in a dict keyed by request ID; failures are switched on per call name."""

    name: str = "kubernetes"
    bindings: dict[str, ManagedBinding] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    failing: dict[str, str] = field(default_factory=dict)
    transient: set[str] = field(default_factory=set)  # calls whose failure is retryable
    roles: dict[str, list[RoleRule]] = field(
        default_factory=lambda: {
            "view": [RoleRule(("",), ("pods",), ("get", "list"))],
            "edit": [RoleRule(("",), ("pods", "secrets"), ("*",))],
            "admin": [RoleRule(("*",), ("*",), ("*",))],
            "cluster-admin": [RoleRule(("*",), ("*",), ("*",))],
        }
    )
    namespaces: set[str] = field(default_factory=lambda: {"default", "production", "staging"})

    def _maybe_fail(self, call: str, subject: str) -> None:
        self.calls.append((call, subject))
        if call in self.failing:
            raise ProviderError(self.failing[call], retryable=call in self.transient)

    def preflight(self, grant: Grant) -> None:
        self._maybe_fail("preflight", grant.request_id)
        if grant.role not in self.roles:
            raise ProviderError(f"ClusterRole `{grant.role}` does not exist in the cluster.")
        namespace = grant.target.namespace
        if namespace is not None and namespace not in self.namespaces:
            raise ProviderError(f"Namespace `{namespace}` does not exist in the cluster.")

    def grant(self, grant: Grant) -> None:
        self._maybe_fail("grant", grant.request_id)
        self.grants[grant.request_id] = grant
        self.bindings[grant.request_id] = ManagedBinding(
            name=f"jitsudo-{grant.request_id.lower()}",
            request_id=grant.request_id,
            namespace=grant.target.namespace,
            expires_at=grant.expires_at,
            role=grant.role,
            subjects=(("User", grant.user),),
        )

    def revoke(self, request_id: str, target: Target) -> None:
        self._maybe_fail("revoke", request_id)
        self.bindings.pop(request_id, None)

    def remove(self, binding: ManagedBinding) -> None:
        self._maybe_fail("remove", binding.name)
        for key, found in list(self.bindings.items()):
            if found.name == binding.name:
                del self.bindings[key]

    def is_active(self, grant: Grant) -> bool:
        self._maybe_fail("is_active", grant.request_id)
        found = self.bindings.get(grant.request_id)
        return found is not None and found.subjects == (("User", grant.user),)

    def extend(self, request_id: str, target: Target, expires_at: datetime) -> None:
        self._maybe_fail("extend", request_id)
        self.bindings[request_id] = replace(self.bindings[request_id], expires_at=expires_at)

    def list_managed(self) -> Iterator[ManagedBinding]:
        self._maybe_fail("list_managed", "")
        yield from list(self.bindings.values())

    def describe_role(self, role: str) -> list[RoleRule]:
        return self.roles[role]

    def count(self, call: str) -> int:
        return sum(1 for name, _ in self.calls if name == call)


@dataclass
class FakeDirectory:
    """Approvers, admins and Kubernetes identities; `unreadable` users make it fail."""

    approvers: set[str] = field(
        default_factory=lambda: {"UAPPROVER", "UAPPROVER2", "USELFAPPROVER"}
    )
    admins: set[str] = field(default_factory=lambda: {"UADMIN"})
    identities: dict[str, str] = field(default_factory=dict)
    unreadable: set[str] = field(default_factory=set)

    def is_approver(self, user: str) -> bool:
        return user in self.approvers

    def is_admin(self, user: str) -> bool:
        return user in self.admins

    def kubernetes_user_of(self, user: str) -> str | None:
        if user in self.unreadable:
            raise DirectoryUnavailable("The directory could not say who you are just now.")
        return self.identities.get(user)
