"""The rules: what may be requested, and who may decide, revoke or look.

Each rule lives here once; the service enforces them and adapters never repeat
them. Pure: no I/O beyond asking the ApproverDirectory.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import timedelta

from bot import identity
from bot.config import Settings
from bot.domain import AccessRequest, InvalidInput, format_duration
from bot.errors import DirectoryUnavailable, NotAllowed
from bot.ports import ApproverDirectory


@dataclass(frozen=True)
class Policy:
    """The request rules taken from `policy.*` and `providers.kubernetes.max_duration`."""

    role_limits: dict[str, timedelta | None]
    default_duration: timedelta
    min_duration: timedelta
    provider_max: timedelta | None
    max_reason_length: int
    request_ttl: timedelta
    expiry_warning: timedelta
    max_pending_per_user: int = 5
    commands_per_minute: int = 20

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        policy = settings.policy
        return cls(
            role_limits={name: spec.max_duration for name, spec in policy.roles.items()},
            default_duration=policy.default_duration,
            min_duration=policy.min_duration,
            provider_max=settings.kubernetes.max_duration,
            max_reason_length=policy.max_reason_length,
            request_ttl=policy.request_ttl,
            expiry_warning=policy.expiry_warning,
            max_pending_per_user=policy.max_pending_per_user,
            commands_per_minute=policy.commands_per_minute,
        )

    @property
    def roles(self) -> list[str]:
        return list(self.role_limits)

    def max_duration(self, role: str) -> timedelta | None:
        """The tighter of the provider's max_duration and the role's own limit."""
        limits = [d for d in (self.provider_max, self.role_limits.get(role)) if d is not None]
        return min(limits) if limits else None

    def check_role(self, role: str) -> None:
        if role not in self.role_limits:
            raise InvalidInput(
                f"`{role[:60]}` is not a grantable role. Choose one of: {', '.join(self.roles)}."
            )

    def check_duration(self, role: str, duration: timedelta) -> None:
        """Refuse (never silently cap) a duration outside [min_duration, max_duration]."""
        if duration < self.min_duration:
            raise InvalidInput(
                f"Duration {format_duration(duration)} is shorter than the minimum "
                f"{format_duration(self.min_duration)}."
            )
        limit = self.max_duration(role)
        if limit is not None and duration > limit:
            raise InvalidInput(
                f"Duration {format_duration(duration)} is longer than the maximum "
                f"{format_duration(limit)} for role {role}; ask for {format_duration(limit)} "
                "or less and extend later if you need more."
            )

    def check_reason(self, reason: str, *, required: bool = True) -> str:
        """A request's reason (required) or a denial's note (optional), both bounded."""
        cleaned = reason.strip()
        if required and not cleaned:
            raise InvalidInput('A reason is required: add --reason "what you need to do".')
        if len(cleaned) > self.max_reason_length:
            raise InvalidInput(
                f"The reason is {len(cleaned)} characters long; keep it under "
                f"{self.max_reason_length}."
            )
        _check_no_control_characters(cleaned)
        return cleaned


# Line breaks and tabs come from multi-line modal inputs; every other control
# character is invisible in Slack, and NUL cannot even be stored by PostgreSQL.
_ALLOWED_CONTROL_CHARACTERS = frozenset("\n\r\t")


def _check_no_control_characters(text: str) -> None:
    for character in text:
        if unicodedata.category(character) == "Cc" and character not in _ALLOWED_CONTROL_CHARACTERS:
            raise InvalidInput(
                f"The reason contains the control character U+{ord(character):04X}; "
                "write it as plain text."
            )


def check_can_decide(request: AccessRequest, actor: str, directory: ApproverDirectory) -> None:
    """Only approvers decide, never on their own request nor on a grant to their own identity.

    The identity check catches a request filed by someone else that would bind
    the approver's Kubernetes user (a shared or mistaken identity.map entry).
    """
    if actor == request.requester:
        raise NotAllowed("You cannot approve or deny your own request; another approver must.")
    if not directory.is_approver(actor):
        raise NotAllowed("Only approvers can approve or deny requests.")
    own = _kubernetes_user_of(actor, directory)
    if own is not None and identity.same_user(own, request.k8s_user):
        raise NotAllowed(
            "You cannot approve a request that grants access to your own Kubernetes "
            f"identity ({request.k8s_user}); another approver must."
        )


def _kubernetes_user_of(actor: str, directory: ApproverDirectory) -> str | None:
    """Fails closed: if the directory cannot say who the actor is, they cannot decide now."""
    try:
        return directory.kubernetes_user_of(actor)
    except DirectoryUnavailable as error:
        raise NotAllowed(
            f"{error} The bot must know your Kubernetes identity to check that this request "
            "does not grant access to you, so it cannot take your decision now; try again "
            "in a minute, or ask another approver."
        ) from None


def may_decide(request: AccessRequest, actor: str, directory: ApproverDirectory) -> bool:
    """check_can_decide as a yes/no, for listing what waits for an approver."""
    try:
        check_can_decide(request, actor, directory)
    except NotAllowed:
        return False
    return True


def check_can_revoke(request: AccessRequest, actor: str, directory: ApproverDirectory) -> None:
    """The requester may give access back; approvers and admins may take it away."""
    if actor == request.requester or directory.is_approver(actor) or directory.is_admin(actor):
        return
    raise NotAllowed("Only the requester, an approver or an admin can revoke this grant.")


def check_can_cancel(request: AccessRequest, actor: str) -> None:
    if actor != request.requester:
        raise NotAllowed("Only the requester can cancel a request.")


def can_view(request: AccessRequest, actor: str, directory: ApproverDirectory) -> bool:
    return actor == request.requester or directory.is_approver(actor) or directory.is_admin(actor)
