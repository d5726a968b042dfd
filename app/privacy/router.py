"""GDPR: `GET /api/v1/users/{userId}/export`, `POST /api/v1/users/{userId}/erase`."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request

from app.deps import CurrentPrincipal
from app.jsonbody import StrictRoute
from app.privacy.schemas import ErasureOut, UserExport
from app.services import services

router = APIRouter(tags=["privacy"], route_class=StrictRoute)


@router.get("/api/v1/users/{user_id}/export", response_model=UserExport,
            summary="Everything held about a user (GDPR access and portability), as JSON")
async def export_user(user_id: uuid.UUID, principal: CurrentPrincipal, request: Request) -> dict[str, Any]:
    return await services(request.app).privacy.export(principal, user_id, request)


@router.post("/api/v1/users/{user_id}/erase", response_model=ErasureOut,
             summary="Erase a user's personal data (GDPR): pseudonymised everywhere, audited")
async def erase_user(user_id: uuid.UUID, principal: CurrentPrincipal, request: Request) -> dict[str, Any]:
    return await services(request.app).privacy.erase(principal, user_id, request)
