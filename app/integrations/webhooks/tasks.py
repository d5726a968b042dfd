"""Jobs of the outbound webhooks.

- `deliver_webhook(ctx, broker_id, delivery_id, attempt)`: one delivery attempt. Idempotent: an attempt
  already recorded, or a delivery that is over, is a no-op. A failed attempt queues the next one itself (with
  the schedule's defer), so it returns normally: arq's own retries are for crashes, which the no-op check
  makes harmless.
- `sweep_webhook_deliveries` (cron, every minute): queue the next attempt of pending deliveries whose job is
  overdue (never queued because Redis was down, or lost); the same job ids, so never twice.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from arq.cron import cron

from app.observability.metrics import WEBHOOK_DELIVERIES


async def deliver_webhook(ctx: dict[str, Any], broker_id: str, delivery_id: str, attempt: int) -> dict[str, Any]:
    service = ctx["services"].webhooks
    result: dict[str, Any] = await service.attempt(uuid.UUID(broker_id), uuid.UUID(delivery_id), int(attempt))
    # delivered, pending (failed, next attempt scheduled), exhausted, failed, aborted, cancelled, skipped: bounded
    WEBHOOK_DELIVERIES.labels(str(result.get("status") or ("skipped" if result.get("skipped") else "unknown"))).inc()
    return result


async def sweep_webhook_deliveries(ctx: dict[str, Any], now: str | None = None) -> dict[str, Any]:
    services = ctx["services"]
    clock = datetime.fromisoformat(now) if now else None
    if clock is not None and clock.tzinfo is None:
        raise ValueError("now must carry a time zone (e.g. 2026-12-03T00:00:00+00:00)")
    result: dict[str, Any] = await services.webhooks.sweep(services.settings.outbox_sweep_grace_seconds, clock)
    return result


TASKS = [deliver_webhook, sweep_webhook_deliveries]
# At :20 of each minute, off the full minute where the daily crons are planned.
CRON = [cron(sweep_webhook_deliveries, name="sweep_webhook_deliveries", second=20, max_tries=1, keep_result=600,
             timeout=50)]
