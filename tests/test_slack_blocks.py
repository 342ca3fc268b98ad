"""Block Kit builders: escaping, the approval message per state, DMs, replies, modals.

Every builder's output is re-validated with slack_sdk's own models, plus the
limits slack_sdk does not check (section fields, text length, block count).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.domain import DRIFT_CAUSE, AccessRequest, State
from bot.ports import RoleRule
from bot.slack import blocks
from bot.slack.blocks import Message
from tests.factories import access_request

ID = "req_01J8KZ4Q2M3N5P6R7S8T9VWXYZ"
RBAC = "rbac.authorization.k8s.io"
REQUESTER, APPROVER = "U0REQUESTER", "U0APPROVER"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
NASTY = (
    "<!channel> <!here> <@U123> <!subteam^S1> <https://evil.example|https://good.example> & more"
)
FORBIDDEN = ("<!channel", "<!here", "<@U123>", "<!subteam", "<https://evil", "<https://")


def make(**changes: Any) -> AccessRequest:
    defaults: dict[str, Any] = {
        "id": ID,
        "requester": REQUESTER,
        "reason": "Scale deployment for traffic spike",
        "created_at": T0,
    }
    return access_request(**{**defaults, **changes})


def decided(state: State, **changes: Any) -> AccessRequest:
    return make(
        state=state,
        decided_by=APPROVER,
        decided_at=T0,
        granted_at=T0,
        expires_at=T0 + timedelta(minutes=30),
        **changes,
    )


ACTIVE = decided(State.ACTIVE)


# --- validation helpers ---------------------------------------------------------


def texts(value: Any) -> Iterator[str]:
    """Every string in a JSON value, keys excluded."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from texts(item)


def text_objects(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        if value.get("type") in ("mrkdwn", "plain_text") and "text" in value:
            yield value
        for item in value.values():
            yield from text_objects(item)
    elif isinstance(value, list):
        for item in value:
            yield from text_objects(item)


def assert_valid(message: Message) -> None:
    assert message.text.strip()
    assert 1 <= len(message.blocks) <= 50
    for block in message.blocks:
        parsed = Block.parse(block)
        assert parsed is not None, block
        parsed.to_dict()  # slack_sdk's validators
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        for field in block.get("fields", []):
            assert 1 <= len(field["text"]) <= 2000
    for obj in text_objects(message.blocks):
        assert obj["text"].strip(), obj
        assert len(obj["text"]) <= 3000
    json.dumps(message.blocks)  # plain dicts only


def all_text(message: Message) -> str:
    return "\n".join([message.text, *texts(message.blocks)])


def assert_inert(message: Message) -> None:
    """No user text can ping, link or carry a raw ampersand."""
    for text in [message.text, *texts(message.blocks)]:
        for forbidden in FORBIDDEN:
            assert forbidden not in text, text
        assert not re.search(r"&(?!amp;|lt;|gt;)", text), text


# --- escaping ---------------------------------------------------------------------


def test_escape_neutralises_mentions_links_and_ampersands() -> None:
    assert blocks.escape("<!channel> & <@U1>") == "&lt;!channel&gt; &amp; &lt;@U1&gt;"
    assert blocks.escape("plain") == "plain"


def test_escape_truncates_without_splitting_an_entity() -> None:
    cut = blocks.escape("&" * 1000, 100)
    assert len(cut) <= 100
    assert cut.endswith("…")
    assert re.fullmatch(r"(&amp;)+…", cut)


NASTY_REQUEST = make(
    role=NASTY,
    scope=NASTY,
    namespace=NASTY,
    k8s_user=NASTY,
    reason=NASTY,
    decision_note=NASTY,
    cause=NASTY,
    decided_by=APPROVER,
    decided_at=T0,
    expires_at=T0,
    ended_at=T0,
    ended_by=APPROVER,
)


def nasty_messages() -> Iterator[tuple[str, Message]]:
    rules = [RoleRule((NASTY,), (NASTY,), (NASTY,), (NASTY,))]
    for state in State:
        request = NASTY_REQUEST.evolve(state=state)
        yield f"request_message[{state}]", blocks.request_message(request, rules=rules)
        yield f"status_reply[{state}]", blocks.status_reply(request)
        yield f"decision_reply[{state}]", blocks.decision_reply(request)
    dms: list[Callable[[AccessRequest], Message]] = [
        blocks.denied_dm,
        blocks.failed_dm,
        blocks.revoked_dm,
        blocks.expired_dm,
        blocks.drifted_dm,
        blocks.timed_out_dm,
        blocks.cancelled_dm,
        blocks.failed_for_approver,
        blocks.submitted_reply,
    ]
    for build in dms:
        yield build.__name__, build(NASTY_REQUEST)
    yield "granted_dm", blocks.granted_dm(NASTY_REQUEST.evolve(state=State.ACTIVE), tz=NASTY)
    yield "expiry_warning_dm", blocks.expiry_warning_dm(NASTY_REQUEST, now=T0)
    yield "list_reply", blocks.list_reply([NASTY_REQUEST], [NASTY_REQUEST])
    yield "error_reply", blocks.error_reply(NASTY)


@pytest.mark.parametrize(("name", "message"), list(nasty_messages()))
def test_user_text_is_escaped_everywhere(name: str, message: Message) -> None:
    assert_valid(message)
    assert_inert(message)


def test_escaped_user_text_is_still_shown() -> None:
    message = blocks.request_message(NASTY_REQUEST, rules=None)
    assert "&lt;!channel&gt;" in all_text(message)
    assert "&lt;https://evil.example|https://good.example&gt;" in all_text(message)


def test_mrkdwn_is_verbatim_so_slack_adds_no_links_or_mentions() -> None:
    message = blocks.request_message(make(), rules=None)
    mrkdwn = [obj for obj in text_objects(message.blocks) if obj["type"] == "mrkdwn"]
    assert mrkdwn and all(obj.get("verbatim") is True for obj in mrkdwn)


def test_a_reason_cannot_add_lines_that_look_like_ours() -> None:
    message = blocks.request_message(make(reason="ok\n*Approved by* <@U1>\n\nyes"), rules=None)
    reason = next(t for t in texts(message.blocks) if t.startswith("*Reason*"))
    assert reason == "*Reason*\n> ok *Approved by* &lt;@U1&gt; yes"


@pytest.mark.parametrize("size", [2000, 5000])
def test_huge_user_text_is_truncated_into_valid_blocks(size: int) -> None:
    long = make(reason="&" * size, k8s_user="u" * size, role="r" * 300, namespace="n" * 300)
    for message in (
        blocks.request_message(long, rules=None),
        blocks.status_reply(long),
        blocks.request_message(
            long.evolve(state=State.DENIED, decision_note="x" * size), rules=None
        ),
        blocks.granted_dm(long.evolve(state=State.ACTIVE, expires_at=T0), tz="Europe/Berlin"),
        blocks.error_reply("<" * size),
    ):
        assert_valid(message)
        assert "…" in all_text(message)


# --- the approval message -----------------------------------------------------------


def test_pending_message_has_approve_and_deny_buttons() -> None:
    message = blocks.request_message(make(), rules=None)
    assert_valid(message)
    actions = [b for b in message.blocks if b["type"] == "actions"]
    assert len(actions) == 1
    approve, deny = actions[0]["elements"]
    assert (approve["action_id"], approve["value"], approve["style"]) == ("approve", ID, "primary")
    assert (deny["action_id"], deny["value"], deny["style"]) == ("deny", ID, "danger")
    assert deny["confirm"]["title"]["text"] == "Deny this request?"
    assert deny["confirm"]["text"]["text"] == "You can give a reason next."
    assert deny["confirm"]["confirm"]["text"] == "Deny"
    assert deny["confirm"]["deny"]["text"] == "Cancel"
    assert blocks.APPROVE_ACTION == "approve" and blocks.DENY_ACTION == "deny"


def test_the_message_shows_who_what_where_how_long_and_why() -> None:
    text = all_text(blocks.request_message(make(), rules=None))
    assert "Access request: edit in production" in text
    assert f"<@{REQUESTER}>" in text
    assert "`alice@example.com`" in text
    assert "*Duration*\n30m" in text
    assert "> Scale deployment for traffic spike" in text
    assert ID in text


def test_cluster_wide_is_called_out() -> None:
    message = blocks.request_message(make(scope="*", namespace=None), rules=None)
    text = all_text(message)
    assert message.blocks[0]["text"]["text"] == "Access request: edit CLUSTER-WIDE"
    assert ":rotating_light: *CLUSTER-WIDE* (every namespace)" in text


def test_a_namespace_is_not_called_cluster_wide() -> None:
    text = all_text(blocks.request_message(make(), rules=None))
    assert "CLUSTER-WIDE" not in text
    assert "*Scope*\n`production`" in text


def test_an_empty_scope_says_it_is_the_default_namespace() -> None:
    text = all_text(blocks.request_message(make(scope="", namespace="default"), rules=None))
    assert "`default` (default namespace)" in text


def minutes(n: int) -> datetime:
    return T0 + timedelta(minutes=n)


BY = "<@U0APPROVER>"
FOOTERS = [
    (decided(State.ACTIVE), f"✅ Approved by {BY} at", "· access until", "12:30 UTC"),
    (decided(State.APPROVED), f"✅ Approved by {BY} at", "12:00 UTC", "12:30 UTC"),
    (decided(State.DENIED, decision_note="use staging"), f"❌ Denied by {BY} at", ": use staging",
     "12:00 UTC"),
    (decided(State.DENIED), f"❌ Denied by {BY}", "(no reason given)", "12:00 UTC"),
    (decided(State.FAILED, cause="forbidden: bind"),
     f"⚠️ Approved by {BY}, but the grant failed: forbidden: bind", "", ""),
    (decided(State.REVOKED, ended_by=APPROVER, ended_at=minutes(10)), f"⏹ Revoked by {BY} at",
     "12:10 UTC", ""),
    (decided(State.EXPIRED, cause="expired", ended_at=minutes(30)), "⌛ Expired at", "12:30 UTC",
     ""),
    (decided(State.EXPIRED, cause=DRIFT_CAUSE, ended_at=minutes(5)),
     "⌛ Binding deleted outside jitsudo; marked expired at", "12:05 UTC", ""),
    (make(state=State.TIMED_OUT, ended_at=minutes(60)), "⏱ Timed out: nobody reviewed it in time",
     "", ""),
    (make(state=State.CANCELLED, ended_at=minutes(2)), "🚫 Cancelled by the requester", "12:02 UTC",
     ""),
]  # fmt: skip


@pytest.mark.parametrize(("request_", "first", "second", "third"), FOOTERS)
def test_decided_messages_have_no_buttons_and_say_the_outcome(
    request_: AccessRequest, first: str, second: str, third: str
) -> None:
    message = blocks.request_message(request_, rules=None)
    assert_valid(message)
    assert not [b for b in message.blocks if b["type"] == "actions"]
    footer = message.blocks[-1]
    assert footer["type"] == "context"
    line = footer["elements"][0]["text"]
    assert line.startswith(first)
    assert second in line and third in line


def test_times_render_in_each_readers_timezone_with_a_utc_fallback() -> None:
    line = blocks.request_message(ACTIVE, rules=None).blocks[-1]["elements"][0]["text"]
    epoch = int((T0 + timedelta(minutes=30)).timestamp())
    assert f"<!date^{epoch}^{{date_short_pretty}} {{time}}|2024-05-01 12:30 UTC>" in line


def test_timed_out_names_the_ttl_when_known() -> None:
    request = make(state=State.TIMED_OUT, ended_at=T0)
    message = blocks.request_message(request, rules=None, request_ttl=timedelta(hours=1))
    assert "⏱ Timed out: nobody reviewed it within 1h" in all_text(message)


# --- what the role allows ------------------------------------------------------------


def summary(rules: list[RoleRule] | None) -> str:
    message = blocks.request_message(make(), rules=rules)
    assert_valid(message)
    return next(t for t in texts(message.blocks) if t.startswith("*What edit allows*"))


def test_rules_are_summarised_one_line_each() -> None:
    text = summary([
        RoleRule(("",), ("pods", "services"), ("get", "list")),
        RoleRule(("apps",), ("deployments",), ("patch",), resource_names=("api",)),
        RoleRule((), (), ("get",), non_resource_urls=("/healthz",)),
    ])  # fmt: skip
    assert "• `get, list` on `pods, services` (core)" in text
    assert "• `patch` on `deployments` named `api` (apps)" in text
    assert "• `get` on URLs `/healthz`" in text
    assert ":warning:" not in text and ":key:" not in text and ":lock:" not in text


@pytest.mark.parametrize(
    ("rule", "flag"),
    [
        (RoleRule(("",), ("pods",), ("*",)), ":warning: wildcard"),
        (RoleRule(("*",), ("pods",), ("get",)), ":warning: wildcard"),
        (RoleRule(("",), ("*",), ("get",)), ":warning: wildcard"),
        (RoleRule(("",), ("secrets",), ("get",)), ":key: can read secrets"),
        (RoleRule(("",), ("secrets",), ("list",)), ":key: can read secrets"),
        (RoleRule(("",), ("*",), ("watch",)), ":key: can read secrets"),
        (RoleRule((RBAC,), ("rolebindings",), ("create",)), ":lock: can change RBAC"),
        (RoleRule((RBAC,), ("clusterroles",), ("bind",)), ":lock: can change RBAC"),
        (RoleRule(("",), ("users", "groups"), ("impersonate",)), ":lock: can change RBAC"),
        (RoleRule(("*",), ("*",), ("*",)), ":lock: can change RBAC"),
    ],
)  # fmt: skip
def test_dangerous_rules_are_flagged(rule: RoleRule, flag: str) -> None:
    assert flag in summary([rule])


@pytest.mark.parametrize(
    ("rule", "flag"),
    [
        (RoleRule(("",), ("secrets",), ("create",)), ":key: can read secrets"),
        (RoleRule(("apps",), ("deployments",), ("get",)), ":key: can read secrets"),
        (RoleRule((RBAC,), ("roles",), ("get", "list")), ":lock:"),
        (RoleRule(("",), ("pods",), ("get",)), ":warning:"),
    ],
)
def test_harmless_rules_are_not_flagged(rule: RoleRule, flag: str) -> None:
    assert flag not in summary([rule])


def test_unreadable_rules_are_said_so() -> None:
    assert "(could not read the role's rules)" in summary(None)


def test_a_huge_role_is_cut_to_fit_one_section() -> None:
    rules = [RoleRule(("",), (f"resource-{n}",), ("get",)) for n in range(400)]
    text = summary(rules)
    assert len(text) <= 3000
    assert re.search(r"…and \d+ more$", text)


# --- DMs -----------------------------------------------------------------------------------


def test_granted_dm_shows_expiry_in_utc_and_the_requesters_timezone() -> None:
    text = all_text(blocks.granted_dm(ACTIVE, tz="Europe/Berlin"))
    assert "2024-05-01 12:30 UTC" in text
    assert "2024-05-01 14:30 CEST" in text and "Europe/Berlin" in text
    assert "2024-05-01 08:30 EDT" in all_text(blocks.granted_dm(ACTIVE, tz="America/New_York"))


@pytest.mark.parametrize("tz", [None, "", "Not/AZone", "../../etc/passwd", "Europe"])
def test_granted_dm_without_a_usable_timezone_shows_utc_only(tz: str | None) -> None:
    message = blocks.granted_dm(ACTIVE, tz=tz)
    assert_valid(message)
    assert "2024-05-01 12:30 UTC*" in all_text(message)


def test_granted_dm_gives_a_kubectl_hint_for_the_namespace() -> None:
    text = all_text(blocks.granted_dm(ACTIVE, tz=None))
    assert "kubectl auth can-i --list -n production" in text
    assert "kubectl get pods -n production" in text
    assert "`alice@example.com`" in text


def test_granted_dm_for_cluster_wide_has_no_namespace_flag() -> None:
    text = all_text(blocks.granted_dm(ACTIVE.evolve(namespace=None, scope="*"), tz=None))
    assert "kubectl auth can-i --list\n" in text
    assert "-n " not in text


def test_denied_dm_says_who_and_why() -> None:
    text = all_text(blocks.denied_dm(decided(State.DENIED, decision_note="use staging")))
    assert "<@U0APPROVER> denied" in text and "\n> use staging" in text
    assert "No reason given" in all_text(blocks.denied_dm(decided(State.DENIED)))


def test_failed_dm_and_the_approvers_notice_say_why() -> None:
    failed = decided(State.FAILED, cause='clusterroles.rbac "edit" is forbidden')
    for message in (blocks.failed_dm(failed), blocks.failed_for_approver(failed)):
        assert_valid(message)
        assert 'the grant failed: clusterroles.rbac "edit" is forbidden' in all_text(message)
    assert "<@U0REQUESTER> has been told" in all_text(blocks.failed_for_approver(failed))


def test_revoked_dm_says_who_and_when() -> None:
    by_approver = decided(State.REVOKED, ended_by=APPROVER, ended_at=T0 + timedelta(minutes=7))
    assert "<@U0APPROVER> revoked your `edit` access in `production` at 2024-05-01 12:07 UTC" in (
        all_text(blocks.revoked_dm(by_approver))
    )
    self_revoked = by_approver.evolve(ended_by=REQUESTER)
    assert "You revoked" in all_text(blocks.revoked_dm(self_revoked))


def test_expired_and_drifted_dms() -> None:
    expired = decided(State.EXPIRED, ended_at=T0 + timedelta(minutes=30), cause="expired")
    text = all_text(blocks.expired_dm(expired))
    assert "Your `edit` access in `production` ended at 2024-05-01 12:30 UTC" in text
    drifted = expired.evolve(cause=DRIFT_CAUSE, ended_at=T0 + timedelta(minutes=3))
    text = all_text(blocks.drifted_dm(drifted))
    assert "removed outside jitsudo" in text and "marked expired at 2024-05-01 12:03 UTC" in text


def test_timed_out_and_cancelled_dms() -> None:
    timed_out = make(state=State.TIMED_OUT, ended_at=T0)
    assert "timed out" in all_text(blocks.timed_out_dm(timed_out))
    assert "within 1h" in all_text(blocks.timed_out_dm(timed_out, request_ttl=timedelta(hours=1)))
    assert "You cancelled" in all_text(blocks.cancelled_dm(make(state=State.CANCELLED)))


def test_expiry_warning_has_revoke_and_extend_buttons() -> None:
    message = blocks.expiry_warning_dm(ACTIVE, now=T0 + timedelta(minutes=25, seconds=2))
    assert_valid(message)
    assert "ends in *5m*" in all_text(message)
    revoke, extend = next(b for b in message.blocks if b["type"] == "actions")["elements"]
    assert (revoke["action_id"], revoke["value"], revoke["style"]) == ("revoke_now", ID, "danger")
    assert revoke["confirm"]["confirm"]["text"] == "Revoke"
    assert (extend["action_id"], extend["value"]) == ("extend", ID)
    assert extend["text"]["text"] == "Extend"


def test_every_dm_is_valid_for_a_cluster_wide_grant() -> None:
    request = ACTIVE.evolve(namespace=None, scope="*", ended_at=T0, ended_by=APPROVER)
    for build in (
        blocks.denied_dm,
        blocks.failed_dm,
        blocks.revoked_dm,
        blocks.expired_dm,
        blocks.drifted_dm,
        blocks.timed_out_dm,
        blocks.cancelled_dm,
    ):
        message = build(request)
        assert_valid(message)
        assert "cluster-wide" in all_text(message)


# --- ephemeral replies ------------------------------------------------------------------


def test_submitted_reply_gives_the_id() -> None:
    message = blocks.submitted_reply(make())
    assert_valid(message)
    assert ID in all_text(message) and "posted to the approvers" in all_text(message)


def test_error_and_help_replies() -> None:
    error = blocks.error_reply("unknown flag --rol; did you mean --role?")
    assert_valid(error)
    assert error.blocks[0]["text"]["text"] == ":x: unknown flag --rol; did you mean --role?"
    help_ = blocks.help_reply()
    assert_valid(help_)
    assert help_.blocks[0]["text"]["text"] == blocks.USAGE


def test_status_reply_shows_state_and_expiry() -> None:
    message = blocks.status_reply(ACTIVE)
    assert_valid(message)
    text = all_text(message)
    assert "*State*\nactive" in text and "12:30 UTC" in text and "✅ Approved by" in text


def test_list_reply_shows_mine_and_for_approvers_what_waits() -> None:
    other = make(id="req_01J8KZ4Q2M3N5P6R7S8T9VWXY0", requester="U0OTHER", role="view")
    message = blocks.list_reply([ACTIVE], [other])
    assert_valid(message)
    text = all_text(message)
    assert f"`{ID}` `edit` access in `production`: active until" in text
    assert "*Waiting for your review*" in text and "from <@U0OTHER>: pending" in text


def test_list_reply_for_a_non_approver_has_no_review_section() -> None:
    text = all_text(blocks.list_reply([], None))
    assert "Waiting for your review" not in text and "None yet" in text
    assert "Nothing waits for you" in all_text(blocks.list_reply([], []))


def test_a_long_list_is_cut_to_fit() -> None:
    many = [make(id=f"req_01J8KZ4Q2M3N5P6R7S8T9V{n:04d}") for n in range(200)]
    message = blocks.list_reply(many, many)
    assert_valid(message)
    assert "…and" in all_text(message)


def test_decision_reply_confirms_what_happened() -> None:
    assert "You approved" in all_text(blocks.decision_reply(ACTIVE))
    assert "You denied" in all_text(blocks.decision_reply(decided(State.DENIED)))
    revoked = decided(State.REVOKED, ended_by=APPROVER, ended_at=T0)
    assert "⏹ Revoked by <@U0APPROVER>" in all_text(blocks.decision_reply(revoked))


# --- modals ------------------------------------------------------------------------------


def valid_view(view: dict[str, Any]) -> dict[str, Any]:
    View(**view).to_dict()  # slack_sdk's validators
    for block in view["blocks"]:
        assert Block.parse(block) is not None
    return view


def submit(view: dict[str, Any], answers: dict[str, Any]) -> dict[str, Any]:
    """Build `view.state.values` the way Slack sends it, keyed by what the user sees (labels)."""
    values: dict[str, Any] = {}
    for block in view["blocks"]:
        element, answer = block["element"], answers.get(block["label"]["text"])
        state: dict[str, Any] = {"type": element["type"]}
        if element["type"] == "static_select":
            chosen = [o for o in element["options"] if o["value"] == answer]
            state["selected_option"] = chosen[0] if chosen else None
        elif element["type"] == "checkboxes":
            state["selected_options"] = [o for o in element["options"] if answer]
        else:
            state["value"] = answer
        values[block["block_id"]] = {element["action_id"]: state}
    return values


def test_request_modal_round_trip() -> None:
    view = valid_view(blocks.request_modal(["view", "edit"], default_duration="1h"))
    assert view["callback_id"] == "request_modal" == blocks.REQUEST_MODAL
    values = submit(view, {"Role": "edit", "Namespace": "production", "Duration": "30m",
                           "Reason": "Scale the API"})  # fmt: skip
    assert blocks.read_request_modal(values) == {
        "role": "edit", "namespace": "production", "cluster_wide": False, "scope": "production",
        "duration": "30m", "reason": "Scale the API",
    }  # fmt: skip
    assert blocks.request_modal_errors(blocks.read_request_modal(values)) == {}


def test_request_modal_cluster_wide_and_untouched_optionals() -> None:
    view = blocks.request_modal(["cluster-admin"], default_duration="15m")
    values = submit(view, {"Role": "cluster-admin", "Scope": True, "Duration": "15m",
                           "Reason": "debug"})  # fmt: skip
    read = blocks.read_request_modal(values)
    assert read["cluster_wide"] is True and read["scope"] == "*" and read["namespace"] == ""


def test_request_modal_offers_the_roles_and_the_default_duration() -> None:
    view = blocks.request_modal(["view", "edit"], default_duration="1h", private_metadata="C1")
    by_block = {b["block_id"]: b for b in view["blocks"]}
    role = by_block[blocks.ROLE_BLOCK]["element"]
    assert [o["value"] for o in role["options"]] == ["view", "edit"]
    assert role["action_id"] == blocks.ROLE_ACTION
    assert by_block[blocks.DURATION_BLOCK]["element"]["initial_value"] == "1h"
    namespace = by_block[blocks.NAMESPACE_BLOCK]
    assert namespace["optional"] is True
    assert namespace["hint"]["text"] == "Leave empty for the default namespace"
    cluster = by_block[blocks.CLUSTER_WIDE_BLOCK]
    assert cluster["optional"] is True
    assert cluster["element"]["options"][0]["text"]["text"] == "Cluster-wide (every namespace)"
    reason = by_block[blocks.REASON_BLOCK]["element"]
    assert reason["multiline"] is True and reason["max_length"] == 500
    assert view["private_metadata"] == "C1"


def test_request_modal_errors_point_at_the_input() -> None:
    errors = blocks.request_modal_errors(
        {"namespace": "prod", "cluster_wide": True, "duration": "soon", "role": "x", "reason": "y"}
    )
    assert set(errors) == {blocks.NAMESPACE_BLOCK, blocks.DURATION_BLOCK}
    assert "soon is not a duration" in errors[blocks.DURATION_BLOCK]


def test_deny_modal_round_trip() -> None:
    view = valid_view(blocks.deny_modal(ID))
    assert view["callback_id"] == "deny_modal" and view["private_metadata"] == ID
    assert view["blocks"][0]["optional"] is True
    assert (
        blocks.read_deny_modal(submit(view, {"Reason (optional)": " use staging "}))
        == "use staging"
    )
    assert blocks.read_deny_modal(submit(view, {})) == ""
    assert view["blocks"][0]["block_id"] == blocks.DENY_REASON_BLOCK


def test_extend_modal_round_trip() -> None:
    view = valid_view(blocks.extend_modal(ID, default_duration="30m"))
    assert view["callback_id"] == "extend_modal" and view["private_metadata"] == ID
    values = submit(view, {"Extra time": "45m", "Reason": "rollout still running"})
    read = blocks.read_extend_modal(values)
    assert read == {"duration": "45m", "reason": "rollout still running"}
    assert blocks.extend_modal_errors(read) == {}
    errors = blocks.extend_modal_errors({"duration": "1d"})
    assert errors == {blocks.EXTEND_DURATION_BLOCK: errors[blocks.EXTEND_DURATION_BLOCK]}
    assert errors[blocks.EXTEND_DURATION_BLOCK].startswith("1d is not a duration; use a number")


def test_a_modal_with_many_or_long_roles_is_still_valid() -> None:
    roles = [f"role-{n}-" + "x" * 100 for n in range(150)]
    view = valid_view(blocks.request_modal(roles, default_duration="1h"))
    options = view["blocks"][0]["element"]["options"]
    assert len(options) == 100
    assert options[0]["value"] == roles[0]
