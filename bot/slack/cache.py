"""A tiny thread-safe time-to-live cache for Slack and cluster look-ups.

Used by bot.slack.people (profiles, user groups) and bot.slack.notifier (role
rules), so bursts of clicks and message redraws do not hit rate limits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")
CACHE_SECONDS = 60.0


class TtlCache(Generic[V]):
    """A tiny thread-safe cache; entries are fresh for `ttl` seconds.

    A load that raises stores nothing, so a failure is never cached. Expired
    entries are kept, so `stale()` can still offer the last good value.
    `monotonic` is injectable so tests can move time without sleeping.
    """

    def __init__(
        self, ttl: float = CACHE_SECONDS, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.monotonic = monotonic
        self._entries: dict[str, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, load: Callable[[], V]) -> V:
        hit = self._entry(key)
        if hit and self.monotonic() - hit[0] < self.ttl:
            return hit[1]
        value = load()
        with self._lock:
            self._entries[key] = (self.monotonic(), value)
        return value

    def stale(self, key: str, *, max_age: float) -> tuple[float, V] | None:
        """The last value loaded for `key` and its age, if younger than `max_age` seconds."""
        hit = self._entry(key)
        if hit is None:
            return None
        age = self.monotonic() - hit[0]
        return (age, hit[1]) if age < max_age else None

    def _entry(self, key: str) -> tuple[float, V] | None:
        with self._lock:
            return self._entries.get(key)
