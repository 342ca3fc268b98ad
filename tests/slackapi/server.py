"""A Slack Web API stand-in on loopback, so the bot's real WebClient can be tested offline.

It records every request as a `Call`, keeps enough workspace state (users,
usergroups, messages, channels and the bot's membership, archived channels,
views) to answer like Slack, and can inject faults (429 with Retry-After, 500,
`ok: false`) to exercise the bot's error paths. The token's granted scopes are
configurable: every answer to the bot carries them in `x-oauth-scopes`, as
Slack's do, and a method the scopes do not cover answers `missing_scope`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.slackapi.models import DEFAULT_SCOPES, ApiError, Call, SlackChannel, SlackUser
from tests.slackapi.state import MAX_MESSAGE_BLOCKS, SlackState, check_blocks

Answer = tuple[int, dict[str, Any], dict[str, str]]  # HTTP status, JSON body, extra headers

# Fields WebClient (or a caller) may send as a JSON string inside form or JSON data.
JSON_FIELDS = ("blocks", "attachments", "view", "metadata", "user_auth_blocks")


@dataclass
class _Fault:
    status: int
    retry_after: int
    ok_false: str | None
    remaining: int


def decode_body(raw: bytes, content_type: str, query: str) -> dict[str, Any]:
    """Turn a form or JSON request body (plus query string) into one dict of decoded values."""
    payload: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    if raw:
        text = raw.decode("utf-8")
        if content_type.startswith("application/json"):
            payload.update(json.loads(text))
        else:
            payload.update(parse_qsl(text, keep_blank_values=True))
    for name in JSON_FIELDS:
        value = payload.get(name)
        if isinstance(value, str) and value[:1] in ("[", "{"):
            with contextlib.suppress(ValueError):  # else left as a string and rejected later
                payload[name] = json.loads(value)
    return payload


class SlackApiServer:
    """Context manager serving `/api/<method>` and `/response/<id>` on 127.0.0.1."""

    def __init__(
        self, bot_token: str = "xoxb-test", *, scopes: tuple[str, ...] = DEFAULT_SCOPES
    ) -> None:
        self.bot_token = bot_token
        self.state = SlackState()
        self.state.scopes = tuple(scopes)
        self.lock = threading.RLock()
        self._calls: list[Call] = []
        self._faults: dict[str, list[_Fault]] = {}
        self._response_targets: dict[str, tuple[str, str] | None] = {}
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._started = False

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> SlackApiServer:
        if not self._started:
            self._thread.start()
            self._started = True
        return self

    def _serve(self) -> None:
        # A short poll interval keeps stop() (and so each test's teardown) fast.
        self._httpd.serve_forever(poll_interval=0.02)

    def stop(self) -> None:
        if self._started:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
        self._httpd.server_close()

    def __enter__(self) -> SlackApiServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    # -- workspace setup -----------------------------------------------------

    def add_user(self, user: SlackUser) -> None:
        with self.lock:
            self.state.users[user.id] = user

    def add_usergroup(self, usergroup_id: str, user_ids: list[str]) -> None:
        with self.lock:
            self.state.usergroups[usergroup_id] = list(user_ids)

    def delete_message(self, channel: str, ts: str) -> None:
        """Someone deletes a message in the Slack client (no API call is recorded)."""
        with self.lock:
            self.state.chat_delete({"channel": channel, "ts": ts})

    def set_scopes(self, scopes: list[str] | tuple[str, ...]) -> None:
        """The app is reinstalled with these bot scopes; the token stays the same."""
        with self.lock:
            self.state.scopes = tuple(scopes)

    def add_channel(
        self, channel: str, *, name: str = "", private: bool = False, bot_member: bool = True
    ) -> None:
        """Declare a channel; undeclared IDs are channels the bot is in (see SlackChannel)."""
        with self.lock:
            self.state.channels[channel] = SlackChannel(channel, name, private, bot_member)

    def set_bot_member(self, channel: str, member: bool) -> None:
        """Someone /invites the bot to a channel, or removes it (declaring it if need be)."""
        with self.lock:
            current = self.state.channel(channel)
            self.state.channels[channel] = SlackChannel(
                channel, current.name, current.is_private, member
            )

    def archive_channel(self, channel: str) -> None:
        """Someone archives a channel: posting and updating there fail with `is_archived`."""
        with self.lock:
            self.state.archived.add(channel)

    def response_url(
        self, key: str, *, channel: str | None = None, message_ts: str | None = None
    ) -> str:
        """A response_url on this server; bind it to a message so replace/delete apply."""
        with self.lock:
            if channel is not None or key not in self._response_targets:
                target = (channel, message_ts or "") if channel else None
                self._response_targets[key] = target
        return f"http://127.0.0.1:{self.port}/response/{key}"

    def trigger_id(self) -> str:
        """A trigger_id that `views.open` rejects with `expired_trigger_id` after 3 s."""
        with self.lock:
            return self.state.new_trigger_id()

    def fail(
        self,
        method: str,
        *,
        status: int = 429,
        retry_after: int = 1,
        times: int = 1,
        ok_false: str | None = None,
    ) -> None:
        """Make the next `times` calls of `method` fail (429, 500, or HTTP 200 with ok false)."""
        with self.lock:
            fault = _Fault(status, retry_after, ok_false, times)
            self._faults.setdefault(method, []).append(fault)

    def clear_faults(self) -> None:
        """Slack is healthy again: drop every fault still queued."""
        with self.lock:
            self._faults.clear()

    # -- inspection ----------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        with self.lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def reset_calls(self) -> None:
        with self.lock:
            self._calls.clear()

    def messages(self, channel: str) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(self.state.messages.get(channel, []))

    def views(self) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(list(self.state.views.values()))

    def wait_for(
        self, predicate: Callable[[list[Call]], object], timeout: float = 5.0
    ) -> list[Call]:
        """Poll until `predicate(calls)` is truthy; the bot's listeners run after ack()."""
        deadline = time.monotonic() + timeout
        while True:
            calls = self.calls
            if predicate(calls):
                return calls
            if time.monotonic() >= deadline:
                raise AssertionError(f"condition not met within {timeout}s; calls:\n{dump(calls)}")
            time.sleep(0.01)

    # -- request handling (called from server threads) -----------------------

    def handle_api(self, method: str, payload: dict[str, Any], auth: str) -> Answer:
        with self.lock:
            token = auth.removeprefix("Bearer ").strip() or str(payload.get("token", ""))
            payload.pop("token", None)
            if token != self.bot_token:
                return self._record(method, payload, 200, {"ok": False, "error": "invalid_auth"})
            accepted = self.state.accepted_scopes(method, payload)
            headers = {
                "x-oauth-scopes": ",".join(self.state.scopes),
                "x-accepted-oauth-scopes": ",".join(accepted),
            }
            fault = self._take_fault(method)
            if fault is not None:
                status, body, extra = self._fault_answer(method, payload, fault)
                return status, body, {**headers, **extra}
            handler = self.state.handlers.get(method)
            try:
                if handler is None:
                    raise ApiError("unknown_method")
                if accepted and not set(accepted) & set(self.state.scopes):
                    body = self._missing_scope(accepted)
                else:
                    body = handler(payload)
            except ApiError as err:
                body = {"ok": False, "error": err.error}
            return self._record(method, payload, 200, body, headers=headers)

    def _missing_scope(self, accepted: tuple[str, ...]) -> dict[str, Any]:
        """Slack's answer when the token has none of the scopes a method accepts."""
        return {
            "ok": False,
            "error": "missing_scope",
            "needed": accepted[0],
            "provided": ",".join(self.state.scopes),
        }

    def handle_response_url(self, key: str, payload: dict[str, Any]) -> Answer:
        with self.lock:
            fault = self._take_fault("response_url")
            if fault is not None:
                return self._fault_answer("response_url", payload, fault, key)
            try:
                check_blocks(payload.get("blocks"), MAX_MESSAGE_BLOCKS)
                self.state.apply_response_url(self._response_targets.get(key), payload)
            except ApiError as err:
                body = {"ok": False, "error": err.error}
                return self._record("response_url", payload, 400, body, key=key)
            return self._record("response_url", payload, 200, {"ok": True}, key=key)

    def _take_fault(self, method: str) -> _Fault | None:
        queue = self._faults.get(method) or []
        while queue and queue[0].remaining <= 0:
            queue.pop(0)
        if not queue:
            return None
        queue[0].remaining -= 1
        return queue[0]

    def _fault_answer(
        self, method: str, payload: dict[str, Any], fault: _Fault, key: str | None = None
    ) -> Answer:
        if fault.ok_false is not None:
            return self._record(method, payload, 200, {"ok": False, "error": fault.ok_false}, key)
        headers = {}
        error = "fatal_error"
        if fault.status == 429:
            headers["Retry-After"] = str(fault.retry_after)
            error = "ratelimited"
        body = {"ok": False, "error": error}
        return self._record(method, payload, fault.status, body, key, headers)

    def _record(
        self,
        method: str,
        payload: dict[str, Any],
        status: int,
        body: dict[str, Any],
        key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        error = None if body.get("ok") else str(body.get("error"))
        call = Call(method, payload, time.time(), status, error, key)
        self._calls.append(call)
        return status, body, headers or {}


def dump(calls: list[Call]) -> str:
    """Readable listing of calls for assertion messages."""
    lines = []
    for i, c in enumerate(calls):
        outcome = "ok" if c.error is None else f"{c.status} {c.error}"
        lines.append(f"  [{i}] {c.method} ({outcome}) {json.dumps(c.payload, default=str)[:300]}")
    return "\n".join(lines) or "  (no calls)"


def _make_handler(api: SlackApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Keep pytest output clean."""

        def do_GET(self) -> None:
            self.do_POST()

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            content_type = self.headers.get("Content-Type", "")
            try:
                payload = decode_body(raw, content_type, url.query)
            except ValueError:
                self._send(400, {"ok": False, "error": "invalid_json"}, {})
                return
            if url.path.startswith("/api/"):
                method = url.path.removeprefix("/api/")
                auth = self.headers.get("Authorization", "")
                self._send(*api.handle_api(method, payload, auth))
            elif url.path.startswith("/response/"):
                self._send(*api.handle_response_url(url.path.removeprefix("/response/"), payload))
            else:
                self._send(404, {"ok": False, "error": "not_found"}, {})

        def _send(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
            data = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler
