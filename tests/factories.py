"""One way to build an AccessRequest in tests: sensible values, override what matters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bot.domain import AccessRequest, State, new_request_id
from bot.policy import Policy
from bot.ports import AccessProvider, Clock
from bot.service import AccessService
from bot.store import Store
from tests.fakes import FakeDirectory

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def access_request(**changes: Any) -> AccessRequest:
    base = AccessRequest(
        id=new_request_id(),
        requester="U1",
        k8s_user="alice@example.com",
        provider="kubernetes",
        role="edit",
        scope="production",
        namespace="production",
        duration=timedelta(minutes=30),
        reason="scale",
        state=State.PENDING,
        created_at=NOW,
    )
    return base.evolve(**changes)


def fake_service(store: Store, provider: AccessProvider, clock: Clock) -> AccessService:
    """The real service over fakes, with a policy whose limits the tests name."""
    policy = Policy(
        role_limits={"view": None, "edit": None, "cluster-admin": timedelta(minutes=30)},
        default_duration=timedelta(hours=1),
        min_duration=timedelta(minutes=1),
        provider_max=timedelta(hours=2),
        max_reason_length=100,
        request_ttl=timedelta(hours=1),
        expiry_warning=timedelta(minutes=5),
        max_pending_per_user=5,
        commands_per_minute=20,
    )
    return AccessService(
        store=store,
        provider=provider,
        approvers=FakeDirectory(),
        policy=policy,
        clock=clock,
        default_namespace="default",
    )
