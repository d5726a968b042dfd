"""The queue's backlog as a gauge, sampled by `forexrisk worker --metrics-port` (alert ForexRiskJobBacklog)."""

from __future__ import annotations

import asyncio

import structlog
from arq.utils import timestamp_ms

from app.jobs.queue import JobQueue
from app.observability.metrics import JOB_QUEUE_DUE

log = structlog.get_logger("jobs")


async def sample_backlog(jobs: JobQueue, every_seconds: float = 5.0) -> None:
    """Every few seconds: the jobs of the queue already due (arq keeps a job in its sorted set, scored by when
    it is due, until it has finished). Redis errors leave the last value: the Redis alerts cover an outage."""
    while True:
        try:
            JOB_QUEUE_DUE.set(await jobs.redis.zcount(jobs.queue_name, "-inf", timestamp_ms()))
        except Exception as exc:  # a sampler outlives Redis outages
            log.debug("job_backlog_sample_failed", error=type(exc).__name__)
        await asyncio.sleep(every_seconds)
