"""A child process that writes audited state changes through the real Store, fast.

Run as `python -m tests.audit_writer URL NAME ROUNDS THREADS` by the audit
chain's concurrency test: it opens the store, prints `ready`, waits for a line
on stdin (so that every writer starts at once), then in each of THREADS
threads files ROUNDS requests, approves each and records a grant retry: three
events per request, by three different store paths (the INSERT with the
pending limit, the conditional transition, the conditional field update).
Each finished request ID is printed; any failure exits non-zero.
"""

from __future__ import annotations

import sys
import threading
from datetime import timedelta

from bot.database import open_store
from bot.domain import Notice, State
from bot.store import Store, Transition
from tests.factories import NOW, access_request


def _write(store: Store, *, writer: str, rounds: int, done: list[str]) -> None:
    for round_ in range(rounds):
        at = NOW + timedelta(seconds=round_)
        request = access_request(requester=writer, created_at=at)
        if not store.insert(request, actor=writer, notice=Notice.SUBMITTED, max_pending=10_000):
            raise AssertionError(f"{request.id} was refused")
        approve = Transition(
            to=State.APPROVED,
            actor=f"{writer}-approver",
            at=at,
            action="approved",
            changes={"decided_by": f"{writer}-approver", "decided_at": at},
        )
        if store.transition(request.id, approve) is None:
            raise AssertionError(f"{request.id} was not approved")
        if not store.update_fields(
            request.id,
            expected=State.APPROVED,
            changes={"attempts": 1},
            audit=(writer, "grant_retry", at),
        ):
            raise AssertionError(f"{request.id} got no retry")
        done.append(request.id)


def main(url: str, name: str, rounds: int, threads: int) -> int:
    store = open_store(url)
    print("ready", flush=True)
    sys.stdin.readline()
    done: list[str] = []
    failures: list[BaseException] = []

    def run(index: int) -> None:
        try:
            _write(store, writer=f"{name}-{index}", rounds=rounds, done=done)
        except BaseException as error:
            failures.append(error)
            raise

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    store.engine.dispose()
    print("\n".join(done), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    url, name, rounds, threads = sys.argv[1:5]
    sys.exit(main(url, name, int(rounds), int(threads)))
