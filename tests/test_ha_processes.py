"""HA with real processes: two `jitsudo-bot serve` on one PostgreSQL, frozen and woken.

The leadership lease (bot.leader) must end on its own when the leader stops
renewing it: a frozen process (SIGSTOP, a paused VM) keeps its TCP connections
open, so nothing else would ever tell. When it wakes it must step down without
acting on its old belief: no second delete recorded, no duplicate DM or post.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.domain import State
from tests.harness import wait_until
from tests.subprocess_bot import (
    LEASE_SECONDS,
    TICK_SECONDS,
    BotProcess,
    World,
    poll,
    request_when,
    world,
)
from tests.tcpproxy import TcpProxy


def other(w: World, replica: BotProcess) -> BotProcess:
    [found] = [b for b in w.replicas if b is not replica]
    return found


def undelivered(w: World) -> int:
    return len(w.store.due_notices(datetime(2100, 1, 1, tzinfo=UTC)))


def test_a_frozen_leader_is_replaced_and_steps_down_when_it_wakes(
    tmp_path: Path, postgres_url: str
) -> None:
    with world(tmp_path, database_url=postgres_url, replicas=2) as w:
        for replica in w.replicas:
            replica.start()
        leader = poll(w.leader)
        follower = other(w, leader)
        request = w.request(
            "request --role view --scope staging --duration 8s --reason ha", via=follower
        )
        w.approve(request, via=follower)
        active = request_when(w.store, request.id, lambda r: r.state is State.ACTIVE)
        wait_until(lambda: w.dms(request.id, "active until"))  # the leader delivered it
        # ...and recorded it: a freeze between Slack's answer and that record would make the
        # next leader send it again (at-least-once; see README, Known limits).
        wait_until(lambda: undelivered(w) == 0)
        assert active.expires_at is not None

        leader.signal(signal.SIGSTOP)
        frozen_at = time.time()
        assert active.expires_at.timestamp() > frozen_at  # it expires after the freeze
        took_over_at = poll(lambda: time.time() if w.leader() is follower else None, timeout=10)
        # The bound: revoked by the other replica within lease + 2 s of expires-at.
        deadline = active.expires_at.timestamp() + LEASE_SECONDS + 2
        wait_until(lambda: w.binding(active) is None, timeout=max(deadline - time.time(), 0.1))
        ended = request_when(w.store, request.id, lambda r: r.state.is_final)
        assert ended.state is State.EXPIRED and ended.cause == "expired"
        print(f"takeover {took_over_at - frozen_at:.2f}s after SIGSTOP (lease {LEASE_SECONDS}s)")
        assert took_over_at - frozen_at <= LEASE_SECONDS + TICK_SECONDS + 1

        leader.signal(signal.SIGCONT)
        wait_until(lambda: "no longer the leader" in leader.log_tail(200), timeout=10)
        wait_until(lambda: w.dms(request.id, "ended at"), timeout=10)
        wait_until(lambda: undelivered(w) == 0, timeout=10)
        time.sleep(2 * TICK_SECONDS)  # give a wrongly-acting old leader the chance to show
        assert w.leader() is follower
        actions = [e.action for e in w.store.audit_trail(request.id)]
        assert actions.count("expired") == 1 and actions.count("granted") == 1, actions
        assert len(w.dms(request.id, "ended at")) == 1
        assert len(w.dms(request.id, "active until")) == 1
        assert len(w.channel_posts(request.id)) == 1


def _sweep(config: Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "bot.cli", "sweep", "--config", str(config)]
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_manual_sweep_never_runs_beside_a_live_leader(
    tmp_path: Path, database: str, request: pytest.FixtureRequest
) -> None:
    url = None if database == "sqlite" else request.getfixturevalue("postgres_url")
    with world(tmp_path, database_url=url) as w:
        w.bot.start()
        poll(w.leader)
        config = w.bot.workdir / f"jitsudo-{w.bot.starts}.yaml"
        refused = _sweep(config, w.bot.workdir, w.bot.env)
        assert refused.returncode == 3, refused.stderr
        assert "another replica leads" in refused.stderr
        assert refused.stdout == ""

        w.bot.terminate()  # a clean stop releases the lease at once
        swept = _sweep(config, w.bot.workdir, w.bot.env)
        assert swept.returncode == 0, swept.stderr
        assert '"revoked": 0' in swept.stdout
        assert w.leader() is None  # and it released the lease when done


def test_a_leader_cut_off_from_the_database_is_replaced_within_the_lease(
    tmp_path: Path, postgres_url: str
) -> None:
    """Its connections stay open and silent (a partition): only the lease can end it."""
    with (
        world(tmp_path, database_url=postgres_url, replicas=2) as w,
        TcpProxy("127.0.0.1", 5432) as proxy,
    ):
        cut_off, survivor = w.replicas
        proxied = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        assert proxied != postgres_url
        cut_off.document = {**cut_off.document, "database": {"url": proxied}}
        cut_off.start()
        assert poll(w.leader) is cut_off
        survivor.start()

        proxy.blackhole()
        cut_at = time.time()
        took_over_at = poll(lambda: time.time() if w.leader() is survivor else None, timeout=15)
        print(f"takeover {took_over_at - cut_at:.2f}s after the cut (lease {LEASE_SECONDS}s)")
        assert took_over_at - cut_at <= LEASE_SECONDS + TICK_SECONDS + 1

        request = w.request(
            "request --role view --scope staging --duration 3s --reason cut", via=survivor
        )
        w.approve(request, via=survivor)
        active = request_when(w.store, request.id, lambda r: r.state is State.ACTIVE)
        assert active.expires_at is not None
        deadline = active.expires_at.timestamp() + TICK_SECONDS + 1
        wait_until(lambda: w.binding(active) is None, timeout=max(deadline - time.time(), 0.1))

        proxy.restore()  # the partition heals: the old leader must follow, not act
        wait_until(lambda: "no longer the leader" in cut_off.log_tail(300), timeout=15)
        wait_until(lambda: undelivered(w) == 0, timeout=10)
        assert w.leader() is survivor
        actions = [e.action for e in w.store.audit_trail(request.id)]
        assert actions.count("expired") == 1, actions
        assert len(w.dms(request.id, "ended at")) == 1
        assert len(w.channel_posts(request.id)) == 1
