"""Wire shapes of the report routes."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from app.schemas import ApiModel, OutModel

# JSON has no date type: an ISO string is parsed (not strict, unlike the numbers of the API).
ReportDay = Annotated[date, Field(strict=False, ge=date(2000, 1, 1), le=date(2100, 12, 31))]


class ComplianceRequest(ApiModel):
    """The period, in whole UTC days, both ends included."""

    from_day: ReportDay = Field(alias="from", description="First day of the period (ISO date, UTC)")
    to_day: ReportDay = Field(alias="to", description="Last day of the period, included (ISO date, UTC)")


class ReportDownloads(OutModel):
    csv: str = Field(description="Every calculation (inputs, results, flags) and audit entry of the period")
    pdf: str = Field(description="The summary, changes, logins, who did what and the first calculations")


class ReportOut(OutModel):
    id: uuid.UUID
    broker_id: uuid.UUID
    kind: Literal["compliance"] = "compliance"
    status: Literal["queued", "running", "complete", "failed"]
    from_day: date = Field(alias="from")
    to_day: date = Field(alias="to")
    job_id: str = Field(description="The background job (GET /api/v1/jobs/{jobId})")
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    summary: dict[str, Any] = Field(description="Counts: calculations by kind and flag, logins, changes, actors")
    downloads: ReportDownloads | None = Field(description="Once complete")
