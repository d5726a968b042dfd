"""`/api/v1/auth/sso/{brokerSlug}/{login,callback}` and `/api/v1/auth/exchange`: federated sign-in."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Query, Request
from pydantic import Field
from starlette.responses import RedirectResponse, Response

from app.auth import exchange as exchange_service
from app.auth import sso
from app.auth.schemas import TokenPair
from app.deps import Auth
from app.errors import SsoError
from app.jsonbody import StrictRoute
from app.login import cookies
from app.schemas import ApiModel

router = APIRouter(tags=["auth"], route_class=StrictRoute)


class ExchangeRequest(ApiModel):
    token: Annotated[str, Field(min_length=1, max_length=8192,
                                description="A JWT the broker's server signed HS256 with one of its secret keys")]


@router.get("/api/v1/auth/sso/{broker_slug}/login", status_code=302, response_class=RedirectResponse,
            summary="Start single sign-on: redirects to the broker's identity provider")
async def sso_login(broker_slug: str, auth: Auth, request: Request,
                    client: Annotated[Literal["console"] | None, Query(
                        description="console: the callback ends in an admin console session (a cookie, then "
                                    "/admin) for this browser only, instead of answering the token pair")] = None,
                    ) -> RedirectResponse:
    url = await sso.login_url(auth, broker_slug)
    out = RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})
    if client == "console":
        state = parse_qs(urlsplit(url).query).get("state", [""])[0]
        cookies.bind_sso(out, request, auth.secrets.pepper, state, auth.settings.environment == "production")
    return out


@router.get("/api/v1/auth/sso/{broker_slug}/callback", response_model=TokenPair,
            summary="The identity provider's redirect back: returns our token pair (or, for a console login "
                    "started in this browser, a session cookie and a redirect to /admin)")
async def sso_callback(broker_slug: str, auth: Auth, request: Request,
                       code: Annotated[str | None, Query()] = None, state: Annotated[str | None, Query()] = None,
                       error: Annotated[str | None, Query()] = None) -> Any:
    # No length limits here: any malformed state or code is an SSO failure (400, audited), not a 422.
    if not cookies.sso_bound(request, auth.secrets.pepper, state):
        return await sso.callback(auth, broker_slug, code, state, error, request)
    production = auth.settings.environment == "production"
    try:
        pair = await sso.callback(auth, broker_slug, code, state, error, request)
    except SsoError:
        failed = RedirectResponse("/admin/#/signin?sso=failed", status_code=303)
        failed.delete_cookie(cookies.SSO_COOKIE, path=cookies.SSO_PATH)
        return failed
    out: Response = RedirectResponse("/admin/#/start", status_code=303, headers={"Cache-Control": "no-store"})
    cookies.set_session(out, request, pair["refreshToken"], auth.secrets.pepper,
                        max_age=auth.settings.refresh_absolute_days * 86400, production=production)
    out.delete_cookie(cookies.SSO_COOKIE, path=cookies.SSO_PATH)
    return out


@router.post("/api/v1/auth/exchange", response_model=TokenPair,
             summary="Exchange an end-user token the broker's server signed for our token pair")
async def exchange(req: ExchangeRequest, auth: Auth, request: Request) -> dict[str, Any]:
    return await exchange_service.exchange(auth, req.token, request)
