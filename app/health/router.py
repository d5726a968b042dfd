"""Liveness and readiness."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process serves requests")
async def healthz() -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


@router.get("/readyz", summary="Readiness: dependencies the calculation path needs")
async def readyz(request: Request) -> Response:
    # The calculation service has no external dependency yet; the instrument catalogue is in memory.
    checks = {"catalogue": "ok" if request.app.state.catalogue_size > 0 else "down"}
    status = "ok" if all(v == "ok" for v in checks.values()) else "down"
    return Response(orjson.dumps({"status": status, "checks": checks}), status_code=200 if status == "ok" else 503,
                    media_type="application/json")
