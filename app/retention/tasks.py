"""Job: purge stored calculations and audit entries past their retention (app.retention.service).

Idempotent (a rerun finds nothing more to delete); `dry_run` counts without deleting; `now` (ISO 8601)
replaces the clock, for an operator's "what would go on that day" and for tests.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from arq.cron import cron

from app.retention import service


async def purge_expired_data(ctx: dict[str, Any], now: str | None = None, dry_run: bool = False,
                             batch: int | None = None) -> dict[str, Any]:
    services = ctx["services"]
    settings = services.settings
    clock = datetime.fromisoformat(now) if now else datetime.now(UTC)
    if clock.tzinfo is None:
        raise ValueError("now must carry a time zone (e.g. 2026-12-03T00:00:00+00:00)")
    size = batch or settings.retention_batch_size
    calculations = await service.purge_calculations(services.db, clock, settings.retention_calculation_years,
                                                    dry_run, size)
    audit = await service.purge_audit(services.db, clock, dry_run, size)
    return {"now": clock.isoformat(), "dryRun": dry_run, "calculations": calculations.as_dict(),
            "auditLogs": audit.as_dict()}


TASKS = [purge_expired_data]
# Daily at 03:15 UTC, off-peak; one run per day however many workers (arq's job id per planned run).
CRON = [cron(purge_expired_data, name="purge_expired_data_daily", hour=3, minute=15, max_tries=3,
             keep_result=86_400, timeout=3600)]
