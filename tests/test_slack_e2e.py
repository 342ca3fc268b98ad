"""Issue 3 end to end: signed Slack requests over HTTP -> bot -> Slack and Kubernetes stand-ins."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.domain import State
from tests.harness import (
    ADMIN,
    APPROVAL_CHANNEL,
    APPROVER,
    APPROVER2,
    GROUP_MEMBER,
    NO_EMAIL,
    OUTSIDER,
    REQUESTER,
    Harness,
    running_bot,
    wait_until,
)

RBAC = "rbac.authorization.k8s.io/v1"


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    with running_bot(tmp_path) as harness:
        yield harness


def binding_of(h: Harness, request_id: str, namespace: str | None) -> dict[str, Any] | None:
    name = f"jitsudo-{request_id.lower()}"
    if namespace is None:
        return h.kube.get(RBAC, "clusterrolebindings", name)
    return h.kube.get(RBAC, "rolebindings", name, namespace=namespace)


def click(h: Harness, action: str, request_id: str, user: str) -> None:
    message = h.approval_message(request_id)
    response = h.sender.block_action(
        action, request_id, user=user, channel=APPROVAL_CHANNEL, message_ts=message["ts"]
    )
    assert response.status == 200, response.body


def last_reply_text(h: Harness, count_before: int = 0) -> str:
    replies = wait_until(lambda: h.replies()[count_before:])
    return json.dumps(replies[-1])


def buttons(message: dict[str, Any]) -> list[str]:
    return [
        element.get("action_id")
        for block in message.get("blocks") or []
        if block.get("type") == "actions"
        for element in block.get("elements", [])
    ]


def test_request_approve_grants_binding_updates_message_and_dms(h: Harness) -> None:
    request = h.request(
        "request --provider kubernetes --role edit --scope production "
        '--duration 30m --reason "Scale deployment for traffic spike"'
    )
    assert request.state is State.PENDING
    assert request.k8s_user == "alice@example.com"
    assert request.id in last_reply_text(h)
    message = h.approval_message(request.id)
    shown = json.dumps(message)
    assert f"<@{REQUESTER}>" in shown and "alice@example.com" in shown
    assert "production" in shown and "30m" in shown and "Scale deployment" in shown
    assert "secrets" in shown  # what edit allows, read from the ClusterRole
    assert buttons(message) == ["approve", "deny"]

    click(h, "approve", request.id, APPROVER)
    binding = wait_until(lambda: binding_of(h, request.id, "production"))
    assert binding["metadata"]["name"] == f"jitsudo-{request.id.lower()}"
    assert binding["metadata"]["labels"] == {"jitsudo.dev/managed": "true"}
    annotations = binding["metadata"]["annotations"]
    stored = wait_until(
        lambda: (r := h.bot.store.get(request.id)) and r.state is State.ACTIVE and r
    )
    assert stored.expires_at
    assert annotations["jitsudo.dev/expires-at"] == stored.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert annotations["jitsudo.dev/request-id"] == request.id
    assert annotations["jitsudo.dev/user"] == "alice@example.com"
    assert binding["subjects"] == [
        {"kind": "User", "name": "alice@example.com", "apiGroup": "rbac.authorization.k8s.io"}
    ]
    assert binding["roleRef"] == {
        "kind": "ClusterRole",
        "name": "edit",
        "apiGroup": "rbac.authorization.k8s.io",
    }

    updated = wait_until(lambda: (m := h.approval_message(request.id)) and not buttons(m) and m)
    assert f"<@{APPROVER}>" in json.dumps(updated)
    dm = wait_until(lambda: h.dms_to(REQUESTER))
    text = json.dumps(dm)
    assert "edit" in text and "production" in text and "kubectl" in text
    assert "UTC" in text


@pytest.mark.parametrize(
    ("scope_flag", "namespace"),
    [('--scope "*"', None), ("--scope “*”", None), ("", "default"), ("--scope staging", "staging")],
)
def test_scopes(h: Harness, scope_flag: str, namespace: str | None) -> None:
    role = "view"
    request = h.request(f"request --role {role} {scope_flag} --duration 10m --reason checks")
    assert request.namespace == namespace
    click(h, "approve", request.id, APPROVER)
    binding = wait_until(lambda: binding_of(h, request.id, namespace))
    kind = "ClusterRoleBinding" if namespace is None else "RoleBinding"
    assert binding.get("kind", kind) == kind
    if namespace is None:
        assert "CLUSTER-WIDE" in json.dumps(h.approval_message(request.id))
        assert (
            h.kube.get(RBAC, "rolebindings", f"jitsudo-{request.id.lower()}", namespace="default")
            is None
        )


def test_deny_with_reason(h: Harness) -> None:
    request = h.request("request --role edit --scope production --duration 5m --reason x")
    click(h, "deny", request.id, APPROVER)
    wait_until(lambda: h.slack.calls_to("views.open"))
    view = h.slack.calls_to("views.open")[-1].payload["view"]
    from bot.slack import blocks

    values = {
        blocks.DENY_REASON_BLOCK: {
            blocks.DENY_REASON_ACTION: {
                "type": "plain_text_input",
                "value": "use the runbook <!channel>",
            }
        }
    }
    response = h.sender.view_submission(
        "deny_modal", values, user=APPROVER, private_metadata=view["private_metadata"]
    )
    assert response.status == 200
    denied = wait_until(
        lambda: (r := h.bot.store.get(request.id)) and r.state is State.DENIED and r
    )
    assert denied.decided_by == APPROVER and denied.decision_note == "use the runbook <!channel>"
    dm = json.dumps(wait_until(lambda: h.dms_to(REQUESTER)))
    assert "use the runbook" in dm and "<!channel>" not in dm
    assert not buttons(
        wait_until(lambda: (m := h.approval_message(request.id)) and not buttons(m) and m)
    )
    assert binding_of(h, request.id, "production") is None


def test_deny_button_refuses_before_asking_for_a_reason(h: Harness) -> None:
    own = h.request(
        "request --role edit --scope production --duration 5m --reason a", user=APPROVER
    )
    count = len(h.replies())
    click(h, "deny", own.id, APPROVER)
    assert "your own request" in last_reply_text(h, count)
    count = len(h.replies())
    click(h, "deny", own.id, OUTSIDER)
    assert "Only approvers" in last_reply_text(h, count)
    assert h.slack.calls_to("views.open") == []
    assert h.bot.store.get(own.id).state is State.PENDING  # type: ignore[union-attr]


def test_self_approval_is_refused(h: Harness) -> None:
    request = h.request(
        "request --role edit --scope production --duration 5m --reason mine", user=APPROVER
    )
    count = len(h.replies())  # the request's own reply is already there
    click(h, "approve", request.id, APPROVER)
    assert "your own request" in last_reply_text(h, count)
    assert h.bot.store.get(request.id).state is State.PENDING  # type: ignore[union-attr]
    assert binding_of(h, request.id, "production") is None


def test_approver_cannot_decide_a_grant_to_their_own_kubernetes_identity(tmp_path: Path) -> None:
    # alice is mapped onto the user bob (an approver) holds through his Slack email
    with running_bot(tmp_path, identity={"map": {REQUESTER: "bob@example.com"}}) as h:
        request = h.request("request --role edit --scope production --duration 5m --reason x")
        assert request.k8s_user == "bob@example.com"
        for action in ("approve", "deny"):
            count = len(h.replies())
            click(h, action, request.id, APPROVER)
            reply = last_reply_text(h, count)
            assert "your own Kubernetes identity (bob@example.com); another approver must" in reply
        assert h.slack.calls_to("views.open") == []  # not even asked for a denial reason
        assert h.bot.store.get(request.id).state is State.PENDING  # type: ignore[union-attr]
        assert binding_of(h, request.id, "production") is None
        assert [e.action for e in h.bot.store.audit_trail(request.id)] == ["submitted"]
        click(h, "approve", request.id, APPROVER2)
        wait_until(lambda: binding_of(h, request.id, "production"))


def test_non_approver_is_refused_and_group_member_may_approve(h: Harness) -> None:
    request = h.request("request --role edit --scope production --duration 5m --reason go")
    before = len(h.replies())
    click(h, "approve", request.id, OUTSIDER)
    assert "Only approvers" in last_reply_text(h, before)
    assert h.bot.store.get(request.id).state is State.PENDING  # type: ignore[union-attr]
    click(h, "approve", request.id, GROUP_MEMBER)
    wait_until(lambda: binding_of(h, request.id, "production"))


def test_twenty_concurrent_clicks_make_one_binding(h: Harness) -> None:
    request = h.request("request --role edit --scope production --duration 5m --reason race")
    message = h.approval_message(request.id)
    barrier = threading.Barrier(20)

    def one_click(user: str) -> None:
        barrier.wait()
        h.sender.block_action(
            "approve", request.id, user=user, channel=APPROVAL_CHANNEL, message_ts=message["ts"]
        )

    clickers = [APPROVER, APPROVER2, GROUP_MEMBER] * 7
    threads = [threading.Thread(target=one_click, args=(u,)) for u in clickers[:20]]
    before = len(h.replies())  # the request's own "submitted" reply
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wait_until(lambda: len(h.replies()) >= before + 20)
    creates = [
        r
        for r in h.kube.requests
        if r[0] == "POST" and "rolebindings" in r[1] and not r[2].get("dryRun")
    ]
    assert len(creates) == 1
    approvals = [e for e in h.bot.store.audit_trail(request.id) if e.action == "approved"]
    assert len(approvals) == 1
    assert sum("already approved" in json.dumps(r) for r in h.replies()) == 19


INVALID = [
    ("request --role edit --scope production --duration 30m", "reason"),
    ("request --role edit --scope production --duration --reason x", "--duration needs a value"),
    ("request --rol edit --reason x", "--role"),
    ("request --role edit --duration 30 --reason x", "not a duration"),
    ("request --role god --reason x", "not a grantable role"),
    ("request --role edit --scope nope --reason x", "Namespace `nope` does not exist"),
    ("request --role edit --scope production --duration 3h --reason x", "longer than the maximum"),
    ("request --role cluster-admin --scope * --duration 1h --reason x", "maximum 30m"),
    ("request --role edit --reason 'unbalanced", "quote"),
    ("request --provider aws --role edit --reason x", "aws"),
    ("frobnicate", "unknown command"),
    ("status req_123", "not a request ID"),
]


@pytest.mark.parametrize(("text", "expected"), INVALID)
def test_invalid_input_gets_a_clear_message_and_changes_nothing(
    h: Harness, text: str, expected: str
) -> None:
    response = h.sender.command("/jitsudo", text, user=REQUESTER)
    assert response.status == 200
    reply = last_reply_text(h)
    assert expected in reply
    assert '"response_type": "ephemeral"' in reply
    assert h.bot.store.find() == []
    assert h.slack.calls_to("chat.postMessage") == []


def test_user_without_identity_gets_told(h: Harness) -> None:
    h.sender.command("/jitsudo", "request --role view --reason x", user=NO_EMAIL)
    assert "identity.map" in last_reply_text(h)
    assert h.bot.store.find() == []


def test_forged_and_stale_signatures_are_rejected(h: Harness) -> None:
    form = h.sender.command_form("/jitsudo", "request --role edit --reason x", user=REQUESTER)
    from urllib.parse import urlencode

    body = urlencode(form).encode()
    forged = h.sender.sign(body)
    forged["X-Slack-Signature"] = "v0=" + "0" * 64
    assert h.sender.raw(body, forged).status == 401
    stale = h.sender.sign(body, timestamp=int(time.time()) - 600)
    assert h.sender.raw(body, stale).status == 401
    unsigned = {"Content-Type": "application/x-www-form-urlencoded"}
    assert h.sender.raw(body, unsigned).status == 401
    assert h.bot.store.find() == [] and h.replies() == []


def test_mrkdwn_injection_in_reason_is_neutralized(h: Harness) -> None:
    reason = "<!channel> <!here> <@UADMIN> <https://evil.example|https://good.example> & co"
    request = h.request(f"request --role view --scope staging --duration 5m --reason '{reason}'")
    assert request.reason == reason
    shown = json.dumps(h.approval_message(request.id))
    for raw in ("<!channel>", "<!here>", "<@UADMIN>", "<https://evil.example"):
        assert raw not in shown
    assert "&lt;!channel&gt;" in shown


def test_subcommands(h: Harness) -> None:
    help_text = h.command("help")
    assert "request" in help_text and "revoke" in help_text
    request = h.request("request --role view --scope staging --duration 5m --reason look")
    assert "pending" in h.command(f"status {request.id.lower()}").lower()
    assert "Only the requester" in h.command(f"status {request.id}", user=OUTSIDER)
    assert request.id in h.command("list", user=APPROVER)
    assert "pending" not in h.command("list", user=OUTSIDER).lower()
    h.command(f"approve {request.id.lower()}", user=APPROVER)
    wait_until(lambda: binding_of(h, request.id, "staging"))
    assert "Only the requester" in h.command(f"revoke {request.id}", user=OUTSIDER)
    h.command(f"revoke {request.id}", user=ADMIN)
    wait_until(lambda: binding_of(h, request.id, "staging") is None)
    revoked = wait_until(
        lambda: (r := h.bot.store.get(request.id)) and r.state is State.REVOKED and r
    )
    assert revoked.ended_by == ADMIN
    wait_until(lambda: any("revoked" in json.dumps(d).lower() for d in h.dms_to(REQUESTER)))
    role_reads = [
        r for r in h.kube.requests if r.method == "GET" and r.path.endswith("/clusterroles/view")
    ]
    assert len(role_reads) == 2  # pre-flight, then one read shared by every message redraw


def test_deny_and_cancel_by_command(h: Harness) -> None:
    first = h.request("request --role view --scope staging --duration 5m --reason a")
    h.sender.command("/jitsudo", f"deny {first.id} not during the freeze", user=APPROVER2)
    denied = wait_until(lambda: (r := h.bot.store.get(first.id)) and r.state is State.DENIED and r)
    assert denied.decision_note == "not during the freeze"
    second = h.request("request --role view --scope staging --duration 5m --reason b")
    h.sender.command("/jitsudo", f"cancel {second.id}", user=REQUESTER)
    wait_until(lambda: h.bot.store.get(second.id).state is State.CANCELLED)  # type: ignore[union-attr]


def test_grant_failure_after_approval_is_reported(h: Harness) -> None:
    request = h.request("request --role edit --scope production --duration 5m --reason x")
    raw = 'user "system:serviceaccount:jitsudo:jitsudo-bot" is attempting to grant RBAC'
    h.kube.fail_next(method="POST", resource="rolebindings", status=403, message=raw)
    count = len(h.replies())
    click(h, "approve", request.id, APPROVER)
    reply = last_reply_text(h, count)
    assert "grant failed" in reply.lower() and "403 Forbidden" in reply
    assert "serviceaccount" not in reply  # the raw API body goes to the log, not to Slack
    failed = wait_until(
        lambda: (r := h.bot.store.get(request.id)) and r.state is State.FAILED and r
    )
    assert failed.cause
    wait_until(lambda: any("fail" in json.dumps(d).lower() for d in h.dms_to(REQUESTER)))


def test_request_modal_round_trip(h: Harness) -> None:
    from bot.slack import blocks

    h.sender.command("/jitsudo", "request", user=REQUESTER)
    opened = wait_until(lambda: h.slack.calls_to("views.open"))
    assert opened[-1].payload["view"]["callback_id"] == "request_modal"

    def values(duration: str) -> dict[str, Any]:
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
            blocks.NAMESPACE_BLOCK: {
                blocks.NAMESPACE_ACTION: {"type": "plain_text_input", "value": "production"}
            },
            blocks.CLUSTER_WIDE_BLOCK: {
                blocks.CLUSTER_WIDE_ACTION: {"type": "checkboxes", "selected_options": []}
            },
            blocks.DURATION_BLOCK: {
                blocks.DURATION_ACTION: {"type": "plain_text_input", "value": duration}
            },
            blocks.REASON_BLOCK: {
                blocks.REASON_ACTION: {"type": "plain_text_input", "value": "from the modal"}
            },
        }

    bad = h.sender.view_submission("request_modal", values("5 minutes"), user=REQUESTER)
    assert bad.status == 200
    assert bad.json()["response_action"] == "errors"
    assert blocks.DURATION_BLOCK in bad.json()["errors"]
    assert h.bot.store.find() == []
    good = h.sender.view_submission("request_modal", values("15m"), user=REQUESTER)
    assert good.status == 200 and not good.body.strip()
    [request] = wait_until(lambda: h.bot.store.find())
    assert (request.role, request.namespace, request.reason) == (
        "edit",
        "production",
        "from the modal",
    )
    h.approval_message(request.id)


def test_health_and_readiness(h: Harness) -> None:
    from urllib.request import urlopen

    with urlopen(f"{h.url}/healthz") as response:
        assert response.status == 200
    with urlopen(f"{h.url}/readyz") as response:
        assert response.status == 200


def test_socket_mode_wiring_without_network(tmp_path: Path) -> None:
    from bot.config import parse_settings
    from bot.runner import socket_mode_handler
    from bot.wiring import build_bot
    from tests.harness import BOT_TOKEN, settings_document

    with running_bot(tmp_path) as h:
        document = settings_document(Path(tmp_path / "kubeconfig"), f"sqlite:///{tmp_path}/s.db")
        document["slack"]["mode"] = "socket"
        env = {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_APP_TOKEN": "xapp-1-test",
            "SLACK_API_URL": h.slack.base_url,
        }
        bot = build_bot(parse_settings(document, env))
        handler = socket_mode_handler(bot)
        assert handler.app is bot.app
        assert handler.client.app_token == "xapp-1-test"
        assert handler.client.web_client.base_url == h.slack.base_url
        listeners = {type(listener).__name__ for listener in bot.app._listeners}
        assert listeners  # the same /jitsudo, button and modal listeners as in HTTP mode
        assert handler.client.message_listeners or handler.client.socket_mode_request_listeners
        with pytest.raises(SystemExit, match="SLACK_APP_TOKEN"):
            socket_mode_handler(
                build_bot(
                    parse_settings(
                        document, {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": h.slack.base_url}
                    )
                )
            )


def test_extend_and_revoke_now_buttons(h: Harness) -> None:
    from bot.slack import blocks

    request = h.request("request --role view --scope staging --duration 10m --reason dm")
    click(h, "approve", request.id, APPROVER)
    wait_until(lambda: h.dms_to(REQUESTER))
    dm_channel = f"D{REQUESTER}"
    h.sender.block_action("extend", request.id, user=REQUESTER, channel=dm_channel)
    opened = wait_until(
        lambda: [
            c
            for c in h.slack.calls_to("views.open")
            if c.payload["view"]["callback_id"] == "extend_modal"
        ]
    )
    assert opened[-1].payload["view"]["private_metadata"] == request.id

    def values(duration: str) -> dict[str, Any]:
        return {
            blocks.EXTEND_DURATION_BLOCK: {
                blocks.EXTEND_DURATION_ACTION: {"type": "plain_text_input", "value": duration}
            },
            blocks.EXTEND_REASON_BLOCK: {
                blocks.EXTEND_REASON_ACTION: {"type": "plain_text_input", "value": "more"}
            },
        }

    too_long = h.sender.view_submission("extend_modal", values("5h"), user=REQUESTER)
    assert blocks.EXTEND_DURATION_BLOCK in too_long.json()["errors"]
    assert "maximum" in json.dumps(too_long.json())
    ok = h.sender.view_submission("extend_modal", values("20m"), user=REQUESTER)
    assert ok.status == 200 and not ok.body.strip()
    extension = wait_until(lambda: next((r for r in h.bot.store.find() if r.extends), None))
    assert extension.extends == request.id and extension.state is State.PENDING

    h.sender.block_action("revoke_now", request.id, user=REQUESTER, channel=dm_channel)
    wait_until(lambda: binding_of(h, request.id, "staging") is None)
    revoked = wait_until(
        lambda: (r := h.bot.store.get(request.id)) and r.state is State.REVOKED and r
    )
    assert revoked.ended_by == REQUESTER
