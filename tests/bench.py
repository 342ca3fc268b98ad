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
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlmodel import col

from bot.domain import AccessRequest, State
from bot.scheduler import TICK
from bot.store import RequestRow
from tests.harness import APPROVAL_CHANNEL, APPROVER, REQUESTER, Harness, running_bot

RBAC = "rbac.authorization.k8s.io/v1"
NAMESPACE = "staging"
REQUEST_TEXT = "request --role view --scope staging --duration {duration} --reason bench"
TIMEOUT = 10.0  # an operation that takes longer than this has failed, not merely been slow
POLL = 0.001
WARMUP = 3
RESULTS = Path(__file__).resolve().parent.parent / ".bench" / "results.json"
NOTE = (
    "loopback only: signed requests over real HTTP to the bot (waitress + Bolt); the bot's "
    "real WebClient and kubernetes client talk to the Slack and Kubernetes stand-ins, which "
    "run in the bot's own process (one GIL); SQLite. Real Slack and a real API server add "
    "their own network and processing time. Expiry figures include the wait for the next "
    "1-second timer tick."
)
PACKAGES = ("slack_bolt", "slack_sdk", "kubernetes", "waitress", "SQLAlchemy", "APScheduler")
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


# --- observing the bot --------------------------------------------------------------------


class Observer:
    """The bench's cheap view of one running bot.

    The bot, the stand-ins and this poller share one process and so one GIL: an
    observer that polls every millisecond must cost little, or it slows down what it
    measures. Store.get builds an ORM session and object (~0.5 ms of Python here);
    the Core SELECTs below cost ~0.05 ms, a stand-in `get` ~0.02 ms.
    """

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.connection = h.bot.store.engine.connect()
        self.known: set[str] = set()

    def close(self) -> None:
        self.connection.close()

    def _scalar(self, query: Any) -> Any:
        value = self.connection.execute(query).scalar()
        self.connection.rollback()  # end the read, so the next one sees new commits
        return value

    def is_in(self, request_id: str, state: State) -> bool:
        query = sa.select(col(RequestRow.state)).where(col(RequestRow.id) == request_id)
        return bool(self._scalar(query) == str(state))

    def new_request_id(self) -> str | None:
        query = sa.select(col(RequestRow.id)).where(col(RequestRow.id).not_in(self.known))
        return self._scalar(query.limit(1))  # type: ignore[no-any-return]

    def await_state(self, request_id: str, state: State) -> AccessRequest:
        wait_for(f"{request_id} {state}", lambda: self.is_in(request_id, state))
        request = self.h.bot.store.get(request_id)
        if request is None or request.state is not state:
            raise BenchFailure(f"{request_id} left {state} at once")
        return request

    def binding(self, request_id: str) -> dict[str, Any] | None:
        name = f"jitsudo-{request_id.lower()}"
        return self.h.kube.get(RBAC, "rolebindings", name, namespace=NAMESPACE)

    def posted_at(
        self, channel: str, request_id: str, *, contains: str = "", since: int = 0
    ) -> float | None:
        """When the Slack stand-in recorded a chat.postMessage about `request_id` (wall clock).

        `since` skips the calls recorded before it (an index into SlackApiServer.calls).
        """
        for call in self.h.slack.calls[since:]:
            if call.method != "chat.postMessage" or call.payload.get("channel") != channel:
                continue
            shown = json.dumps(call.payload)
            if request_id in shown and contains in shown:
                return call.at
        return None

    def settle(self) -> None:
        """Wait until the outbox has delivered everything, so that one sample's background
        work never overlaps the next sample's measurement."""

        def drained() -> bool:
            return not self.h.bot.store.due_notices(datetime.now(UTC))

        wait_for("the outbox to drain", drained, interval=0.005)


def quiesce() -> None:
    """Give waitress a moment to finish its last task before the harness closes it.

    A task still pulling waitress's trigger when running_bot's teardown closes the
    server fails with EBADF and logs a traceback (a harness teardown race, harmless).
    """
    time.sleep(0.2)


# --- driving the bot -----------------------------------------------------------------------


def send_request(o: Observer, duration: str) -> tuple[str, float]:
    """Send `/jitsudo request`; returns the new request's ID and the ack latency (seconds)."""
    text = REQUEST_TEXT.format(duration=duration)
    started = time.perf_counter()
    response = o.h.sender.command("/jitsudo", text, user=REQUESTER)
    elapsed = time.perf_counter() - started
    if response.status != 200:
        raise BenchFailure(f"/jitsudo request answered {response.status}: {response.body[:200]}")
    request_id, _ = wait_for("the request to be stored", o.new_request_id, interval=0.005)
    o.known.add(request_id)
    return request_id, elapsed


def click_approve(o: Observer, request_id: str) -> float:
    """Click Approve on the request's channel message; returns the ack latency (seconds)."""
    try:
        message = o.h.approval_message(request_id)
    except AssertionError as error:
        raise BenchFailure(f"approval message for {request_id}: {error}") from None
    response = o.h.sender.block_action(
        "approve", request_id, user=APPROVER, channel=APPROVAL_CHANNEL, message_ts=message["ts"]
    )
    if response.status != 200:
        raise BenchFailure(f"approve click answered {response.status}: {response.body[:200]}")
    return response.elapsed


def help_ack(o: Observer) -> float:
    replies = len(o.h.slack.calls_to("response_url"))
    response = o.h.sender.command("/jitsudo", "help", user=REQUESTER)
    if response.status != 200:
        raise BenchFailure(f"/jitsudo help answered {response.status}")
    wait_for("the help reply", lambda: len(o.h.slack.calls_to("response_url")) > replies)
    return response.elapsed


# --- scenarios 1 and 2: acks, and approval -> access ---------------------------------------


def bench_request_and_approval(n: int) -> list[Summary]:
    """One request at a time, timers off; the first WARMUP rounds are not counted."""
    samples: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, running_bot(Path(tmp)) as h:
        observer = Observer(h)
        try:
            for i in range(WARMUP + n):
                sample = approval_cycle(observer)
                sample["ack: /jitsudo help"] = help_ack(observer)
                if i >= WARMUP:
                    for name, value in sample.items():
                        samples.setdefault(name, []).append(value)
        finally:
            observer.close()
            quiesce()
    return [summarize(name, samples[name]) for name in ORDER_1_2]


ORDER_1_2 = (
    "ack: /jitsudo request",
    "ack: /jitsudo help",
    "ack: Approve click",
    "request -> approval message posted",
    "Approve click -> RoleBinding exists",
    "Approve click -> request ACTIVE in store",
)


def approval_cycle(o: Observer) -> dict[str, float]:
    since = len(o.h.slack.calls)
    sent = time.time()
    request_id, ack = send_request(o, "5m")
    posted, _ = wait_for(
        "the approval message", lambda: o.posted_at(APPROVAL_CHANNEL, request_id, since=since)
    )
    o.settle()
    clicked = time.perf_counter()
    click_ack = click_approve(o, request_id)
    _, bound = wait_for(f"binding for {request_id}", lambda: o.binding(request_id))
    _, active = wait_for(f"{request_id} ACTIVE", lambda: o.is_in(request_id, State.ACTIVE))
    o.settle()
    return {
        "ack: /jitsudo request": ack,
        "ack: Approve click": click_ack,
        "request -> approval message posted": posted - sent,
        "Approve click -> RoleBinding exists": bound - clicked,
        "Approve click -> request ACTIVE in store": active - clicked,
    }


# --- scenario 3: expiry -> revocation ------------------------------------------------------


def bench_expiry(n: int, batch: int) -> list[Summary]:
    """The real timers (tick every second), 2 s grants, `batch` of them in flight at once."""
    samples: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, running_bot(Path(tmp), timers=True) as h:
        observer = Observer(h)
        try:
            for done in range(0, n, batch):
                for name, values in expiry_batch(observer, min(batch, n - done)).items():
                    samples.setdefault(name, []).extend(values)
        finally:
            observer.close()
            quiesce()
    return [summarize(name, values) for name, values in samples.items()]


def expiry_batch(o: Observer, size: int) -> dict[str, list[float]]:
    request_ids = [send_request(o, "2s")[0] for _ in range(size)]
    for request_id in request_ids:
        o.h.approval_message(request_id)
    since = len(o.h.slack.calls)
    # The tick runs once a second and a batch would otherwise be approved in phase with it
    # (the previous batch ended on a tick): spread the approvals evenly over one tick, so
    # that the figures cover every phase rather than the worst one.
    start = time.perf_counter()
    for k, request_id in enumerate(request_ids):
        time.sleep(max(0.0, start + k * TICK.total_seconds() / size - time.perf_counter()))
        click_approve(o, request_id)
    active = [o.await_state(i, State.ACTIVE) for i in request_ids]
    expires = {r.id: _timestamp(r.expires_at) for r in active}
    if any(_timestamp(r.granted_at) >= expires[r.id] for r in active):
        print("  note: a grant became active only after its expiry", file=sys.stderr)
    gone = watch_deletions(o, request_ids)
    ended = {i: _timestamp(o.await_state(i, State.EXPIRED).ended_at) for i in request_ids}
    dms = {i: expiry_dm_at(o, i, since) for i in request_ids}
    return {
        "expires_at -> binding deleted": [gone[i] - expires[i] for i in request_ids],
        "expires_at -> EXPIRED in store": [ended[i] - expires[i] for i in request_ids],
        "expires_at -> expiry DM posted": [dms[i] - expires[i] for i in request_ids],
        # Per grant, so the tick's phase drops out: what the notifier path itself costs.
        "binding deleted -> expiry DM posted": [dms[i] - gone[i] for i in request_ids],
    }


def watch_deletions(o: Observer, request_ids: list[str]) -> dict[str, float]:
    """When each binding was first seen gone (wall clock), polling every millisecond."""
    gone: dict[str, float] = {}
    deadline = time.monotonic() + TIMEOUT + 2.0  # + the grants' 2 s
    while len(gone) < len(request_ids):
        for request_id in request_ids:
            if request_id not in gone and o.binding(request_id) is None:
                gone[request_id] = time.time()
        if time.monotonic() > deadline:
            missing = sorted(set(request_ids) - set(gone))
            raise BenchFailure(f"bindings not deleted within {TIMEOUT:.0f}s: {missing}")
        time.sleep(POLL)
    return gone


def expiry_dm_at(o: Observer, request_id: str, since: int) -> float:
    def dm() -> float | None:
        return o.posted_at(f"D{REQUESTER}", request_id, contains="has ended", since=since)

    return wait_for(f"expiry DM for {request_id}", dm, interval=0.005)[0]


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
        "load_average_1m": round(os.getloadavg()[0], 2),  # others' work skews the figures
        "database": "sqlite",
        "packages": {name: _version(name) for name in PACKAGES},
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


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
        prog="python -m tests.bench", description=(__doc__ or "").split("\n")[0]
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
        f"{env['cpu_count']} CPUs ({env['cpus_usable']} usable), "
        f"load average {env['load_average_1m']}, {env['platform']}"
    )
    print(", ".join(f"{k} {v}" for k, v in env["packages"].items()))
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
