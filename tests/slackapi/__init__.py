"""Offline Slack for tests: a Web API stand-in and a sender of signed Slack requests."""

from tests.slackapi.client import SenderResponse, SlackSender
from tests.slackapi.models import Call, SlackUser
from tests.slackapi.server import SlackApiServer
from tests.slackapi.wsgi import serve_wsgi

__all__ = ["Call", "SenderResponse", "SlackApiServer", "SlackSender", "SlackUser", "serve_wsgi"]
