"""Cron jobs of the inbound platform events:

- `sweep_alert_evaluations` (every minute): queue the alert evaluation of messages whose job was never queued
  (Redis down when the message arrived, a crash between commit and enqueue) or was lost with Redis's data;
- `prune_platform_messages` (every five minutes): delete message ids past the replay window.

Both cross tenants (the platform role) and are idempotent: the evaluation job's id is the message's, and a
prune finds nothing more to delete on a rerun. `now` (ISO 8601) replaces the clock, for tests and operators.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from arq.cron import cron


def _clock(now: str | None) -> datetime | None:
    if now is None:
        return None
    at = datetime.fromisoformat(now)
    if at.tzinfo is None:
        raise ValueError("now must carry a time zone (e.g. 2026-12-03T00:00:00+00:00)")
    return at


async def sweep_alert_evaluations(ctx: dict[str, Any], now: str | None = None) -> dict[str, Any]:
    services = ctx["services"]
    result: dict[str, Any] = await services.platform_events.sweep_evaluations(
        services.jobs, services.settings.outbox_sweep_grace_seconds, _clock(now))
    return result


async def prune_platform_messages(ctx: dict[str, Any], now: str | None = None) -> dict[str, Any]:
    services = ctx["services"]
    result: dict[str, Any] = await services.platform_events.prune_messages(
        services.settings.platform_events_message_margin_seconds, _clock(now))
    return result


TASKS = [sweep_alert_evaluations, prune_platform_messages]
CRON = [
    cron(sweep_alert_evaluations, name="sweep_alert_evaluations", second=5, max_tries=1, keep_result=600,
         timeout=50),
    cron(prune_platform_messages, name="prune_platform_messages", minute=set(range(0, 60, 5)), second=35,
         max_tries=3, keep_result=3600, timeout=240),
]
