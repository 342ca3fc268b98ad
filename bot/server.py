"""The bot's HTTP server: GET /healthz, /readyz, /metrics, and POST /slack/events in HTTP mode.

waitress is a production WSGI server with a thread pool, which suits the sync
Bolt app (no event loop anywhere). It runs in both Slack modes on slack.port;
in Socket Mode there is no /slack/events (404): Slack's events arrive over the
WebSocket, and this route would take requests without a signature check.
Readiness means the database and the Kubernetes API both answer. /metrics is
prometheus_client's own WSGI app over the bot's registry (bot.metrics).

Every route declares the largest body it accepts. Bolt reads and parses a whole
body before it checks the signature, so an unsigned 1 GiB POST (waitress's
default limit) would be read into memory; a body over its route's limit gets 413
before anything reads it. waitress itself is capped at the largest route's
limit, which also stops chunked bodies while they are still arriving.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from slack_bolt import App, BoltContext, BoltRequest, BoltResponse
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_bolt.adapter.wsgi.http_request import WsgiHttpRequest
from slack_bolt.request.internals import build_context
from waitress.server import create_server

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
Probe = Callable[[], None]
WsgiHandler = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

# Slack's requests are a few KB; a modal submission carrying its whole view stays
# well under 100 KB. 1 MiB is far above anything Slack sends and small enough
# that many concurrent requests cannot hurt a replica.
SLACK_MAX_BODY = 1024 * 1024
# waitress's cap is the largest route's limit, but never below this: a POST to a
# route this mode does not have (/slack/events in Socket Mode) then gets its 404.
MIN_BODY_CAP = 64 * 1024


class _SlackHandler(SlackRequestHandler):
    """Bolt's WSGI adapter, fixed for slash commands whose text mentions "payload".

    Bolt 1.30 parses any form body containing the word "payload" as an
    interactive payload, so `/jitsudo request --reason "fix payload"` would reach
    no listener. The raw body (and so the signature check) stays untouched.
    """

    def dispatch(self, request: WsgiHttpRequest) -> BoltResponse:
        bolt_request = BoltRequest(
            body=request.get_body(), query=request.query_string, headers=request.get_headers()
        )
        if not bolt_request.body and bolt_request.raw_body:
            form = dict(parse_qsl(bolt_request.raw_body, keep_blank_values=True))
            if "command" in form and "payload" not in form:
                bolt_request.body = form
                bolt_request.context = build_context(BoltContext({}), form)
        return self.app.dispatch(bolt_request)


@dataclass(frozen=True)
class Route:
    """One path's handler and the largest request body it accepts, in bytes."""

    handler: WsgiHandler
    max_body: int = 0


class JitsudoWsgi:
    """Routes by method and path; an unknown route is 404, an over-large body 413.

    `app` is the Bolt app in HTTP mode, None in Socket Mode (no /slack/events).
    """

    def __init__(
        self, app: App | None, *, readiness: dict[str, Probe], metrics: WsgiHandler
    ) -> None:
        self.readiness = readiness
        self.routes: dict[tuple[str, str], Route] = {
            ("GET", "/healthz"): Route(_healthy),
            ("GET", "/readyz"): Route(self._ready),
            ("GET", "/metrics"): Route(metrics),
        }
        if app is not None:
            self.routes["POST", "/slack/events"] = Route(_SlackHandler(app), SLACK_MAX_BODY)

    @property
    def largest_body(self) -> int:
        """What the HTTP server must let through: the most generous route's limit."""
        return max(route.max_body for route in self.routes.values())

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        route = self.routes.get((environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")))
        if route is None:
            return _plain(start_response, "404 Not Found", "not found\n")
        if _declared_length(environ) > route.max_body:
            return _plain(
                start_response,
                "413 Content Too Large",
                f"request body too large: this endpoint accepts at most {route.max_body} bytes\n",
            )
        return route.handler(environ, start_response)

    def _ready(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        failures = []
        for name, probe in self.readiness.items():
            try:
                probe()
            except Exception as error:  # noqa: BLE001  (readiness reports any failure)
                failures.append(f"{name}: {type(error).__name__}")
        if failures:
            return _plain(
                start_response,
                "503 Service Unavailable",
                "not ready: " + "; ".join(failures) + "\n",
            )
        return _plain(start_response, "200 OK", "ready\n")


def _healthy(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    return _plain(start_response, "200 OK", "ok\n")


def _declared_length(environ: dict[str, Any]) -> int:
    """The body's length as the server states it (waitress also states it for chunked
    bodies, once it has them); a length that is not a number counts as too large."""
    text = str(environ.get("CONTENT_LENGTH") or "0").strip()
    if text.isascii() and text.isdigit() and len(text) <= 18:
        return int(text)
    return sys.maxsize


def _plain(start_response: StartResponse, status: str, body: str) -> Iterable[bytes]:
    data = body.encode()
    start_response(
        status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))]
    )
    return [data]


def make_http_server(wsgi: JitsudoWsgi, *, host: str, port: int, threads: int = 16) -> Any:
    """A waitress server bound now (port 0 picks a free one); call .run() to serve.

    waitress answers 413 itself to a declared length over the cap, and to a chunked
    body as soon as it grows past it. It refuses a length *equal* to its setting,
    hence the + 1: a body of exactly a route's limit is accepted.
    """
    return create_server(
        wsgi,
        host=host,
        port=port,
        threads=threads,
        ident="jitsudo-bot",
        max_request_body_size=max(wsgi.largest_body, MIN_BODY_CAP) + 1,
    )
