"""Property tests: hostile or random input never crashes the parsers or leaks into mrkdwn."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain import (
    MAX_DURATION,
    MIN_DURATION,
    AccessRequest,
    InvalidInput,
    State,
    format_duration,
    new_request_id,
    parse_duration,
    parse_request_id,
)
from bot.slack import blocks, commands

WORDS = st.sampled_from(
    [
        "request",
        "status",
        "deny",
        "extend",
        "--role",
        "--scope",
        "--duration",
        "--reason",
        "--provider",
        "--role=",
        "edit",
        "*",
        "30m",
        '"',
        "'",
        "“",
        "”",
        "\u2018",
        "\u2019",
        "\\",
        "req_x",
        "payload",
        "<!channel>",
        "&",
        " ",
        "\n",
    ]
)
HOSTILE = st.one_of(st.text(), st.lists(WORDS, max_size=12).map(" ".join))


@given(HOSTILE)
@settings(max_examples=400, deadline=None)
def test_the_command_parser_only_ever_says_invalid_input(text: str) -> None:
    try:
        commands.parse_command(text)
    except InvalidInput as error:
        assert str(error)  # always a message for the user


@given(st.text(), st.integers(min_value=10, max_value=3000))
def test_escaped_text_is_inert_bounded_and_faithful(text: str, limit: int) -> None:
    escaped = blocks.escape(text, limit)
    assert "<" not in escaped and ">" not in escaped
    assert len(escaped) <= limit
    restored = html.unescape(escaped.removesuffix("…"))
    assert text.startswith(restored)


@given(st.integers(min_value=1, max_value=10**6))
def test_durations_round_trip(seconds: int) -> None:
    value = timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value


@given(st.text(max_size=40))
def test_request_ids_are_parsed_or_refused(text: str) -> None:
    try:
        parsed = parse_request_id(text)
    except InvalidInput:
        return
    assert parsed.startswith("req_") and parsed == parsed[:4] + parsed[4:].upper()


@given(
    reason=st.text(min_size=1, max_size=3000),
    role=st.text(min_size=1, max_size=300),
    namespace=st.one_of(st.none(), st.text(min_size=1, max_size=300)),
    state=st.sampled_from(list(State)),
)
@settings(max_examples=150, deadline=None)
def test_messages_from_any_user_text_are_valid_and_cannot_ping(
    reason: str, role: str, namespace: str | None, state: State
) -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    request = AccessRequest(
        id=new_request_id(),
        requester="U1",
        k8s_user=reason[:200],
        provider="kubernetes",
        role=role,
        scope=namespace or "*",
        namespace=namespace,
        duration=timedelta(minutes=5),
        reason=reason,
        state=state,
        created_at=now,
        decided_by="U2",
        decided_at=now,
        decision_note=reason,
        expires_at=now + timedelta(minutes=5),
        ended_at=now,
        cause=reason,
    )
    for message in (
        blocks.request_message(request, rules=None),
        blocks.denied_dm(request),
        blocks.failed_dm(request),
        blocks.status_reply(request),
    ):
        # mentions, dates and quote marks are ours; any other bracket would be user text
        ours = re.sub(r"<@U[12]>|<!date\^\d+\^[^|>]*\|[^>]*>|\\n> ", "", json.dumps(message.blocks))
        assert (
            "<" not in ours and ">" not in ours
        )  # mentions, dates and quote marks are ours; any other bracket would be user text
        assert len(message.blocks) <= 50


DURATION_TEXT = st.one_of(
    st.text(max_size=30),
    st.lists(
        st.tuples(
            st.one_of(
                st.integers(min_value=0, max_value=10**30).map(str),
                st.floats(min_value=0, allow_nan=False, allow_infinity=False).map(
                    lambda f: f"{f:f}"
                ),
                st.integers(min_value=1, max_value=600).map(lambda n: "9" * n),
            ),
            st.sampled_from(["h", "m", "s", "H", "d", ""]),
        ).map("".join),
        min_size=1,
        max_size=4,
    ).map("".join),
)


@given(DURATION_TEXT)
@settings(max_examples=400, deadline=None)
def test_any_duration_is_within_bounds_or_refused(text: str) -> None:
    try:
        value = parse_duration(text)
    except InvalidInput as error:
        assert str(error)
        return
    assert MIN_DURATION <= value <= MAX_DURATION
    assert value.microseconds == 0
