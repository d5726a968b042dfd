"""`/api/v1/auth/*` and the JWKS."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.auth import login as service
from app.auth.schemas import (
    JwkSet,
    LoginRequest,
    LogoutRequest,
    MfaConfirm,
    MfaConfirmed,
    MfaEnrolment,
    RefreshRequest,
    TokenPair,
)
from app.auth.service import AuthService
from app.deps import Auth, EnrollingPrincipal
from app.jsonbody import StrictRoute
from app.login import cookies

router = APIRouter(tags=["auth"], route_class=StrictRoute)


def _to_cookie(pair: dict[str, Any], auth: AuthService, request: Request, response: Response) -> dict[str, Any]:
    """A browser session: the refresh token goes into the httpOnly cookie and out of the body."""
    cookies.set_session(response, request, pair.pop("refreshToken"), auth.secrets.pepper,
                        max_age=auth.settings.refresh_absolute_days * 86400,
                        production=auth.settings.environment == "production")
    return pair


@router.post("/api/v1/auth/token", response_model=TokenPair, response_model_exclude_none=True,
             summary="Log in with email and password (and a TOTP code once MFA is on)")
async def token(req: LoginRequest, auth: Auth, request: Request, response: Response) -> dict[str, Any]:
    pair = await service.login(auth, req, request)
    return _to_cookie(pair, auth, request, response) if req.refresh_cookie else pair


@router.post("/api/v1/auth/refresh", response_model=TokenPair, response_model_exclude_none=True,
             summary="Exchange a refresh token for a new pair (rotation with reuse detection); "
                     "without one in the body, the session cookie's (X-CSRF-Token required)")
async def refresh(req: RefreshRequest, auth: Auth, request: Request, response: Response) -> dict[str, Any]:
    if req.refresh_token is not None:
        return await service.refresh_tokens(auth, req.refresh_token, request)
    pair = await service.refresh_tokens(auth, cookies.refresh_from_cookie(request, auth.secrets.pepper), request)
    return _to_cookie(pair, auth, request, response)


@router.post("/api/v1/auth/logout", status_code=204,
             summary="Revoke the refresh token's whole session (or, with everywhere, every session of its user)")
async def logout(req: LogoutRequest, auth: Auth, request: Request) -> Response:
    out = Response(status_code=204)
    token = req.refresh_token
    if token is None:
        token = cookies.refresh_from_cookie(request, auth.secrets.pepper)
        cookies.clear_session(out, request, auth.settings.environment == "production")
    if req.everywhere:
        await service.logout_everywhere(auth, token, request)
    else:
        await service.logout(auth, token, request)
    return out


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
