"""HTTP mode: POST /slack/events, GET /healthz, GET /readyz, served by waitress.

waitress is a production WSGI server with a thread pool, which suits the sync
Bolt app (no event loop anywhere). Readiness means the database and the
Kubernetes API both answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
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


class JitsudoWsgi:
    """Routes the three paths; everything else is 404."""

    def __init__(self, app: App, *, readiness: dict[str, Probe]) -> None:
        self.slack = _SlackHandler(app)
        self.readiness = readiness

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method, path = environ.get("REQUEST_METHOD"), environ.get("PATH_INFO")
        if path == "/slack/events" and method == "POST":
            return self.slack(environ, start_response)
        if path == "/healthz" and method == "GET":
            return _plain(start_response, "200 OK", "ok\n")
        if path == "/readyz" and method == "GET":
            return self._ready(start_response)
        return _plain(start_response, "404 Not Found", "not found\n")

    def _ready(self, start_response: StartResponse) -> Iterable[bytes]:
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


def _plain(start_response: StartResponse, status: str, body: str) -> Iterable[bytes]:
    data = body.encode()
    start_response(
        status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))]
    )
    return [data]


def make_http_server(wsgi: JitsudoWsgi, *, host: str, port: int, threads: int = 16) -> Any:
    """A waitress server bound now (port 0 picks a free one); call .run() to serve."""
    return create_server(wsgi, host=host, port=port, threads=threads, ident="jitsudo-bot")
