"""GET /metrics over real HTTP from the running bot: each metric moves when its event happens.

The bot runs in HTTP mode with the stand-ins (tests.harness); the text is
parsed with prometheus_client's own parser, so the format is checked too.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.domain import AccessRequest, State
from tests.harness import (
    APPROVAL_CHANNEL,
    APPROVER,
    REQUESTER,
    Harness,
    _RunningBot,
    running_bot,
    wait_until,
)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    """Every sample of GET {url}/metrics, keyed by name and labels."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def state_of(h: Harness, request: AccessRequest) -> State:
    stored = h.bot.store.get(request.id)
    assert stored is not None
    return stored.state


def approve(h: Harness, request: AccessRequest) -> None:
    message = h.approval_message(request.id)
    response = h.sender.block_action(
        "approve", request.id, user=APPROVER, channel=APPROVAL_CHANNEL, message_ts=message["ts"]
    )
    assert response.status == 200


@pytest.fixture
def timed(tmp_path: Path) -> Iterator[Harness]:
    with running_bot(tmp_path, timers=True, scheduler={"sweep_interval": "1s"}) as harness:
        yield harness


def test_request_approve_expire_story_moves_the_counters_and_the_lag(timed: Harness) -> None:
    h = timed
    before = scrape(h.url)
    assert value(before, "jitsudo_requests_total", outcome="submitted") == 0
    assert value(before, "jitsudo_active_grants") == 0

    h.command("request --role edit --scope nowhere --duration 1m --reason story")  # no namespace
    denied = h.request("request --role view --scope staging --duration 1m --reason story")
    h.command(f"deny {denied.id} not today", user=APPROVER)
    request = h.request("request --role edit --scope production --duration 2s --reason story")
    approve(h, request)
    wait_until(lambda: state_of(h, request) is State.ACTIVE)
    active = scrape(h.url)
    assert value(active, "jitsudo_requests_total", outcome="submitted") == 2
    assert value(active, "jitsudo_requests_total", outcome="refused") == 1
    assert value(active, "jitsudo_decisions_total", decision="approved") == 1
    assert value(active, "jitsudo_decisions_total", decision="denied") == 1
    assert value(active, "jitsudo_decisions_total", decision="timed_out") == 0
    assert value(active, "jitsudo_active_grants") == 1
    assert value(active, "jitsudo_revocation_lag_seconds_count") == 0

    wait_until(lambda: state_of(h, request) is State.EXPIRED)
    ended = scrape(h.url)
    assert value(ended, "jitsudo_active_grants") == 0
    assert value(ended, "jitsudo_grants_revoking") == 0
    assert value(ended, "jitsudo_revocation_lag_seconds_count") == 1
    assert value(ended, "jitsudo_revocation_lag_seconds_bucket", le="+Inf") == 1
    lag = value(ended, "jitsudo_revocation_lag_seconds_sum")
    assert lag is not None and lag >= 0

    swept = wait_until(
        lambda: (
            (s := scrape(h.url))
            and (value(s, "jitsudo_sweep_duration_seconds_count") or 0) >= 1
            and s
        )
    )
    assert (value(swept, "jitsudo_last_sweep_success_timestamp_seconds") or 0) > 0
    assert value(swept, "jitsudo_is_leader") == 1
    assert value(swept, "jitsudo_timer_step_failures_total", step="sweep") == 0


def test_a_revocation_the_cluster_refuses_shows_as_revoking(tmp_path: Path) -> None:
    with running_bot(tmp_path, timers=True) as h:
        request = h.request("request --role edit --scope production --duration 1h --reason r")
        approve(h, request)
        wait_until(lambda: state_of(h, request) is State.ACTIVE)
        h.kube.fail_next("DELETE", "rolebindings", status=500, times=1000)
        h.command(f"revoke {request.id}", user=APPROVER)
        samples = wait_until(
            lambda: (s := scrape(h.url)) and value(s, "jitsudo_grants_revoking") == 1 and s
        )
        assert value(samples, "jitsudo_active_grants") == 0
        revoke_errors = value(samples, "jitsudo_provider_errors_total", operation="revoke")
        assert revoke_errors is not None and revoke_errors >= 1
        h.kube.clear_faults()
        wait_until(lambda: state_of(h, request) is State.REVOKED)
        assert value(scrape(h.url), "jitsudo_grants_revoking") == 0


def test_provider_errors_are_counted_by_operation(tmp_path: Path) -> None:
    with running_bot(tmp_path) as h:
        h.kube.fail_next("GET", "clusterroles", status=500)
        h.command("request --role edit --scope production --duration 30m --reason flaky")
        request = h.request("request --role edit --scope production --duration 30m --reason ok")
        h.kube.fail_next("POST", "rolebindings", status=403)
        approve(h, request)
        wait_until(lambda: state_of(h, request) is State.FAILED)
        samples = scrape(h.url)
        assert value(samples, "jitsudo_provider_errors_total", operation="preflight") == 1
        assert value(samples, "jitsudo_provider_errors_total", operation="grant") == 1
        assert value(samples, "jitsudo_provider_errors_total", operation="revoke") == 0
        assert value(samples, "jitsudo_requests_total", outcome="refused") == 1
        assert value(samples, "jitsudo_requests_total", outcome="submitted") == 1


def test_a_request_over_the_pending_limit_counts_as_limited(tmp_path: Path) -> None:
    with running_bot(tmp_path, max_pending_per_user=1) as h:
        h.request("request --role view --scope staging --duration 30m --reason first")
        reply = h.command("request --role view --scope staging --duration 30m --reason second")
        assert "waiting for review" in reply
        samples = scrape(h.url)
        assert value(samples, "jitsudo_requests_total", outcome="limited") == 1
        assert value(samples, "jitsudo_requests_total", outcome="submitted") == 1
        assert value(samples, "jitsudo_requests_total", outcome="refused") == 0


def test_slack_errors_are_counted_by_method_from_the_outbox_and_the_listeners(
    tmp_path: Path,
) -> None:
    with running_bot(tmp_path) as h:
        h.slack.fail("chat.postMessage", status=500)
        request = h.request("request --role edit --scope production --duration 30m --reason s")
        h.approval_message(request.id)  # posted on the retry
        samples = scrape(h.url)
        assert value(samples, "jitsudo_slack_api_errors_total", method="chat.postMessage") == 1

        # A listener's own call (the request form): Bolt would hand it a plain client.
        h.slack.fail("views.open", ok_false="expired_trigger_id")
        # The answer is not the point (Bolt 1.30 may lose the ack of a listener that raises
        # right after acking, and answer 404 after 3 s); the count is.
        h.sender.command("/jitsudo", "request", user=REQUESTER)
        samples = wait_until(
            lambda: (
                (s := scrape(h.url))
                and value(s, "jitsudo_slack_api_errors_total", method="views.open")
                and s
            )
        )
        assert value(samples, "jitsudo_slack_api_errors_total", method="views.open") == 1


def test_is_leader_is_one_on_the_leader_and_every_replica_counts_grants(
    tmp_path: Path, database_url: str
) -> None:
    with running_bot(tmp_path, database=database_url, timers=True) as h:
        wait_until(lambda: value(scrape(h.url), "jitsudo_is_leader") == 1)
        follower = _RunningBot(h.settings, clock=None, timers=True)
        try:
            request = h.request("request --role view --scope staging --duration 1h --reason ha")
            approve(h, request)
            wait_until(lambda: state_of(h, request) is State.ACTIVE)
            on_follower = scrape(follower.url)
            assert value(on_follower, "jitsudo_is_leader") == 0
            assert value(on_follower, "jitsudo_active_grants") == 1
            assert value(scrape(h.url), "jitsudo_active_grants") == 1
        finally:
            follower.stop()


def test_a_bot_without_timers_does_not_claim_to_lead(tmp_path: Path) -> None:
    with running_bot(tmp_path) as h:
        assert value(scrape(h.url), "jitsudo_is_leader") == 0
