"""Response of GET /api/v1/jobs/{jobId}."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.jobs.queue import JobState
from app.schemas import Omitted, OutModel


class JobOut(OutModel):
    job_id: str
    state: JobState
    function: str
    tries: int  # tries started so far; a retry waiting for its backoff counts the failed ones
    enqueued_at: datetime
    scheduled_at: datetime = Omitted("Queued: when it may (next) start (a retry waits for its backoff)")
    started_at: datetime = Omitted("The last try's start")
    finished_at: datetime = Omitted("Complete or failed: when")
    result: Any = Omitted("Complete: what the job returned")
    error: str = Omitted("Failed: the error of its last try")
