"""Injected trouble: error answers (``fail_next``) and slow answers (``delay_next``).

Both pick requests by HTTP method, resource plural, name and namespace, and
only requests that passed authentication and authorization, as a failing or
slow storage layer would. A delay sleeps outside the store lock, so the rest
of the server carries on meanwhile: one client sees its request hang or time
out while every other request is answered, which is what a slow etcd write or
a congested apiserver looks like from outside.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TypeVar

from .errors import ApiError, conflict, for_code, internal, not_found
from .requestinfo import RequestInfo

_DEFAULT_MESSAGES = {
    429: "Too many requests, please try again later.",
    503: "The server is currently unable to handle the request",
    504: "Timeout: request did not complete within the allotted timeout",
}


@dataclass(kw_only=True)
class Match:
    """Which requests an injection applies to (None matches anything), and how often."""

    method: str | None = None
    resource: str | None = None
    name: str | None = None
    namespace: str | None = None
    remaining: int = 1

    def matches(self, method: str, info: RequestInfo) -> bool:
        return (
            self.remaining > 0
            and (self.method is None or self.method.upper() == method)
            and (self.resource is None or self.resource == info.resource)
            and (self.name is None or self.name == info.name)
            and (self.namespace is None or self.namespace == info.namespace)
        )


@dataclass(kw_only=True)
class Fault(Match):
    """Answer with a Kubernetes ``Status`` error instead of doing the request."""

    status: int = 500
    message: str | None = None
    retry_after: int | None = None

    def error(self, info: RequestInfo) -> ApiError:
        group, resource, name = info.group, info.resource, info.name
        if self.status == 500:
            err = internal(self.message or "injected fault")
        elif self.status == 404 and not self.message:
            err = not_found(resource, group, name)
        elif self.status == 409 and not self.message:
            err = conflict(resource, group, name)
        else:
            message = self.message or _DEFAULT_MESSAGES.get(
                self.status, f"injected fault ({self.status})"
            )
            err = for_code(self.status, message, resource, group, name)
        if self.retry_after is not None:
            err.headers["Retry-After"] = str(self.retry_after)
            assert err.details is not None
            err.details["retryAfterSeconds"] = self.retry_after
        return err


@dataclass(kw_only=True)
class Delay(Match):
    """Sleep ``seconds`` before doing the request, or (``after``) before answering it."""

    seconds: float
    after: bool = True


_M = TypeVar("_M", Fault, Delay)


class Faults:
    """The pending injections, consumed first-registered-first under one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._delays: list[Delay] = []
        self._wake = threading.Event()

    def add(self, injection: Fault | Delay) -> None:
        with self._lock:
            if isinstance(injection, Fault):
                self._faults.append(injection)
            else:
                self._delays.append(injection)

    def take_fault(self, method: str, info: RequestInfo) -> Fault | None:
        return self._take(self._faults, method, info)

    def take_delay(self, method: str, info: RequestInfo) -> Delay | None:
        return self._take(self._delays, method, info)

    def _take(self, pending: list[_M], method: str, info: RequestInfo) -> _M | None:
        with self._lock:
            found = next((m for m in pending if m.matches(method, info)), None)
            if found is not None:
                found.remaining -= 1
            return found

    def clear(self) -> None:
        """Forget every pending injection; requests already asleep keep sleeping."""
        with self._lock:
            self._faults.clear()
            self._delays.clear()

    def sleep(self, seconds: float) -> None:
        """Sleep, unless the server is stopping: then in-flight requests finish at once."""
        self._wake.wait(seconds)

    def wake_sleepers(self) -> None:
        self._wake.set()

    def rearm(self) -> None:
        self._wake.clear()
