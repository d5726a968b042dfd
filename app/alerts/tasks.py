"""Job: evaluate the alert rules of the traders a platform message changed (`evaluate_alerts(ctx, broker_id,
trader_ids, message_id)`, queued by the inbound events route, or by the sweeper when that never happened).
Idempotent: the alerts are state (one active per rule, trader and subject), so a rerun on the same book fires
and clears nothing more. Once done it marks the message evaluated, so the sweeper leaves it alone."""

from __future__ import annotations

import uuid
from typing import Any

from app.alerts.service import evaluate


async def evaluate_alerts(ctx: dict[str, Any], broker_id: str, trader_ids: list[str],
                          message_id: str | None = None) -> dict[str, Any]:
    services = ctx["services"]
    broker = uuid.UUID(broker_id)
    out = await evaluate(services, broker, trader_ids)
    if message_id is not None:
        await services.platform_events.mark_evaluated(broker, message_id)
    return out


TASKS = [evaluate_alerts]
