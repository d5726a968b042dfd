"""Job: build a compliance report (app.reports.service.build). Enqueued by POST …/reports/compliance with
the report's own job id (one job per report); idempotent (a complete report is returned as it is)."""

from __future__ import annotations

import uuid
from typing import Any

from app.reports import service


async def generate_compliance_report(ctx: dict[str, Any], broker_id: str, report_id: str) -> dict[str, Any]:
    services = ctx["services"]
    last_try = int(ctx.get("job_try", 1)) >= services.settings.jobs_max_tries
    return await service.build(services, uuid.UUID(broker_id), uuid.UUID(report_id), last_try)


TASKS = [generate_compliance_report]
