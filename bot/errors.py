"""Domain errors raised by the service layer.

They carry a plain sentence for the person who caused them and no transport
detail; the Slack adapter maps them to messages in one place.
"""

from __future__ import annotations

from bot.domain import AccessRequest, InvalidInput

__all__ = [
    "AccessError",
    "Conflict",
    "DirectoryUnavailable",
    "GrantDelayed",
    "GrantFailed",
    "InvalidInput",
    "NotAllowed",
    "NotFound",
    "ProviderError",
]


class AccessError(Exception):
    """Base of every error a user may be shown."""


class NotFound(AccessError):
    """No request with that ID."""


class NotAllowed(AccessError):
    """The actor may not do this (not an approver, own request, ...)."""


class DirectoryUnavailable(AccessError):
    """The directory (Slack) could not say who someone is right now; callers fail closed."""


class Conflict(AccessError):
    """The request is no longer in a state where this makes sense (already decided, ...)."""


class ProviderError(AccessError):
    """The cluster refused or failed; the message is safe to show an operator."""

    def __init__(self, message: str, *, retryable: bool = False, detail: str = "") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.detail = detail  # the raw answer, for the log only: never shown to users


class GrantFailed(AccessError):
    """Approval went through but the grant could not be made; the request is failed."""

    def __init__(self, message: str, *, request: AccessRequest) -> None:
        super().__init__(message)
        self.request = request


class GrantDelayed(AccessError):
    """Approved, but the cluster did not answer; the grant is retried in the background."""

    def __init__(self, message: str, *, request: AccessRequest) -> None:
        super().__init__(message)
        self.request = request
