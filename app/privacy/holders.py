"""Stores outside Postgres that hold personal data (ClickHouse analytics events): each one plugs in here.

The privacy service calls every registered holder after the Postgres part of an export or erasure, so
one request covers every store. A holder's erase must be idempotent (an erasure is retried when a holder
failed) and must leave no row that links the user's id to anything but the pseudonym or nothing.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol


class PersonalDataHolder(Protocol):
    name: str  # the key of its part in the export and the erasure report, e.g. "analytics"

    async def export_user(self, broker_id: uuid.UUID, user_id: uuid.UUID) -> dict[str, Any]:
        """Everything this store holds about the user, JSON-able."""
        ...

    async def erase_user(self, broker_id: uuid.UUID, user_id: uuid.UUID, pseudonym: str) -> dict[str, Any]:
        """Remove or pseudonymise the user's personal data; return what was done (counts)."""
        ...


class ForgetsUsers(Protocol):
    """What the analytics store offers (app.analytics.service.Analytics.forget_user)."""

    async def forget_user(self, broker_id: uuid.UUID, user_id: uuid.UUID) -> dict[str, Any]: ...

    async def flush(self) -> dict[str, Any]: ...


class AnalyticsHolder:
    """ClickHouse usage events (`usage_metrics`): keyed by user id, with no email or IP in them. Erasure
    deletes the user's events (a lightweight DELETE); the broker-level figures of later reports then no
    longer count them, which is the price of not keeping the person's activity."""

    name = "analytics"

    def __init__(self, store: ForgetsUsers) -> None:
        self.store = store

    async def export_user(self, broker_id: uuid.UUID, user_id: uuid.UUID) -> dict[str, Any]:
        # The events are the stored calculations (exported above) and their timings, counted per endpoint;
        # they name the user by id only.
        return {"holds": "usage events keyed by this user's id (endpoint, instrument, status, latency); "
                         "the calculations they count are in `calculations`"}

    async def erase_user(self, broker_id: uuid.UUID, user_id: uuid.UUID, pseudonym: str) -> dict[str, Any]:
        # Ship what Postgres has first (a no-op unless this process owns the store), so events of the user
        # still waiting to be shipped are in ClickHouse when the DELETE runs rather than arriving after it.
        await self.store.flush()
        return await self.store.forget_user(broker_id, user_id)
