"""Pure values: IDs, durations, the scope rule, the state machine."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.domain import (
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
