"""Background jobs (app.jobs, app.worker): arq on the embedded Redis, the worker in the API process."""

from __future__ import annotations

import random
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from arq.utils import timestamp_ms
from fastapi.testclient import TestClient

from app.errors import InvalidField
from app.jobs.backoff import Backoff
from app.jobs.queue import JobInfo, JobQueue
from app.services import Services
from app.worker import runner as job_worker
from app.worker.runner import WorkerTask

# A hang guard, not a speed assertion: the first history refresh reads the shipped ECB file.
DEADLINE_SECONDS = 120.0


def _services(client: TestClient) -> Services:
    found: Services = client.app.state.services  # type: ignore[attr-defined]
    return found


def wait_for(client: TestClient, job_id: str, *states: str, queue: Any = None) -> JobInfo:
    jobs = queue or _services(client).jobs
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        info: JobInfo = client.portal.call(jobs.status, job_id)
        if info.state in (states or ("complete", "failed")):
            return info
        assert time.monotonic() < deadline, f"job {job_id} still {info.state}"
        time.sleep(0.02)


def test_enqueued_job_runs_on_the_in_process_worker_and_its_status_says_so(client: TestClient) -> None:
    jobs = _services(client).jobs
    job_id = client.portal.call(lambda: jobs.enqueue("refresh_history", ["EURUSD"], job_id=f"t-{uuid.uuid4().hex}"))
    info = wait_for(client, job_id)
    assert info.state == "complete", info
    assert info.function == "refresh_history" and info.tries == 1 and info.error is None
    assert info.result["refreshed"]["EURUSD"]["bars"] > 0 and info.result["failed"] == {}
    assert info.enqueued_at and info.started_at and info.finished_at
    assert info.enqueued_at <= info.started_at <= info.finished_at
    assert info.finished_at.tzinfo == UTC


def test_unknown_job_is_not_found(client: TestClient) -> None:
    info = client.portal.call(_services(client).jobs.status, "no-such-job")
    assert info.state == "not_found" and info.function is None


# --- the worker's behaviour, on a queue of the test's own with job functions of its own ------------------

ATTEMPTS: dict[str, list[dict[str, int]]] = defaultdict(list)
RUNS: dict[str, int] = defaultdict(int)


async def flaky(ctx: dict[str, Any], key: str, failures: int) -> dict[str, Any]:
    """Fails its first `failures` tries, then succeeds; records each try as arq scheduled and ran it."""
    ATTEMPTS[key].append({"try": ctx["job_try"], "score": ctx["score"]})
    if len(ATTEMPTS[key]) <= failures:
        ATTEMPTS[key][-1]["failed_at"] = timestamp_ms()
        raise ConnectionError(f"vendor down ({len(ATTEMPTS[key])})")
    return {"tries": len(ATTEMPTS[key]), "services": type(ctx["services"]).__name__}


async def refused(ctx: dict[str, Any], key: str) -> dict[str, Any]:
    RUNS[key] += 1
    raise InvalidField("symbol", "not a currency pair")


async def counted(ctx: dict[str, Any], key: str) -> dict[str, Any]:
    RUNS[key] += 1
    return {"runs": RUNS[key]}


@dataclass
class OwnWorker:
    client: TestClient
    queue: JobQueue
    task: WorkerTask | None


@pytest.fixture
def own_worker(client: TestClient) -> Iterator[Callable[..., OwnWorker]]:
    """A worker (and its queue) on a queue name of the test's own; the app's worker never sees these jobs."""
    services = _services(client)
    made: list[OwnWorker] = []

    def make(start: bool = True, backoff: Backoff | None = None) -> OwnWorker:
        name = f"test-jobs:{uuid.uuid4().hex}"

        async def build() -> OwnWorker:
            queue = JobQueue(services.jobs.url, name)
            task = job_worker.in_process(services, functions=[flaky, refused, counted], cron=[], queue_name=name,
                                         backoff=backoff or Backoff(0.02, 1.0))
            return OwnWorker(client, queue, task)

        made.append(client.portal.call(build))
        if start:
            run(made[-1])
        return made[-1]

    yield make
    for w in made:
        if w.task is not None:
            client.portal.call(w.task.stop)
        client.portal.call(w.queue.close)


def test_a_failing_job_is_retried_with_growing_backoff_then_completes(client: TestClient,
                                                                      own_worker: Callable[..., OwnWorker]) -> None:
    w = own_worker(backoff=Backoff(0.05, 10.0, random.Random(7)))
    twin = Backoff(0.05, 10.0, random.Random(7))  # the same draws: the delays the worker computed
    delays_ms = [round(twin.delay(1) * 1000), round(twin.delay(2) * 1000)]
    key = uuid.uuid4().hex
    job_id = client.portal.call(lambda: w.queue.enqueue("flaky", key, 2))
    info = wait_for(client, job_id, queue=w.queue)
    assert info.state == "complete" and info.tries == 3 and info.result == {"tries": 3, "services": "Services"}
    tries = ATTEMPTS[key]
    assert [t["try"] for t in tries] == [1, 2, 3]
    assert delays_ms[0] <= delays_ms[1]  # exponential: the n-th wait lies in [c/2, c], the next in [c, 2c]
    for before, after, delay in zip(tries, tries[1:], delays_ms, strict=False):
        # Each retry was scheduled no earlier than the failure plus the computed delay.
        assert after["score"] >= before["failed_at"] + delay


def test_a_job_failing_every_try_is_failed_with_its_error_after_max_tries(client: TestClient,
                                                                         own_worker: Callable[..., OwnWorker]) -> None:
    w = own_worker()
    key = uuid.uuid4().hex
    job_id = client.portal.call(lambda: w.queue.enqueue("flaky", key, 99))
    info = wait_for(client, job_id, queue=w.queue)
    max_tries = _services(client).settings.jobs_max_tries
    assert info.state == "failed" and info.tries == max_tries == len(ATTEMPTS[key])
    assert info.error == f"ConnectionError: vendor down ({max_tries})" and info.result is None


def test_a_refusal_of_the_domain_is_not_retried(client: TestClient, own_worker: Callable[..., OwnWorker]) -> None:
    w = own_worker()
    key = uuid.uuid4().hex
    job_id = client.portal.call(lambda: w.queue.enqueue("refused", key))
    info = wait_for(client, job_id, queue=w.queue)
    assert info.state == "failed" and info.tries == 1 and RUNS[key] == 1
    assert info.error == "InvalidField: Invalid field(s): symbol"


def test_the_same_job_id_twice_is_one_job(client: TestClient, own_worker: Callable[..., OwnWorker]) -> None:
    w = own_worker(start=False)
    key = uuid.uuid4().hex
    job_id = f"count-{key}"
    first = client.portal.call(lambda: w.queue.enqueue("counted", key, job_id=job_id))
    second = client.portal.call(lambda: w.queue.enqueue("counted", key, job_id=job_id))
    assert first == second == job_id
    queued = client.portal.call(w.queue.status, job_id)
    assert queued.state == "queued" and queued.tries == 0 and queued.scheduled_at is not None
    assert len(client.portal.call(lambda: w.queue.redis.queued_jobs(queue_name=w.queue.queue_name))) == 1
    run(w)
    assert wait_for(client, job_id, queue=w.queue).result == {"runs": 1}
    # Its result is kept (jobs_keep_result_seconds): the id is still taken.
    assert client.portal.call(lambda: w.queue.enqueue("counted", key, job_id=job_id)) == job_id
    assert client.portal.call(w.queue.status, job_id).state == "complete" and RUNS[key] == 1


def test_a_deferred_job_waits_for_its_time(client: TestClient, own_worker: Callable[..., OwnWorker]) -> None:
    w = own_worker(start=False)
    key = uuid.uuid4().hex
    job_id = client.portal.call(lambda: w.queue.enqueue("counted", key, defer_seconds=3600))
    info = client.portal.call(w.queue.status, job_id)
    assert info.state == "queued" and info.enqueued_at and info.scheduled_at
    assert (info.scheduled_at - info.enqueued_at).total_seconds() >= 3599



async def _start(task: WorkerTask) -> None:
    task.start()


def run(w: OwnWorker) -> None:
    assert w.task is not None
    w.client.portal.call(_start, w.task)


def test_the_history_refresh_is_a_daily_cron_job_planned_once_however_many_workers(client: TestClient) -> None:
    services = _services(client)
    name = f"test-cron:{uuid.uuid4().hex}"
    # A controlled clock: half a second before the planned run (far in the future, so it stays deferred).
    before = datetime(2030, 1, 7, 22, 29, 59, 500_000, UTC)

    async def plan_on_two_workers() -> list[str]:
        workers = [job_worker.build_worker(services, queue_name=name) for _ in range(2)]
        try:
            for w in workers:
                assert "refresh_history" in w.functions
                assert [(j.name, j.hour, j.minute) for j in w.cron_jobs
                        if j.name.startswith("refresh_history")] == [("refresh_history_daily", 22, 30)]
                await w.run_cron(before, 0.5)  # the first look only works out the next run
                await w.run_cron(before, 0.5)  # it is within the window: queue it
            return [job.job_id or "" for job in await workers[0].pool.queued_jobs(queue_name=name)]
        finally:
            for w in workers:
                await WorkerTask.close(w)

    queued = client.portal.call(plan_on_two_workers)
    planned = datetime(2030, 1, 7, 22, 30, 0, 123_456, UTC)
    assert queued == [f"refresh_history_daily:{round(planned.timestamp() * 1000)}"]
    queue = JobQueue(services.jobs.url, name)
    try:
        info = client.portal.call(queue.status, queued[0])
    finally:
        client.portal.call(queue.close)
    assert info.state == "queued" and info.function == "refresh_history_daily"
    assert info.scheduled_at == datetime(2030, 1, 7, 22, 30, 0, 123_000, UTC)


def test_the_in_process_worker_is_alive(client: TestClient) -> None:
    # arq's health record: written by a running worker of the app's queue (this app's, in-process).
    services = _services(client)
    key = services.settings.jobs_queue_name + ":health-check"
    assert client.portal.call(lambda: services.jobs.redis.exists(key)) == 1
