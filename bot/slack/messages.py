"""Block Kit primitives and the approval message.

Escaping, bounds, times and the summary of a role's rules, shared by every
builder; plus `request_message`, which the notifier posts to the approval
channel and updates in place. Pure. Blocks are built with slack_sdk's models and
turned into dicts with `to_dict()`, which runs slack_sdk's validators, so a limit
is broken here and not at Slack. Callers import everything via bot.slack.blocks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.domain import DRIFT_CAUSE, AccessRequest, State, format_duration
from bot.ports import RoleRule

APPROVE_ACTION = "approve"
DENY_ACTION = "deny"
REVOKE_NOW_ACTION = "revoke_now"
EXTEND_ACTION = "extend"
DECISION_BLOCK = "decision"
EXPIRY_BLOCK = "expiry_actions"
USER_TEXT_LIMIT = 500
SECTION_LIMIT = 3000  # a section's text, and any mrkdwn text object
FIELD_LIMIT = 2000  # one section field
HEADER_LIMIT = 150
ELLIPSIS = "…"
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
_RBAC_GROUPS = frozenset({"rbac.authorization.k8s.io", "*"})
_RBAC_RESOURCES = frozenset({"roles", "rolebindings", "clusterroles", "clusterrolebindings", "*"})
_RBAC_WRITES = frozenset({"create", "update", "patch", "delete", "deletecollection", "*"})
_PRIVILEGE_VERBS = frozenset({"bind", "escalate", "impersonate"})
_READS = frozenset({"get", "list", "watch", "*"})


@dataclass(frozen=True)
class Message:
    """What a builder returns: a notification fallback plus validated block dicts."""

    text: str
    blocks: list[dict[str, Any]]


def escape(text: str, limit: int = USER_TEXT_LIMIT) -> str:
    """Make user text inert in mrkdwn (no pings, no disguised links) and at most `limit` long.

    Cuts between characters of the escaped text so an entity is never split.
    """
    pieces = [_ENTITIES.get(char, char) for char in text]
    if sum(map(len, pieces)) <= limit:
        return "".join(pieces)
    kept, size = [], len(ELLIPSIS)
    for piece in pieces:
        if size + len(piece) > limit:
            break
        kept.append(piece)
        size += len(piece)
    return "".join(kept) + ELLIPSIS


def one_line(text: str, limit: int = USER_TEXT_LIMIT) -> str:
    """Escaped, with every run of whitespace one space: user text cannot add fake lines."""
    return escape(" ".join(text.split()), limit)


def quote(text: str, limit: int = USER_TEXT_LIMIT) -> str:
    return "> " + (one_line(text, limit) or "_(empty)_")


def code(text: str, limit: int = 100) -> str:
    """Inline code; a backtick in the value would end the span early, so it is replaced."""
    return "`" + (one_line(text.replace("`", "'"), limit) or " ") + "`"


def who(user: str | None) -> str:
    """A mention for a Slack user ID; anything else (e.g. "jitsudo") as escaped text."""
    if not user:
        return "someone"
    return f"<@{user}>" if _SLACK_USER.match(user) else one_line(user, 60)


def aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def utc(moment: datetime | None) -> str:
    return aware(moment).strftime("%Y-%m-%d %H:%M UTC") if moment else "an unknown time"


def slack_time(moment: datetime | None) -> str:
    """Shown in each reader's own timezone by Slack; the UTC text is the fallback."""
    if moment is None:
        return utc(None)
    epoch = int(aware(moment).timestamp())
    return f"<!date^{epoch}^{{date_short_pretty}} {{time}}|{utc(moment)}>"


def local_time(moment: datetime, tz: str | None) -> str | None:
    """The time in an IANA zone (users.info `tz`); None when the zone is missing or unknown."""
    if not tz:
        return None
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None
    return aware(moment).astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def scope_text(request: AccessRequest) -> str:
    """Where a grant applies, with cluster-wide impossible to overlook."""
    if request.namespace is None:
        return ":rotating_light: *CLUSTER-WIDE* (every namespace)"
    suffix = " (default namespace)" if not request.scope.strip() else ""
    return code(request.namespace) + suffix


def grant_text(request: AccessRequest) -> str:
    """E.g. "`edit` access in `production`", "`admin` access *cluster-wide*"."""
    where = "*cluster-wide*" if request.namespace is None else f"in {code(request.namespace)}"
    return f"{code(request.role)} access {where}"


def plain_grant(request: AccessRequest) -> str:
    """The same for notification fallbacks, which show no formatting."""
    where = "cluster-wide" if request.namespace is None else f"in {request.namespace}"
    return one_line(f"{request.role} access {where}", 200)


def md(text: str) -> MarkdownTextObject:
    """verbatim: Slack must not auto-link or auto-mention anything in our text."""
    return MarkdownTextObject(text=text or " ", verbatim=True)


def section(text: str) -> SectionBlock:
    return SectionBlock(text=md(text))


def context(*texts: str) -> ContextBlock:
    return ContextBlock(elements=[md(text) for text in texts])


def render(text: str, blocks: Sequence[Block]) -> Message:
    """Validate every block (to_dict runs slack_sdk's checks) and keep plain dicts."""
    return Message(text=text, blocks=[block.to_dict() for block in blocks])


def fit_lines(lines: Sequence[str], limit: int = SECTION_LIMIT) -> str:
    """Join whole lines up to `limit`, then say how many were left out."""
    kept: list[str] = []
    size = 0
    for index, line in enumerate(lines):
        more = f"{ELLIPSIS}and {len(lines) - index} more"
        if size + len(line) + len(more) + 1 > limit:
            return "\n".join([*kept, more])
        kept.append(line)
        size += len(line) + 1
    return "\n".join(kept)


# --- what a role allows ---------------------------------------------------------


def describe_rules(role: str, rules: list[RoleRule] | None) -> str:
    """Approvers see what they hand out: flags first, then one line per rule."""
    title = f"*What {one_line(role, 60)} allows*"
    if rules is None:
        return f"{title}\n_(could not read the role's rules)_"
    if not rules:
        return f"{title}\n_(no rules: the role grants nothing)_"
    flags = rule_flags(rules)
    lines = [title, *([" · ".join(flags)] if flags else []), *map(_rule_line, rules)]
    return fit_lines(lines)


def rule_flags(rules: Iterable[RoleRule]) -> list[str]:
    rules = list(rules)
    checks = (
        (_has_wildcard, ":warning: wildcard"),
        (_reads_secrets, ":key: can read secrets"),
        (_changes_rbac, ":lock: can change RBAC"),
    )
    return [flag for check, flag in checks if any(map(check, rules))]


def _has_wildcard(rule: RoleRule) -> bool:
    values = (*rule.verbs, *rule.resources, *rule.api_groups, *rule.non_resource_urls)
    return any(value == "*" or value.endswith("/*") for value in values)


def _reads_secrets(rule: RoleRule) -> bool:
    """Secrets live in the core group ("")."""
    return (
        bool({"", "*"} & set(rule.api_groups))
        and bool({"secrets", "*"} & set(rule.resources))
        and bool(_READS & set(rule.verbs))
    )


def _changes_rbac(rule: RoleRule) -> bool:
    """Writing roles or bindings, or bind/escalate/impersonate anywhere, is a path to more."""
    if _PRIVILEGE_VERBS & set(rule.verbs):
        return True
    return (
        bool(_RBAC_GROUPS & set(rule.api_groups))
        and bool(_RBAC_RESOURCES & set(rule.resources))
        and bool(_RBAC_WRITES & set(rule.verbs))
    )


def _rule_line(rule: RoleRule) -> str:
    verbs = _codes(rule.verbs)
    if rule.non_resource_urls:
        return f"• {verbs} on URLs {_codes(rule.non_resource_urls)}"
    groups = ", ".join(one_line(group or "core", 60) for group in rule.api_groups[:5])
    names = f" named {_codes(rule.resource_names)}" if rule.resource_names else ""
    return f"• {verbs} on {_codes(rule.resources)}{names} ({groups or 'core'})"


def _codes(values: Sequence[str]) -> str:
    return code(", ".join(values), 300) if values else "_(none)_"


# --- the approval message -------------------------------------------------------


def request_message(
    request: AccessRequest, *, rules: list[RoleRule] | None, request_ttl: timedelta | None = None
) -> Message:
    """Posted to the approval channel, and updated in place as the request moves on."""
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=_title(request))),
        SectionBlock(fields=[md(field) for field in request_fields(request)]),
        section(f"*Reason*\n{quote(request.reason, 2000)}"),
        section(describe_rules(request.role, rules)),
        _footer(request, request_ttl),
    ]
    fallback = f"Access request from {who(request.requester)}: {plain_grant(request)}"
    return render(f"{fallback} for {format_duration(request.duration)} ({request.state})", blocks)


def _title(request: AccessRequest) -> str:
    where = "CLUSTER-WIDE" if request.namespace is None else f"in {escape(request.namespace, 63)}"
    kind = "Extension request" if request.extends else "Access request"
    return escape(f"{kind}: {request.role}", HEADER_LIMIT - 70) + f" {where}"


def request_fields(request: AccessRequest) -> list[str]:
    """Who, what, where, how long: shared by the approval message and /jitsudo status."""
    return [
        f"*Requester*\n{who(request.requester)}",
        f"*Kubernetes user*\n{code(request.k8s_user, 250)}",
        f"*Role*\n{code(request.role)}",
        f"*Scope*\n{scope_text(request)}",
        f"*Duration*\n{format_duration(request.duration)}"
        + (f" more, extending {code(request.extends)}" if request.extends else ""),
        f"*Request ID*\n{code(request.id)}",
    ]


def _footer(request: AccessRequest, request_ttl: timedelta | None) -> Block:
    if request.state is not State.PENDING:
        return context(outcome(request, request_ttl=request_ttl))
    deny_confirm = ConfirmObject(
        title="Deny this request?",
        text=md("You can give a reason next."),
        confirm="Deny",
        deny="Cancel",
    )
    return ActionsBlock(
        block_id=DECISION_BLOCK,
        elements=[
            button("Approve", APPROVE_ACTION, request.id, style="primary"),
            button("Deny", DENY_ACTION, request.id, style="danger", confirm=deny_confirm),
        ],
    )


def button(
    text: str,
    action_id: str,
    value: str,
    *,
    style: str | None = None,
    confirm: ConfirmObject | None = None,
) -> ButtonElement:
    return ButtonElement(
        text=PlainTextObject(text=text),
        action_id=action_id,
        value=value,
        style=style,
        confirm=confirm,
    )


def outcome(request: AccessRequest, *, request_ttl: timedelta | None = None) -> str:
    """One line saying where the request ended up, for footers and replies."""
    if request.state is State.TIMED_OUT:
        within = f"within {format_duration(request_ttl)}" if request_ttl else "in time"
        return f"⏱ Timed out: nobody reviewed it {within}"
    return _OUTCOMES[request.state](request)


def _approved(request: AccessRequest) -> str:
    return (
        f"✅ Approved by {who(request.decided_by)} at {slack_time(request.decided_at)}"
        f" · access until {slack_time(request.expires_at)}"
    )


def _approving(request: AccessRequest) -> str:
    """Approved, and the grant is being made (or retried while the cluster does not answer)."""
    if request.cause:
        return (
            f"⏳ Approved by {who(request.decided_by)} at {slack_time(request.decided_at)}"
            f" · granting, retrying: {one_line(request.cause, 300)}"
        )
    return _approved(request)


def _revoking(request: AccessRequest) -> str:
    """Ending: the binding is being deleted, and stays until it is really gone."""
    if request.cause is None:
        start = f"⏳ Revoke by {who(request.ended_by)} in progress"
    else:
        start = f"⏳ Ending ({one_line(request.cause, 100)}) at {slack_time(request.expires_at)}"
    return start + ": deleting the binding; access lasts until it is gone"


def _denied(request: AccessRequest) -> str:
    note = f": {one_line(request.decision_note)}" if request.decision_note else " (no reason given)"
    return f"❌ Denied by {who(request.decided_by)} at {slack_time(request.decided_at)}{note}"


def _expired(request: AccessRequest) -> str:
    if request.cause == DRIFT_CAUSE:
        return (
            f"⌛ Binding deleted outside jitsudo; marked expired at {slack_time(request.ended_at)}"
        )
    return f"⌛ Expired at {slack_time(request.ended_at or request.expires_at)}"


_OUTCOMES: dict[State, Callable[[AccessRequest], str]] = {
    State.PENDING: lambda r: f"⏳ Waiting for an approver since {slack_time(r.created_at)}",
    State.APPROVED: _approving,
    State.ACTIVE: _approved,
    State.REVOKING: _revoking,
    State.DENIED: _denied,
    State.FAILED: lambda r: (
        f"⚠️ Approved by {who(r.decided_by)}, but the grant failed: "
        f"{one_line(r.cause or 'unknown error')}"
    ),
    State.REVOKED: lambda r: f"⏹ Revoked by {who(r.ended_by)} at {slack_time(r.ended_at)}",
    State.EXPIRED: _expired,
    State.CANCELLED: lambda r: f"🚫 Cancelled by the requester at {slack_time(r.ended_at)}",
    State.EXTENDED: lambda r: (
        f"✅ Extension approved by {who(r.decided_by)} at {slack_time(r.decided_at)}"
        f" · {code(r.extends or '')} now lasts until {slack_time(r.expires_at)}"
    ),
}
