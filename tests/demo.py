"""`make demo`: one access request from start to end, on this machine, as a readable transcript.

A thin driver over tests.harness.running_bot, the bot of the end-to-end tests:
the real wiring in HTTP mode with its real timers and a SQLite database, a
Slack Web API stand-in (tests/slackapi) and a Kubernetes API-server stand-in
(tests/kubeapi) that authorizes the bot only by manifests/base/rbac/rbac.yaml. The demo
types the slash command and clicks Approve as Slack would (signed requests over
HTTP), then prints what everyone sees as it happens: the replies, messages and
DMs (Block Kit rendered as plain text by `render_blocks`), the RoleBinding as
the API server holds it, its deletion when the short grant runs out, and the
request's `jitsudo-bot audit` lines.

Run by `make demo` (`python -m tests.demo`); tests/test_demo.py checks it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from bot.domain import AccessRequest
from tests.harness import APPROVAL_CHANNEL, APPROVER, REQUESTER, Harness, running_bot
from tests.slackapi import Call

GRANT = "5s"  # short, so the real timers end it while you watch
WARNING = "3s"  # policy.expiry_warning: the DM with Revoke now / Extend comes 3s before the end
COMMAND = (
    f"request --role edit --scope production --duration {GRANT} "
    '--reason "Scale deployment for traffic spike"'
)
RBAC_PATH = "/apis/rbac.authorization.k8s.io/v1"
SHOWN_METHODS = ("response_url", "chat.postMessage", "chat.update", "chat.postEphemeral")
DEADLINE = 60.0  # seconds for the whole story; it takes about ten
MARGIN = " " * 10
WIDTH = 88  # of a message's text, inside the margin
INTRO = f"""\
jitsudo demo: one access request, start to end, on this machine.

The bot is the real one (HTTP mode, real timers, SQLite). Slack and Kubernetes are
the stand-ins of the test suite on loopback: a Slack Web API that records what the
bot sends, and a Kubernetes API server that lets the bot do only what
manifests/base/rbac/rbac.yaml allows. @alice asks for access, @bob approves; the grant lasts
{GRANT} so you can watch it end, and the expiry warning comes {WARNING} before.
"""


# --- Block Kit as plain text -------------------------------------------------------

_CODE_BLOCK = re.compile(r"```\n?(.*?)\n?```", re.DOTALL)
_BOLD = re.compile(r"(?<![\w*`])\*(?=\S)([^*`\n]*?\S)\*(?![\w*`])")
_CODE = re.compile(r"`([^`\n]*)`")
_MENTION = re.compile(r"<@(\w+)(?:\|[^>]*)?>")
_DATE = re.compile(r"<!date\^[^|>]*\|([^>]*)>")
_SPECIAL = re.compile(r"<!(\w+)(?:\|[^>]*)?>")
_CHANNEL = re.compile(r"<#(\w+)(?:\|([^>]*))?>")
_LINK = re.compile(r"<([^@#!|>][^|>]*)(?:\|([^>]*))?>")


def slack_text(mrkdwn: str, users: Mapping[str, str]) -> str:
    """Slack's mrkdwn as a reader sees it: names for mentions, the text of dates and links."""
    text = _CODE_BLOCK.sub(lambda m: "\n".join("    " + ln for ln in m[1].split("\n")), mrkdwn)
    text = _CODE.sub(r"\1", _BOLD.sub(r"\1", text))
    text = _MENTION.sub(lambda m: "@" + users.get(m[1], m[1]), text)
    text = _DATE.sub(r"\1", text)
    text = _SPECIAL.sub(r"@\1", text)
    text = _CHANNEL.sub(lambda m: "#" + (m[2] or m[1]), text)
    text = _LINK.sub(lambda m: f"{m[2]} ({m[1]})" if m[2] else m[1], text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def render_block(block: Mapping[str, Any], users: Mapping[str, str]) -> list[str]:
    """One block as lines of plain text; buttons as [ Label ]."""

    def text(obj: Mapping[str, Any] | None) -> str:
        return slack_text(str((obj or {}).get("text", "")), users)

    kind = block.get("type")
    if kind == "header":
        title = text(block.get("text"))
        return [title, "=" * len(title)]
    if kind == "section":
        lines = text(block.get("text")).split("\n") if block.get("text") else []
        return lines + _fields([text(field) for field in block.get("fields") or []])
    if kind == "context":
        return [" · ".join(text(element) for element in block.get("elements") or [])]
    if kind == "actions":
        return ["  ".join(f"[ {text(e.get('text'))} ]" for e in block.get("elements") or [])]
    if kind == "divider":
        return ["-" * 40]
    return [f"({kind} block)"]


def _fields(fields: list[str]) -> list[str]:
    """Slack's "*Label*\\nvalue" fields as aligned "Label: value" lines."""
    pairs = [field.partition("\n")[::2] for field in fields]
    width = max((len(label) for label, _ in pairs), default=0) + 2
    return [f"{label + ':':<{width}}{value}".rstrip() for label, value in pairs]


def render_blocks(blocks: Iterable[Mapping[str, Any]], users: Mapping[str, str]) -> list[str]:
    """A message's blocks as plain text, a blank line between blocks."""
    lines: list[str] = []
    for block in blocks:
        lines += ([""] if lines else []) + render_block(block, users)
    return lines


# --- the story ---------------------------------------------------------------------


class Story:
    """Drives the harness and prints every step as it happens, with seconds since the start."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.start = time.time()
        self.users = {user.id: user.name for user in h.slack.state.users.values()}
        self.printed = 0  # Slack calls looked at so far
        self.channel_messages: dict[str, list[tuple[str, ...]]] = {}  # for "what changed"
        self.binding_state = "not yet"  # then "exists", then "gone"
        self.expiry_told = False

    def run(self) -> AccessRequest:
        self.say(time.time(), "@alice types, in any channel:", [f"/jitsudo {COMMAND}"])
        request = self.h.request(COMMAND, user=REQUESTER)
        self.follow(request, until=self.approval_message_printed)
        self.approve(request)
        self.follow(request, until=lambda: self.over(request))
        final = self.h.approval_message(request.id)
        self.say(time.time(), "The approval message as the channel shows it now:")
        self.show_message(final.get("blocks") or [])
        return request

    def approve(self, request: AccessRequest) -> None:
        message = self.h.approval_message(request.id)
        self.say(time.time(), "@bob clicks Approve on that message")
        response = self.h.sender.block_action(
            "approve", request.id, user=APPROVER, channel=APPROVAL_CHANNEL, message_ts=message["ts"]
        )
        assert response.status == 200, response.body

    def approval_message_printed(self) -> bool:
        """The post's call is printed (the stand-in stores a message before it records the call)."""
        printed = self.h.slack.calls[: self.printed]
        return any(
            call.method == "chat.postMessage" and call.payload.get("channel") == APPROVAL_CHANNEL
            for call in printed
        )

    def over(self, request: AccessRequest) -> bool:
        """Ended, the binding gone, and every notice delivered."""
        stored = self.h.bot.store.get(request.id)
        ended = stored is not None and stored.state.is_final
        return ended and self.binding_state == "gone" and self.settled()

    def settled(self) -> bool:
        return self.h.notices_settled() and self.printed == len(self.h.slack.calls)

    # -- watching ----------------------------------------------------------------

    def follow(self, request: AccessRequest, *, until: Callable[[], bool]) -> None:
        """Print what happens, in the order it happens, until `until()` holds."""
        deadline = time.monotonic() + DEADLINE
        while True:
            calls = self.h.slack.calls[self.printed :]
            first_call = min((call.at for call in calls), default=time.time())
            self.watch_cluster(request, no_later_than=first_call)
            for call in calls:
                self.show_call(call)
            self.printed += len(calls)
            if until():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the demo did not finish within {DEADLINE}s")
            time.sleep(0.02)

    def watch_cluster(self, request: AccessRequest, *, no_later_than: float) -> None:
        """The binding appearing, the grant's time running out, the binding going away.

        Checked before the Slack calls of the same poll, because the bot changes the
        cluster first and tells Slack after; so a change is stamped no later than
        the first call it caused.
        """
        at = min(time.time(), no_later_than)
        exists = self.binding(request) is not None
        if exists and self.binding_state == "not yet":
            self.binding_state = "exists"
            self.show_binding(request, at)
        stored = self.h.bot.store.get(request.id)
        expires = stored.expires_at.timestamp() if stored and stored.expires_at else None
        if expires is not None and time.time() >= expires and not self.expiry_told:
            self.expiry_told = True
            self.say(expires, f"The {GRANT} are up: the grant's expires-at has passed")
        if not exists and self.binding_state == "exists":
            self.binding_state = "gone"
            self.show_deletion(request, at)

    def binding(self, request: AccessRequest) -> dict[str, Any] | None:
        return self.h.kube.get(
            "rbac.authorization.k8s.io/v1",
            "rolebindings",
            f"jitsudo-{request.id.lower()}",
            namespace=request.namespace,
        )

    # -- printing ----------------------------------------------------------------

    def say(self, at: float, title: str, lines: Iterable[str] = ()) -> None:
        print(f"[{at - self.start:5.1f}s] {title}")
        for line in lines:
            print(f"{MARGIN}{line}".rstrip())
        print()

    def show_message(self, blocks: list[dict[str, Any]]) -> None:
        """A message inside a left border, long lines wrapped under their bullet."""
        for line in render_blocks(blocks, self.users):
            indent = "  " if line.startswith("• ") else ""
            wrapped = textwrap.wrap(line, WIDTH, subsequent_indent=indent, break_long_words=False)
            for part in wrapped or [""]:
                print(f"{MARGIN}│ {part}".rstrip())
        print()

    def show_call(self, call: Call) -> None:
        if call.method not in SHOWN_METHODS or call.error is not None:
            return
        blocks = list(call.payload.get("blocks") or [])
        channel = str(call.payload.get("channel", ""))
        if call.method == "chat.update":
            blocks = self.changed_blocks(channel, blocks)
        elif call.method == "chat.postMessage" and not channel.startswith("D"):
            self.changed_blocks(channel, blocks)  # remember it, to show only changes later
        self.say(call.at, self.title(call, channel))
        self.show_message(blocks or [{"type": "section", "text": {"text": call.payload["text"]}}])

    def title(self, call: Call, channel: str) -> str:
        if call.method == "response_url":
            # The demo's own actions: the command's reply, then the click's.
            who = "alice" if (call.response_url_id or "").startswith("cmd-") else "bob"
            return f"jitsudo answers @{who}, visible only to @{who} (ephemeral):"
        if call.method == "chat.update":
            return f"jitsudo updates its message in {channel}; what changed:"
        if channel.startswith("D"):
            return f"jitsudo sends @{self.users.get(channel[1:], channel)} a DM:"
        return f"jitsudo posts to the approval channel {channel}:"

    def changed_blocks(self, channel: str, blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The blocks an update adds or changes; remembers the new version."""
        rendered = [tuple(render_block(block, self.users)) for block in blocks]
        before = set(self.channel_messages.get(channel, []))
        self.channel_messages[channel] = rendered
        return [block for block, text in zip(blocks, rendered, strict=True) if text not in before]

    def show_binding(self, request: AccessRequest, at: float) -> None:
        path = self.binding_path(request)
        status, body = self.kube_get(path)
        dumped = yaml.safe_dump(body, sort_keys=False, allow_unicode=True).splitlines()
        self.say(at, "The RoleBinding exists in the cluster, as the API server holds it:")
        print(f"{MARGIN}GET {path}  ->  {status}")
        for line in dumped:
            print(f"{MARGIN}  {line}")
        print()

    def show_deletion(self, request: AccessRequest, at: float) -> None:
        path = self.binding_path(request)
        status, body = self.kube_get(path)
        answer = f"{status} {body.get('reason', '')}: {body.get('message', '')}"
        self.say(at, "jitsudo deleted the RoleBinding: access is gone", [f"GET {path}", answer])

    def binding_path(self, request: AccessRequest) -> str:
        name = f"jitsudo-{request.id.lower()}"
        return f"{RBAC_PATH}/namespaces/{request.namespace}/rolebindings/{name}"

    def kube_get(self, path: str) -> tuple[int, dict[str, Any]]:
        """A GET over HTTP as the cluster admin, as kubectl would send it."""
        kube = self.h.kube
        headers = {"Authorization": f"Bearer {kube.admin_token}", "Accept": "application/json"}
        request = urllib.request.Request(kube.url + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)


# --- the audit trail ---------------------------------------------------------------


def audit_lines(directory: Path, database_url: str, request_id: str) -> list[str]:
    """`jitsudo-bot audit REQUEST_ID` against the demo's database, as an operator runs it."""
    config = directory / "audit.yaml"
    config.write_text(yaml.safe_dump({"database": {"url": database_url}}))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "JITSUDO_CONFIG")}
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "audit", request_id, "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"jitsudo-bot audit failed ({done.returncode}): {done.stderr}")
    return done.stdout.splitlines()


def main() -> int:
    began = time.monotonic()
    print(INTRO)
    with tempfile.TemporaryDirectory(prefix="jitsudo-demo-") as tmp:
        with running_bot(Path(tmp), timers=True, expiry_warning=WARNING) as h:
            request = Story(h).run()
            database_url = h.settings.database.url
        print(f"$ jitsudo-bot audit {request.id}      # the operator's record of it")
        for line in audit_lines(Path(tmp), database_url, request.id):
            print(line)
    print(
        f"\nDone in {time.monotonic() - began:.1f}s. To run it against your own Slack and "
        "cluster, see README.md, 'Set-up in fifteen minutes'."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
