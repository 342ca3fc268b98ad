"""Parsing `/jitsudo ...` text: every flag form, every subcommand, every error message."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from bot.domain import InvalidInput
from bot.slack.commands import (
    COMMANDS,
    USAGE,
    USAGE_LINES,
    Approve,
    Cancel,
    Deny,
    Extend,
    Help,
    ListRequests,
    OpenRequestModal,
    RequestAccess,
    Revoke,
    Status,
    parse_command,
)

ID = "req_01J8KZ4Q2M3N5P6R7S8T9VWXYZ"
REQUEST_USAGE = f"Usage: `{USAGE_LINES['request']}`"


def fails(text: str) -> str:
    with pytest.raises(InvalidInput) as caught:
        parse_command(text)
    return str(caught.value)


# --- request --------------------------------------------------------------------


def test_the_seeds_example_parses() -> None:
    parsed = parse_command(
        "request --provider kubernetes --role edit --scope production --duration 30m "
        '--reason "Scale deployment for traffic spike"'
    )
    assert parsed == RequestAccess(
        provider="kubernetes",
        role="edit",
        scope="production",
        duration=timedelta(minutes=30),
        reason="Scale deployment for traffic spike",
    )


def test_flag_equals_value_and_any_order() -> None:
    parsed = parse_command(
        "request --reason='Debug kube-system CrashLoopBackOff' --duration=15m "
        '--scope="*" --role=cluster-admin --provider=kubernetes'
    )
    assert parsed == RequestAccess(
        "kubernetes",
        "cluster-admin",
        "*",
        timedelta(minutes=15),
        "Debug kube-system CrashLoopBackOff",
    )


@pytest.mark.parametrize(
    "text",
    [
        "request --role edit --reason “Scale the API”",
        "request --role edit --reason \u2018Scale the API\u2019",
        'request --role edit --reason "Scale the API"',
        "request --role edit --reason='Scale the API'",
    ],
)
def test_smart_and_plain_quotes_group_words(text: str) -> None:
    parsed = parse_command(text)
    assert isinstance(parsed, RequestAccess)
    assert parsed.reason == "Scale the API"


def test_an_apostrophe_inside_double_quotes_survives_smart_quotes() -> None:
    parsed = parse_command("request --role edit --reason “can\u2019t deploy #123”")
    assert isinstance(parsed, RequestAccess)
    assert parsed.reason == "can't deploy #123"  # '#' is not a shell comment here


def test_scope_star_is_kept_and_empty_or_missing_scope_is_empty() -> None:
    star = parse_command('request --role admin --scope "*" --reason x')
    empty = parse_command('request --role view --scope "" --reason x')
    missing = parse_command("request --role view --reason x")
    assert isinstance(star, RequestAccess) and star.scope == "*"
    assert isinstance(empty, RequestAccess) and empty.scope == ""
    assert isinstance(missing, RequestAccess) and missing.scope == ""


def test_duration_is_optional_and_provider_defaults_to_kubernetes() -> None:
    parsed = parse_command("request --role view --scope staging --reason audit")
    assert isinstance(parsed, RequestAccess)
    assert parsed.duration is None
    assert parsed.provider == "kubernetes"


def test_provider_is_case_insensitive() -> None:
    parsed = parse_command("request --provider Kubernetes --role view --reason audit")
    assert isinstance(parsed, RequestAccess) and parsed.provider == "kubernetes"


def test_a_reason_may_start_with_dashes_when_it_is_not_one_of_our_flags() -> None:
    parsed = parse_command('request --role edit --reason "--dry-run showed drift"')
    assert isinstance(parsed, RequestAccess)
    assert parsed.reason == "--dry-run showed drift"


@pytest.mark.parametrize("text", ["request", "request   ", "REQUEST"])
def test_request_without_arguments_opens_the_modal(text: str) -> None:
    assert parse_command(text) == OpenRequestModal()


@pytest.mark.parametrize("text", ["", "   ", "help", "HELP", "help me please"])
def test_no_text_or_help_is_help(text: str) -> None:
    assert parse_command(text) == Help()


# --- request errors -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("request --role", "--role needs a value"),
        ("request --role --scope prod --reason x", "--role needs a value"),
        ("request --role edit --reason", "--reason needs a value"),
        ("request --rol edit --reason x", "unknown flag --rol; did you mean --role?"),
        ("request --role edit --reasn x", "unknown flag --reasn; did you mean --reason?"),
        ("request --role edit --zzz 1 --reason x", "unknown flag --zzz"),
        ("request --role edit --role view --reason x", "--role given twice"),
        ("request edit --reason x", "unexpected `edit`"),
        ("request --role edit --reason fix the thing", "unexpected `the`"),
        ("request --scope prod --reason x", "--role is required"),
        ('request --role "" --reason x', "--role is required"),
        ("request --role edit --scope prod", "--reason is required"),
        ('request --role edit --reason "   "', "--reason is required"),
        ("request --provider aws --role edit --reason x", "unknown provider `aws`"),
    ],
)
def test_request_errors_say_what_is_wrong_and_show_the_usage(text: str, problem: str) -> None:
    message = fails(text)
    assert problem in message
    assert REQUEST_USAGE in message


def test_a_stray_word_after_an_unquoted_reason_suggests_quotes() -> None:
    assert "in quotes" in fails("request --role edit --reason fix the thing")


@pytest.mark.parametrize(
    "text", ['request --role edit --reason "oops', "request --role edit --reason it's"]
)
def test_unbalanced_quotes_are_reported(text: str) -> None:
    message = fails(text)
    assert "unbalanced quote in" in message
    assert REQUEST_USAGE in message


@pytest.mark.parametrize("duration", ["5x", "30", "1d", "-5m", "0s"])
def test_bad_durations_reuse_the_domain_message(duration: str) -> None:
    message = fails(f"request --role edit --duration {duration} --reason x")
    assert f"`{duration}`" in message
    assert "duration" in message
    assert REQUEST_USAGE in message


def test_duration_forms_are_parsed_like_the_config() -> None:
    parsed = parse_command("request --role edit --duration 1h30m --reason x")
    assert isinstance(parsed, RequestAccess)
    assert parsed.duration == timedelta(minutes=90)


# --- the ID subcommands ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [("status", Status), ("revoke", Revoke), ("approve", Approve), ("cancel", Cancel)],
)
def test_id_commands_normalise_the_id_in_any_case(name: str, kind: type) -> None:
    assert parse_command(f"{name} {ID.lower()}") == kind(ID)
    assert parse_command(f"{name.upper()} REQ_{ID[4:]}") == kind(ID)
    assert parse_command(f"  {name}   {ID}  ") == kind(ID)


@pytest.mark.parametrize("name", ["status", "revoke", "approve", "cancel", "deny", "extend"])
def test_a_missing_id_is_reported_with_the_usage(name: str) -> None:
    message = fails(name)
    assert "missing request ID" in message
    assert f"Usage: `{USAGE_LINES[name]}`" in message


@pytest.mark.parametrize("name", ["status", "revoke", "approve", "cancel", "deny", "extend"])
def test_a_malformed_id_reuses_the_domain_message(name: str) -> None:
    message = fails(f"{name} req_nope")
    assert "`req_nope` is not a request ID" in message
    assert f"Usage: `{USAGE_LINES[name]}`" in message


def test_junk_after_an_id_is_refused() -> None:
    message = fails(f"status {ID} please")
    assert "unexpected `please`" in message
    assert f"Usage: `{USAGE_LINES['status']}`" in message


def test_list_takes_no_arguments() -> None:
    assert parse_command("list") == ListRequests()
    message = fails("list all")
    assert "takes no arguments" in message
    assert f"Usage: `{USAGE_LINES['list']}`" in message


# --- deny and extend --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (f"deny {ID}", ""),
        (f"deny {ID} too broad, use view", "too broad, use view"),
        (f"deny {ID} it's too broad", "it's too broad"),  # an apostrophe is not a quote here
        (f'deny {ID} "use staging first"', "use staging first"),
        (f"deny {ID} “use staging first”", "use staging first"),
        (f'deny {ID} --reason "use staging first"', "use staging first"),
        (f'deny {ID} --reason="use staging first"', "use staging first"),
    ],
)
def test_deny_takes_free_text_as_the_reason(text: str, reason: str) -> None:
    assert parse_command(text) == Deny(ID, reason)


def test_extend_needs_duration_and_reason() -> None:
    parsed = parse_command(f'extend {ID.lower()} --duration 30m --reason "rollout still running"')
    assert parsed == Extend(ID, timedelta(minutes=30), "rollout still running")
    assert "--duration is required" in fails(f"extend {ID} --reason x")
    assert "--reason is required" in fails(f"extend {ID} --duration 30m")
    assert "unknown flag --role" in fails(f"extend {ID} --role edit --duration 1m --reason x")
    assert "is not a duration" in fails(f"extend {ID} --duration soon --reason x")
    assert f"Usage: `{USAGE_LINES['extend']}`" in fails(f"extend {ID} --duration 30m")


# --- unknown commands and the help text ---------------------------------------------


def test_an_unknown_command_lists_the_commands() -> None:
    message = fails("foo")
    assert 'unknown command "foo"' in message
    for name in COMMANDS:
        assert name in message


def test_a_misspelt_command_gets_a_suggestion() -> None:
    assert "did you mean `request`?" in fails("reqest --role edit")


def test_usage_has_a_working_example_of_every_subcommand() -> None:
    examples = re.findall(r"`(/jitsudo [^`]+)`", USAGE)
    parsed = [parse_command(example.removeprefix("/jitsudo ")) for example in examples]
    kinds = {type(command) for command in parsed}
    assert kinds >= {
        Help,
        RequestAccess,
        OpenRequestModal,
        Status,
        ListRequests,
        Revoke,
        Approve,
        Deny,
        Cancel,
        Extend,
    }


def test_usage_is_valid_mrkdwn_as_it_stands() -> None:
    assert not set("<>&") & set(USAGE)
    assert len(USAGE) < 3000  # one section block
