"""Compliance reports: request (a row, then its job), read (status and downloads), build (the job's work).

The row in `compliance_reports` is the truth about a report; the job (app.reports.tasks) moves it from
queued to running to complete (or failed after its last try). The job id is the broker's job id of the
report (`broker:<broker>:compliance-report-<report>`), so enqueueing twice is one job, and a report whose
job was lost (Redis down at the request, or flushed) is enqueued again when it is read.
"""

from __future__ import annotations

import hashlib
import tempfile
import uuid
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import anyio
import structlog
from starlette.requests import HTTPConnection

from app.audit import service as audit
from app.auth.principal import Principal
from app.errors import Conflict, InvalidField, NotFound
from app.jobs.ownership import broker_job_id
from app.models import ComplianceReport
from app.reports import pdf, repository
from app.reports.content import ReportWriter
from app.reports.schemas import ComplianceRequest
from app.services import Services

log = structlog.get_logger(__name__)
TASK = "generate_compliance_report"
FORMATS = {"csv": "text/csv; charset=utf-8", "pdf": "application/pdf"}


def job_id_of(broker_id: uuid.UUID, report_id: uuid.UUID) -> str:
    return broker_job_id(broker_id, f"compliance-report-{report_id}")


def file_name(row: ComplianceReport, fmt: str) -> str:
    return f"compliance-{row.period_start.isoformat()}-{row.period_end.isoformat()}-{str(row.id)[:8]}.{fmt}"


def storage_key(row: ComplianceReport, fmt: str) -> str:
    return f"reports/{row.broker_id}/{row.id}/{file_name(row, fmt)}"


def out(row: ComplianceReport) -> dict[str, Any]:
    base = f"/api/v1/brokers/{row.broker_id}/reports/{row.id}/download"
    return {"id": row.id, "brokerId": row.broker_id, "kind": "compliance", "status": row.status,
            "from": row.period_start, "to": row.period_end, "jobId": row.job_id, "requestedAt": row.created_at,
            "startedAt": row.started_at, "finishedAt": row.finished_at, "error": row.error, "summary": row.summary,
            "downloads": {"csv": f"{base}?format=csv", "pdf": f"{base}?format=pdf"} if row.status == "complete"
            else None}


def _bounds(first: date, last: date) -> tuple[datetime, datetime]:
    return datetime.combine(first, time(0), UTC), datetime.combine(last + timedelta(days=1), time(0), UTC)


async def request_compliance(services: Services, principal: Principal, broker_id: uuid.UUID,
                             spec: ComplianceRequest, conn: HTTPConnection) -> dict[str, Any]:
    if spec.to_day < spec.from_day:
        raise InvalidField("to", "the period ends before it starts", "before_start")
    days = (spec.to_day - spec.from_day).days + 1
    if days > services.settings.reports_max_period_days:
        raise InvalidField("to", f"at most {services.settings.reports_max_period_days} days per report",
                           "period_too_long")
    report_id = uuid.uuid4()
    job_id = job_id_of(broker_id, report_id)
    async with services.db.tenant(broker_id) as s:
        row = ComplianceReport(id=report_id, broker_id=broker_id, period_start=spec.from_day,
                               period_end=spec.to_day, status="queued", job_id=job_id,
                               requested_by_type=principal.actor_type, requested_by=principal.actor_id)
        s.add(row)
        await audit.record(s, broker_id=broker_id, action="report.requested", conn=conn, principal=principal,
                           target_type="compliance_report", target_id=report_id,
                           details={"from": spec.from_day.isoformat(), "to": spec.to_day.isoformat()})
        await s.commit()
        await s.refresh(row)
    # Enqueued after the commit: the job always finds its row. Should this fail (Redis down: a 503), the
    # row stays queued and reading it enqueues it again.
    await services.jobs.enqueue(TASK, str(broker_id), str(report_id), job_id=job_id)
    return out(row)


async def get_report(services: Services, broker_id: uuid.UUID, report_id: uuid.UUID) -> ComplianceReport:
    async with services.db.tenant(broker_id) as s:
        row = await repository.get(s, report_id)
    if row is None:
        raise NotFound("No report with this id.")
    if row.status == "queued" and (await services.jobs.status(row.job_id)).state == "not_found":
        await services.jobs.enqueue(TASK, str(broker_id), str(report_id), job_id=row.job_id)
    return row


async def list_reports(services: Services, broker_id: uuid.UUID, limit: int) -> list[dict[str, Any]]:
    async with services.db.tenant(broker_id) as s:
        return [out(r) for r in await repository.recent(s, limit)]


async def locate(services: Services, broker_id: uuid.UUID, report_id: uuid.UUID,
                 fmt: str) -> tuple[Path | str, str, str]:
    """Where the file is (a path, or a presigned URL), its download name and its content type."""
    row = await get_report(services, broker_id, report_id)
    if row.status != "complete":
        raise Conflict(f"The report is {row.status}; its files are there once it is complete.")
    key = row.files[fmt]["key"]
    return await services.storage.locate(key, file_name(row, fmt), FORMATS[fmt]), file_name(row, fmt), FORMATS[fmt]


def _digest(path: Path) -> dict[str, Any]:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return {"bytes": path.stat().st_size, "sha256": h.hexdigest()}


async def build(services: Services, broker_id: uuid.UUID, report_id: uuid.UUID, last_try: bool) -> dict[str, Any]:
    """The job's work: gather the period, write CSV and PDF, store them, mark the row complete. Idempotent:
    a complete report is left as it is; a rerun after a crash builds it again under the same keys."""
    db, storage = services.db, services.storage
    async with db.tenant(broker_id) as s:
        row = await repository.get(s, report_id, lock=True)
        if row is None:
            raise NotFound(f"no report {report_id} for broker {broker_id}")
        if row.status == "complete":
            return {"reportId": str(report_id), "status": "complete", "summary": row.summary}
        row.status, row.started_at, row.error = "running", datetime.now(UTC), None
        await s.commit()
    try:
        with tempfile.TemporaryDirectory(prefix="forexrisk-report-") as tmp:
            csv_path, pdf_path = Path(tmp) / "report.csv", Path(tmp) / "report.pdf"
            start, end = _bounds(row.period_start, row.period_end)
            async with db.tenant(broker_id) as s:
                broker = await repository.broker_name(s, broker_id)
                with csv_path.open("w", encoding="utf-8-sig", newline="") as f:
                    writer = ReportWriter(f, services.settings.reports_pdf_max_rows)
                    async for calc in repository.calculations(s, start, end):
                        writer.calculation(calc)
                    async for entry in repository.audit_entries(s, start, end):
                        writer.audit(entry)
            generated = datetime.now(UTC)
            # ReportLab is CPU work: off the event loop (the worker may share it with the API).
            await anyio.to_thread.run_sync(lambda: pdf.render(
                pdf_path, broker=broker, report_id=str(report_id), period=(row.period_start, row.period_end),
                generated=generated, seen=writer.seen))
            files = {}
            for fmt, path in (("csv", csv_path), ("pdf", pdf_path)):
                key = storage_key(row, fmt)
                await storage.put_file(key, path, FORMATS[fmt])
                files[fmt] = {"key": key, "storage": storage.name, **_digest(path)}
        summary = writer.seen.summary()
    except Exception as exc:
        async with db.tenant(broker_id) as s:
            failed = await repository.get(s, report_id, lock=True)
            if failed is not None:
                failed.error = f"{type(exc).__name__}: {exc}"[:500]
                if last_try:
                    failed.status, failed.finished_at = "failed", datetime.now(UTC)
                await s.commit()
        raise
    async with db.tenant(broker_id) as s:
        done = await repository.get(s, report_id, lock=True)
        assert done is not None
        done.status, done.finished_at, done.summary, done.files = "complete", datetime.now(UTC), summary, files
        await audit.record(s, broker_id=broker_id, action="report.generated", conn=None, actor_type="system",
                           target_type="compliance_report", target_id=report_id,
                           details={"calculations": summary["calculations"]["total"],
                                    "auditEntries": summary["auditEntries"], "storage": storage.name})
        await s.commit()
    log.info("compliance_report_generated", broker_id=str(broker_id), report_id=str(report_id))
    return {"reportId": str(report_id), "status": "complete", "summary": summary}
