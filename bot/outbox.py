"""Delivers outbox notices in the background, retrying what fails.

State changes write their notices in the same transaction (bot.store); this
worker hands each to a deliver callback (the Slack notifier) and marks it done
only when that succeeds. Slack being slow or down therefore never blocks a
grant or a revocation, and a notice survives restarts until delivered.

The callback says how a failure should be treated: `DeliveryDeferred` (try
again later: rate limits, outages) or `DeliveryFailed` (it can never succeed:
the message or the person is gone), which is logged once and marked done.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from bot.logs import acting
from bot.ports import Clock
from bot.store import OutboxNotice, Store

log = logging.getLogger(__name__)
MAX_BACKOFF_SECONDS = 300.0
MAX_ATTEMPTS = 300  # about a day at the capped backoff; then logged at ERROR and given up


class DeliveryDeferred(Exception):
    """Delivery failed for now; retry after `retry_after` seconds (or a backoff)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeliveryFailed(Exception):
    """Delivery can never succeed (the message or the person is gone); do not retry."""


class OutboxWorker:
    """One background thread that drains due notices; `wake()` makes it run now."""

    def __init__(
        self,
        store: Store,
        deliver: Callable[[OutboxNotice], None],
        clock: Clock,
        *,
        poll_seconds: float = 1.0,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.store = store
        self.deliver = deliver
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.max_attempts = max_attempts
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Set by the timers to the leadership's fencing test: only the leader delivers,
        # and it checks before every notice.
        self.may_deliver: Callable[[], bool] = lambda: True

    def wake(self) -> None:
        self._wake.set()

    def run_once(self) -> int:
        """Deliver every due notice once; returns how many were delivered."""
        delivered = 0
        for notice in self.store.due_notices(self.clock.now()):
            if self._stop.is_set() or not self.may_deliver():
                break
            delivered += self._attempt(notice)
        return delivered

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="outbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_seconds)
            self._wake.clear()
            if not self.may_deliver():
                continue
            try:
                self.run_once()
            except Exception:
                log.exception("outbox run failed; retrying")

    def _attempt(self, notice: OutboxNotice) -> int:
        assert notice.id is not None
        with acting(request_id=notice.request_id, action=f"notify_{notice.kind}"):
            try:
                self.deliver(notice)
            except DeliveryDeferred as error:
                self._postpone(notice, error)
                return 0
            except DeliveryFailed as error:
                self._give_up(notice, error, why="it cannot succeed")
                return 0
        self.store.mark_delivered(notice.id, self.clock.now())
        return 1

    def _give_up(self, notice: OutboxNotice, error: Exception, *, why: str) -> None:
        """Logged at ERROR once; the row is done and keeps the error in last_error."""
        assert notice.id is not None
        log.error(
            "giving up on the %s %s notice for %s (%s): %s",
            notice.audience,
            notice.kind,
            notice.request_id,
            why,
            error,
        )
        self.store.give_up(notice.id, at=self.clock.now(), error=str(error))

    def _postpone(self, notice: OutboxNotice, error: DeliveryDeferred) -> None:
        assert notice.id is not None
        if notice.attempts + 1 >= self.max_attempts:
            self._give_up(notice, error, why=f"after {notice.attempts + 1} attempts")
            return
        delay = error.retry_after or min(2.0**notice.attempts, MAX_BACKOFF_SECONDS)
        log.warning(
            "%s %s notice for %s deferred %.0fs: %s",
            notice.audience,
            notice.kind,
            notice.request_id,
            delay,
            error,
        )
        self.store.postpone(
            notice.id, until=self.clock.now() + timedelta(seconds=delay), error=str(error)
        )
