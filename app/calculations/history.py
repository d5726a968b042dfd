"""Stored calculations of the caller's broker: `GET /api/v1/calculations[/{calculationId}]`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import select

from app.auth.principal import Principal
from app.auth.service import require
from app.deps import CurrentPrincipal, TenantDB
from app.errors import NotFound
from app.jsonbody import StrictRoute
from app.models import Calculation
from app.schemas import OutModel
from app.services import services

router = APIRouter(prefix="/api/v1/calculations", tags=["stored calculations"], route_class=StrictRoute)


class StoredCalculation(OutModel):
    calculation_id: uuid.UUID
    kind: str
    created_at: datetime
    user_id: uuid.UUID | None
    api_key_id: uuid.UUID | None
    input_hash: str
    input: dict[str, Any] | None = None
    result: dict[str, Any] | None = None


class CalculationPage(OutModel):
    items: list[StoredCalculation]
    next_before: str | None


def _out(row: Calculation, full: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"calculationId": row.id, "kind": row.kind, "createdAt": row.created_at,
                           "userId": row.user_id, "apiKeyId": row.api_key_id, "inputHash": row.input_hash}
    if full:
        out["input"] = row.input
        out["result"] = row.result
    return out


def _reader(principal: Principal) -> uuid.UUID | None:
    """None: the whole broker's calculations; a user id: only that user's (END_USER)."""
    if principal.can("calculations:read:own"):
        return None
    require(principal, "calculations:read:self")
    return principal.user_id


async def _flush(request: Request) -> None:
    await services(request.app).recorder.flush()


@router.get("", response_model=CalculationPage, summary="The broker's stored calculations, newest first")
async def list_calculations(
    principal: CurrentPrincipal, session: TenantDB, request: Request,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[datetime | None, Query(description="Cursor: createdAt of the last item seen")] = None,
    kind: Annotated[str | None, Query(max_length=40)] = None,
    full: Annotated[bool, Query(description="Include input and result")] = False,
) -> dict[str, Any]:
    only_user = _reader(principal)
    await _flush(request)
    stmt = select(Calculation).order_by(Calculation.created_at.desc(), Calculation.id.desc()).limit(limit)
    if only_user is not None:
        stmt = stmt.where(Calculation.user_id == only_user)
    if before is not None:
        stmt = stmt.where(Calculation.created_at < before)
    if kind is not None:
        stmt = stmt.where(Calculation.kind == kind)
    rows = (await session.execute(stmt)).scalars().all()
    nxt = rows[-1].created_at.isoformat() if len(rows) == limit else None
    return {"items": [_out(r, full) for r in rows], "nextBefore": nxt}


@router.get("/{calculation_id}", response_model=StoredCalculation, summary="One stored calculation with its input")
async def get_calculation(calculation_id: uuid.UUID, principal: CurrentPrincipal, session: TenantDB,
                          request: Request) -> dict[str, Any]:
    only_user = _reader(principal)
    await _flush(request)
    row = await session.get(Calculation, calculation_id)
    if row is None or (only_user is not None and row.user_id != only_user):
        raise NotFound("No calculation with this id.")
    return _out(row, True)
