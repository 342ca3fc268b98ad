"""Hostile input through the whole request path: refused with a message, never a crash.

Slash commands and modal submissions go signed over real HTTP to the bot (tests/harness);
what counts is what the user is answered and what ends up in the store.
"""

from __future__ import annotations

import json
import shlex
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot.domain import AccessRequest, State, new_request_id
from bot.slack import blocks
from tests.harness import REQUESTER, Harness, running_bot, wait_until

# The policy of tests/harness.settings_document, restated as the oracle.
ROLE_LIMITS = {
    "view": timedelta(hours=2),
    "edit": timedelta(hours=2),
    "admin": timedelta(hours=2),
    "cluster-admin": timedelta(minutes=30),
}
MIN_DURATION = timedelta(seconds=1)
MAX_REASON_LENGTH = 500  # policy.max_reason_length's default
GENERIC_ERROR = "Something went wrong"
CEILING = "8760h (365 days)"
OVERFLOWING = ["99999999999999999999h", "100000000h", "1" * 400 + "h"]


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    with running_bot(tmp_path) as harness:
        yield harness


def _request_modal_values(duration: str) -> dict[str, Any]:
    def text(value: str) -> dict[str, Any]:
        return {"type": "plain_text_input", "value": value}

    return {
        blocks.ROLE_BLOCK: {
            blocks.ROLE_ACTION: {
                "type": "static_select",
                "selected_option": {
                    "text": {"type": "plain_text", "text": "edit"},
                    "value": "edit",
                },
            }
        },
        blocks.NAMESPACE_BLOCK: {blocks.NAMESPACE_ACTION: text("production")},
        blocks.CLUSTER_WIDE_BLOCK: {
            blocks.CLUSTER_WIDE_ACTION: {"type": "checkboxes", "selected_options": []}
        },
        blocks.DURATION_BLOCK: {blocks.DURATION_ACTION: text(duration)},
        blocks.REASON_BLOCK: {blocks.REASON_ACTION: text("from the modal")},
    }


def _extend_modal_values(duration: str) -> dict[str, Any]:
    return {
        blocks.EXTEND_DURATION_BLOCK: {
            blocks.EXTEND_DURATION_ACTION: {"type": "plain_text_input", "value": duration}
        },
        blocks.EXTEND_REASON_BLOCK: {
            blocks.EXTEND_REASON_ACTION: {"type": "plain_text_input", "value": "more"}
        },
    }


@pytest.mark.parametrize("duration", [*OVERFLOWING, "0.0000001s"])
def test_modals_show_out_of_range_durations_next_to_the_input(h: Harness, duration: str) -> None:
    """A forged submission is not bound by the input's max_length of 20."""
    request_form = h.sender.view_submission(
        "request_modal", _request_modal_values(duration), user=REQUESTER
    )
    extend_form = h.sender.view_submission(
        "extend_modal",
        _extend_modal_values(duration),
        user=REQUESTER,
        private_metadata=new_request_id(),
    )
    expected = "shorter than 1s" if duration.startswith("0.") else CEILING
    for response, block in (
        (request_form, blocks.DURATION_BLOCK),
        (extend_form, blocks.EXTEND_DURATION_BLOCK),
    ):
        assert response.status == 200, response.body
        assert response.json()["response_action"] == "errors"
        assert expected in response.json()["errors"][block]
    assert h.bot.store.find() == []


@pytest.mark.parametrize("duration", OVERFLOWING)
def test_overflowing_durations_in_commands_are_refused(h: Harness, duration: str) -> None:
    for text in (
        f"request --role edit --scope production --duration {duration} --reason x",
        f"extend {new_request_id()} --duration {duration} --reason x",
    ):
        reply = h.command(text)
        assert CEILING in reply and GENERIC_ERROR not in reply
    assert h.bot.store.find() == []


def test_without_a_maximum_the_ceiling_holds_and_fits_the_database(
    tmp_path: Path, database_url: str
) -> None:
    """With no max_duration anywhere, only the ceiling stands between a user and
    PostgreSQL's 32-bit duration_seconds column (2**31 s is about 596523h)."""
    roles = {"view": {}, "edit": {}}
    with running_bot(tmp_path, database=database_url, provider_max_duration=None, roles=roles) as h:
        reply = h.command("request --role view --scope staging --duration 600000h --reason x")
        assert CEILING in reply and GENERIC_ERROR not in reply
        assert h.bot.store.find() == []
        request = h.request("request --role view --scope staging --duration 8760h --reason x")
        assert h.bot.store.get(request.id).duration == timedelta(days=365)  # type: ignore[union-attr]


# --- the property: any command text, answered and either refused or stored valid ----

HOSTILE_VALUES = st.one_of(
    st.sampled_from(
        [
            *OVERFLOWING,
            "9" * 5000 + "s",
            "0.0000001s",
            "8760h",
            "8761h",
            "-5m",
            "1e9s",
            "inf",
            "nan",
            "<!channel>",
            "<@UADMIN>",
            "a\x00b",
            "\x1b[31mred",
            "\u202eevil",
            "“",
            '"',
            "'",
            "--role",
            "x" * 3000,
            "é" * 600,
            "",
        ]
    ),
    st.integers(min_value=0, max_value=10**30).map(lambda n: f"{n}h"),
    st.text(max_size=60),
)
VALID = {
    "role": list(ROLE_LIMITS),
    "scope": ["production", "staging", "*"],
    "duration": ["1s", "30m", "2h", "1h30m"],
    "reason": ["deploy the fix", "ticket #123 it's on fire"],
}


def _verbatim(value: str) -> str:
    return value


def _double_quoted(value: str) -> str:
    return f'"{value}"'


def _smart_quoted(value: str) -> str:
    return f"\u201c{value}\u201d"


QUOTING: list[Callable[[str], str]] = [shlex.quote, _verbatim, _double_quoted, _smart_quoted]


@st.composite
def structured_requests(draw: st.DrawFn) -> str:
    """`request --role X --scope Y --duration Z --reason W`; each part valid, hostile or absent."""
    words = ["request"]
    for flag, valid in VALID.items():
        if draw(st.integers(min_value=0, max_value=5)) == 0:
            continue
        # mostly valid values, so that whole requests often pass and get stored
        hostile = draw(st.sampled_from([False, False, False, True]))
        value = draw(HOSTILE_VALUES if hostile else st.sampled_from(valid))
        quoted = draw(st.sampled_from(QUOTING))(value)
        words.append(f"--{flag}={quoted}" if draw(st.booleans()) else f"--{flag} {quoted}")
    return " ".join(words)


COMMAND_TEXT = st.one_of(
    structured_requests(),
    structured_requests(),  # twice: half of the examples are request commands
    st.text(max_size=300),
    st.lists(
        st.sampled_from(["request", "extend", "deny", "--duration", "--reason", "30m", "<!here>"]),
        max_size=8,
    ).map(" ".join),
)


def _answer(h: Harness, text: str) -> dict[str, Any]:
    """What /jitsudo TEXT got: the reply posted to its response_url, or the modal it opened."""
    form = h.sender.command_form("/jitsudo", text, user=REQUESTER)
    key = f"prop-{uuid.uuid4().hex}"
    form["response_url"] = h.slack.response_url(key, channel=form["channel_id"])
    views_before = len(h.slack.calls_to("views.open"))
    response = h.sender.send_form(form)
    assert response.status == 200, response.body

    def arrived() -> dict[str, Any] | None:
        for call in h.slack.calls_to("response_url"):
            if call.response_url_id == key:
                return call.payload
        opened = h.slack.calls_to("views.open")[views_before:]
        return {"opened_view": opened[-1].payload["view"]} if opened else None

    return wait_until(arrived)


def _assert_valid_pending(request: AccessRequest) -> None:
    assert request.state is State.PENDING and request.requester == REQUESTER
    assert request.role in ROLE_LIMITS
    assert MIN_DURATION <= request.duration <= ROLE_LIMITS[request.role]
    assert request.reason == request.reason.strip() and request.reason
    assert len(request.reason) <= MAX_REASON_LENGTH


def test_any_command_text_is_answered_and_refused_or_stored_valid(
    tmp_path: Path, database_url: str
) -> None:
    stored: list[AccessRequest] = []
    # The flood limits are tested on their own (test_faults*); here they would refuse most
    # examples before the path under test is reached.
    limits = {"commands_per_minute": 10_000, "max_pending_per_user": 1000}
    with running_bot(tmp_path, database=database_url, **limits) as h:

        @given(COMMAND_TEXT)
        @settings(max_examples=120, deadline=None, database=None)
        @example("request --role edit --scope production --duration 30m --reason ok")
        @example("request --role edit --duration 99999999999999999999h --reason x")
        @example("request --role edit --duration 100000000h --reason x")
        @example(f"request --role edit --duration {'1' * 400}h --reason x")
        @example("request --role edit --scope production --duration 0.0000001s --reason x")
        @example("request --role edit --scope production --reason 'nul \x00 byte'")
        @example("request")
        def one_command(text: str) -> None:
            known = {request.id for request in h.bot.store.find()}
            reply = _answer(h, text)
            new = [request for request in h.bot.store.find() if request.id not in known]
            if "opened_view" in reply:
                assert new == []
                return
            shown = json.dumps(reply)
            assert reply.get("response_type") == "ephemeral", shown
            assert GENERIC_ERROR not in shown, (text, shown)
            assert len(new) <= 1
            for request in new:
                _assert_valid_pending(request)
                assert request.id in shown
                stored.append(request)

        one_command()
    assert stored  # the property saw accepted requests, not only refusals


@pytest.mark.parametrize(
    "text", ["nul \x00 byte", "\x1b[31mred", "bell\x07", "del\x7f", "c1\x85mid"]
)
def test_reasons_with_control_characters_are_refused(text: str) -> None:
    from bot.config import parse_settings
    from bot.domain import InvalidInput
    from bot.policy import Policy

    policy = Policy.from_settings(parse_settings({}, {}))
    with pytest.raises(InvalidInput, match=r"control character U\+00"):
        policy.check_reason(text)
    with pytest.raises(InvalidInput, match="control character"):
        policy.check_reason(text, required=False)  # a denial's note
    assert policy.check_reason("line one\nline two\ttabbed\r\n") == "line one\nline two\ttabbed"
