"""Identity and approver lookups with the real WebClient against the Slack stand-in.

Time is a hand-moved monotonic clock, never a sleep.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from slack_sdk import WebClient

from bot.config import IdentitySettings, SlackSettings
from bot.domain import InvalidInput
from bot.errors import DirectoryUnavailable
from bot.slack.people import People
from tests.slackapi import SlackApiServer, SlackUser


@pytest.fixture
def slack() -> Iterator[SlackApiServer]:
    with SlackApiServer(bot_token="xoxb-t") as server:
        server.add_user(
            SlackUser(id="U1", name="alice", email="alice@example.com", tz="Asia/Tokyo")
        )
        server.add_user(SlackUser(id="U2", name="nomail", email=None))
        server.add_user(SlackUser(id="UBOTX", name="robot", email="r@example.com", is_bot=True))
        server.add_usergroup("SGROUP", ["U7"])
        yield server


class Monotonic:
    """A monotonic clock the test moves by hand (seconds)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def people(
    slack: SlackApiServer, *, monotonic: Callable[[], float] = time.monotonic, **identity: object
) -> People:
    client = WebClient(token="xoxb-t", base_url=slack.base_url)
    return People(
        client,
        identity=IdentitySettings.model_validate(identity),
        slack=SlackSettings(
            approvers=["U5"], approver_groups=["SGROUP", "SMISSING"], admins=["U9"]
        ),
        monotonic=monotonic,
    )


def test_email_identity_with_prefix(slack: SlackApiServer) -> None:
    assert people(slack).kubernetes_user("U1") == "alice@example.com"
    assert people(slack, username_prefix="oidc:").kubernetes_user("U1") == "oidc:alice@example.com"
    assert people(slack).timezone("U1") == "Asia/Tokyo"


def test_map_wins_over_source_and_slack_id_source(slack: SlackApiServer) -> None:
    mapped = people(slack, map={"U1": "alice-admin"}, username_prefix="oidc:")
    assert mapped.kubernetes_user("U1") == "oidc:alice-admin"
    assert people(slack, source="slack_id").kubernetes_user("U2") == "U2"


@pytest.mark.parametrize(
    ("user", "identity"), [("U2", {}), ("UBOTX", {}), ("U1", {"source": "map"})]
)
def test_no_usable_identity_is_a_clear_error(
    slack: SlackApiServer, user: str, identity: dict[str, object]
) -> None:
    with pytest.raises(InvalidInput, match=r"identity\.map"):
        people(slack, **identity).kubernetes_user(user)


def test_profiles_are_cached(slack: SlackApiServer) -> None:
    directory = people(slack)
    for _ in range(5):
        directory.kubernetes_user("U1")
    assert len(slack.calls_to("users.info")) == 1


def test_approvers_admins_and_groups_fail_closed(slack: SlackApiServer) -> None:
    directory = people(slack)
    assert directory.is_approver("U5")
    assert directory.is_approver("U7")  # member of SGROUP
    assert not directory.is_approver("U1")
    assert directory.is_admin("U9") and not directory.is_admin("U5")
    # SMISSING does not exist: nobody becomes an approver through it
    assert not directory.is_approver("U8")
    # SGROUP once (cached); SMISSING on each look-up, since a failure is never cached
    assert len(slack.calls_to("usergroups.users.list")) == 3


SLACK_HICCUPS = [{"status": 500}, {"status": 429}, {"ok_false": "internal_error"}]


@pytest.mark.parametrize("hiccup", SLACK_HICCUPS)
def test_group_read_failing_uses_membership_read_in_the_last_ten_minutes(
    slack: SlackApiServer, hiccup: dict[str, Any]
) -> None:
    clock = Monotonic()
    directory = people(slack, monotonic=clock)
    assert directory.is_approver("U7")  # read successfully now
    clock.now += 61  # past the 60 s cache: the next look-up asks Slack again
    slack.fail("usergroups.users.list", times=1000, **hiccup)
    assert directory.is_approver("U7")
    clock.now += 599 - 61
    assert directory.is_approver("U7")
    assert not directory.is_approver("U1")
    clock.now += 2  # the last good read is now older than 10 minutes: fail closed
    assert not directory.is_approver("U7")
    assert all(c.error for c in slack.calls_to("usergroups.users.list")[1:])  # no hidden success


@pytest.mark.parametrize("hiccup", SLACK_HICCUPS)
def test_group_read_failure_is_not_cached_as_an_empty_group(
    slack: SlackApiServer, hiccup: dict[str, Any]
) -> None:
    clock = Monotonic()
    directory = people(slack, monotonic=clock)
    slack.fail("usergroups.users.list", times=1, **hiccup)
    assert not directory.is_approver("U7")  # never read before: fail closed
    assert directory.is_approver("U7")  # Slack answers again: no minute-long lock-out
    clock.now += 30
    assert directory.is_approver("U7")
    reads = [
        c for c in slack.calls_to("usergroups.users.list") if c.payload["usergroup"] == "SGROUP"
    ]
    assert [c.error is None for c in reads] == [False, True]  # then cached for 60 s


def test_kubernetes_user_of_an_approver(slack: SlackApiServer) -> None:
    directory = people(slack, username_prefix="oidc:")
    assert directory.kubernetes_user_of("U1") == "oidc:alice@example.com"
    assert directory.kubernetes_user_of("U2") is None  # no readable email: no identity
    assert people(slack, source="map").kubernetes_user_of("U1") is None


def test_kubernetes_user_of_fails_closed_when_slack_errs_and_does_not_cache_it(
    slack: SlackApiServer,
) -> None:
    directory = people(slack)
    slack.fail("users.info", status=500)
    with pytest.raises(DirectoryUnavailable, match="who you are"):
        directory.kubernetes_user_of("U1")
    assert directory.kubernetes_user_of("U1") == "alice@example.com"
