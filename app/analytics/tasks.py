"""Analytics jobs (the jobs contract): the flush, for a worker process.

With the embedded ClickHouse only the owner of its path may write it, so the owner's own loop
(app.analytics.service.Analytics) does the regular flush and this job ships only when its process
can take the path (it reports `skipped` otherwise). With CLICKHOUSE_URL any process may ship: an arq
cron of this job can replace the in-app loop (`FOREXRISK_ANALYTICS_FLUSH_SECONDS`).
Idempotent: a rerun ships what is left, and a batch stored twice is counted once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


async def flush_usage(ctx: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = await ctx["services"].analytics.flush()
    return result


TASKS: list[Callable[..., Any]] = [flush_usage]
# No CRON: every API process runs the flush loop (the owner only, on the embedded engine), every
# FOREXRISK_ANALYTICS_FLUSH_SECONDS; enqueue `flush_usage` to ship on demand from a worker.
