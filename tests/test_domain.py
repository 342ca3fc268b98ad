"""Pure values: IDs, durations, the scope rule, the state machine."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.domain import (
    MAX_DURATION,
    TRANSITIONS,
    InvalidInput,
    State,
    Target,
    format_duration,
    new_request_id,
    parse_duration,
    parse_request_id,
    resolve_target,
)


def test_request_ids_are_uppercase_crockford_ulids() -> None:
    request_id = new_request_id()
    assert request_id.startswith("req_")
    assert len(request_id) == 30
    assert request_id[4:] == request_id[4:].upper()
    assert not set(request_id[4:]) & set("ILOU")


def test_request_ids_are_accepted_in_any_case() -> None:
    request_id = new_request_id()
    assert parse_request_id(request_id.lower()) == request_id
    assert parse_request_id(f"  {request_id}  ") == request_id
    assert parse_request_id("REQ_" + request_id[4:].lower()) == request_id


@pytest.mark.parametrize(
    "text", ["", "req_", "req_123", "01J8KZ4Q2M3N5P6R7S8T9VWXYZ", "req_01J8KZ4Q2M3N5P6R7S8T9VWXYU"]
)
def test_malformed_request_ids_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match="not a request ID"):
        parse_request_id(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("1h", 3600),
        ("1h30m", 5400),
        ("2h0m5s", 7205),
        ("1.5h", 5400),
        ("30M", 1800),
    ],
)
def test_go_style_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "30", "m", "1d", "1h 30m", "-5m", "0s", "abc", "30mins"])
def test_bad_durations_say_how_to_fix(text: str) -> None:
    with pytest.raises(InvalidInput, match="duration"):
        parse_duration(text)


def test_format_duration_round_trips() -> None:
    for text in ("1h30m", "15m", "45s", "2h", "1h0m1s"):
        assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)
    assert format_duration(timedelta(minutes=90)) == "1h30m"


def test_star_is_always_cluster_wide() -> None:
    assert resolve_target("*", default_namespace="default") == Target(namespace=None)
    assert resolve_target(" * ", default_namespace="") == Target(namespace=None)


def test_empty_scope_means_default_namespace_then_cluster() -> None:
    assert resolve_target("", default_namespace="default") == Target(namespace="default")
    assert resolve_target("", default_namespace="") == Target(namespace=None)
    assert resolve_target("production", default_namespace="") == Target(namespace="production")


def test_state_machine_matches_the_lifecycle() -> None:
    assert TRANSITIONS[State.PENDING] == {
        State.APPROVED,
        State.DENIED,
        State.CANCELLED,
        State.TIMED_OUT,
    }
    assert TRANSITIONS[State.APPROVED] == {State.ACTIVE, State.FAILED, State.EXTENDED}
    # Every ending goes through revoking: recorded only once the binding is really gone.
    assert TRANSITIONS[State.ACTIVE] == {State.REVOKING}
    assert TRANSITIONS[State.REVOKING] == {State.EXPIRED, State.REVOKED}
    finals = {state for state in State if state.is_final}
    assert finals == {
        State.EXPIRED,
        State.REVOKED,
        State.DENIED,
        State.CANCELLED,
        State.TIMED_OUT,
        State.FAILED,
        State.EXTENDED,
    }


def test_every_state_but_pending_has_exactly_one_source() -> None:
    from bot.domain import source_of

    assert source_of(State.DENIED) is State.PENDING
    assert source_of(State.FAILED) is State.APPROVED
    assert source_of(State.REVOKED) is State.REVOKING
    assert source_of(State.EXPIRED) is State.REVOKING
    for state in State:
        if state is not State.PENDING:
            assert state in TRANSITIONS[source_of(state)]


HUGE_DURATIONS = [
    "99999999999999999999h",  # timedelta overflow
    "100000000h",  # fits a timedelta, overflows `now + duration`
    "1" * 400 + "s",  # float("1" * 400) is inf
    "9" * 5000 + "m",  # longer than int() would convert
    "8760h1s",  # one second over the ceiling
    "596524h",  # over 2**31 seconds: PostgreSQL's INTEGER column
]


@pytest.mark.parametrize("text", HUGE_DURATIONS)
def test_durations_over_the_ceiling_are_refused_naming_it(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_duration(text)
    message = str(caught.value)
    assert "8760h (365 days)" in message and "longest" in message
    assert len(message) < 200  # the user's text is quoted only in part


def test_the_ceiling_is_accepted_and_fits_a_32_bit_column() -> None:
    assert parse_duration("8760h") == MAX_DURATION == timedelta(days=365)
    assert parse_duration("525600m") == MAX_DURATION
    assert MAX_DURATION.total_seconds() < 2**31


@pytest.mark.parametrize("text", ["0.0000001s", "0.5s", "0.01m", "0h0m0s", "0.000000000001h"])
def test_durations_under_a_second_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match="shorter than 1s"):
        parse_duration(text)


def test_durations_are_whole_seconds() -> None:
    """The store and the expires-at annotation keep whole seconds; so does the parser."""
    assert parse_duration("1.4s") == timedelta(seconds=1)
    assert parse_duration("1.6s") == timedelta(seconds=2)
    assert parse_duration("0.1h") == timedelta(minutes=6)
