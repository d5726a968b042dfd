"""Job ids that say whose job it is: `broker:<broker uuid>:<key>`.

A broker may read the status of its own jobs only (GET /api/v1/jobs/{jobId}); the owner is part of the id,
so nothing else has to be stored, or can drift, or expire at a different time than the job itself. Jobs
of the platform (cron runs, market history) have ids without the prefix: only the platform operator sees
them. A broker cannot claim another's job: the prefix it could write is its own broker id.
"""

from __future__ import annotations

import re
import uuid

PREFIX = "broker:"
KEY = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def broker_job_id(broker_id: uuid.UUID, key: str | None = None) -> str:
    """The id of a job run for `broker_id`. Pass a `key` naming the work (e.g. `report-2026-12-03`) to make
    enqueueing idempotent: the same key twice is one job (arq deduplicates by id)."""
    key = key if key is not None else uuid.uuid4().hex
    if not KEY.fullmatch(key):
        raise ValueError("a job key is 1 to 128 of A-Z a-z 0-9 . _ : -")
    return f"{PREFIX}{broker_id}:{key}"


def job_owner(job_id: str) -> uuid.UUID | None:
    """The broker a job id belongs to; None for the platform's own jobs."""
    if not job_id.startswith(PREFIX) or job_id[len(PREFIX) + 36:len(PREFIX) + 37] != ":":
        return None
    try:
        return uuid.UUID(job_id[len(PREFIX):len(PREFIX) + 36])
    except ValueError:
        return None
