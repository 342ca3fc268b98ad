"""`make demo` tells the whole story, in order, as plain text a person can read."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from tests.demo import main, render_blocks

ROOT = Path(__file__).parent.parent


def in_order(text: str, *markers: str) -> None:
    """Each marker appears, after the one before it."""
    position = 0
    for marker in markers:
        found = text.find(marker, position)
        assert found >= 0, f"{marker!r} missing after position {position}:\n{text[position:]}"
        position = found + len(marker)


def printed_binding(transcript: str) -> dict[str, object]:
    """The RoleBinding YAML as the transcript shows it, parsed back."""
    block = transcript.split("rolebindings/jitsudo-req_", 1)[1].split("->  200\n", 1)[1]
    lines = block.split("\n\n", 1)[0]
    document = yaml.safe_load(textwrap.dedent(lines))
    assert isinstance(document, dict)
    return document


def test_the_transcript_tells_each_step_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert main() == 0
    out = capsys.readouterr().out
    in_order(
        out,
        "@alice types",
        '/jitsudo request --role edit --scope production --duration 5s --reason "Scale',
        "jitsudo answers @alice, visible only to @alice (ephemeral)",
        "submitted: edit access in production for 5s",
        "jitsudo posts to the approval channel CAPPROVALS",
        "Access request: edit in production\n",
        "Requester:       @alice",
        "Kubernetes user: alice@example.com",
        "Reason",
        "> Scale deployment for traffic spike",
        "What edit allows",
        "[ Approve ]  [ Deny ]",
        "@bob clicks Approve",
        "The RoleBinding exists in the cluster",
        "kind: RoleBinding",
        "jitsudo.dev/expires-at:",
        "jitsudo.dev/managed: 'true'",
        "name: jitsudo-req_",
        "The 5s are up",
        "jitsudo deleted the RoleBinding: access is gone",
        "404 NotFound",
        "jitsudo updates its message in CAPPROVALS",
        "⌛ Expired at",
        "jitsudo sends @alice a DM",
        "Your edit access in production ended at",
        "The approval message as the channel shows it now",
        "Access request: edit in production\n",
        "⌛ Expired at",
        "$ jitsudo-bot audit req_",
        '"action": "submitted"',
        '"action": "approved"',
        '"action": "expired"',
        "Done in",
    )
    # What the approval sets off arrives in whatever order the threads deliver it:
    # each of these comes after the click and before the expiry, in any order.
    approved = out[out.index("@bob clicks Approve") : out.index("The 5s are up")]
    for step in (
        "jitsudo answers @bob",
        "jitsudo updates its message in CAPPROVALS",
        "✅ Approved by @bob at",
        "jitsudo sends @alice a DM",
        "Your edit access in production is active until",
    ):
        assert step in approved, step
    binding = printed_binding(out)
    metadata = binding["metadata"]
    assert isinstance(metadata, dict)
    assert re.fullmatch(r"jitsudo-req_[0-9a-z]{26}", metadata["name"])
    assert metadata["labels"] == {"jitsudo.dev/managed": "true"}
    datetime.strptime(metadata["annotations"]["jitsudo.dev/expires-at"], "%Y-%m-%dT%H:%M:%SZ")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "edit",
    }
    # Plain text: no Slack markup left over.
    for markup in ("<@", "<!date", "```", "*Reason*", "`edit`"):
        assert markup not in out


def test_block_kit_is_rendered_as_readable_text() -> None:
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "Access request: view"}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": "*Requester*\n<@UREQ>"},
                {"type": "mrkdwn", "text": "*Scope*\n:rotating_light: *CLUSTER-WIDE*"},
            ],
        },
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": (
                    "*Rules*\n• `*` on `pods` &amp; <https://k8s.io|docs>\n"
                    "Try:\n```kubectl get pods```"
                ),
            },
        },
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": "until <!date^1^{time}|12:00 UTC>"}],
        },
        {
            "type": "actions",
            "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": "Approve"}},
                {"type": "button", "text": {"type": "plain_text", "text": "Deny"}},
            ],
        },
    ]
    assert render_blocks(blocks, {"UREQ": "alice"}) == [
        "Access request: view",
        "====================",
        "",
        "Requester: @alice",
        "Scope:     :rotating_light: CLUSTER-WIDE",
        "",
        "Rules",
        "• * on pods & docs (https://k8s.io)",
        "Try:",
        "    kubectl get pods",
        "",
        "until 12:00 UTC",
        "",
        "[ Approve ]  [ Deny ]",
    ]


def test_the_demo_runs_as_a_command() -> None:
    """What `make demo` runs, as a process of its own, from the repository root."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "jitsudo deleted the RoleBinding" in done.stdout and "Done in" in done.stdout
