"""The real `jitsudo-bot serve` as a child process, against the stand-ins on loopback.

Used by the crash tests: a process that can be killed with SIGKILL mid-flight
and restarted on the same database, exactly as an operator's bot would be.
The Slack and Kubernetes stand-ins live in the test process and survive the
bot's death, so what the bot did before and after the crash is all recorded.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
import yaml

from bot.database import open_store
from bot.domain import AccessRequest
from bot.store import Store
from tests.harness import (
    APPROVAL_CHANNEL,
    APPROVER,
    BOT_TOKEN,
    REQUESTER,
    SIGNING_SECRET,
    settings_document,
    stand_ins,
    wait_until,
)
from tests.kubeapi import KubeApiServer
from tests.slackapi import SlackApiServer, SlackSender

RBAC = "rbac.authorization.k8s.io/v1"
SWEEP_SECONDS = 2.0
TICK_SECONDS = 1.0
LEASE_SECONDS = 3.0  # scheduler.leader_lease in these tests: a killed leader's lease runs out
_DROPPED_ENV = ("DATABASE_URL", "JITSUDO_CONFIG", "SLACK_APP_TOKEN")
_PROXY_ENV = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
T = TypeVar("T")


def poll(predicate: Callable[[], T | None], *, timeout: float = 10.0) -> T:
    """wait_until, typed: polls to a deadline for the first value that is not None."""
    found: list[T] = []

    def ready() -> bool:
        value = predicate()
        if value is not None:
            found.append(value)
        return value is not None

    wait_until(ready, timeout=timeout)
    return found[0]


def request_when(
    store: Store, request_id: str, test: Callable[[AccessRequest], bool], *, timeout: float = 10.0
) -> AccessRequest:
    """Poll the store until the request passes `test`; returns it as it was then."""

    def found() -> AccessRequest | None:
        request = store.get(request_id)
        return request if request is not None and test(request) else None

    return poll(found, timeout=timeout)


def free_port() -> int:
    """A port nobody listens on right now (bind to 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _command() -> list[str]:
    script = Path(sys.executable).parent / "jitsudo-bot"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "bot.cli"]


class BotProcess:
    """One `jitsudo-bot --config <yaml> serve` child; start, SIGKILL, restart."""

    def __init__(self, *, document: dict[str, Any], env: dict[str, str], workdir: Path) -> None:
        self.document = document
        self.env = env
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.starts = 0
        self.log_path = workdir / "bot.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 30.0) -> float:
        """Spawn the bot and poll /readyz to a deadline; returns when it became ready."""
        assert self.process is None, "already running"
        self.starts += 1
        self.port = free_port()  # a fresh port per start: no TIME_WAIT surprises
        document = {**self.document, "slack": {**self.document["slack"], "port": self.port}}
        config = self.workdir / f"jitsudo-{self.starts}.yaml"
        config.write_text(yaml.safe_dump(document))
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start {self.starts} on port {self.port} =====\n".encode())
            self.process = subprocess.Popen(
                [*_command(), "--config", str(config), "serve"],
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._ready, timeout=timeout, interval=0.05)
        return time.time()

    @property
    def pid(self) -> int:
        assert self.process is not None, "not running"
        return self.process.pid

    def signal(self, signum: int) -> None:
        """SIGSTOP freezes every thread (a paused VM); SIGCONT wakes them."""
        assert self.process is not None, "not running"
        self.process.send_signal(signum)

    def terminate(self) -> None:
        """SIGTERM: a clean stop (the lease is released)."""
        if self.process is None:
            return
        self.process.terminate()
        self.process.wait(timeout=15)
        self.process = None

    def kill(self) -> None:
        """SIGKILL: no handler, no finally, no clean unlock; the kernel closes its sockets."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a stopped process dies only once woken
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def sender(self, slack: SlackApiServer) -> SlackSender:
        return SlackSender(
            bot_url=f"{self.url}/slack/events", signing_secret=SIGNING_SECRET, slack=slack
        )

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                f"jitsudo-bot exited with {self.process.returncode}:\n{self.log_tail()}"
            )
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False


@dataclass
class World:
    """The stand-ins, the bot process and a store on the bot's own SQLite file."""

    kube: KubeApiServer
    slack: SlackApiServer
    bot: BotProcess
    database_url: str
    replicas: list[BotProcess]
    _store: Store | None = None

    def leader(self) -> BotProcess | None:
        """The replica whose pid holds the scheduler lease now (holder is host:pid:random)."""
        with self.store.engine.connect() as connection:
            row = connection.execute(
                sa.text("SELECT holder, expires_epoch FROM leases WHERE name = 'scheduler'")
            ).one()
        if float(row[1]) < time.time():
            return None
        pid = int(str(row[0]).split(":")[1]) if row[0] else -1
        return next((b for b in self.replicas if b.process and b.pid == pid), None)

    @property
    def store(self) -> Store:
        """Opened lazily, after the bot has migrated the file on its first start."""
        if self._store is None:
            self._store = open_store(self.database_url)
        return self._store

    @property
    def sender(self) -> SlackSender:
        return self.bot.sender(self.slack)

    def close(self) -> None:
        if self._store is not None:
            self._store.engine.dispose()

    def request(self, text: str, *, via: BotProcess | None = None) -> AccessRequest:
        before = {r.id for r in self.store.find()}
        sender = (via or self.bot).sender(self.slack)
        response = sender.command("/jitsudo", text, user=REQUESTER)
        assert response.status == 200, response.body
        return poll(lambda: next((r for r in self.store.find() if r.id not in before), None))

    def approval_ts(self, request_id: str) -> str:
        def find() -> str | None:
            for message in self.slack.messages(APPROVAL_CHANNEL):
                if request_id in str(message.get("blocks")):
                    return str(message["ts"])
            return None

        return poll(find)

    def approve(self, request: AccessRequest, *, via: BotProcess | None = None) -> None:
        response = (
            (via or self.bot)
            .sender(self.slack)
            .block_action(
                "approve",
                request.id,
                user=APPROVER,
                channel=APPROVAL_CHANNEL,
                message_ts=self.approval_ts(request.id),
            )
        )
        assert response.status == 200, response.body

    def binding(self, request: AccessRequest) -> dict[str, Any] | None:
        name = f"jitsudo-{request.id.lower()}"
        return self.kube.get(RBAC, "rolebindings", name, namespace=request.namespace)

    def channel_posts(self, request_id: str) -> list[dict[str, Any]]:
        """Delivered new posts (not updates) to the approval channel about this request."""
        return [
            c.payload
            for c in self.slack.calls_to("chat.postMessage")
            if c.error is None
            and c.payload.get("channel") == APPROVAL_CHANNEL
            and request_id in str(c.payload)
        ]

    def dms(self, request_id: str, phrase: str) -> list[dict[str, Any]]:
        """Delivered DMs to the requester about this request that contain `phrase`."""
        return [
            c.payload
            for c in self.slack.calls_to("chat.postMessage")
            if c.error is None
            and c.payload.get("channel") == f"D{REQUESTER}"
            and request_id in str(c.payload)
            and phrase in str(c.payload)
        ]


def _child_env(slack: SlackApiServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV + _PROXY_ENV}
    env.update(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack.base_url,
        JITSUDO_LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
        NO_PROXY="127.0.0.1,localhost",
    )
    return env


@contextmanager
def world(
    tmp_path: Path, *, database_url: str | None = None, replicas: int = 1, **policy: Any
) -> Iterator[World]:
    """Stand-ins up, bot processes configured (not started); everything torn down after.

    `replicas` processes share the database (give a PostgreSQL URL for more than
    one) and the stand-ins; `w.bot` is the first.
    """
    with ExitStack() as stack:
        kube, slack, kubeconfig = stand_ins(stack, tmp_path)
        database_url = database_url or f"sqlite:///{tmp_path}/jitsudo.db"
        document = settings_document(kubeconfig, database_url, **policy)
        document["scheduler"] = {
            "sweep_interval": f"{SWEEP_SECONDS:g}s",
            "leader_lease": f"{LEASE_SECONDS:g}s",
        }
        bots = []
        for index in range(replicas):
            workdir = tmp_path / f"replica-{index}"
            workdir.mkdir()
            bots.append(BotProcess(document=document, env=_child_env(slack), workdir=workdir))
            stack.callback(bots[-1].kill)
        state = World(kube=kube, slack=slack, bot=bots[0], database_url=database_url, replicas=bots)
        stack.callback(state.close)
        yield state
