"""Parse the text of `/jitsudo ...` into frozen command values.

Pure: no Slack, no policy. The slash-command listener calls `parse_command` and
hands the result to one service operation; whether a role exists or a namespace
is real is the service's business, not the parser's. Every InvalidInput message
says what is wrong and ends with the usage line of that subcommand.
"""

from __future__ import annotations

import difflib
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeAlias

from bot.domain import InvalidInput, parse_duration, parse_request_id

PROVIDER = "kubernetes"
_EXAMPLE_ID = "req_01J8KZ4Q2M3N5P6R7S8T9VWXYZ"
_REQUEST_EXAMPLE = (
    "/jitsudo request --role edit --scope production --duration 30m "
    '--reason "Scale deployment for traffic spike"'
)

# Placeholders are written in capitals, never <angle brackets>, so the text is
# valid mrkdwn as it stands and survives escaping unchanged.
USAGE_LINES: dict[str, str] = {
    "help": "/jitsudo help",
    "request": (
        '/jitsudo request --role ROLE [--scope NAMESPACE | --scope "*"] [--duration 30m] '
        '--reason "WHY" [--provider kubernetes]'
    ),
    "status": "/jitsudo status REQUEST_ID",
    "list": "/jitsudo list",
    "cancel": "/jitsudo cancel REQUEST_ID",
    "revoke": "/jitsudo revoke REQUEST_ID",
    "extend": '/jitsudo extend REQUEST_ID --duration 30m --reason "WHY"',
    "approve": "/jitsudo approve REQUEST_ID",
    "deny": "/jitsudo deny REQUEST_ID [REASON...]",
}
COMMANDS = tuple(USAGE_LINES)

USAGE = f"""*jitsudo*: temporary, approved Kubernetes access.

*Ask for access* (or just `/jitsudo request` to open a form)
`{_REQUEST_EXAMPLE}`
• `--scope "*"` asks for cluster-wide access; leave `--scope` out for the default namespace.
• `--duration` is optional (the policy's default applies); use 90s, 15m, 1h or 1h30m.
• `--provider kubernetes` may be given or left out.

*Follow up*
`/jitsudo status {_EXAMPLE_ID}`: state, approver and expiry of one request
`/jitsudo list`: your requests, and what waits for your review
`/jitsudo cancel {_EXAMPLE_ID}`: withdraw a request nobody has decided yet
`/jitsudo revoke {_EXAMPLE_ID}`: end a grant now
`/jitsudo extend {_EXAMPLE_ID} --duration 30m --reason "Rollout still running"`: ask for more time

*Approvers*
`/jitsudo approve {_EXAMPLE_ID}`
`/jitsudo deny {_EXAMPLE_ID} Use the staging cluster first`

`/jitsudo help`: this text. Request IDs are accepted in any case."""


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class RequestAccess:
    provider: str
    role: str
    scope: str
    duration: timedelta | None
    reason: str


@dataclass(frozen=True)
class OpenRequestModal:
    pass


@dataclass(frozen=True)
class Status:
    request_id: str


@dataclass(frozen=True)
class ListRequests:
    pass


@dataclass(frozen=True)
class Revoke:
    request_id: str


@dataclass(frozen=True)
class Approve:
    request_id: str


@dataclass(frozen=True)
class Deny:
    request_id: str
    reason: str


@dataclass(frozen=True)
class Cancel:
    request_id: str


@dataclass(frozen=True)
class Extend:
    request_id: str
    duration: timedelta
    reason: str


Command: TypeAlias = (
    Help
    | RequestAccess
    | OpenRequestModal
    | Status
    | ListRequests
    | Revoke
    | Approve
    | Deny
    | Cancel
    | Extend
)

# Slack clients turn typed quotes into typographic ones; shlex only knows the ASCII kind.
_SMART_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})


def parse_command(text: str) -> Command:
    """Turn the slash command's text into a command; raise InvalidInput saying why not."""
    parts = text.translate(_SMART_QUOTES).split(maxsplit=1)
    if not parts:
        return Help()
    name, rest = parts[0].lower(), (parts[1] if len(parts) > 1 else "")
    parser = _PARSERS.get(name)
    if parser is None:
        raise InvalidInput(_unknown_command(name))
    return parser(rest.strip())


def _fail(command: str, problem: str) -> InvalidInput:
    return InvalidInput(f"{problem}\nUsage: `{USAGE_LINES[command]}`")


def _unknown_command(name: str) -> str:
    close = difflib.get_close_matches(name, COMMANDS, n=1)
    hint = f"; did you mean `{close[0]}`?" if close else "."
    return (
        f'unknown command "{name[:40]}"{hint}\n'
        f"Commands: {', '.join(COMMANDS)}. Try `/jitsudo help`."
    )


def _split(command: str, text: str) -> list[str]:
    """Shell-style words; `#` is not a comment (reasons cite tickets like #123)."""
    try:
        return shlex.split(text, comments=False, posix=True)
    except ValueError:
        raise _fail(
            command,
            f"unbalanced quote in `{text[:80]}`: close every \" and ', "
            'or put the whole value in double quotes, e.g. --reason "don\'t break prod"',
        ) from None


def _flags(command: str, words: Sequence[str], allowed: Sequence[str]) -> dict[str, str]:
    """`--flag value` and `--flag=value`, each flag at most once, nothing positional."""
    values: dict[str, str] = {}
    index = 0
    while index < len(words):
        word = words[index]
        if not word.startswith("--"):
            raise _fail(command, _stray(word, previous=words[index - 1] if index else ""))
        name, has_value, value = word[2:].partition("=")
        _check_flag(command, name, allowed, values)
        if not has_value:
            if index + 1 >= len(words) or _is_flag(words[index + 1], allowed):
                raise _fail(command, f"--{name} needs a value")
            index += 1
            value = words[index]
        values[name] = value
        index += 1
    return values


def _check_flag(command: str, name: str, allowed: Sequence[str], seen: dict[str, str]) -> None:
    if name not in allowed:
        close = difflib.get_close_matches(name, allowed, n=1)
        hint = f"; did you mean --{close[0]}?" if close else f"; flags: --{', --'.join(allowed)}"
        raise _fail(command, f"unknown flag --{name[:40]}{hint}")
    if name in seen:
        raise _fail(command, f"--{name} given twice; give it once")


def _is_flag(word: str, allowed: Sequence[str]) -> bool:
    """A following word is a missing value only if it is itself one of our flags."""
    return word.startswith("--") and word[2:].partition("=")[0] in allowed


def _stray(word: str, *, previous: str) -> str:
    problem = f"unexpected `{word[:40]}`: every value needs a flag before it"
    if previous and not previous.startswith("--"):
        problem += '; put a value of several words in quotes, e.g. --reason "scale up the API"'
    return problem


def _duration(command: str, text: str) -> timedelta:
    try:
        return parse_duration(text)
    except InvalidInput as error:
        raise _fail(command, str(error)) from None


def _request(rest: str) -> Command:
    words = _split("request", rest)
    if not words:
        return OpenRequestModal()
    flags = _flags("request", words, ("provider", "role", "scope", "duration", "reason"))
    provider = flags.get("provider", PROVIDER).strip().lower()
    if provider != PROVIDER:
        raise _fail("request", f"unknown provider `{provider[:40]}`; only kubernetes is supported")
    role, reason = flags.get("role", "").strip(), flags.get("reason", "").strip()
    if not role:
        raise _fail("request", "--role is required, e.g. --role edit")
    if not reason:
        raise _fail("request", '--reason is required: say why, e.g. --reason "debug crashloop"')
    duration = _duration("request", flags["duration"]) if "duration" in flags else None
    return RequestAccess(PROVIDER, role, flags.get("scope", "").strip(), duration, reason)


def _request_id(command: str, words: Sequence[str]) -> str:
    if not words:
        raise _fail(command, "missing request ID")
    try:
        return parse_request_id(words[0])
    except InvalidInput as error:
        raise _fail(command, str(error)) from None


def _only_id(command: str, rest: str) -> str:
    words = _split(command, rest)
    if len(words) > 1:
        raise _fail(command, f"unexpected `{words[1][:40]}` after the request ID")
    return _request_id(command, words)


def _no_arguments(command: str, rest: str) -> None:
    if rest:
        raise _fail(command, f"`{command}` takes no arguments, got `{rest[:40]}`")


def _deny(rest: str) -> Command:
    """The reason is free text: an apostrophe in it must not be an unbalanced quote."""
    parts = rest.split(maxsplit=1)
    request_id = _request_id("deny", parts)
    reason = parts[1] if len(parts) > 1 else ""
    try:
        words = shlex.split(reason, comments=False, posix=True)
    except ValueError:
        words = reason.split()
    if words and (words[0] == "--reason" or words[0].startswith("--reason=")):
        words = [words[0].removeprefix("--reason").removeprefix("="), *words[1:]]
    return Deny(request_id, " ".join(word for word in words if word))


def _extend(rest: str) -> Command:
    words = _split("extend", rest)
    request_id = _request_id("extend", words)
    flags = _flags("extend", words[1:], ("duration", "reason"))
    if "duration" not in flags:
        raise _fail("extend", "--duration is required, e.g. --duration 30m")
    reason = flags.get("reason", "").strip()
    if not reason:
        raise _fail("extend", "--reason is required: say why you need more time")
    return Extend(request_id, _duration("extend", flags["duration"]), reason)


def _listing(rest: str) -> Command:
    _no_arguments("list", rest)
    return ListRequests()


_PARSERS: dict[str, Callable[[str], Command]] = {
    "help": lambda rest: Help(),
    "request": _request,
    "status": lambda rest: Status(_only_id("status", rest)),
    "list": _listing,
    "cancel": lambda rest: Cancel(_only_id("cancel", rest)),
    "revoke": lambda rest: Revoke(_only_id("revoke", rest)),
    "extend": _extend,
    "approve": lambda rest: Approve(_only_id("approve", rest)),
    "deny": _deny,
}
