"""The whole bot on loopback: Kubernetes and Slack stand-ins, the real wiring, HTTP mode.

Slack's side of a test is a signed request over real HTTP (SlackSender); the
bot's WebClient talks to the Slack stand-in, its kubernetes client to the
Kubernetes stand-in, authorized by manifests/base/rbac/rbac.yaml.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlmodel import Session, col, select

from bot.config import Settings, parse_settings
from bot.domain import AccessRequest
from bot.ports import Clock
from bot.runner import start_background
from bot.scheduler import Timers
from bot.server import make_http_server
from bot.store import OutboxNotice
from bot.wiring import Bot, build_bot
from tests.kubeapi import KubeApiServer
from tests.slackapi import SlackApiServer, SlackSender, SlackUser
from tests.slackapi.wsgi import run_in_thread

SIGNING_SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-test-token"
BOT_USER = "system:serviceaccount:jitsudo:jitsudo-bot"
APPROVAL_CHANNEL = "CAPPROVALS"
REQUESTER, APPROVER, APPROVER2, OUTSIDER, ADMIN, NO_EMAIL = (
    "UREQ",
    "UAPPROVER",
    "UAPPROVER2",
    "UOUTSIDER",
    "UADMIN",
    "UNOEMAIL",
)
GROUP_MEMBER = "UGROUPIE"
MANIFEST = Path(__file__).parent.parent / "manifests" / "base" / "rbac" / "rbac.yaml"
T = TypeVar("T")


def wait_until(predicate: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.02) -> T:
    """Poll to a deadline (never a fixed sleep); returns the first truthy value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


@dataclass
class Harness:
    kube: KubeApiServer
    slack: SlackApiServer
    settings: Settings
    clock: Clock | None
    with_timers: bool
    running: _RunningBot | None = None

    def start(self) -> None:
        self.running = _RunningBot(self.settings, clock=self.clock, timers=self.with_timers)

    def stop(self) -> None:
        if self.running is not None:
            self.running.stop()
            self.running = None

    def restart(self) -> None:
        """A new bot on the same database and stand-ins, as after a crash or a deploy."""
        self.stop()
        self.start()

    @property
    def bot(self) -> Bot:
        assert self.running is not None, "the bot is stopped"
        return self.running.bot

    @property
    def url(self) -> str:
        assert self.running is not None, "the bot is stopped"
        return self.running.url

    @property
    def timers(self) -> Timers | None:
        return self.running.timers if self.running else None

    @property
    def sender(self) -> SlackSender:
        assert self.running is not None, "the bot is stopped"
        return self.running.sender(self.slack)

    def request(self, text: str, *, user: str = REQUESTER) -> AccessRequest:
        """Run a /jitsudo request, wait for its reply, and return the stored request."""
        before = {r.id for r in self.bot.store.find()}
        reply = self.command(text, user=user)
        created = [r for r in self.bot.store.find() if r.id not in before]
        assert len(created) == 1, reply
        assert created[0].id in reply
        return created[0]

    def command(self, text: str, *, user: str = REQUESTER) -> str:
        """Run /jitsudo TEXT and return the JSON of the reply posted to *its* response_url."""
        form = self.sender.command_form("/jitsudo", text, user=user)
        key = f"cmd-{uuid.uuid4().hex}"
        form["response_url"] = self.slack.response_url(key, channel=form["channel_id"])
        response = self.sender.send_form(form)
        assert response.status == 200, response.body
        call = wait_until(
            lambda: next(
                (c for c in self.slack.calls_to("response_url") if c.response_url_id == key), None
            )
        )
        return json.dumps(call.payload)

    def approval_message(self, request_id: str) -> dict[str, Any]:
        """The approval message as the channel shows it now."""

        def find() -> dict[str, Any] | None:
            for message in self.slack.messages(APPROVAL_CHANNEL):
                if request_id in str(message.get("blocks")):
                    return message
            return None

        return wait_until(find)

    def dms_to(self, user: str) -> list[dict[str, Any]]:
        return [
            c.payload
            for c in self.slack.calls_to("chat.postMessage")
            if c.payload.get("channel") == f"D{user}"
        ]

    def replies(self) -> list[dict[str, Any]]:
        return [c.payload for c in self.slack.calls_to("response_url")]

    def outbox(self, request_id: str) -> list[OutboxNotice]:
        """Every outbox row of a request, delivered or not, oldest first."""
        query = (
            select(OutboxNotice)
            .where(col(OutboxNotice.request_id) == request_id)
            .order_by(col(OutboxNotice.id))
        )
        with Session(self.bot.store.engine) as session:
            return list(session.exec(query))

    def notices_settled(self) -> bool:
        """No outbox row is waiting any more (delivered or given up)."""
        return not self.bot.store.due_notices(datetime.now(UTC) + timedelta(days=1))


def _users(slack: SlackApiServer) -> None:
    for user_id, name in (
        (REQUESTER, "alice"),
        (APPROVER, "bob"),
        (APPROVER2, "carol"),
        (OUTSIDER, "mallory"),
        (ADMIN, "root"),
        (GROUP_MEMBER, "gina"),
    ):
        slack.add_user(
            SlackUser(
                id=user_id,
                name=name,
                email=f"{name}@example.com",
                tz="Europe/Berlin",
                tz_offset=3600,
                is_bot=False,
                deleted=False,
            )
        )
    slack.add_user(
        SlackUser(
            id=NO_EMAIL,
            name="noemail",
            email=None,
            tz=None,
            tz_offset=0,
            is_bot=False,
            deleted=False,
        )
    )
    slack.add_usergroup("SAPPROVERS", [GROUP_MEMBER])


def settings_document(
    kubeconfig: Path, database: str, *, provider_max_duration: str | None = "2h", **policy: Any
) -> dict[str, Any]:
    return {
        "slack": {
            "mode": "http",
            "port": 3000,
            "approval_channel": APPROVAL_CHANNEL,
            "approvers": [APPROVER, APPROVER2],
            "approver_groups": ["SAPPROVERS"],
            "admins": [ADMIN],
        },
        "providers": {
            "kubernetes": {"kubeconfig": str(kubeconfig), "max_duration": provider_max_duration}
        },
        "policy": {
            "min_duration": "1s",
            "roles": {
                "view": {},
                "edit": {},
                "admin": {},
                "cluster-admin": {"max_duration": "30m"},
            },
            **policy,
        },
        "scheduler": {"sweep_interval": "30s"},
        "database": {"url": database},
    }


class _RunningBot:
    """One bot process-equivalent: wiring, timers or outbox, and its HTTP server."""

    def __init__(self, settings: Settings, *, clock: Clock | None, timers: bool) -> None:
        self.bot = build_bot(settings, clock=clock)
        self.timers = start_background(self.bot) if timers else None
        if self.timers is None:
            self.bot.outbox.start()
        self.server: Any = make_http_server(self.bot.wsgi(), host="127.0.0.1", port=0, threads=24)
        self._stop_server = run_in_thread(self.server)
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        self._sender: SlackSender | None = None

    def sender(self, slack: SlackApiServer) -> SlackSender:
        if self._sender is None:
            self._sender = SlackSender(
                bot_url=f"{self.url}/slack/events", signing_secret=SIGNING_SECRET, slack=slack
            )
        return self._sender

    def stop(self) -> None:
        self._stop_server()
        if self.timers is not None:
            self.timers.stop()
        self.bot.outbox.stop()
        self.bot.store.engine.dispose()


def stand_ins(stack: ExitStack, tmp_path: Path) -> tuple[KubeApiServer, SlackApiServer, Path]:
    """Both stand-ins, seeded like a fresh cluster and workspace; closed with `stack`.

    The bot's token is authorized only by manifests/base/rbac/rbac.yaml.
    """
    kube = stack.enter_context(KubeApiServer())
    kube.apply_manifest(str(MANIFEST))
    for namespace in ("production", "staging"):
        kube.add_namespace(namespace)
    token = kube.add_token(
        BOT_USER, groups=["system:serviceaccounts", "system:serviceaccounts:jitsudo"]
    )
    kubeconfig = Path(kube.write_kubeconfig(tmp_path / "kubeconfig", token=token))
    slack = stack.enter_context(SlackApiServer(bot_token=BOT_TOKEN))
    _users(slack)
    return kube, slack, kubeconfig


@contextmanager
def running_bot(
    tmp_path: Path,
    *,
    database: str | None = None,
    clock: Clock | None = None,
    timers: bool = False,
    scheduler: dict[str, Any] | None = None,
    identity: dict[str, Any] | None = None,
    provider_max_duration: str | None = "2h",
    **policy: Any,
) -> Iterator[Harness]:
    with ExitStack() as stack:
        kube, slack, kubeconfig = stand_ins(stack, tmp_path)
        document = settings_document(
            Path(kubeconfig),
            database or f"sqlite:///{tmp_path}/jitsudo.db",
            provider_max_duration=provider_max_duration,
            **policy,
        )
        if scheduler:
            document["scheduler"] = scheduler
        if identity:
            document["identity"] = identity
        env = {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack.base_url,
        }
        harness = Harness(
            kube=kube,
            slack=slack,
            settings=parse_settings(document, env),
            clock=clock,
            with_timers=timers,
        )
        harness.start()
        stack.callback(harness.stop)
        yield harness
