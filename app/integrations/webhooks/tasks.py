"""Job: one delivery attempt (`deliver_webhook(ctx, broker_id, delivery_id, attempt)`). Idempotent: an attempt
already recorded, or a delivery that is over, is a no-op. A failed attempt queues the next one itself (with
the schedule's defer), so it returns normally: arq's own retries are for crashes, which the no-op check
makes harmless."""

from __future__ import annotations

import uuid
from typing import Any


async def deliver_webhook(ctx: dict[str, Any], broker_id: str, delivery_id: str, attempt: int) -> dict[str, Any]:
    service = ctx["services"].webhooks
    result: dict[str, Any] = await service.attempt(uuid.UUID(broker_id), uuid.UUID(delivery_id), int(attempt))
    return result


TASKS = [deliver_webhook]
