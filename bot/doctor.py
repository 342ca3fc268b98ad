"""`jitsudo-bot doctor`: run the set-up checks in order and print one line per check.

The checks themselves live next to what they check (bot/database.py,
bot/slack/doctor.py, bot/providers/kubernetes_checks.py) and return `Check`
values; this module knows none of them. The CLI hands `run` the sections in
order (bot.wiring.doctor_sections), so the core never imports Slack or
Kubernetes. Lines read `ok  <check> (detail)` or `FAIL <check>: <what to do>`;
the exit code is 0 only when every check passed, 1 otherwise, and 2 when the
config cannot be read (as for every other command).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from bot.config import ConfigError, Settings, config_path, load_settings, missing_secrets
from bot.logs import redact

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Check:
    """One checked fact: `detail` is extra information when ok, what to do when not."""

    name: str
    ok: bool
    detail: str = ""

    def line(self) -> str:
        if self.ok:
            return f"ok  {self.name}" + (f" ({self.detail})" if self.detail else "")
        return f"FAIL {self.name}: {self.detail}"


def passed(name: str, detail: str = "") -> Check:
    return Check(name, ok=True, detail=detail)


def failed(name: str, fix: str) -> Check:
    return Check(name, ok=False, detail=fix)


def skipped(names: str, because: str) -> Check:
    """Checks that cannot run until an earlier one passes; they count as not passed."""
    return failed(names, f"not checked until {because}")


@dataclass(frozen=True)
class Section:
    """A group of checks that needs valid settings; `run` yields them as they finish."""

    name: str
    run: Callable[[Settings], Iterable[Check]]


def run(
    config: str | None,
    *,
    sections: Sequence[Section],
    env: Mapping[str, str] | None = None,
    out: Callable[[str], None] = print,
) -> int:
    """Check everything and print as it goes (a slow check shows where it is stuck)."""
    try:
        settings = load_settings(config, env)
    except ConfigError as error:
        out(redact(failed("config", _one_line(str(error))).line()))
        names = ", ".join(["secrets", *(section.name for section in sections)])
        out(failed(names, "not checked; fix the config first").line())
        return 2
    all_ok = True
    for check in _checks(config, settings, env=env, sections=sections):
        # Defence in depth: no check prints a token on purpose; this catches accidents.
        out(redact(check.line()))
        all_ok = all_ok and check.ok
    return 0 if all_ok else 1


def _checks(
    config: str | None,
    settings: Settings,
    *,
    env: Mapping[str, str] | None,
    sections: Sequence[Section],
) -> Iterable[Check]:
    yield passed("config", str(config_path(config, os.environ if env is None else env).resolve()))
    yield _secrets(settings)
    for section in sections:
        yield from _guarded(section, settings)


def _secrets(settings: Settings) -> Check:
    missing = missing_secrets(settings)
    if missing:
        return failed(
            "secrets",
            f"not set: {', '.join(missing)}; export them (see .env.example) and run doctor again",
        )
    return passed("secrets", f"set for slack.mode {settings.slack.mode}")


def _guarded(section: Section, settings: Settings) -> Iterable[Check]:
    """A check that crashes becomes a FAIL line: the doctor must report, never die midway."""
    try:
        yield from section.run(settings)
    except Exception as error:  # reported as a line, the traceback goes to the log
        log.exception("doctor: the %s checks crashed", section.name)
        yield failed(
            section.name,
            f"the check itself failed ({type(error).__name__}); the log has the details",
        )


def _one_line(text: str) -> str:
    """A doctor line is one line: "invalid configuration:" lists keys, one per line, which
    become "; "-separated; anything else (a YAML error with its excerpt) is just joined."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"{lines[0]} {'; '.join(lines[1:])}"
    return " ".join(text.split())
