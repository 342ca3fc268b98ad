"""The ports the service talks through: clock, access provider, approver directory.

Adapters (Kubernetes, Slack) implement these; tests pass hand-written fakes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from bot.domain import Grant, ManagedBinding, Target


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True)
class RoleRule:
    """One rule of a role, as the provider reports it (for showing approvers)."""

    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()


class AccessProvider(Protocol):
    """Grants and revokes access in one system (the seed's provider interface)."""

    name: str

    def preflight(self, grant: Grant) -> None:
        """Raise ProviderError if this grant could not be made now (checked before approval)."""
        ...

    def grant(self, grant: Grant) -> None:
        """Create the access; idempotent for an identical existing grant."""
        ...

    def revoke(self, request_id: str, target: Target) -> None:
        """Remove the access and confirm it is gone; raise ProviderError while it is not."""
        ...

    def is_active(self, grant: Grant) -> bool:
        """Whether exactly this grant exists now (catches out-of-band deletes and changes)."""
        ...

    def extend(self, request_id: str, target: Target, expires_at: datetime) -> None:
        """Move the recorded expiry of an existing grant without recreating it."""
        ...

    def remove(self, binding: ManagedBinding) -> None:
        """Delete a binding found by list_managed and confirm it is gone."""
        ...

    def list_managed(self) -> Iterator[ManagedBinding]:
        """Every grant this product manages, found by its label."""
        ...

    def describe_role(self, role: str) -> list[RoleRule]:
        """The rules of a role, so approvers can see what they hand out."""
        ...


class ApproverDirectory(Protocol):
    """Who may approve and who is an admin; resolved by the chat adapter (groups etc.)."""

    def is_approver(self, user: str) -> bool: ...

    def is_admin(self, user: str) -> bool: ...

    def kubernetes_user_of(self, user: str) -> str | None:
        """The Kubernetes username `user` would be granted as; None if they have none.

        Raises DirectoryUnavailable when it cannot be told now (the chat service
        errored), so that a rule depending on it can fail closed.
        """
        ...
