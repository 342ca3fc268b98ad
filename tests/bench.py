"""`make bench`: measures the latencies users judge the bot by (it never asserts on them).

1. ack: a signed slash command or button click, over real HTTP, until the bot's ack;
2. approval -> access: from sending the Approve click until the RoleBinding exists
   in the Kubernetes stand-in, and until the request is ACTIVE in the store;
3. expiry -> revocation: from a grant's `expires_at` until its binding is gone,
   and until the expiry DM reaches the Slack stand-in (with the real timers).

Everything runs on loopback against the stand-ins in tests/ (tests.harness), so
the figures show the bot's own overhead, not Slack's or a real API server's.
Prints a table and writes `.bench/results.json`. Exits 1 if an operation fails
outright (e.g. a binding never appears within 10 s), never because it is slow.

    .venv/bin/python -m tests.bench [--n 50] [--expiry-n 20] [--batch 10]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from bot.domain import AccessRequest, State
from bot.scheduler import TICK
from tests.harness import APPROVAL_CHANNEL, APPROVER, REQUESTER, Harness, running_bot

RBAC = "rbac.authorization.k8s.io/v1"
NAMESPACE = "staging"
REQUEST_TEXT = "request --role view --scope staging --duration {duration} --reason bench"
TIMEOUT = 10.0  # an operation that takes longer than this has failed, not merely been slow
POLL = 0.001
WARMUP = 3
RESULTS = Path(__file__).resolve().parent.parent / ".bench" / "results.json"
NOTE = (
    "Loopback only: signed requests over real HTTP to the bot (waitress + Bolt), the bot's "
    "real WebClient and kubernetes client against in-process stand-ins, SQLite. Real Slack "
    "and a real API server add their own network and processing time."
)
T = TypeVar("T")


class BenchFailure(Exception):
    """An operation did not complete at all (as opposed to completing slowly)."""


@dataclass(frozen=True)
class Summary:
    """One row of the table: a latency's distribution in milliseconds."""

    name: str
    n: int
    min_ms: float
    median_ms: float
    p95_ms: float
    max_ms: float
    samples_ms: list[float] = field(repr=False)


def summarize(name: str, seconds: list[float]) -> Summary:
    ms = sorted(s * 1000.0 for s in seconds)
    if not ms:
        raise BenchFailure(f"no samples for {name}")
    p95 = ms[max(0, math.ceil(0.95 * len(ms)) - 1)]  # nearest rank
    return Summary(
        name=name,
        n=len(ms),
        min_ms=ms[0],
        median_ms=statistics.median(ms),
        p95_ms=p95,
        max_ms=ms[-1],
        samples_ms=[round(v, 3) for v in ms],
    )


def wait_for(
    what: str,
    predicate: Callable[[], T | None],
    *,
    timeout: float = TIMEOUT,
    interval: float = POLL,
) -> tuple[T, float]:
    """Poll until `predicate` returns a truthy value; returns it and perf_counter() then."""
    deadline = time.perf_counter() + timeout
    while True:
        value = predicate()
        now = time.perf_counter()
        if value:
            return value, now
        if now > deadline:
            raise BenchFailure(f"{what}: not within {timeout:.0f}s")
        time.sleep(interval)


# --- one request's way through the bot ---------------------------------------------------


def binding(h: Harness, request_id: str) -> dict[str, Any] | None:
    return h.kube.get(RBAC, "rolebindings", f"jitsudo-{request_id.lower()}", namespace=NAMESPACE)


def in_state(h: Harness, request_id: str, state: State) -> AccessRequest | None:
    request = h.bot.store.get(request_id)
    return request if request is not None and request.state is state else None


def send_request(h: Harness, duration: str, known: set[str]) -> tuple[AccessRequest, float]:
    """Send `/jitsudo request`; returns the stored request and the ack latency (seconds)."""
    started = time.perf_counter()
    response = h.sender.command("/jitsudo", REQUEST_TEXT.format(duration=duration), user=REQUESTER)
    elapsed = time.perf_counter() - started
    if response.status != 200:
        raise BenchFailure(f"/jitsudo request answered {response.status}: {response.body[:200]}")

    def new_request() -> AccessRequest | None:
        return next((r for r in h.bot.store.find(limit=20) if r.id not in known), None)

    request, _ = wait_for("the request to be stored", new_request)
    known.add(request.id)
    return request, elapsed


def click_approve(h: Harness, request_id: str) -> float:
    """Click Approve on the request's channel message; returns the ack latency (seconds)."""
    try:
        message = h.approval_message(request_id)
    except AssertionError as error:
        raise BenchFailure(f"approval message for {request_id}: {error}") from None
    response = h.sender.block_action(
        "approve", request_id, user=APPROVER, channel=APPROVAL_CHANNEL, message_ts=message["ts"]
    )
    if response.status != 200:
        raise BenchFailure(f"approve click answered {response.status}: {response.body[:200]}")
    return response.elapsed


def posted_at(h: Harness, channel: str, request_id: str, *, contains: str = "") -> float | None:
    """Wall-clock time the Slack stand-in recorded a chat.postMessage about `request_id`."""
    for call in h.slack.calls_to("chat.postMessage"):
        shown = json.dumps(call.payload)
        if call.payload.get("channel") == channel and request_id in shown and contains in shown:
            return call.at
    return None


def settle(h: Harness) -> None:
    """Wait until the outbox has delivered everything, so one sample's work never overlaps
    the next sample's measurement."""
    wait_for(
        "the outbox to drain",
        lambda: not h.bot.store.due_notices(datetime.now(UTC)),
        interval=0.005,
    )


# --- scenarios ----------------------------------------------------------------------------


def bench_request_and_approval(n: int) -> list[Summary]:
    """Scenarios 1 and 2, sequentially, one request at a time, timers off."""
    samples: dict[str, list[float]] = {
        "ack: /jitsudo request": [],
        "ack: /jitsudo help": [],
        "ack: Approve click": [],
        "request -> approval message posted": [],
        "Approve click -> RoleBinding exists": [],
        "Approve click -> request ACTIVE in store": [],
    }
    with tempfile.TemporaryDirectory() as tmp, running_bot(Path(tmp)) as h:
        known: set[str] = set()
        for i in range(WARMUP + n):
            sample = approval_cycle(h, known)
            sample["ack: /jitsudo help"] = help_ack(h)
            if i >= WARMUP:
                for name, value in sample.items():
                    samples[name].append(value)
    return [summarize(name, values) for name, values in samples.items()]


def approval_cycle(h: Harness, known: set[str]) -> dict[str, float]:
    sent_wall = time.time()
    request, ack = send_request(h, "5m", known)
    posted, _ = wait_for("the approval message", lambda: posted_at(h, APPROVAL_CHANNEL, request.id))
    settle(h)
    clicked = time.perf_counter()
    click_ack = click_approve(h, request.id)
    _, bound = wait_for(f"binding for {request.id}", lambda: binding(h, request.id))
    _, active = wait_for(f"{request.id} ACTIVE", lambda: in_state(h, request.id, State.ACTIVE))
    settle(h)
    return {
        "ack: /jitsudo request": ack,
        "ack: Approve click": click_ack,
        "request -> approval message posted": posted - sent_wall,
        "Approve click -> RoleBinding exists": bound - clicked,
        "Approve click -> request ACTIVE in store": active - clicked,
    }


def help_ack(h: Harness) -> float:
    replies = len(h.slack.calls_to("response_url"))
    response = h.sender.command("/jitsudo", "help", user=REQUESTER)
    if response.status != 200:
        raise BenchFailure(f"/jitsudo help answered {response.status}")
    wait_for("the help reply", lambda: len(h.slack.calls_to("response_url")) > replies)
    return response.elapsed


def bench_expiry(n: int, batch: int) -> list[Summary]:
    """Scenario 3 with the real timers: 2 s grants, `batch` at a time."""
    samples: dict[str, list[float]] = {
        "expires_at -> binding deleted": [],
        "expires_at -> EXPIRED in store": [],
        "expires_at -> expiry DM posted": [],
    }
    with tempfile.TemporaryDirectory() as tmp, running_bot(Path(tmp), timers=True) as h:
        known: set[str] = set()
        done = 0
        while done < n:
            size = min(batch, n - done)
            for name, values in expiry_batch(h, known, size).items():
                samples[name].extend(values)
            done += size
    return [summarize(name, values) for name, values in samples.items()]


def expiry_batch(h: Harness, known: set[str], size: int) -> dict[str, list[float]]:
    requests = [send_request(h, "2s", known)[0] for _ in range(size)]
    for request in requests:
        h.approval_message(request.id)
    # The timers tick once a second, and a batch would otherwise be approved in phase with
    # one tick (the previous batch ended on one): stagger the approvals evenly across a tick
    # so that the figures cover every phase instead of the worst one.
    start = time.perf_counter()
    for k, request in enumerate(requests):
        time.sleep(max(0.0, start + k * TICK.total_seconds() / size - time.perf_counter()))
        click_approve(h, request.id)
    active = [await_state(h, r.id, State.ACTIVE) for r in requests]
    expires = {r.id: _timestamp(r.expires_at) for r in active}
    late = [r.id for r in active if _timestamp(r.granted_at) >= expires[r.id]]
    if late:
        print(f"  note: {len(late)} grant(s) were active only after expiry", file=sys.stderr)
    gone = watch_deletions(h, list(expires))
    ended = {i: _timestamp(await_state(h, i, State.EXPIRED).ended_at) for i in expires}
    dms = {i: expiry_dm_at(h, i) for i in expires}
    return {
        "expires_at -> binding deleted": [gone[i] - expires[i] for i in expires],
        "expires_at -> EXPIRED in store": [ended[i] - expires[i] for i in expires],
        "expires_at -> expiry DM posted": [dms[i] - expires[i] for i in expires],
    }


def await_state(h: Harness, request_id: str, state: State) -> AccessRequest:
    return wait_for(f"{request_id} {state}", lambda: in_state(h, request_id, state))[0]


def expiry_dm_at(h: Harness, request_id: str) -> float:
    def dm() -> float | None:
        return posted_at(h, f"D{REQUESTER}", request_id, contains="has ended")

    return wait_for(f"expiry DM for {request_id}", dm)[0]


def watch_deletions(h: Harness, request_ids: list[str]) -> dict[str, float]:
    """Wall-clock time each binding was first seen gone, polling every millisecond."""
    gone: dict[str, float] = {}
    deadline = time.monotonic() + TIMEOUT + 5.0  # the grants last 2 s
    while len(gone) < len(request_ids):
        for request_id in request_ids:
            if request_id not in gone and binding(h, request_id) is None:
                gone[request_id] = time.time()
        if time.monotonic() > deadline:
            missing = sorted(set(request_ids) - set(gone))
            raise BenchFailure(f"bindings never deleted: {', '.join(missing)}")
        time.sleep(POLL)
    return gone


def _timestamp(moment: datetime | None) -> float:
    if moment is None:
        raise BenchFailure("a timestamp the bot should have set is missing")
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


# --- reporting ----------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 0
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "database": "sqlite",
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def table(rows: list[Summary]) -> str:
    width = max(len(r.name) for r in rows)
    head = f"{'latency':<{width}}  {'n':>3}  {'min':>8}  {'median':>8}  {'p95':>8}  {'max':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.name:<{width}}  {r.n:>3}  {r.min_ms:>8.1f}  {r.median_ms:>8.1f}  "
            f"{r.p95_ms:>8.1f}  {r.max_ms:>8.1f}"
        )
    return "\n".join(lines)


def write_results(
    path: Path, env: dict[str, Any], args: argparse.Namespace, rows: list[Summary]
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "environment": env,
        "parameters": {
            "n": args.n,
            "expiry_n": args.expiry_n,
            "batch": args.batch,
            "warmup": WARMUP,
        },
        "note": NOTE,
        "unit": "ms",
        "results": [asdict(r) for r in rows],
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--n", type=int, default=50, help="samples for ack and approval (50)")
    parser.add_argument("--expiry-n", type=int, default=20, help="samples for expiry (20)")
    parser.add_argument("--batch", type=int, default=10, help="grants expiring together (10)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    args = parser.parse_args(argv)
    if min(args.n, args.expiry_n, args.batch) < 1:
        parser.error("--n, --expiry-n and --batch must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    env = environment()
    print(
        f"jitsudo bench: Python {env['python']} ({env['implementation']}), "
        f"{env['cpu_count']} CPUs ({env['cpus_usable']} usable), {env['platform']}"
    )
    print(f"note: {NOTE}\n")
    started = time.perf_counter()
    try:
        rows = bench_request_and_approval(args.n)
        rows += bench_expiry(args.expiry_n, args.batch)
    except BenchFailure as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    print(table(rows))
    write_results(args.out, env, args, rows)
    print(f"\n(milliseconds; {time.perf_counter() - started:.0f}s in all; results in {args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
