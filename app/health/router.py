"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from typing import Literal

import orjson
from fastapi import APIRouter, Request
from pydantic import Field
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.responses import Response

from app.calc.instruments import CATALOGUE
from app.observability.metrics import READY
from app.schemas import OutModel
from app.services import services

router = APIRouter(tags=["health"])

State = Literal["ok", "down"]


class Liveness(OutModel):
    status: Literal["ok"]


class ReadinessChecks(OutModel):
    catalogue: State
    database: State
    redis: State


class Readiness(OutModel):
    status: Literal["ok", "degraded", "down"] = Field(
        description="down (503): no catalogue; degraded: the database or Redis is down, calculations still run")
    checks: ReadinessChecks
    buffered_calculations: int = Field(description="Calculations answered and not yet stored in the database")
    journaled_calculations: int = Field(description="Of those, rows in this worker's on-disk journals: all of "
                                                    "them, each is journaled before it answers")
    heavy_calculations_running: int = Field(description="Calculations running in the process pool now")


@router.get("/healthz", response_model=Liveness, summary="Liveness: the process serves requests")
async def healthz() -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


async def _database(request: Request) -> str:
    db = services(request.app).db
    try:
        async with asyncio.timeout(2):
            async with db.app_engine.connect() as conn:
                await conn.execute(text("select 1"))
        return "ok"
    except (TimeoutError, SQLAlchemyError, OSError):
        return "down"


@router.get("/readyz", response_model=Readiness, summary="Readiness: dependencies the calculation path needs",
            responses={503: {"model": Readiness, "description": "Down: calculations cannot be served (the same body)"}})
async def readyz(request: Request) -> Response:
    # Calculations need the in-memory catalogue. Without the database, known keys keep working from
    # the in-process cache and stored calculations stay buffered, so the service is degraded, not down.
    # Without Redis, limits run on per-worker buckets and the shared cache is bypassed: degraded.
    svc = services(request.app)
    hub = svc.redis
    checks = {"catalogue": "ok" if len(CATALOGUE) > 0 else "down",
              "database": await _database(request),
              "redis": "ok" if hub is not None and await hub.ping() else "down"}
    if checks["catalogue"] != "ok":
        status = "down"
    elif checks["database"] != "ok" or checks["redis"] != "ok":
        status = "degraded"
    else:
        status = "ok"
    for check, state in checks.items():  # the kubelet probes every few seconds: alert ForexRiskNotReady
        READY.labels(check).set(1 if state == "ok" else 0)
    # Every calculation not yet stored; each is in a journal on disk from the moment it answered.
    waiting = svc.recorder.waiting
    body = {"status": status, "checks": checks, "bufferedCalculations": waiting, "journaledCalculations": waiting,
            "heavyCalculationsRunning": svc.pool.in_flight}
    return Response(orjson.dumps(body), status_code=503 if status == "down" else 200, media_type="application/json")
