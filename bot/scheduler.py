"""APScheduler wiring: the timers that end access on time. Calls service functions only.

- tick, every second: renew (or seek) the leadership lease, then expire what
  is due, finish grants whose claim ran out, queue expiry warnings, time out
  stale requests. Expiry goes first, and each step runs on its own: one that
  raises is logged and counted and the next still runs. The database is the
  source of truth, so a restarted bot simply finds what is due on its first tick.
- sweep, every scheduler.sweep_interval: the seed's label sweep (orphans) and
  drift detection (bindings deleted out of band). It runs beside the tick, never
  in its way: a slow API server in the sweep does not delay an expiry.
Only the leader (bot.leader) acts, and every step re-checks the lease. A step
that raises is counted in jitsudo_timer_step_failures_total{step} (bot.metrics),
and jitsudo_is_leader follows the lease.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

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
        self.metrics = service.metrics
        self.metrics.watch_leadership(leadership.holds)
        self.scheduler = BackgroundScheduler(timezone="UTC")
        common = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
        self.outbox.may_deliver = leadership.holds
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
        self.leadership.start_renewing()
        self.scheduler.start()

    def stop(self) -> None:
        self.scheduler.shutdown(wait=True)
        self.leadership.release()

    def tick(self) -> None:
        if not self._lead():
            return
        leading = self.leadership.holds
        result = self._step("expire", lambda: expiry.expire_due(self.service, leading=leading))
        if result is not None and (result.revoked or result.failed):
            log.info("expired %d grants (%d to retry)", result.revoked, result.failed)
        self._step("resume", lambda: expiry.resume_approved(self.service, leading=leading))
        self._step("warn", lambda: expiry.warn_due(self.service, leading=leading))
        self._step("time_out", lambda: expiry.time_out_stale(self.service, leading=leading))

    def sweep(self) -> None:
        if not self.leadership.holds():
            return
        result = self._step(
            "sweep", lambda: expiry.sweep(self.service, leading=self.leadership.holds)
        )
        if result is not None:
            log.info(
                "sweep: revoked=%d drifted=%d foreign=%d failed=%d",
                result.revoked,
                result.drifted,
                result.foreign,
                result.failed,
            )

    def _step(self, name: str, run: Callable[[], Any]) -> Any:
        """Run one step; a failure is logged and counted, never the end of the tick."""
        if not self.leadership.holds():
            return None
        try:
            return run()
        except Exception:
            failures = self.metrics.timer_step_failed(name)
            log.exception("timer step %s failed (%d so far); the others go on", name, failures)
            return None

    def _lead(self) -> bool:
        """Renew or seek the lease; when newly leading, deliver what queued meanwhile."""
        was_leading = self.leadership.holds()
        leading = self.leadership.check()
        if leading and not was_leading:
            self.outbox.wake()
        return leading
