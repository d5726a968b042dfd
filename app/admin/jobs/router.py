"""GET /api/v1/jobs/{jobId}: where a background job stands (queued, in progress, complete with its result,
failed with its error). Results are kept `jobs_keep_result_seconds` (a day by default).

A broker reads its own jobs only: their ids carry the broker (app.jobs.ownership), and any other id is a 404
with the same body as an unknown one, before Redis is even asked. The platform operator (SUPERADMIN, with
MFA) reads any job, the platform's own (cron runs, market history) included.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from app.admin.jobs.schemas import JobOut
from app.auth.service import require
from app.deps import CurrentPrincipal
from app.errors import NotFound
from app.jobs.ownership import job_owner
from app.jsonbody import StrictRoute
from app.services import services

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"], route_class=StrictRoute)

JobId = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:-]+$",
                            description="The id the job was enqueued with")]


@router.get("/{job_id}", response_model=JobOut, response_model_exclude_none=True,
            summary="A background job's state, tries, times and result or error")
async def get_job(job_id: JobId, principal: CurrentPrincipal, request: Request) -> dict[str, Any]:
    require(principal, "brokers:read:own")
    if not principal.is_superadmin and job_owner(job_id) != principal.broker_id:
        raise NotFound("No job with this id.")
    info = await services(request.app).jobs.status(job_id)
    if info.state == "not_found":
        raise NotFound("No job with this id.")
    return {name: value for name, value in asdict(info).items() if value is not None}  # Omitted: left out
