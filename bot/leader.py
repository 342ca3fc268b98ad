"""Leadership: a lease, so that one replica at a time runs the timers and delivers notices.

The lease is a row in the `leases` table, taken and renewed by one conditional
UPDATE that reads the database's own clock, so replicas with skewed clocks
agree on when it ends. A leader that is frozen (SIGSTOP, a paused VM), cut off
from the database, or dead simply stops renewing: the lease runs out after
`scheduler.leader_lease` and another replica takes it on its next tick.

Fencing: `holds()` is true only while the lease this replica last renewed is
still valid by its own monotonic clock, measured from *before* the renewal was
sent. Callers check it before every job and before every action inside a job,
so a leader that wakes from a freeze steps down instead of acting on an old
belief. A background thread renews every third of the lease, so a long job
never loses the lease by itself. Works the same on SQLite (where `serve` and
`jitsudo-bot sweep` share one file) and on PostgreSQL.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)
SCHEDULER_LEASE = "scheduler"
DEFAULT_LEASE = timedelta(seconds=15)
# A lease is trusted only until this long before it ends, to cover the time
# between a check and the action it guards.
SAFETY_MARGIN = 0.1


def _database_now(dialect: str) -> str:
    """SQL for the database's own clock in epoch seconds."""
    if dialect == "postgresql":
        return "extract(epoch from clock_timestamp())"
    return "((julianday('now') - 2440587.5) * 86400.0)"


def replica_name() -> str:
    """Host, pid and a random suffix: unique per process start, readable in the table."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Leadership:
    """`check()` renews or seeks the lease (one UPDATE); `holds()` is the fencing test."""

    def __init__(
        self,
        engine: Engine,
        *,
        lease: timedelta = DEFAULT_LEASE,
        name: str = SCHEDULER_LEASE,
        holder: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.lease = lease.total_seconds()
        self.name = name
        self.holder = holder or replica_name()
        self._monotonic = monotonic
        self._valid_until = 0.0
        self._leading = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        now = _database_now(engine.dialect.name)
        self._take = sa.text(
            f"UPDATE leases SET holder = :me, expires_epoch = {now} + :lease,"  # noqa: S608
            " token = CASE WHEN holder = :me THEN token ELSE token + 1 END"
            f" WHERE name = :name AND (holder = :me OR expires_epoch < {now})"
        )

    def check(self) -> bool:
        """Renew the lease if this replica holds it, take it if it is free; True if leading."""
        started = self._monotonic()
        try:
            with self.engine.begin() as connection:
                taken = connection.execute(
                    self._take, {"me": self.holder, "lease": self.lease, "name": self.name}
                ).rowcount
        except sa.exc.SQLAlchemyError as error:  # unreachable, pool exhausted, ...
            log.warning("cannot renew the leadership lease: %s", type(error).__name__)
            return self._observe(False, started)
        return self._observe(taken == 1, started)

    def holds(self) -> bool:
        """Still leading by this replica's own clock; no database round trip."""
        with self._lock:
            return self._leading and self._monotonic() < self._valid_until - SAFETY_MARGIN

    def start_renewing(self) -> None:
        """Renew in the background every third of the lease while leading."""
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_loop, name="lease", daemon=True)
        self._renewer.start()

    def release(self) -> None:
        """Give the lease up at once (clean shutdown), so a follower need not wait it out."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=self.lease)
        with self._lock:
            self._leading, self._valid_until = False, 0.0
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    sa.text(
                        "UPDATE leases SET expires_epoch = 0 WHERE name = :name AND holder = :me"
                    ),
                    {"name": self.name, "me": self.holder},
                )
        except sa.exc.SQLAlchemyError:
            log.warning("could not release the leadership lease; it ends on its own")

    def _observe(self, leading: bool, started: float) -> bool:
        with self._lock:
            if leading and not self._leading:
                log.info("this replica (%s) is now the leader", self.holder)
            elif self._leading and not leading:
                log.warning("this replica (%s) is no longer the leader", self.holder)
            self._leading = leading
            self._valid_until = started + self.lease if leading else 0.0
        return leading and self.holds()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.lease / 3):
            if self._leading:
                self.check()
