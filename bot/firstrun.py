"""What `jitsudo-bot serve` lacks before it can start, named all at once with the fixes.

A first run should not stop at the first missing piece and then at the next:
`setup_gaps` lists every one (config file, Slack tokens for the mode, the
example's placeholders) and `setup_report` turns them into one message.
Called by bot.cli before serve starts anything, and by runner.check_secrets.
Reads no environment itself: the caller passes the secrets.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

from bot.config import (
    MODE_LABELS,
    MODE_SECRETS,
    ConfigError,
    ConfigFileNotFound,
    Secrets,
    SlackSettings,
    mode_secret_set,
)

# jitsudo.example.yaml's placeholders: a copied example must not pass for a set-up one.
EXAMPLE_CHANNEL = "C0123456789"
EXAMPLE_APPROVER = "U0123456789"
LOAD_ENV = "set -a; . ./.env; set +a"
WIDTH = 100
_CHECKOUT = Path(__file__).resolve().parent.parent  # an editable install's clone


@dataclass(frozen=True)
class _ModeNeed:
    variable: str
    source: str
    label: str


# What each slack.mode needs besides the bot token.
_MODE_NEEDS = {
    "socket": _ModeNeed(
        MODE_SECRETS["socket"],
        "an App-Level Token (xapp-...) with connections:write, "
        "from the Slack app's Basic Information > App-Level Tokens",
        MODE_LABELS["socket"],
    ),
    "http": _ModeNeed(
        MODE_SECRETS["http"],
        "the Signing Secret, from the Slack app's Basic Information > App Credentials",
        MODE_LABELS["http"],
    ),
}


@dataclass(frozen=True)
class Gap:
    """One thing serve needs and lacks, and how to supply it."""

    what: str
    fix: str
    secret: bool = False  # supplied through the environment (.env)


def setup_gaps(
    slack: SlackSettings | None,
    secrets: Secrets,
    *,
    config: Path | None = None,
    config_error: ConfigError | None = None,
) -> list[Gap]:
    """Everything serve lacks; `slack` is None when the config file could not be read."""
    name = str(config) if config else "the config file"
    gaps = [] if config_error is None else [_config_gap(config_error, name)]
    if not secrets.slack_bot_token.get_secret_value():
        gaps.append(
            Gap(
                "SLACK_BOT_TOKEN is not set: the Bot User OAuth Token (xoxb-...), "
                "from the Slack app's OAuth & Permissions page.",
                "put SLACK_BOT_TOKEN=xoxb-... in .env and load that (below), or export it.",
                secret=True,
            )
        )
    gaps += _mode_gaps(slack, secrets, name)
    if slack is not None or isinstance(config_error, ConfigFileNotFound):
        gaps += _slack_gaps(slack, name)  # an unreadable file may well set them: say nothing
    return gaps


def _config_gap(error: ConfigError, name: str) -> Gap:
    if not isinstance(error, ConfigFileNotFound):
        return Gap(f"{name} cannot be used: {error}", "correct the keys named above.")
    example = _example("jitsudo.example.yaml")
    fix = f"cp {example} {name}"
    if name == "jitsudo.yaml":  # the default: perhaps the file is somewhere else
        fix += "\n(or name another file with --config FILE or JITSUDO_CONFIG)"
    return Gap(f"The config file {name} does not exist.", fix)


def _mode_gaps(slack: SlackSettings | None, secrets: Secrets, name: str) -> list[Gap]:
    """The second secret depends on slack.mode; without a config, say what each mode needs."""
    have = {mode: mode_secret_set(secrets, mode) for mode in MODE_SECRETS}
    if slack is None:
        return [] if any(have.values()) else [_either_mode_gap()]
    if have[slack.mode]:
        return []
    need = _MODE_NEEDS[slack.mode]
    what = (
        f"{need.variable} is not set, and slack.mode is {slack.mode} ({need.label}), "
        f"which needs it:\n{need.source}."
    )
    fix = f"put {need.variable}=... in .env and load that (below), or export it."
    other = "http" if slack.mode == "socket" else "socket"
    if have[other]:
        fix += (
            f"\n{_MODE_NEEDS[other].variable} is set, but only {_MODE_NEEDS[other].label} "
            f"uses it: to run in {_MODE_NEEDS[other].label}, set slack.mode: {other} in {name}."
        )
    return [Gap(what, fix, secret=True)]


def _either_mode_gap() -> Gap:
    lines = ["Neither SLACK_APP_TOKEN nor SLACK_SIGNING_SECRET is set; slack.mode decides which:"]
    for mode, need in _MODE_NEEDS.items():
        default = " (the default)" if mode == "socket" else ""
        lines.append(f"slack.mode: {mode}{default} needs {need.variable}: {need.source}.")
    return Gap(
        "\n".join(lines),
        "put the one for your mode in .env and load that (below), or export it.",
        True,
    )


def _slack_gaps(slack: SlackSettings | None, name: str) -> list[Gap]:
    """The approval channel and the approvers; the example's placeholders count as unset."""
    channel_fix = (
        f"in {name}, set slack.approval_channel to the approval channel's ID (C..., at the "
        "bottom of the channel's About tab), and /invite the bot to that channel."
    )
    approvers_fix = (
        f"in {name}, list the approvers' Slack user IDs (U..., in each profile under "
        "⋮ > Copy member ID) in slack.approvers, or their user groups in slack.approver_groups."
    )
    if slack is None:
        return [
            Gap(
                "slack.approval_channel: where approval requests are posted "
                f"(the example's {EXAMPLE_CHANNEL} is a placeholder).",
                channel_fix,
            ),
            Gap(
                "slack.approvers: who may approve "
                f"(the example's {EXAMPLE_APPROVER} is a placeholder).",
                approvers_fix,
            ),
        ]
    gaps = []
    if slack.approval_channel in ("", EXAMPLE_CHANNEL):
        state = "not set" if not slack.approval_channel else "the example's placeholder"
        what = f"slack.approval_channel is {state} {slack.approval_channel}".rstrip()
        gaps.append(Gap(what + ": it is where approval requests are posted.", channel_fix))
    if EXAMPLE_APPROVER in slack.approvers:
        what = f"slack.approvers holds the example's placeholder {EXAMPLE_APPROVER}."
        gaps.append(Gap(what, approvers_fix))
    return gaps


def _example(name: str) -> str:
    """The example as the operator can reach it: here, or in an editable install's clone."""
    if Path(name).exists() or not (_CHECKOUT / name).exists():
        return name
    return str(_CHECKOUT / name)


def setup_report(gaps: list[Gap]) -> str:
    """One message naming every gap with its fix; empty when there is none."""
    if not gaps:
        return ""
    count = "1 thing is" if len(gaps) == 1 else f"{len(gaps)} things are"
    lines = [f"jitsudo-bot: cannot start: {count} missing.", ""]
    for number, gap in enumerate(gaps, 1):
        lines += _indented(f"{number}. ", gap.what) + _indented("   Fix: ", gap.fix) + [""]
    if any(gap.secret for gap in gaps):
        lines += _env_hint()
    return "\n".join(lines).rstrip()


def _indented(first: str, text: str) -> list[str]:
    """`first` then the text, each of its lines wrapped to WIDTH and aligned after `first`."""
    pad = " " * (2 + len(first))
    lines = [
        wrapped
        for line in text.split("\n")
        for wrapped in textwrap.wrap(
            line, WIDTH - len(pad), break_long_words=False, break_on_hyphens=False
        )
    ]
    return [f"  {first}{lines[0]}", *(pad + line for line in lines[1:])]


def _env_hint() -> list[str]:
    """jitsudo-bot reads secrets from the environment only, so say how .env gets there."""
    if Path(".env").exists():
        # Whether it was loaded and left empty, or never loaded, the same two steps fix it.
        return [
            "./.env exists: fill in the values named above, then load it into this shell",
            f"(jitsudo-bot reads only the environment) and start again:  {LOAD_ENV}",
        ]
    copy = f"cp {_example('.env.example')} .env"
    width = max(len(copy), len(LOAD_ENV)) + 3
    return [
        "Secrets come from the environment only. To keep them in .env:",
        f"  {copy:<{width}}# then fill it in",
        f"  {LOAD_ENV:<{width}}# load it into this shell, then start again",
    ]
