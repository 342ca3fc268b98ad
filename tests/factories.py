"""One way to build an AccessRequest in tests: sensible values, override what matters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bot.domain import AccessRequest, State, new_request_id

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
