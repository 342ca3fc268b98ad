"""The real `jitsudo-bot serve` process: JSON logs on stderr, and Socket Mode's HTTP server.

Both run the installed entry point as a child process against the stand-ins
(tests.subprocess_bot), with the container's defaults: no log flag, no
JITSUDO_LOG_FORMAT.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import APPROVAL_CHANNEL, APPROVER, REQUESTER, settings_document, stand_ins
from tests.kubeapi import KubeApiServer
from tests.slackapi import SlackApiServer, SlackSender
from tests.subprocess_bot import SIGNING_SECRET, _child_env, _command, free_port, poll, wait_until

FAKE_APP_TOKEN = "xapp-1-A0FAKE-1234-deadbeef"
REQUIRED = {"time", "level", "logger", "message"}


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    url: str
    stderr: Path
    slack: SlackApiServer
    kube: KubeApiServer

    def stderr_lines(self) -> list[str]:
        return self.stderr.read_text().splitlines()

    def stop(self) -> int:
        self.process.terminate()
        return self.process.wait(timeout=20)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@contextmanager
def serving(tmp_path: Path, *, mode: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    """`jitsudo-bot --config FILE serve` on a free port; stderr kept apart from stdout."""
    with ExitStack() as stack:
        kube, slack, kubeconfig = stand_ins(stack, tmp_path)
        port = free_port()
        document = settings_document(kubeconfig, f"sqlite:///{tmp_path}/jitsudo.db")
        document["slack"] = {**document["slack"], "mode": mode, "port": port}
        config = tmp_path / "jitsudo.yaml"
        config.write_text(yaml.safe_dump(document))
        child_env = {k: v for k, v in _child_env(slack).items() if k != "JITSUDO_LOG_FORMAT"}
        stderr = tmp_path / "stderr.log"
        with stderr.open("wb") as err, (tmp_path / "stdout.log").open("wb") as out:
            process = subprocess.Popen(
                [*_command(), "--config", str(config), "serve"],
                cwd=tmp_path,
                env={**child_env, **(env or {})},
                stdout=out,
                stderr=err,
            )
        stack.callback(lambda: process.poll() is None and process.kill())
        served = Served(process, f"http://127.0.0.1:{port}", stderr, slack, kube)

        def up() -> bool:
            assert process.poll() is None, stderr.read_text()[-3000:]
            try:
                return get(f"{served.url}/healthz")[0] == 200
            except OSError:
                return False

        wait_until(up, timeout=30, interval=0.05)
        yield served


def parsed(lines: list[str]) -> list[dict[str, Any]]:
    """Every line is one JSON object with the four required fields."""
    objects = []
    for line in lines:
        obj = json.loads(line)
        assert isinstance(obj, dict), line
        assert set(obj) >= REQUIRED, line
        objects.append(obj)
    return objects


def metrics(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    status, text = get(f"{url}/metrics")
    assert status == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_every_stderr_line_is_one_json_object_with_the_required_fields(tmp_path: Path) -> None:
    with serving(tmp_path, mode="http") as served:
        sender = SlackSender(
            bot_url=f"{served.url}/slack/events", signing_secret=SIGNING_SECRET, slack=served.slack
        )
        text = "request --role edit --scope production --duration 30m --reason logs"
        assert sender.command("/jitsudo", text, user=REQUESTER).status == 200
        request_id, ts = poll(lambda: posted_request(served.slack))
        served.kube.fail_next("POST", "rolebindings", status=403)  # the grant fails: a WARNING
        sender.block_action(
            "approve", request_id, user=APPROVER, channel=APPROVAL_CHANNEL, message_ts=ts
        )
        served.slack.fail("views.open", ok_false="expired_trigger_id")  # a listener raises
        # Not asserting the answer: Bolt 1.30 can lose the ack of a listener that raises
        # within 10 ms of acking (it then answers 404 after 3 s); the log line is the point.
        sender.command("/jitsudo", "request", user=REQUESTER)
        poll(lambda: next((ln for ln in served.stderr_lines() if "Slack listener" in ln), None))
        assert served.stop() == 0
    lines = parsed(served.stderr_lines())
    loggers = {line["logger"] for line in lines}
    assert loggers & {"waitress", "apscheduler.scheduler"}, loggers  # libraries: same format
    grant = next(line for line in lines if line["message"].startswith("grant of"))
    assert grant["level"] == "WARNING"
    assert (grant["request_id"], grant["actor"], grant["action"]) == (request_id, APPROVER, "grant")
    failure = next(
        line for line in lines if "unhandled error in a Slack listener" in line["message"]
    )
    assert failure["level"] == "ERROR" and failure["actor"] == REQUESTER
    assert "SlackApiError" in failure["exc_info"] and "expired_trigger_id" in failure["exc_info"]
    assert "xoxb-" not in served.stderr.read_text()


def posted_request(slack: SlackApiServer) -> tuple[str, str] | None:
    """(request ID, message ts) of the first approval message the bot posted."""
    for message in slack.messages(APPROVAL_CHANNEL):
        found = re.search(r"req_[0-9A-Z]{26}", json.dumps(message.get("blocks")))
        if found:
            return found.group(0), str(message["ts"])
    return None


def test_socket_mode_serves_health_and_metrics_and_keeps_trying_slack(tmp_path: Path) -> None:
    """A wrong app token: Slack answers invalid_auth to apps.connections.open. The process
    stays up, serves its probes and metrics, and tries again with backoff."""
    with serving(tmp_path, mode="socket", env={"SLACK_APP_TOKEN": FAKE_APP_TOKEN}) as served:
        assert get(f"{served.url}/healthz") == (200, "ok\n")
        assert get(f"{served.url}/readyz") == (200, "ready\n")
        # Unsigned: with this route, Bolt (no signature check in Socket Mode) would run it.
        command = SlackSender(
            bot_url=f"{served.url}/slack/events", signing_secret="wrong", slack=served.slack
        ).command_form("/jitsudo", "help", user=REQUESTER)
        request = urllib.request.Request(
            f"{served.url}/slack/events", data=urllib.parse.urlencode(command).encode()
        )
        try:
            urllib.request.urlopen(request, timeout=5)
            raise AssertionError("POST /slack/events must not exist in Socket Mode")
        except urllib.error.HTTPError as error:
            assert (error.code, error.read()) == (404, b"not found\n")
        wait_until(lambda: len(served.slack.calls_to("apps.connections.open")) >= 3, timeout=15)
        assert served.process.poll() is None
        samples = metrics(served.url)
        errors = samples[
            ("jitsudo_slack_api_errors_total", frozenset({("method", "apps.connections.open")}))
        ]
        assert errors >= 3
        assert ("jitsudo_is_leader", frozenset()) in samples
        assert served.stop() == 0
    lines = parsed(served.stderr_lines())
    retries = [line for line in lines if "Socket Mode: cannot connect" in line["message"]]
    assert len(retries) >= 3 and all(line["level"] == "ERROR" for line in retries)
    assert "invalid_auth" in retries[0]["message"]
    assert FAKE_APP_TOKEN not in served.stderr.read_text()
