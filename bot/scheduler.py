"""APScheduler wiring: the timers that end access on time. Calls service functions only.

- tick, every second: expire what is due, queue expiry warnings, time out
  stale requests. The database is the source of truth, so there is no job store
  to rebuild: a restarted bot simply finds what is due on its first tick.
- sweep, every scheduler.sweep_interval: the seed's label sweep (orphans) and
  drift detection (bindings deleted out of band).
Only the leader (bot.leader) acts; every job is idempotent anyway.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from bot import expiry
from bot.leader import Leadership
from bot.outbox import OutboxWorker
from bot.service import AccessService

log = logging.getLogger(__name__)
TICK = timedelta(seconds=1)


class Timers:
    """The scheduler and its two jobs, started and stopped with the bot."""

    def __init__(
        self,
        service: AccessService,
        *,
        leadership: Leadership,
        outbox: OutboxWorker,
        sweep_interval: timedelta,
        tick: timedelta = TICK,
    ) -> None:
        self.service = service
        self.leadership = leadership
        self.outbox = outbox
        self.scheduler = BackgroundScheduler(timezone="UTC")
        # tick and sweep never overlap: a tick that expires a grant between the
        # sweep's listing and its drift check would make the sweep record an
        # on-time expiry as "deleted outside jitsudo" (and both would delete).
        self._working = threading.Lock()
        common = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
        self.outbox.active.clear()  # until this replica knows it leads
        self.scheduler.add_job(
            self.tick,
            "interval",
            seconds=tick.total_seconds(),
            id="tick",
            next_run_time=datetime.now(UTC),  # first tick at start: what is due goes now
            **common,
        )
        self.scheduler.add_job(
            self.sweep, "interval", seconds=sweep_interval.total_seconds(), id="sweep", **common
        )

    def start(self) -> None:
        self.scheduler.start()

    def stop(self) -> None:
        self.scheduler.shutdown(wait=True)
        self.leadership.release()

    def tick(self) -> None:
        if not self._lead():
            return
        if not self._working.acquire(blocking=False):
            return  # a sweep is running (it expires what is due); the next tick follows it
        try:
            expiry.resume_approved(self.service)
            result = expiry.expire_due(self.service)
            if result.revoked or result.failed:
                log.info("expired %d grants (%d deletes to retry)", result.revoked, result.failed)
            expiry.warn_due(self.service)
            expiry.time_out_stale(self.service)
        finally:
            self._working.release()

    def sweep(self) -> None:
        if not self._lead():
            return
        with self._working:
            result = expiry.sweep(self.service)
        log.info(
            "sweep: revoked=%d drifted=%d failed=%d", result.revoked, result.drifted, result.failed
        )

    def _lead(self) -> bool:
        """Follow the leadership: only the leader runs jobs and delivers notices."""
        leading = self.leadership.check()
        if leading and not self.outbox.active.is_set():
            self.outbox.active.set()
            self.outbox.wake()  # notices queued while following go out now
        elif not leading:
            self.outbox.active.clear()
        return leading
