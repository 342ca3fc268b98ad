"""The stand-in answers the real WebClient like Slack; Bolt accepts SlackSender's requests."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import yaml
from slack_bolt import Ack, App, Respond
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from tests.slackapi import SlackApiServer, SlackSender, SlackUser, serve_wsgi
from tests.slackapi.models import DEFAULT_SCOPES

pytestmark = pytest.mark.filterwarnings("ignore:The top-level `text` argument:UserWarning")

TOKEN = "xoxb-test"
SLACK_MANIFEST = Path(__file__).resolve().parent.parent / "manifests" / "slack-app.yaml"
SECRET = "test-signing-secret"
MODAL = {
    "type": "modal",
    "callback_id": "request_modal",
    "title": {"type": "plain_text", "text": "Request access"},
    "submit": {"type": "plain_text", "text": "Request"},
    "private_metadata": "C123",
    "blocks": [{"type": "input", "block_id": "role", "label": {"type": "plain_text", "text": "R"}}],
}


@pytest.fixture
def slack() -> Iterator[SlackApiServer]:
    with SlackApiServer(bot_token=TOKEN) as server:
        server.add_user(SlackUser(id="U1", name="alice", email="alice@example.com", tz_offset=3600))
        server.add_user(SlackUser(id="U2", name="bob"))
        server.add_user(SlackUser(id="U9", name="gone", deleted=True))
        server.add_user(SlackUser(id="UROBOT", name="robot", is_bot=True))
        yield server


@pytest.fixture
def client(slack: SlackApiServer) -> WebClient:
    return WebClient(token=TOKEN, base_url=slack.base_url)


def api_error(call: Any, **kwargs: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        call(**kwargs)
    return info.value


def error_of(call: Any, **kwargs: Any) -> str:
    """The `error` string of a call that must fail."""
    return str(api_error(call, **kwargs).response["error"])


def test_auth_test_and_invalid_token(slack: SlackApiServer, client: WebClient) -> None:
    auth = client.auth_test()
    assert (auth["team_id"], auth["user_id"], auth["bot_id"]) == ("T0TEST", "UBOT", "BBOT")
    bad = WebClient(token="xoxb-wrong", base_url=slack.base_url)
    assert error_of(bad.auth_test) == "invalid_auth"
    assert slack.calls[-1].error == "invalid_auth"


def test_users_info(client: WebClient, slack: SlackApiServer) -> None:
    alice = client.users_info(user="U1")["user"]
    assert alice["profile"]["email"] == "alice@example.com"
    assert (alice["tz"], alice["tz_offset"], alice["deleted"]) == ("UTC", 3600, False)
    assert "email" not in client.users_info(user="U2")["user"]["profile"]
    assert client.users_info(user="U9")["user"]["deleted"] is True
    assert error_of(client.users_info, user="U404") == "user_not_found"
    assert slack.calls_to("users.info")[0].payload == {"user": "U1"}


def test_conversations_open(client: WebClient) -> None:
    assert client.conversations_open(users=["U1"])["channel"]["id"] == "DU1"
    assert client.conversations_open(users="U1")["channel"]["id"] == "DU1"
    assert error_of(client.conversations_open, users="U404") == "user_not_found"
    assert error_of(client.conversations_open, users="U9") == "user_disabled"
    assert error_of(client.conversations_open, users="UROBOT") == "cannot_dm_bot"


def test_post_message_records_decoded_blocks(client: WebClient, slack: SlackApiServer) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]
    first = client.chat_postMessage(channel="C1", text="hi", blocks=blocks)
    second = client.chat_postMessage(channel="DU1", blocks=json.dumps(blocks))  # JSON string
    form_params = {"channel": "G1", "blocks": json.dumps(blocks)}  # form-encoded JSON string
    form = client.api_call("chat.postMessage", params=form_params)
    assert float(first["ts"]) < float(second["ts"]) < float(form["ts"])
    assert first["message"]["blocks"] == blocks and first["channel"] == "C1"
    assert [c.payload["blocks"] for c in slack.calls_to("chat.postMessage")] == [blocks] * 3
    assert slack.messages("C1") == [
        {
            "ts": first["ts"],
            "channel": "C1",
            "text": "hi",
            "blocks": blocks,
            "user": "UBOT",
            "thread_ts": None,
        }
    ]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"channel": "U1", "text": "x"}, "channel_not_found"),
        ({"channel": "C1"}, "no_text"),
        ({"channel": "C1", "blocks": [{"text": "no type"}]}, "invalid_blocks"),
        ({"channel": "C1", "blocks": [{"type": "divider"}] * 51}, "invalid_blocks"),
        ({"channel": "C1", "blocks": ["divider"]}, "invalid_blocks"),
    ],
)
def test_post_message_errors(client: WebClient, kwargs: dict[str, Any], error: str) -> None:
    assert error_of(client.chat_postMessage, **kwargs) == error


def test_update_changes_message_state(client: WebClient, slack: SlackApiServer) -> None:
    ts = client.chat_postMessage(channel="C1", text="pending", blocks=[{"type": "divider"}])["ts"]
    updated = client.chat_update(channel="C1", ts=ts, text="approved")
    assert updated["ts"] == ts and updated["text"] == "approved"
    [message] = slack.messages("C1")
    assert (message["text"], message["blocks"]) == ("approved", [{"type": "divider"}])
    client.chat_update(channel="C1", ts=ts, text="done", blocks=[])
    assert slack.messages("C1")[0]["blocks"] is None
    assert error_of(client.chat_update, channel="C1", ts="1.2", text="x") == "message_not_found"


def test_deleted_message_cannot_be_updated(client: WebClient, slack: SlackApiServer) -> None:
    by_api = client.chat_postMessage(channel="C1", text="one")["ts"]
    by_person = client.chat_postMessage(channel="C1", text="two")["ts"]
    assert client.chat_delete(channel="C1", ts=by_api)["ts"] == by_api
    slack.delete_message("C1", by_person)  # deleted in the Slack client: no API call
    assert slack.messages("C1") == []
    for ts in (by_api, by_person):
        assert error_of(client.chat_update, channel="C1", ts=ts, text="x") == "message_not_found"
    assert error_of(client.chat_delete, channel="C1", ts=by_api) == "message_not_found"
    assert [c.method for c in slack.calls if c.method.startswith("chat.")] == [
        "chat.postMessage",
        "chat.postMessage",
        "chat.delete",
        "chat.update",
        "chat.update",
        "chat.delete",
    ]


def test_archived_channel_refuses_posts_and_updates(
    client: WebClient, slack: SlackApiServer
) -> None:
    ts = client.chat_postMessage(channel="C1", text="before")["ts"]
    slack.archive_channel("C1")
    assert error_of(client.chat_update, channel="C1", ts=ts, text="x") == "is_archived"
    assert error_of(client.chat_postMessage, channel="C1", text="x") == "is_archived"
    assert client.chat_postMessage(channel="C2", text="elsewhere")["ok"]
    assert slack.messages("C1")[0]["text"] == "before"


def test_post_ephemeral(client: WebClient) -> None:
    assert client.chat_postEphemeral(channel="C1", user="U1", text="only you")["message_ts"]
    error = error_of(client.chat_postEphemeral, channel="X1", user="U1", text="x")
    assert error == "channel_not_found"


def test_views_open_update_push(client: WebClient, slack: SlackApiServer) -> None:
    opened = client.views_open(trigger_id=slack.trigger_id(), view=MODAL)["view"]
    assert opened["id"].startswith("V") and opened["callback_id"] == "request_modal"
    assert opened["private_metadata"] == "C123" and opened["hash"]
    updated = client.views_update(view_id=opened["id"], view=MODAL, hash=opened["hash"])["view"]
    assert updated["id"] == opened["id"] and updated["hash"] != opened["hash"]
    stale = error_of(client.views_update, view_id=opened["id"], view=MODAL, hash=opened["hash"])
    assert stale == "hash_conflict"
    with_ext = client.views_open(trigger_id="t", view={**MODAL, "external_id": "req-1"})["view"]
    assert client.views_update(external_id="req-1", view=MODAL)["view"]["id"] == with_ext["id"]
    assert client.views_push(trigger_id="t", view=MODAL)["view"]["id"] not in (opened["id"],)
    assert error_of(client.views_update, view_id="V404", view=MODAL) == "not_found"
    assert error_of(client.views_open, view=MODAL) == "invalid_arguments"
    assert error_of(client.views_open, trigger_id="t", view={"blocks": []}) == "invalid_arguments"


def test_expired_trigger_id(client: WebClient, slack: SlackApiServer) -> None:
    trigger = slack.trigger_id()
    slack.state.triggers[trigger] -= 10  # issued ten seconds ago
    assert error_of(client.views_open, trigger_id=trigger, view=MODAL) == "expired_trigger_id"


def test_usergroups_and_unknown_method(client: WebClient, slack: SlackApiServer) -> None:
    slack.add_usergroup("S1", ["U1", "U2"])
    assert client.usergroups_users_list(usergroup="S1")["users"] == ["U1", "U2"]
    assert error_of(client.usergroups_users_list, usergroup="S404") == "no_such_subteam"
    assert error_of(client.api_call, api_method="nope.nope") == "unknown_method"


def test_every_answer_carries_the_granted_scopes(slack: SlackApiServer, client: WebClient) -> None:
    """Slack sends `x-oauth-scopes` on every Web API answer, errors included."""
    granted = set(DEFAULT_SCOPES)
    auth = client.auth_test()
    assert set(auth.headers["x-oauth-scopes"].split(",")) == granted
    error = api_error(client.users_info, user="U404")
    assert set(error.response.headers["x-oauth-scopes"].split(",")) == granted
    slack.set_scopes(["commands", "chat:write"])
    assert client.auth_test().headers["x-oauth-scopes"] == "commands,chat:write"
    bad = WebClient(token="xoxb-wrong", base_url=slack.base_url)
    assert "x-oauth-scopes" not in api_error(bad.auth_test).response.headers


def test_default_scopes_are_the_app_manifests() -> None:
    manifest = yaml.safe_load(SLACK_MANIFEST.read_text())
    assert sorted(DEFAULT_SCOPES) == sorted(manifest["oauth_config"]["scopes"]["bot"])


def test_a_method_outside_the_scopes_answers_missing_scope(
    slack: SlackApiServer, client: WebClient
) -> None:
    slack.set_scopes(["commands", "chat:write", "users:read"])
    error = api_error(client.usergroups_users_list, usergroup="S1")
    assert (error.response["error"], error.response["needed"]) == (
        "missing_scope",
        "usergroups:read",
    )
    assert error.response["provided"] == "commands,chat:write,users:read"
    assert error.response.headers["x-accepted-oauth-scopes"] == "usergroups:read"
    assert "email" not in client.users_info(user="U1")["user"]["profile"]  # no users:read.email
    assert client.chat_postMessage(channel="C1", text="x")["ok"]
    assert client.auth_test()["ok"]  # auth.test needs no scope


def test_conversations_info_reports_membership(slack: SlackApiServer, client: WebClient) -> None:
    slack.add_channel("CAPPROVALS", name="approvals")
    slack.add_channel("COTHER", name="other", bot_member=False)
    approvals = client.conversations_info(channel="CAPPROVALS")["channel"]
    assert (approvals["name"], approvals["is_member"], approvals["is_private"]) == (
        "approvals",
        True,
        False,
    )
    assert client.conversations_info(channel="COTHER")["channel"]["is_member"] is False
    assert client.conversations_info(channel="CUNDECLARED")["channel"]["is_member"] is True
    slack.set_bot_member("CAPPROVALS", False)
    assert client.conversations_info(channel="CAPPROVALS")["channel"]["is_member"] is False
    slack.set_bot_member("COTHER", True)
    assert client.conversations_info(channel="COTHER")["channel"]["is_member"] is True
    slack.archive_channel("COTHER")
    assert client.conversations_info(channel="COTHER")["channel"]["is_archived"] is True
    assert error_of(client.conversations_info, channel="U1") == "channel_not_found"


def test_private_channels_hide_from_non_members_and_need_groups_read(
    slack: SlackApiServer, client: WebClient
) -> None:
    slack.add_channel("CSECRET", name="secret", private=True, bot_member=False)
    assert error_of(client.conversations_info, channel="CSECRET") == "channel_not_found"
    assert error_of(client.chat_postMessage, channel="CSECRET", text="x") == "channel_not_found"
    slack.set_bot_member("CSECRET", True)
    assert client.conversations_info(channel="CSECRET")["channel"]["is_private"] is True
    slack.set_scopes([s for s in DEFAULT_SCOPES if s != "groups:read"])
    error = api_error(client.conversations_info, channel="CSECRET")
    assert (error.response["error"], error.response["needed"]) == ("missing_scope", "groups:read")
    assert client.conversations_info(channel="CPUBLIC")["ok"]  # channels:read still covers it
    slack.set_scopes([s for s in DEFAULT_SCOPES if s != "channels:read"])
    assert error_of(client.conversations_info, channel="CPUBLIC") == "missing_scope"


def test_posting_needs_membership_unless_chat_write_public(
    slack: SlackApiServer, client: WebClient
) -> None:
    slack.add_channel("COUT", bot_member=False)
    assert error_of(client.chat_postMessage, channel="COUT", text="x") == "not_in_channel"
    url = slack.response_url("R1", channel="COUT")
    WebhookClient(url).send(text="slash reply", response_type="in_channel")
    assert [m["text"] for m in slack.messages("COUT")] == ["slash reply"]  # no membership needed
    slack.set_scopes([*DEFAULT_SCOPES, "chat:write.public"])
    assert client.chat_postMessage(channel="COUT", text="x")["ok"]


def test_rate_limit_then_success(client: WebClient, slack: SlackApiServer) -> None:
    slack.fail(method="chat.postMessage", status=429, retry_after=7, times=2)
    for _ in range(2):
        error = api_error(client.chat_postMessage, channel="C1", text="x")
        assert error.response.status_code == 429
        assert error.response.headers["Retry-After"] == "7"
        assert error.response["error"] == "ratelimited"
    assert client.chat_postMessage(channel="C1", text="x")["ok"]
    assert [c.status for c in slack.calls_to("chat.postMessage")] == [429, 429, 200]
    assert len(slack.messages("C1")) == 1


def test_server_error_and_ok_false(client: WebClient, slack: SlackApiServer) -> None:
    slack.fail(method="users.info", status=500)
    slack.fail(method="users.info", ok_false="channel_not_found")
    assert api_error(client.users_info, user="U1").response.status_code == 500
    error = api_error(client.users_info, user="U1")
    assert (error.response.status_code, error.response["error"]) == (200, "channel_not_found")
    assert client.users_info(user="U1")["ok"]


def test_wait_for(client: WebClient, slack: SlackApiServer) -> None:
    timer = threading.Timer(0.05, lambda: client.chat_postMessage(channel="C1", text="late"))
    timer.start()
    calls = slack.wait_for(lambda cs: slack.calls_to("chat.postMessage"), timeout=2)
    assert calls[-1].payload["text"] == "late"
    with pytest.raises(AssertionError, match=r"chat\.postMessage"):
        slack.wait_for(lambda cs: len(cs) > 5, timeout=0.05)
    slack.reset_calls()
    assert slack.calls == []


def test_response_url_replace_and_delete(client: WebClient, slack: SlackApiServer) -> None:
    ts = client.chat_postMessage(channel="C1", text="pending")["ts"]
    url = slack.response_url("A1", channel="C1", message_ts=ts)
    response = WebhookClient(url).send(text="approved", replace_original=True)
    assert (response.status_code, json.loads(response.body)) == (200, {"ok": True})
    assert slack.messages("C1")[0]["text"] == "approved"
    [call] = slack.calls_to("response_url")
    assert call.response_url_id == "A1" and call.payload["replace_original"] is True
    WebhookClient(url).send(text="", delete_original=True)
    assert slack.messages("C1") == []


# -- Bolt round trip ---------------------------------------------------------


@pytest.fixture
def bolt(slack: SlackApiServer) -> Iterator[tuple[SlackSender, list[str]]]:
    """A minimal Bolt app in HTTP mode behind waitress, wired to the stand-in."""
    hits: list[str] = []
    executor = ThreadPoolExecutor(max_workers=4)  # drained at teardown, so no listener outlives
    client = WebClient(token=TOKEN, base_url=slack.base_url)
    app = App(signing_secret=SECRET, client=client, listener_executor=executor)

    @app.command("/jitsudo")
    def command(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        hits.append(f"command:{body['text']}")
        ack()
        client.views_open(trigger_id=body["trigger_id"], view=MODAL)
        respond("Opening the request form")

    @app.action("approve")
    def approve(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        hits.append(f"approve:{body['actions'][0]['value']}")
        ack()
        container = body["container"]
        text = f"Approved by <@{body['user']['id']}>"
        client.chat_update(channel=container["channel_id"], ts=container["message_ts"], text=text)

    @app.view("request_modal")
    def submit(ack: Ack, view: dict[str, Any], body: dict[str, Any], client: WebClient) -> None:
        role = view["state"]["values"]["role"]["role"]["selected_option"]["value"]
        hits.append(f"view:{role}")
        if role == "bad":
            ack(response_action="errors", errors={"role": "Unknown role"})
            return
        ack()
        text = f"{body['user']['id']}:{role}"
        client.chat_postMessage(channel=view["private_metadata"], text=text)

    with serve_wsgi(SlackRequestHandler(app)) as url:
        yield SlackSender(bot_url=f"{url}/slack/events", signing_secret=SECRET, slack=slack), hits
        executor.shutdown(wait=True)


def test_bolt_command_opens_modal_and_responds(
    bolt: tuple[SlackSender, list[str]], slack: SlackApiServer
) -> None:
    sender, hits = bolt
    resp = sender.command("/jitsudo", "request --role edit --reason 'x'", user="U1", channel="C1")
    assert (resp.status, resp.body) == (200, "")  # ack() sends an empty 200
    calls = slack.wait_for(lambda cs: any(c.method == "response_url" for c in cs))
    assert hits == ["command:request --role edit --reason 'x'"]
    assert [c.method for c in calls] == ["auth.test", "views.open", "response_url"]
    assert calls[-1].payload == {"text": "Opening the request form"}


def test_bolt_action_and_view_submission(
    bolt: tuple[SlackSender, list[str]], slack: SlackApiServer, client: WebClient
) -> None:
    sender, hits = bolt
    ts = client.chat_postMessage(channel="C123", text="pending")["ts"]
    assert sender.block_action(action_id="approve", value="req_1", user="U2", channel="C123").status
    slack.wait_for(lambda cs: slack.calls_to("chat.update"))
    assert slack.messages("C123")[0]["text"] == "Approved by <@U2>"
    assert slack.messages("C123")[0]["ts"] == ts

    client.views_open(trigger_id="t", view=MODAL)
    option: dict[str, Any] = {"type": "static_select", "selected_option": {"value": "edit"}}
    values = {"role": {"role": option}}
    assert sender.view_submission("request_modal", values, user="U1").status == 200
    slack.wait_for(lambda cs: len(slack.messages("C123")) == 2)
    assert slack.messages("C123")[1]["text"] == "U1:edit"

    option["selected_option"] = {"value": "bad"}
    resp = sender.view_submission("request_modal", values, user="U1")
    assert resp.json() == {"response_action": "errors", "errors": {"role": "Unknown role"}}
    assert hits == ["approve:req_1", "view:edit", "view:bad"]


def test_bolt_rejects_forged_and_stale_signatures(bolt: tuple[SlackSender, list[str]]) -> None:
    sender, hits = bolt
    body = urlencode(sender.command_form("/jitsudo", "request")).encode()
    forged = sender.raw(body, {**sender.sign(body), "X-Slack-Signature": "v0=" + "0" * 64})
    stale = sender.raw(body, sender.sign(body, timestamp=int(time.time()) - 301))
    unsigned = sender.raw(body, {})
    assert [r.status for r in (forged, stale, unsigned)] == [401, 401, 401]
    assert sender.raw(body, sender.sign(body)).status == 200
    assert hits == ["command:request"]


def test_bolt_drops_commands_whose_body_mentions_payload(
    bolt: tuple[SlackSender, list[str]],
) -> None:
    """Bolt 1.30 parses any form body containing "payload" as an interaction payload."""
    sender, hits = bolt
    resp = sender.command("/jitsudo", "request --reason 'payload fix'")
    assert resp.status == 404 and hits == []
