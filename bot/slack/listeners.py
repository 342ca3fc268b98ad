"""Bolt listeners: ack, extract plain values, call one service operation, render.

Every listener acks first (Slack wants an answer within 3 seconds) and replies
afterwards through respond() or the Web API; the one exception is a modal
submission, whose validation errors must travel in the ack itself. Domain
errors become messages in one place: `_reply_error`. Every line a listener
logs names the acting user (`_as_actor`, bot.logs).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.domain import (
    AccessRequest,
    InvalidInput,
    format_duration,
    parse_duration,
    parse_request_id,
)
from bot.errors import AccessError, GrantDelayed, GrantFailed
from bot.logs import acting
from bot.service import AccessService, Draft
from bot.slack import blocks, commands
from bot.slack.notifier import send_dm
from bot.slack.people import People

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deps:
    service: AccessService
    people: People


def register(app: App, deps: Deps) -> None:
    """Attach every /jitsudo command, button and modal handler to `app`."""
    handlers = _Handlers(deps)
    app.command("/jitsudo")(_as_actor(handlers.command))
    app.action("approve")(_as_actor(handlers.approve_button))
    app.action("deny")(_as_actor(handlers.deny_button))
    app.action("revoke_now")(_as_actor(handlers.revoke_button))
    app.action("extend")(_as_actor(handlers.extend_button))
    app.view("request_modal")(_as_actor(handlers.request_modal))
    app.view("deny_modal")(_as_actor(handlers.deny_modal))
    app.view("extend_modal")(_as_actor(handlers.extend_modal))


def _as_actor(listener: Callable[..., None]) -> Callable[..., None]:
    """Run a listener with the acting Slack user in every log line.

    Bolt reads the listener's argument names through functools.wraps and
    passes exactly those, by keyword.
    """

    @functools.wraps(listener)
    def run(**kwargs: Any) -> None:
        with acting(actor=acting_user(kwargs.get("command") or kwargs.get("body") or {})):
            listener(**kwargs)

    return run


def acting_user(body: dict[str, Any]) -> str | None:
    """Who acts: `user_id` in a slash command, `user.id` in a click or a form."""
    user = body.get("user_id") or (body.get("user") or {}).get("id")
    return str(user) if user else None


class _Handlers:
    def __init__(self, deps: Deps) -> None:
        self.service = deps.service
        self.people = deps.people

    # --- /jitsudo -----------------------------------------------------------

    def command(
        self, ack: Ack, command: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        ack()
        _guarded(respond, lambda: self._dispatch(command, client))

    def _dispatch(self, command: dict[str, Any], client: WebClient) -> blocks.Message | None:
        self.service.admit(command["user_id"])
        parsed = commands.parse_command(command.get("text") or "")
        if isinstance(parsed, commands.OpenRequestModal):
            self._open_request_modal(client, command["trigger_id"])
            return None
        return self._run(parsed, command["user_id"])

    def _run(self, parsed: commands.Command, user: str) -> blocks.Message:  # noqa: PLR0911
        """One subcommand, one service operation, one reply."""
        service = self.service
        match parsed:
            case commands.RequestAccess():
                return blocks.submitted_reply(self._submit(parsed, user))
            case commands.Extend(request_id=request_id, duration=duration, reason=reason):
                extension = service.request_extension(
                    request_id, requester=user, duration=duration, reason=reason
                )
                return blocks.submitted_reply(extension)
            case commands.Status(request_id=request_id):
                request = service.get(request_id, viewer=user)
                return blocks.status_reply(request, request_ttl=service.policy.request_ttl)
            case commands.ListRequests():
                return blocks.list_reply(service.mine(user), service.awaiting(user))
            case commands.Approve(request_id=request_id):
                return self._approve(request_id, user)
            case commands.Deny(request_id=request_id, reason=reason):
                return blocks.decision_reply(service.deny(request_id, approver=user, note=reason))
            case commands.Cancel(request_id=request_id):
                return blocks.decision_reply(service.cancel(request_id, actor=user))
            case commands.Revoke(request_id=request_id):
                return blocks.decision_reply(service.revoke(request_id, actor=user))
            case _:
                return blocks.help_reply()

    def _submit(self, parsed: commands.RequestAccess, user: str) -> AccessRequest:
        draft = Draft(
            requester=user,
            k8s_user=self.people.kubernetes_user(user),
            role=parsed.role,
            scope=parsed.scope,
            duration=parsed.duration,
            reason=parsed.reason,
        )
        return self.service.submit(draft)

    def _approve(self, request_id: str, user: str) -> blocks.Message:
        try:
            return blocks.decision_reply(self.service.approve(request_id, approver=user))
        except (GrantFailed, GrantDelayed) as failure:
            return blocks.failed_for_approver(failure.request)

    def _open_request_modal(self, client: WebClient, trigger_id: str) -> None:
        policy = self.service.policy
        view = blocks.request_modal(
            policy.roles, default_duration=format_duration(policy.default_duration)
        )
        client.views_open(trigger_id=trigger_id, view=view)

    # --- buttons ------------------------------------------------------------

    def approve_button(self, ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        user, request_id = body["user"]["id"], _action_value(body)
        _guarded(respond, lambda: self._approve(request_id, user))

    def deny_button(
        self, ack: Ack, body: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        ack()
        user, request_id = body["user"]["id"], _action_value(body)

        def ask_for_a_reason() -> None:
            self.service.may_decide(request_id, approver=user)
            client.views_open(trigger_id=body["trigger_id"], view=blocks.deny_modal(request_id))

        _guarded(respond, ask_for_a_reason)

    def revoke_button(self, ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        user, request_id = body["user"]["id"], _action_value(body)
        _guarded(
            respond, lambda: blocks.decision_reply(self.service.revoke(request_id, actor=user))
        )

    # --- modals -------------------------------------------------------------

    def request_modal(self, ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        user = body["user"]["id"]
        values = blocks.read_request_modal(body["view"]["state"]["values"])
        _finish_modal(
            ack,
            client,
            user,
            errors=blocks.request_modal_errors(values),
            operation=lambda: self.service.submit(self._modal_draft(user, values)),
            place=_request_error_block,
            reply=blocks.submitted_reply,
        )

    def _modal_draft(self, user: str, values: dict[str, str | bool]) -> Draft:
        scope = str(values.get("scope") or "")
        duration_text = str(values.get("duration") or "").strip()
        return Draft(
            requester=user,
            k8s_user=self.people.kubernetes_user(user),
            role=str(values.get("role") or ""),
            scope=scope,
            duration=parse_duration(duration_text) if duration_text else None,
            reason=str(values.get("reason") or ""),
        )

    def extend_button(self, ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        default = format_duration(self.service.policy.default_duration)
        view = blocks.extend_modal(_action_value(body), default_duration=default)
        client.views_open(trigger_id=body["trigger_id"], view=view)

    def extend_modal(self, ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        user = body["user"]["id"]
        values = blocks.read_extend_modal(body["view"]["state"]["values"])
        _finish_modal(
            ack,
            client,
            user,
            errors=blocks.extend_modal_errors(values),
            operation=lambda: self.service.request_extension(
                parse_request_id(body["view"]["private_metadata"]),
                requester=user,
                duration=parse_duration(values["duration"]),
                reason=values["reason"],
            ),
            place=lambda message: (
                blocks.EXTEND_DURATION_BLOCK if "uration" in message else blocks.EXTEND_REASON_BLOCK
            ),
            reply=blocks.submitted_reply,
        )

    def deny_modal(self, ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        user = body["user"]["id"]
        note = blocks.read_deny_modal(body["view"]["state"]["values"])
        _finish_modal(
            ack,
            client,
            user,
            errors={},
            operation=lambda: self.service.deny(
                parse_request_id(body["view"]["private_metadata"]), approver=user, note=note
            ),
            place=lambda _: blocks.DENY_REASON_BLOCK,
            reply=blocks.decision_reply,
        )


def _guarded(respond: Respond, operation: Callable[[], blocks.Message | None]) -> None:
    """Run one operation; reply with its message, or with what was wrong and how to fix it."""
    try:
        reply = operation()
    except (AccessError, InvalidInput) as error:
        reply = blocks.error_reply(str(error))
    if reply is not None:
        respond(**_ephemeral(reply))


def _finish_modal(
    ack: Ack,
    client: WebClient,
    user: str,
    *,
    errors: dict[str, str],
    operation: Callable[[], AccessRequest],
    place: Callable[[str], str],
    reply: Callable[[AccessRequest], blocks.Message],
) -> None:
    """Errors travel in the ack, shown next to their input; success is confirmed by DM."""
    if errors:
        ack(response_action="errors", errors=errors)
        return
    try:
        request = operation()
    except (AccessError, InvalidInput) as error:
        ack(response_action="errors", errors={place(str(error)): str(error)[:150]})
        return
    ack()
    send_dm(client, user, reply(request))


def _action_value(body: dict[str, Any]) -> str:
    return parse_request_id(str(body["actions"][0]["value"]))


def _ephemeral(message: blocks.Message) -> dict[str, Any]:
    return {
        "text": message.text,
        "blocks": message.blocks,
        "response_type": "ephemeral",
        "replace_original": False,
    }


_ERROR_BLOCKS = (
    ("duration", blocks.DURATION_BLOCK),
    ("role", blocks.ROLE_BLOCK),
    ("namespace", blocks.NAMESPACE_BLOCK),
    ("reason", blocks.REASON_BLOCK),
)


def _request_error_block(message: str) -> str:
    """Show a modal error next to the input it is about."""
    lowered = message.lower()
    for word, block_id in _ERROR_BLOCKS:
        if word in lowered:
            return block_id
    return blocks.REASON_BLOCK
