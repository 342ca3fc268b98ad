"""A per-user sliding-window limit on commands, so one member cannot flood the bot.

Pure and in memory: a refusal stores nothing. Each replica counts on its own,
so with N replicas behind Slack a user gets at most N times the limit.
Used by AccessService.admit.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

WINDOW_SECONDS = 60.0


class RateLimiter:
    """At most `per_minute` events per key in any sliding minute."""

    def __init__(self, *, per_minute: int, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._monotonic = monotonic
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """Count one event for `key`; False (and not counted) when over the limit."""
        now = self._monotonic()
        with self._lock:
            events = self._events.setdefault(key, deque())
            while events and now - events[0] >= WINDOW_SECONDS:
                events.popleft()
            if len(events) >= self.per_minute:
                return False
            events.append(now)
            self._forget_idle(now)
            return True

    def _forget_idle(self, now: float) -> None:
        """Keep memory bounded by the users active in the last minute."""
        if len(self._events) < 10_000:
            return
        for key in [k for k, v in self._events.items() if not v or now - v[-1] >= WINDOW_SECONDS]:
            del self._events[key]
