"""Prometheus metrics: every metric the bot exports is defined here, and changed only here.

The core (service, granting, ending, expiry, scheduler) and the adapters (the
Kubernetes provider, the Slack WebClient) report through `Metrics`' methods,
one per event; none of them touches a prometheus_client object. Each bot gets
its own CollectorRegistry from bot.wiring, so several bots in one process (the
tests, the HA tests) never share or collide; GET /metrics (bot.server) serves
that registry in both Slack modes. Core: imports neither Slack nor Kubernetes.

The names are a contract (alert rules use them); see the README's table.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    make_wsgi_app,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from bot.domain import AccessRequest, State
from bot.errors import ProviderError

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    """jitsudo_requests_total{outcome}: what became of a request someone filed."""

    SUBMITTED = "submitted"  # stored as pending: approvers are asked
    REFUSED = "refused"  # policy or the pre-flight said no (role, duration, reason, namespace...)
    LIMITED = "limited"  # the requester already had policy.max_pending_per_user waiting


# jitsudo_decisions_total{decision}: the end of the pending state, however it came.
DECISIONS: Mapping[State, str] = {
    State.APPROVED: "approved",
    State.DENIED: "denied",
    State.CANCELLED: "cancelled",
    State.TIMED_OUT: "timed_out",
}
# jitsudo_provider_errors_total{operation}: what the Kubernetes provider was doing.
PROVIDER_OPERATIONS = ("preflight", "grant", "extend", "revoke", "read", "list", "ping")
# jitsudo_timer_step_failures_total{step}: the scheduler's steps (bot.scheduler).
TIMER_STEPS = ("expire", "resume", "warn", "time_out", "sweep")

# A grant is due to end within the next 1 s tick; seconds mean trouble, minutes an outage.
LAG_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
# A sweep lists every labelled binding: milliseconds on a quiet cluster, longer behind a slow API.
SWEEP_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

StateCounter = Callable[[Iterable[State]], Mapping[State, int]]


class Metrics:
    """The bot's metrics on one registry, and one method per thing worth counting."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        # No `_created` series beside each counter and histogram: nothing here uses them,
        # and they double the scrape. (A process-wide switch; this process is the bot.)
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry if registry is not None else CollectorRegistry()
        on = self.registry
        self._requests = Counter(
            "jitsudo_requests", "Access requests filed, by outcome", ["outcome"], registry=on
        )
        self._decisions = Counter(
            "jitsudo_decisions", "Pending requests decided, by decision", ["decision"], registry=on
        )
        self._lag = Histogram(
            "jitsudo_revocation_lag_seconds",
            "Seconds from a grant's expires_at to its recorded end, per expiry",
            buckets=LAG_BUCKETS,
            registry=on,
        )
        self._sweep = Histogram(
            "jitsudo_sweep_duration_seconds",
            "Seconds one sweep took",
            buckets=SWEEP_BUCKETS,
            registry=on,
        )
        self._last_sweep = Gauge(
            "jitsudo_last_sweep_success_timestamp_seconds",
            "Unix time of the last sweep that completed without failures (0: none yet here)",
            registry=on,
        )
        self._provider_errors = Counter(
            "jitsudo_provider_errors",
            "Errors raised by the Kubernetes provider, by operation",
            ["operation"],
            registry=on,
        )
        self._slack_errors = Counter(
            "jitsudo_slack_api_errors",
            "Failed Slack Web API calls (error answers and transport errors), by API method",
            ["method"],
            registry=on,
        )
        self._step_failures = Counter(
            "jitsudo_timer_step_failures",
            "Timer steps that raised, by step",
            ["step"],
            registry=on,
        )
        self._is_leader = Gauge(
            "jitsudo_is_leader", "1 while this replica holds the leadership lease", registry=on
        )
        _preset(self._requests, [outcome.value for outcome in Outcome])
        _preset(self._decisions, DECISIONS.values())
        _preset(self._provider_errors, PROVIDER_OPERATIONS)
        _preset(self._step_failures, TIMER_STEPS)
        ProcessCollector(registry=self.registry)

    # --- events -------------------------------------------------------------

    def request_filed(self, outcome: Outcome) -> None:
        self._requests.labels(outcome.value).inc()

    def moved(self, request: AccessRequest) -> None:
        """A request changed state: count decisions, time expiries."""
        decision = DECISIONS.get(request.state)
        if decision is not None:
            self._decisions.labels(decision).inc()

    def expired(self, request: AccessRequest) -> None:
        """An expiry was recorded: observe how late after expires_at it ended.

        A grant ended before its time (someone wrote a past expires-at on the
        binding) is no lag and is left out.
        """
        if request.ended_at is None or request.expires_at is None:
            return
        lag = (request.ended_at - request.expires_at).total_seconds()
        if lag >= 0:
            self._lag.observe(lag)

    def swept(self, *, seconds: float, succeeded_at: datetime | None) -> None:
        """A sweep ended; `succeeded_at` is set when it had no failures."""
        self._sweep.observe(seconds)
        if succeeded_at is not None:
            self._last_sweep.set(succeeded_at.timestamp())

    @contextmanager
    def provider_errors_of(self, operation: str) -> Iterator[None]:
        """Count every ProviderError raised in this block, as `operation`."""
        try:
            yield
        except ProviderError:
            self._provider_errors.labels(operation).inc()
            raise

    def slack_api_error(self, method: str) -> None:
        self._slack_errors.labels(method).inc()

    def timer_step_failed(self, step: str) -> int:
        """Count a failed step; returns how often it has failed in this process."""
        self._step_failures.labels(step).inc()
        total = self.registry.get_sample_value("jitsudo_timer_step_failures_total", {"step": step})
        return int(total or 0)

    # --- values read at scrape time -------------------------------------------

    def watch_leadership(self, holds: Callable[[], bool]) -> None:
        self._is_leader.set_function(lambda: float(holds()))

    def watch_states(self, count: StateCounter) -> None:
        """jitsudo_active_grants and jitsudo_grants_revoking, counted in the store per scrape.

        The database is the truth every replica shares, so followers report the
        same numbers as the leader.
        """
        self.registry.register(_StateGauges(count))

    def wsgi(self) -> Callable[..., Any]:
        """The WSGI app that renders this registry (text format; OpenMetrics if asked)."""
        return make_wsgi_app(self.registry)


class _Measured(Protocol):
    metrics: Metrics


M = TypeVar("M", bound=_Measured)
P = ParamSpec("P")
R = TypeVar("R")


def provider_errors_counted(
    operation: str,
) -> Callable[[Callable[Concatenate[M, P], R]], Callable[Concatenate[M, P], R]]:
    """Decorate a provider's method: every ProviderError it raises counts as `operation`."""

    def decorate(method: Callable[Concatenate[M, P], R]) -> Callable[Concatenate[M, P], R]:
        @functools.wraps(method)
        def run(self: M, /, *args: P.args, **kwargs: P.kwargs) -> R:
            with self.metrics.provider_errors_of(operation):
                return method(self, *args, **kwargs)

        return run

    return decorate


def _preset(counter: Counter, labels: Iterable[str]) -> None:
    """Export 0 for every known label value, so rate() and increase() see a start."""
    for label in labels:
        counter.labels(label)


_GAUGES = {
    State.ACTIVE: ("jitsudo_active_grants", "Requests in state active (access granted)"),
    State.REVOKING: (
        "jitsudo_grants_revoking",
        "Requests in state revoking: an ending whose binding is not confirmed gone yet",
    ),
}


class _StateGauges(Collector):
    """Counts requests per state in the store when scraped."""

    def __init__(self, count: StateCounter) -> None:
        self.count = count

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily(name, doc) for name, doc in _GAUGES.values()]

    def collect(self) -> Iterable[Metric]:
        try:
            counts = self.count(_GAUGES)
        except Exception as error:  # noqa: BLE001  (a scrape must not fail with the database)
            # Left out, not 0: "no data" must never look like "nothing revoking".
            log.warning("cannot count requests for /metrics: %s", type(error).__name__)
            return []
        return [
            GaugeMetricFamily(name, doc, value=counts.get(state, 0))
            for state, (name, doc) in _GAUGES.items()
        ]
