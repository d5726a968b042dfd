"""The job queue: enqueue a job by function name, read its status. Only wraps arq's Redis pool; the jobs run
in app.worker (in the API process by default, or `forexrisk worker`).

Jobs and results are stored as JSON, not arq's default pickle: a job read from Redis then cannot run code
on the worker, and arguments and results stay readable. So arguments and results must be JSON-able
(orjson: str, numbers, lists, dicts, datetimes, UUIDs); an exception a job raised is stored as its type
and message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix, retry_key_prefix
from arq.jobs import deserialize_job, deserialize_result
from redis.asyncio import ConnectionPool
from redis.exceptions import RedisError

from app.errors import ServiceUnavailable

JobState = Literal["queued", "in_progress", "complete", "failed", "not_found"]
# Written by the worker when a try starts (arq itself records the start only with the result).
STARTED_KEY_PREFIX = "forexrisk:job-started:"
# Not the API's 50 ms Redis budget (app.redisdb.hub): an enqueue is a WATCH/MULTI transaction, rare, and
# better slow than lost; still short enough that a dead Redis fails a request quickly.
TIMEOUT_SECONDS = 2.0


class JobsUnavailable(ServiceUnavailable):
    """Redis (the job queue) cannot be reached."""

    headers = {"Retry-After": "1"}


def _encode_other(value: Any) -> Any:
    if isinstance(value, BaseException):  # a failed job's result: keep what it was, not the object
        return {"error": type(value).__name__, "detail": str(value)}
    raise TypeError(f"not JSON-able: {type(value).__name__}")


def serialize(data: dict[str, Any]) -> bytes:
    return orjson.dumps(data, default=_encode_other)


def deserialize(raw: bytes) -> dict[str, Any]:
    found: dict[str, Any] = orjson.loads(raw)
    return found


def connect(url: str, queue_name: str, timeout: float = TIMEOUT_SECONDS) -> ArqRedis:
    """An arq client on `url` (redis://, rediss://, unix://) with JSON jobs; the worker builds its own too."""
    pool = ConnectionPool.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    return ArqRedis(pool, job_serializer=serialize, job_deserializer=deserialize, default_queue_name=queue_name)


@dataclass(frozen=True, slots=True)
class JobInfo:
    job_id: str
    state: JobState
    function: str | None = None
    result: Any = None  # complete: what the job returned
    error: str | None = None  # failed: "ExceptionType: message" of the last try
    tries: int = 0  # tries started so far (a retry waiting in the queue counts the failed ones)
    enqueued_at: datetime | None = None  # UTC, all of them
    started_at: datetime | None = None  # the last try's start
    finished_at: datetime | None = None
    scheduled_at: datetime | None = None  # queued: when it may (next) start; a retry waits for its backoff


def _utc(ms: int | float | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


def _error_text(result: Any) -> str:
    if isinstance(result, dict) and "error" in result:
        return f"{result['error']}: {result.get('detail', '')}".rstrip(": ")
    return str(result)


class JobQueue:
    def __init__(self, url: str, queue_name: str = "arq:queue", timeout: float = TIMEOUT_SECONDS) -> None:
        self.url = url
        self.queue_name = queue_name
        self.redis = connect(url, queue_name, timeout)

    async def enqueue(self, function: str, *args: Any, job_id: str | None = None,
                      defer_seconds: float | None = None) -> str:
        """Queue `function(ctx, *args)` and return the job id. The same `job_id` while that job is queued,
        running or its result is kept is the same job: it is not queued again (arq's job-id dedup)."""
        try:
            job = await self.redis.enqueue_job(function, *args, _job_id=job_id, _defer_by=defer_seconds)
        except (TimeoutError, RedisError, OSError) as exc:
            raise JobsUnavailable("The job queue cannot be reached right now; retry shortly.") from exc
        if job is not None:
            return job.job_id
        assert job_id is not None  # arq only refuses a job whose id exists, and only a given id can
        return job_id

    async def status(self, job_id: str) -> JobInfo:
        try:
            async with self.redis.pipeline(transaction=True) as tr:
                tr.get(result_key_prefix + job_id)
                tr.exists(in_progress_key_prefix + job_id)
                tr.zscore(self.queue_name, job_id)
                tr.get(job_key_prefix + job_id)
                tr.get(retry_key_prefix + job_id)
                tr.get(STARTED_KEY_PREFIX + job_id)
                result_raw, running, score, job_raw, tries_raw, started_raw = await tr.execute()
        except (TimeoutError, RedisError, OSError) as exc:
            raise JobsUnavailable("The job queue cannot be reached right now; retry shortly.") from exc
        if result_raw:
            done = deserialize_result(result_raw, deserializer=deserialize)
            return JobInfo(
                job_id=job_id, state="complete" if done.success else "failed", function=done.function,
                result=done.result if done.success else None,
                error=None if done.success else _error_text(done.result), tries=done.job_try,
                enqueued_at=done.enqueue_time.astimezone(UTC), started_at=done.start_time.astimezone(UTC),
                finished_at=done.finish_time.astimezone(UTC))
        if not job_raw:
            return JobInfo(job_id=job_id, state="not_found")
        job = deserialize_job(job_raw, deserializer=deserialize)
        tries = int(tries_raw) if tries_raw else 0
        return JobInfo(
            job_id=job_id, state="in_progress" if running else "queued", function=job.function, tries=tries,
            enqueued_at=job.enqueue_time.astimezone(UTC),
            started_at=_utc(int(started_raw)) if started_raw and tries else None,
            scheduled_at=None if running or score is None else _utc(score))

    async def close(self) -> None:
        await self.redis.aclose()
        await self.redis.connection_pool.disconnect()
