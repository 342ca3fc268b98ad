"""Modals: the request form, the deny reason, the extension form; and reading them back.

Pure. Listeners open these with views.open and pass `view.state.values` of the
view_submission to the read_* functions, which return plain values; the service
checks them. Block and action IDs are constants so builder and reader agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from slack_sdk.models.blocks import (
    Block,
    CheckboxesElement,
    InputBlock,
    InputInteractiveElement,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.domain import CLUSTER_WIDE, InvalidInput, parse_duration

REQUEST_MODAL = "request_modal"
DENY_MODAL = "deny_modal"
EXTEND_MODAL = "extend_modal"
CLUSTER_WIDE_OPTION = "cluster_wide"
MAX_REASON_LENGTH = 500
_MAX_OPTIONS = 100  # Slack's limit for a static_select
_OPTION_TEXT_LIMIT = 75


ROLE_BLOCK, ROLE_ACTION = "role", "role"
NAMESPACE_BLOCK, NAMESPACE_ACTION = "namespace", "namespace"
CLUSTER_WIDE_BLOCK, CLUSTER_WIDE_ACTION = "cluster_wide", "cluster_wide"
DURATION_BLOCK, DURATION_ACTION = "duration", "duration"
REASON_BLOCK, REASON_ACTION = "reason", "reason"
DENY_REASON_BLOCK, DENY_REASON_ACTION = "deny_reason", "reason"
EXTEND_DURATION_BLOCK, EXTEND_DURATION_ACTION = "extend_duration", "duration"
EXTEND_REASON_BLOCK, EXTEND_REASON_ACTION = "extend_reason", "reason"


class _Input(NamedTuple):
    """Where Slack puts an input's value: view.state.values[block_id][action_id]."""

    block_id: str
    action_id: str


ROLE_INPUT = _Input(ROLE_BLOCK, ROLE_ACTION)
NAMESPACE_INPUT = _Input(NAMESPACE_BLOCK, NAMESPACE_ACTION)
CLUSTER_WIDE_INPUT = _Input(CLUSTER_WIDE_BLOCK, CLUSTER_WIDE_ACTION)
DURATION_INPUT = _Input(DURATION_BLOCK, DURATION_ACTION)
REASON_INPUT = _Input(REASON_BLOCK, REASON_ACTION)
DENY_REASON_INPUT = _Input(DENY_REASON_BLOCK, DENY_REASON_ACTION)
EXTEND_DURATION_INPUT = _Input(EXTEND_DURATION_BLOCK, EXTEND_DURATION_ACTION)
EXTEND_REASON_INPUT = _Input(EXTEND_REASON_BLOCK, EXTEND_REASON_ACTION)


def request_modal(
    roles: list[str],
    *,
    default_duration: str,
    private_metadata: str = "",
    max_reason_length: int = MAX_REASON_LENGTH,
) -> dict[str, Any]:
    """What `/jitsudo request` with no flags opens; private_metadata carries e.g. the channel."""
    options = [Option(value=role, label=_option_text(role)) for role in roles[:_MAX_OPTIONS]]
    blocks = [
        _input(
            ROLE_INPUT,
            "Role",
            StaticSelectElement(
                action_id=ROLE_INPUT.action_id, placeholder="Choose a role", options=options
            ),
        ),
        _input(
            NAMESPACE_INPUT,
            "Namespace",
            PlainTextInputElement(
                action_id=NAMESPACE_INPUT.action_id, placeholder="production", max_length=253
            ),
            optional=True,
            hint="Leave empty for the default namespace",
        ),
        _input(
            CLUSTER_WIDE_INPUT,
            "Scope",
            CheckboxesElement(
                action_id=CLUSTER_WIDE_INPUT.action_id,
                options=[Option(value=CLUSTER_WIDE_OPTION, label="Cluster-wide (every namespace)")],
            ),
            optional=True,
        ),
        _duration_input(DURATION_INPUT, default_duration),
        _reason_input(REASON_INPUT, "What do you need to do?", max_reason_length),
    ]
    return _modal(REQUEST_MODAL, "Request access", "Request", blocks, private_metadata)


def read_request_modal(state_values: dict[str, Any]) -> dict[str, str | bool]:
    """The submitted form as plain values; `scope` is ready for the service ("*" = cluster)."""
    namespace = _text(state_values, NAMESPACE_INPUT)
    cluster_wide = CLUSTER_WIDE_OPTION in _checked(state_values, CLUSTER_WIDE_INPUT)
    return {
        "role": _selected(state_values, ROLE_INPUT),
        "namespace": namespace,
        "cluster_wide": cluster_wide,
        "scope": CLUSTER_WIDE if cluster_wide else namespace,
        "duration": _text(state_values, DURATION_INPUT),
        "reason": _text(state_values, REASON_INPUT),
    }


def request_modal_errors(values: dict[str, str | bool]) -> dict[str, str]:
    """Inline errors for `ack(response_action="errors", errors=...)`, keyed by block_id."""
    errors: dict[str, str] = {}
    if values.get("cluster_wide") and values.get("namespace"):
        errors[NAMESPACE_INPUT.block_id] = (
            "Leave the namespace empty for cluster-wide access, or untick Cluster-wide."
        )
    problem = _duration_problem(str(values.get("duration", "")))
    if problem:
        errors[DURATION_INPUT.block_id] = problem
    return errors


def deny_modal(request_id: str) -> dict[str, Any]:
    """Opened by the Deny button; the request ID rides in private_metadata."""
    reason = PlainTextInputElement(
        action_id=DENY_REASON_INPUT.action_id,
        multiline=True,
        max_length=MAX_REASON_LENGTH,
        placeholder="Why not? The requester sees this.",
    )
    blocks = [_input(DENY_REASON_INPUT, "Reason (optional)", reason, optional=True)]
    return _modal(DENY_MODAL, "Deny request", "Deny", blocks, request_id)


def read_deny_modal(state_values: dict[str, Any]) -> str:
    return _text(state_values, DENY_REASON_INPUT)


def extend_modal(request_id: str, *, default_duration: str) -> dict[str, Any]:
    """Opened by the Extend button of the expiry warning; the ID rides in private_metadata."""
    blocks = [
        _duration_input(EXTEND_DURATION_INPUT, default_duration, label="Extra time"),
        _reason_input(EXTEND_REASON_INPUT, "Why do you need more time?", MAX_REASON_LENGTH),
    ]
    return _modal(EXTEND_MODAL, "Extend access", "Ask for more", blocks, request_id)


def read_extend_modal(state_values: dict[str, Any]) -> dict[str, str]:
    return {
        "duration": _text(state_values, EXTEND_DURATION_INPUT),
        "reason": _text(state_values, EXTEND_REASON_INPUT),
    }


def extend_modal_errors(values: dict[str, str]) -> dict[str, str]:
    problem = _duration_problem(values.get("duration", ""))
    return {EXTEND_DURATION_INPUT.block_id: problem} if problem else {}


# --- building -----------------------------------------------------------------


def _modal(
    callback_id: str, title: str, submit: str, blocks: Sequence[Block], private_metadata: str
) -> dict[str, Any]:
    view = View(
        type="modal",
        callback_id=callback_id,
        title=PlainTextObject(text=title),
        submit=PlainTextObject(text=submit),
        close=PlainTextObject(text="Cancel"),
        blocks=blocks,
        private_metadata=private_metadata or None,
    )
    return view.to_dict()


def _input(
    where: _Input,
    label: str,
    element: InputInteractiveElement,
    *,
    optional: bool = False,
    hint: str | None = None,
) -> InputBlock:
    return InputBlock(
        block_id=where.block_id,
        label=PlainTextObject(text=label),
        element=element,
        optional=optional,
        hint=PlainTextObject(text=hint) if hint else None,
    )


def _duration_input(where: _Input, default: str, *, label: str = "Duration") -> InputBlock:
    element = PlainTextInputElement(
        action_id=where.action_id,
        initial_value=default,
        placeholder="30m, 1h, 1h30m",
        max_length=20,
    )
    return _input(where, label, element, hint="A number with h, m or s, e.g. 30m or 1h30m")


def _reason_input(where: _Input, placeholder: str, max_length: int) -> InputBlock:
    element = PlainTextInputElement(
        action_id=where.action_id,
        multiline=True,
        max_length=max_length,
        placeholder=placeholder,
    )
    return _input(where, "Reason", element)


def _option_text(text: str) -> str:
    return text if len(text) <= _OPTION_TEXT_LIMIT else text[: _OPTION_TEXT_LIMIT - 1] + "…"


# --- reading ------------------------------------------------------------------


def _state(values: dict[str, Any], where: _Input) -> dict[str, Any]:
    """Slack omits nothing but sends null for untouched optional inputs."""
    block = values.get(where.block_id) or {}
    state = block.get(where.action_id) if isinstance(block, dict) else None
    return state if isinstance(state, dict) else {}


def _text(values: dict[str, Any], where: _Input) -> str:
    return str(_state(values, where).get("value") or "").strip()


def _selected(values: dict[str, Any], where: _Input) -> str:
    option = _state(values, where).get("selected_option") or {}
    return str(option.get("value") or "") if isinstance(option, dict) else ""


def _checked(values: dict[str, Any], where: _Input) -> set[str]:
    options = _state(values, where).get("selected_options") or []
    return {str(option.get("value")) for option in options if isinstance(option, dict)}


def _duration_problem(text: str) -> str | None:
    if not text.strip():
        return "Give a duration, e.g. 30m or 1h."
    try:
        parse_duration(text)
    except InvalidInput as error:
        return str(error).replace("`", "")
    return None
