"""`/api/v1/auth/*` and the JWKS."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.auth import login as service
from app.auth.schemas import (
    JwkSet,
    LoginRequest,
    MfaConfirm,
    MfaConfirmed,
    MfaEnrolment,
    RefreshRequest,
    TokenPair,
)
from app.deps import Auth, EnrollingPrincipal
from app.jsonbody import StrictRoute

router = APIRouter(tags=["auth"], route_class=StrictRoute)


@router.post("/api/v1/auth/token", response_model=TokenPair,
             summary="Log in with email and password (and a TOTP code once MFA is on)")
async def token(req: LoginRequest, auth: Auth, request: Request) -> dict[str, Any]:
    return await service.login(auth, req, request)


@router.post("/api/v1/auth/refresh", response_model=TokenPair,
             summary="Exchange a refresh token for a new pair (rotation with reuse detection)")
async def refresh(req: RefreshRequest, auth: Auth, request: Request) -> dict[str, Any]:
    return await service.refresh_tokens(auth, req.refresh_token, request)


@router.post("/api/v1/auth/logout", status_code=204, summary="Revoke the refresh token's whole session")
async def logout(req: RefreshRequest, auth: Auth, request: Request) -> Response:
    await service.logout(auth, req.refresh_token, request)
    return Response(status_code=204)


@router.post("/api/v1/auth/mfa/enrol", response_model=MfaEnrolment, summary="Start TOTP enrolment")
async def mfa_enrol(principal: EnrollingPrincipal, auth: Auth, request: Request) -> dict[str, Any]:
    return await service.mfa_enrol(auth, principal, request)


@router.post("/api/v1/auth/mfa/confirm", response_model=MfaConfirmed,
             summary="Confirm TOTP with a first code; returns recovery codes once")
async def mfa_confirm(req: MfaConfirm, principal: EnrollingPrincipal, auth: Auth, request: Request) -> dict[str, Any]:
    return await service.mfa_confirm(auth, principal, req.code, request)


@router.get("/.well-known/jwks.json", response_model=JwkSet, summary="Public keys that verify our access tokens")
async def jwks(auth: Auth) -> dict[str, Any]:
    return auth.signer.jwks()
