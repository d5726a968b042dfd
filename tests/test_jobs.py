"""Background jobs (app.jobs, app.worker): arq on the embedded Redis, the worker in the API process."""

from __future__ import annotations

import time
import uuid
from datetime import UTC
from typing import Any

from fastapi.testclient import TestClient

from app.jobs.queue import JobInfo
from app.services import Services

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
