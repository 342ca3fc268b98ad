"""The Block Kit builders, in one import: DMs, ephemeral replies, and re-exports.

Listeners and the notifier import this module only. The approval message and the
shared primitives live in bot.slack.messages, the modals in bot.slack.views; the
requester's DMs and the ephemeral replies are built here. Pure: no Slack calls.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from slack_sdk.models.blocks import ActionsBlock, Block, ConfirmObject, SectionBlock

from bot.domain import AccessRequest, State, format_duration
from bot.slack.commands import USAGE
from bot.slack.messages import (
    APPROVE_ACTION,
    DECISION_BLOCK,
    DENY_ACTION,
    EXPIRY_BLOCK,
    EXTEND_ACTION,
    REVOKE_NOW_ACTION,
    Message,
    button,
    code,
    context,
    describe_rules,
    escape,
    fit_lines,
    grant_text,
    local_time,
    md,
    one_line,
    outcome,
    plain_grant,
    quote,
    render,
    request_fields,
    request_message,
    rule_flags,
    section,
    slack_time,
    utc,
    who,
)
from bot.slack.views import (
    CLUSTER_WIDE_ACTION,
    CLUSTER_WIDE_BLOCK,
    CLUSTER_WIDE_OPTION,
    DENY_MODAL,
    DENY_REASON_ACTION,
    DENY_REASON_BLOCK,
    DURATION_ACTION,
    DURATION_BLOCK,
    EXTEND_DURATION_ACTION,
    EXTEND_DURATION_BLOCK,
    EXTEND_MODAL,
    EXTEND_REASON_ACTION,
    EXTEND_REASON_BLOCK,
    NAMESPACE_ACTION,
    NAMESPACE_BLOCK,
    REASON_ACTION,
    REASON_BLOCK,
    REQUEST_MODAL,
    ROLE_ACTION,
    ROLE_BLOCK,
    deny_modal,
    extend_modal,
    extend_modal_errors,
    read_deny_modal,
    read_extend_modal,
    read_request_modal,
    request_modal,
    request_modal_errors,
)

__all__ = [
    "APPROVE_ACTION",
    "CLUSTER_WIDE_ACTION",
    "CLUSTER_WIDE_BLOCK",
    "CLUSTER_WIDE_OPTION",
    "DECISION_BLOCK",
    "DENY_ACTION",
    "DENY_MODAL",
    "DENY_REASON_ACTION",
    "DENY_REASON_BLOCK",
    "DURATION_ACTION",
    "DURATION_BLOCK",
    "EXPIRY_BLOCK",
    "EXTEND_ACTION",
    "EXTEND_DURATION_ACTION",
    "EXTEND_DURATION_BLOCK",
    "EXTEND_MODAL",
    "EXTEND_REASON_ACTION",
    "EXTEND_REASON_BLOCK",
    "NAMESPACE_ACTION",
    "NAMESPACE_BLOCK",
    "REASON_ACTION",
    "REASON_BLOCK",
    "REQUEST_MODAL",
    "REVOKE_NOW_ACTION",
    "ROLE_ACTION",
    "ROLE_BLOCK",
    "USAGE",
    "Message",
    "cancelled_dm",
    "decision_reply",
    "denied_dm",
    "deny_modal",
    "describe_rules",
    "drifted_dm",
    "error_reply",
    "escape",
    "expired_dm",
    "expiry_warning_dm",
    "extend_modal",
    "extend_modal_errors",
    "extended_dm",
    "failed_dm",
    "failed_for_approver",
    "granted_dm",
    "help_reply",
    "kubectl_hint",
    "list_reply",
    "outcome",
    "read_deny_modal",
    "read_extend_modal",
    "read_request_modal",
    "request_message",
    "request_modal",
    "request_modal_errors",
    "revoked_dm",
    "rule_flags",
    "status_reply",
    "submitted_reply",
    "timed_out_dm",
]


# --- DMs to the requester ----------------------------------------------------


def _dm(fallback: str, text: str, *more: Block) -> Message:
    return render(fallback, [section(text), *more])


def _footnote(request: AccessRequest) -> Block:
    return context(f"Request {code(request.id)} · `/jitsudo status {request.id}`")


def _until(request: AccessRequest, tz: str | None) -> str:
    """The expiry in UTC, then in the requester's own timezone when Slack knows it."""
    until = utc(request.expires_at)
    local = local_time(request.expires_at, tz) if request.expires_at else None
    return f"{until} ({local}, {one_line(tz or '', 60)})" if local else until


def granted_dm(request: AccessRequest, *, tz: str | None) -> Message:
    """Expiry in UTC and, when Slack knows it, in the requester's own timezone."""
    until = _until(request, tz)
    text = (
        f"✅ Approved by {who(request.decided_by)}. Your {grant_text(request)} is active "
        f"until *{until}*.\nIt is bound to your own identity {code(request.k8s_user, 250)}: "
        "use your usual kubeconfig."
    )
    hint = "Try it:\n```" + "\n".join(kubectl_hint(request)) + "```"
    return _dm(
        f"Your {plain_grant(request)} is active until {utc(request.expires_at)}",
        text,
        section(hint),
        context(f"Done early? `/jitsudo revoke {request.id}` gives it back now."),
    )


def kubectl_hint(request: AccessRequest) -> list[str]:
    if request.namespace is None:
        return ["kubectl auth can-i --list", "kubectl get pods -A"]
    namespace = escape(request.namespace, 63)
    return [f"kubectl auth can-i --list -n {namespace}", f"kubectl get pods -n {namespace}"]


def denied_dm(request: AccessRequest) -> Message:
    why = f":\n{quote(request.decision_note)}" if request.decision_note else ". No reason given."
    text = f"❌ {who(request.decided_by)} denied your request for {grant_text(request)}{why}"
    return _dm(f"Your request for {plain_grant(request)} was denied", text, _footnote(request))


def failed_dm(request: AccessRequest) -> Message:
    text = (
        f"⚠️ {who(request.decided_by)} approved your request for {grant_text(request)}, "
        f"but the grant failed: {one_line(request.cause or 'unknown error')}\n"
        "Nothing was granted. Try again later or ask the jitsudo operators."
    )
    return _dm(f"Your {plain_grant(request)} could not be granted", text, _footnote(request))


def revoked_dm(request: AccessRequest) -> Message:
    by = "You" if request.ended_by == request.requester else who(request.ended_by)
    text = f"⏹ {by} revoked your {grant_text(request)} at {utc(request.ended_at)}."
    return _dm(f"Your {plain_grant(request)} was revoked", text, _footnote(request))


def expired_dm(request: AccessRequest) -> Message:
    text = f"⌛ Your {grant_text(request)} ended at {utc(request.ended_at or request.expires_at)}."
    return _dm(f"Your {plain_grant(request)} has ended", text, _footnote(request))


def drifted_dm(request: AccessRequest) -> Message:
    text = (
        f"⌛ Your {grant_text(request)} was removed outside jitsudo (its binding was deleted), "
        f"so the request was marked expired at {utc(request.ended_at)}.\n"
        "Request again if you still need access."
    )
    return _dm(f"Your {plain_grant(request)} was removed outside jitsudo", text, _footnote(request))


def timed_out_dm(request: AccessRequest, *, request_ttl: timedelta | None = None) -> Message:
    within = f"within {format_duration(request_ttl)}" if request_ttl else "in time"
    text = (
        f"⏱ Nobody reviewed your request for {grant_text(request)} {within}, so it timed out.\n"
        "Request again if you still need access."
    )
    return _dm(f"Your request for {plain_grant(request)} timed out", text, _footnote(request))


def cancelled_dm(request: AccessRequest) -> Message:
    text = f"🚫 You cancelled your request for {grant_text(request)}."
    return _dm(f"Your request for {plain_grant(request)} was cancelled", text, _footnote(request))


def extended_dm(request: AccessRequest, *, tz: str | None) -> Message:
    """The extension was approved: the same binding now lasts longer."""
    until = _until(request, tz)
    text = (
        f"✅ {who(request.decided_by)} approved your extension: your {grant_text(request)} "
        f"({code(request.extends or '')}) now lasts until *{until}*. Nothing was interrupted."
    )
    return _dm(
        f"Your {plain_grant(request)} now lasts until {utc(request.expires_at)}",
        text,
        _footnote(request),
    )


def expiry_warning_dm(request: AccessRequest, *, now: datetime) -> Message:
    """Sent policy.expiry_warning before the end, with a way to give back or ask for more."""
    left = _time_left(request.expires_at - now) if request.expires_at else "soon"
    text = f"⏳ Your {grant_text(request)} ends in *{left}* (at {slack_time(request.expires_at)})."
    revoke_confirm = ConfirmObject(
        title="Revoke your access now?",
        text=md("The binding is deleted immediately."),
        confirm="Revoke",
        deny="Keep it",
    )
    buttons = ActionsBlock(
        block_id=EXPIRY_BLOCK,
        elements=[
            button(
                "Revoke now", REVOKE_NOW_ACTION, request.id, style="danger", confirm=revoke_confirm
            ),
            button("Extend", EXTEND_ACTION, request.id),
        ],
    )
    return _dm(f"Your {plain_grant(request)} ends in {left}", text, buttons)


def _time_left(left: timedelta) -> str:
    seconds = int(left.total_seconds())
    if seconds <= 0:
        return "less than a minute"
    if seconds >= 60:
        seconds = round(seconds / 60) * 60
    return format_duration(timedelta(seconds=seconds))


def failed_for_approver(request: AccessRequest) -> Message:
    """The approver's reply when the grant failed, or is being retried (still approved)."""
    if request.state is State.APPROVED:
        text = (
            f"⏳ You approved {code(request.id)}, but the cluster did not answer "
            f"({one_line(request.cause or 'no answer')}). jitsudo keeps trying and "
            f"{who(request.requester)} gets a DM when access is live."
        )
        return render(f"The grant for {request.id} is being retried", [section(text)])
    text = (
        f"⚠️ You approved {code(request.id)}, but the grant failed: "
        f"{one_line(request.cause or 'unknown error')}\n"
        f"Nothing was granted; the request is marked failed and {who(request.requester)} "
        "has been told."
    )
    return render(f"The grant for {request.id} failed", [section(text)])


# --- ephemeral replies ----------------------------------------------------------


def submitted_reply(request: AccessRequest) -> Message:
    text = (
        f"📨 Request {code(request.id)} submitted: {grant_text(request)} for "
        f"{format_duration(request.duration)}.\nIt has been posted to the approvers; "
        "I will DM you when someone decides."
    )
    note = context(f"Changed your mind? `/jitsudo cancel {request.id}`")
    return render(f"Request {request.id} submitted", [section(text), note])


def error_reply(message: str) -> Message:
    return render(f":x: {escape(message, 300)}", [section(f":x: {escape(message, 2900)}")])


def help_reply() -> Message:
    return render("jitsudo: how to use /jitsudo", [section(USAGE)])


def status_reply(request: AccessRequest, *, request_ttl: timedelta | None = None) -> Message:
    fields = [
        *request_fields(request),
        f"*State*\n{request.state.replace('_', ' ')}",
        f"*Requested*\n{slack_time(request.created_at)}",
    ]
    if request.expires_at:
        fields.append(f"*Expires*\n{slack_time(request.expires_at)}")
    blocks: list[Block] = [
        SectionBlock(fields=[md(field) for field in fields]),
        section(f"*Reason*\n{quote(request.reason, 2000)}"),
        context(outcome(request, request_ttl=request_ttl)),
    ]
    return render(f"{request.id}: {request.state}", blocks)


def list_reply(mine: list[AccessRequest], awaiting: list[AccessRequest] | None) -> Message:
    """Awaiting is None for someone who is not an approver: no review section at all."""
    lines = [_list_line(request) for request in mine] or ["_None yet. Try `/jitsudo request`._"]
    blocks: list[Block] = [section(fit_lines(["*Your requests*", *lines]))]
    if awaiting is not None:
        waiting = [_list_line(r, requester=True) for r in awaiting] or ["_Nothing waits for you._"]
        blocks.append(section(fit_lines(["*Waiting for your review*", *waiting])))
    count = f"{len(mine)} request(s)" + (f", {len(awaiting)} to review" if awaiting else "")
    return render(f"jitsudo: {count}", blocks)


def _list_line(request: AccessRequest, *, requester: bool = False) -> str:
    by = f" from {who(request.requester)}" if requester else ""
    state = request.state.replace("_", " ")
    if request.state in (State.ACTIVE, State.REVOKING):
        state += f" until {slack_time(request.expires_at)}"
    return f"• {code(request.id)} {grant_text(request)}{by}: {state}"


def decision_reply(request: AccessRequest) -> Message:
    """Confirms to the approver (or revoker) what their click did."""
    if request.state is State.ACTIVE:
        text = (
            f"✅ You approved {code(request.id)}: {who(request.requester)} has "
            f"{grant_text(request)} until {slack_time(request.expires_at)}."
        )
    elif request.state is State.DENIED:
        text = (
            f"❌ You denied {code(request.id)} from {who(request.requester)}; they have been told."
        )
    else:
        text = f"{code(request.id)}: {outcome(request)}"
    return render(f"{request.id}: {request.state}", [section(text)])
