"""`/api/v1/auth/sso/{brokerSlug}/{login,callback}` and `/api/v1/auth/exchange`: federated sign-in."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import Field
from starlette.responses import RedirectResponse

from app.auth import exchange as exchange_service
from app.auth import sso
from app.auth.schemas import TokenPair
from app.deps import Auth
from app.jsonbody import StrictRoute
from app.schemas import ApiModel

router = APIRouter(tags=["auth"], route_class=StrictRoute)


class ExchangeRequest(ApiModel):
    token: Annotated[str, Field(min_length=1, max_length=8192,
                                description="A JWT the broker's server signed HS256 with one of its secret keys")]


@router.get("/api/v1/auth/sso/{broker_slug}/login", status_code=302, response_class=RedirectResponse,
            summary="Start single sign-on: redirects to the broker's identity provider")
async def sso_login(broker_slug: str, auth: Auth) -> RedirectResponse:
    return RedirectResponse(await sso.login_url(auth, broker_slug), status_code=302,
                            headers={"Cache-Control": "no-store"})


@router.get("/api/v1/auth/sso/{broker_slug}/callback", response_model=TokenPair,
            summary="The identity provider's redirect back: returns our token pair")
async def sso_callback(broker_slug: str, auth: Auth, request: Request,
                       code: Annotated[str | None, Query()] = None, state: Annotated[str | None, Query()] = None,
                       error: Annotated[str | None, Query()] = None) -> dict[str, Any]:
    # No length limits here: any malformed state or code is an SSO failure (400, audited), not a 422.
    return await sso.callback(auth, broker_slug, code, state, error, request)


@router.post("/api/v1/auth/exchange", response_model=TokenPair,
             summary="Exchange an end-user token the broker's server signed for our token pair")
async def exchange(req: ExchangeRequest, auth: Auth, request: Request) -> dict[str, Any]:
    return await exchange_service.exchange(auth, req.token, request)
