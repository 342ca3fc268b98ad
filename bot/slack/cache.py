"""A tiny thread-safe time-to-live cache for Slack and cluster look-ups.

Used by bot.slack.people (profiles, user groups) and bot.slack.notifier (role
rules), so bursts of clicks and message redraws do not hit rate limits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
CACHE_SECONDS = 60.0


class TtlCache:
    """A tiny thread-safe cache; entries live CACHE_SECONDS."""

    def __init__(self, ttl: float = CACHE_SECONDS) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, load: Callable[[], T]) -> T:
        with self._lock:
            hit = self._entries.get(key)
        if hit and time.monotonic() - hit[0] < self.ttl:
            value: T = hit[1]
            return value
        value = load()
        with self._lock:
            self._entries[key] = (time.monotonic(), value)
        return value
