"""Runs an arq Worker on the app's Services until stopped: in the API process (started and stopped by the
lifespan of app.main) or as `forexrisk worker` (app.cli, the same lifespan without HTTP).

Every process may run one: arq marks a job in progress in Redis before it runs it, so each job runs once
however many workers poll the queue. What arq leaves to us:
- retries: arq retries only a job that raises `Retry`; every job function is wrapped so that any other
  exception becomes a `Retry` with exponential backoff and jitter (app.jobs.backoff) until the function's
  max tries, when the error itself is raised and recorded as the job's failure. A refusal of the domain
  (an AppError below 500: bad input, not found) is not retried: it would fail the same way again;
- surviving Redis: arq's loop ends on the first Redis error (a restarted embedded server, a failover); the
  runner logs it and starts a fresh worker after RESTART_SECONDS;
- a clean stop: new jobs are no longer taken, running ones get `jobs_shutdown_grace_seconds`, the rest are
  cancelled (arq puts them back in the queue, and another worker runs them again: jobs are idempotent).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import time
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC
from typing import TYPE_CHECKING, Any

import structlog
from arq.cron import CronJob
from arq.utils import timestamp_ms
from arq.worker import Function, Retry, Worker, func

from app.errors import AppError
from app.jobs import queue
from app.jobs.backoff import Backoff
from app.observability.metrics import JOB_DURATION, JOB_RUNS, JOB_WAIT
from app.worker import registry

if TYPE_CHECKING:
    from app.services import Services

log = structlog.get_logger("jobs")
STOP_ATTEMPTS = 20  # cancellations tried at shutdown, STOP_RETRY_SECONDS apart, before giving up on the worker
STOP_RETRY_SECONDS = 0.5
RESTART_SECONDS = 1.0
JobFunction = Callable[..., Coroutine[Any, Any, Any]]


def retryable(exc: Exception) -> bool:
    return not (isinstance(exc, AppError) and exc.status < 500)


def with_backoff(fn: JobFunction, backoff: Backoff, max_tries: int) -> JobFunction:
    """`fn` with failed tries turned into arq retries deferred by `backoff`, up to `max_tries` tries."""

    name = fn.__name__
    wait, duration = JOB_WAIT.labels(name), JOB_DURATION.labels(name)
    outcomes = {outcome: JOB_RUNS.labels(name, outcome) for outcome in ("ok", "retry", "failed", "cancelled")}

    @functools.wraps(fn)
    async def attempt(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        score = ctx.get("score")  # when the job was due (ms): a deferred job waits from then, not from enqueue
        if isinstance(score, int | float):
            wait.observe(max(0.0, timestamp_ms() - score) / 1000)
        started = time.perf_counter()
        outcome = "failed"
        try:
            result = await fn(ctx, *args, **kwargs)
            outcome = "ok"
            return result
        except Retry:
            outcome = "retry"
            raise  # the job asked for its own delay
        except asyncio.CancelledError:
            outcome = "cancelled"  # a stop or a timeout: arq puts it back or retries it
            raise
        except Exception as exc:
            tries = int(ctx.get("job_try") or 1)
            if tries >= max_tries or not retryable(exc):
                raise
            outcome = "retry"
            delay = backoff.delay(tries)
            log.warning("job_retry", job_id=ctx.get("job_id"), function=fn.__name__, tries=tries,
                        defer_seconds=round(delay, 3), error=f"{type(exc).__name__}: {exc}")
            raise Retry(defer=delay) from exc
        finally:
            duration.observe(time.perf_counter() - started)
            outcomes[outcome].inc()

    return attempt


def build_worker(services: Services, *, functions: Sequence[JobFunction] | None = None,
                 cron: Sequence[CronJob] | None = None, queue_name: str | None = None,
                 backoff: Backoff | None = None) -> Worker:
    """An arq Worker for `services` with the registry's tasks and cron jobs (tests pass their own, on a queue
    of their own). It has its own Redis connections: polling never waits behind the API's enqueues."""
    settings = services.settings
    queue_name = queue_name or settings.jobs_queue_name
    backoff = backoff or Backoff(settings.jobs_retry_base_seconds, settings.jobs_retry_max_seconds)
    wrapped: list[Function] = []
    for fn in registry.task_functions() if functions is None else functions:
        wrapped.append(func(with_backoff(fn, backoff, settings.jobs_max_tries), name=fn.__name__))
    crons = [dataclasses.replace(job, coroutine=with_backoff(job.coroutine, backoff, job.max_tries or 1))
             for job in (registry.cron_jobs() if cron is None else cron)]
    keep_ms = settings.jobs_keep_result_seconds * 1000

    async def on_job_start(ctx: dict[str, Any]) -> None:
        await ctx["redis"].psetex(queue.STARTED_KEY_PREFIX + ctx["job_id"], keep_ms, str(timestamp_ms()))

    url = services.jobs.url
    return Worker(
        wrapped, cron_jobs=crons, redis_pool=queue.connect(url, queue_name, timeout=5.0), queue_name=queue_name,
        ctx={"services": services}, handle_signals=False,  # the host process owns its signals
        poll_delay=settings.jobs_poll_seconds, keep_result=settings.jobs_keep_result_seconds,
        max_tries=settings.jobs_max_tries, job_timeout=settings.jobs_timeout_seconds,
        max_jobs=settings.jobs_max_concurrent, on_job_start=on_job_start, timezone=UTC,
        job_serializer=queue.serialize, job_deserializer=queue.deserialize, log_results=False)


class WorkerTask:
    """One arq worker as an asyncio task of the calling process: start(), then stop() at shutdown."""

    def __init__(self, build: Callable[[], Worker], grace_seconds: float) -> None:
        self.build = build
        self.grace_seconds = grace_seconds
        self.worker: Worker | None = None
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(), name="arq-worker")

    async def _run(self) -> None:
        while True:
            self.worker = worker = self.build()
            try:
                await worker.main()
                return  # only a burst worker returns
            except Exception as exc:  # Redis went away mid-poll: start afresh (CancelledError passes)
                log.warning("job_worker_restart", error=f"{type(exc).__name__}: {exc}")
            finally:
                await self.close(worker)
            await asyncio.sleep(RESTART_SECONDS)

    async def stop(self) -> None:
        if self.task is None:
            return
        worker = self.worker
        if worker is not None:
            worker.allow_pick_jobs = False
            running = [t for t in worker.tasks.values() if not t.done()]
            if running and self.grace_seconds > 0:
                await asyncio.wait(running, timeout=self.grace_seconds)
        # Cancel until it ends: one cancellation can be lost. Python 3.11's wait_for/timeout (used under arq and
        # redis-py) may swallow a CancelledError that races with the awaited result, and the worker then polls
        # on as if nothing happened: the app's shutdown waited for it forever (seen in the suite and in
        # benchmarks, about one shutdown in 30; the task "cancelling", parked in arq's poll sleep).
        task = self.task
        for _ in range(STOP_ATTEMPTS):
            task.cancel()
            await asyncio.wait({task}, timeout=STOP_RETRY_SECONDS)
            if task.done():
                break
            log.warning("job_worker_cancel_repeated")
        else:
            log.error("job_worker_not_stopped", attempts=STOP_ATTEMPTS)
        if task.done() and not task.cancelled():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                task.result()  # retrieved: never "exception was never retrieved"
        self.task = None

    @staticmethod
    async def close(worker: Worker) -> None:
        # Not Worker.close(): it would also delete the health-check key other workers share.
        for task in worker.tasks.values():
            task.cancel()  # arq catches the cancellation and puts the job back in the queue
        await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
        await worker.pool.aclose()
        await worker.pool.connection_pool.disconnect()


def in_process(services: Services, **kwargs: Any) -> WorkerTask:
    return WorkerTask(functools.partial(build_worker, services, **kwargs),
                      services.settings.jobs_shutdown_grace_seconds)
