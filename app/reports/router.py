"""Compliance reports: `POST /api/v1/brokers/{brokerId}/reports/compliance`, `GET …/reports`,
`GET …/reports/{reportId}`, `GET …/reports/{reportId}/download?format=csv|pdf`."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import FileResponse, RedirectResponse, Response

from app.auth.service import require
from app.deps import BrokerScope, CurrentPrincipal
from app.jsonbody import StrictRoute
from app.reports import service
from app.reports.schemas import ComplianceRequest, ReportOut
from app.services import services

router = APIRouter(tags=["reports"], route_class=StrictRoute)
PERMISSION = "audit:read:own"  # a report is the audit log and the calculations of a period


@router.post("/api/v1/brokers/{broker_id}/reports/compliance", status_code=202, response_model=ReportOut,
             summary="Start a compliance report for a period (a background job)")
async def request_compliance(target: BrokerScope, spec: ComplianceRequest, principal: CurrentPrincipal,
                             request: Request) -> dict[str, Any]:
    require(principal, PERMISSION)
    return await service.request_compliance(services(request.app), principal, target, spec, request)


@router.get("/api/v1/brokers/{broker_id}/reports", response_model=list[ReportOut],
            summary="The broker's reports, newest first")
async def list_reports(target: BrokerScope, principal: CurrentPrincipal, request: Request,
                       limit: Annotated[int, Query(ge=1, le=200)] = 50) -> list[dict[str, Any]]:
    require(principal, PERMISSION)
    return await service.list_reports(services(request.app), target, limit)


@router.get("/api/v1/brokers/{broker_id}/reports/{report_id}", response_model=ReportOut,
            summary="A report's status, summary and download links")
async def get_report(target: BrokerScope, report_id: uuid.UUID, principal: CurrentPrincipal,
                     request: Request) -> dict[str, Any]:
    require(principal, PERMISSION)
    return service.out(await service.get_report(services(request.app), target, report_id))


@router.get("/api/v1/brokers/{broker_id}/reports/{report_id}/download",
            summary="The report as CSV or PDF (a file, or a redirect to a short-lived storage URL)",
            responses={200: {"content": {"text/csv": {}, "application/pdf": {}}},
                       307: {"description": "Redirect to the file in object storage"}})
async def download(target: BrokerScope, report_id: uuid.UUID, principal: CurrentPrincipal, request: Request,
                   format: Annotated[Literal["csv", "pdf"], Query()] = "pdf") -> Response:
    require(principal, PERMISSION)
    where, name, media_type = await service.locate(services(request.app), target, report_id, format)
    if isinstance(where, Path):
        return FileResponse(where, media_type=media_type, filename=name)
    return RedirectResponse(where, status_code=307)
