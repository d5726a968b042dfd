"""Job: evaluate the alert rules of the traders a platform message changed (`evaluate_alerts(ctx, broker_id,
trader_ids)`, queued by the inbound events route). Idempotent: the alerts are state (one active per rule,
trader and subject), so a rerun on the same book fires and clears nothing more."""

from __future__ import annotations

import uuid
from typing import Any

from app.alerts.service import evaluate


async def evaluate_alerts(ctx: dict[str, Any], broker_id: str, trader_ids: list[str]) -> dict[str, Any]:
    return await evaluate(ctx["services"], uuid.UUID(broker_id), trader_ids)


TASKS = [evaluate_alerts]
