"""Widget endpoints: static assets, the loader's config (CORS for allowed origins only), session renewal,
the iframe document, the full page by slug and by the broker's own domain.

No global CORS middleware: only the config endpoint is called cross-origin (from the broker's page);
the iframe and the full page are same-origin with the API.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, Response

from app.auth.service import AuthService, require
from app.auth.widget_tokens import PREFIX
from app.deps import BrokerScope, CurrentPrincipal
from app.encoding import VARY, compress_once
from app.errors import AppError, NotFound, Unauthorized
from app.jsonbody import StrictRoute
from app.services import services
from app.widget.assets import ASSETS, IMMUTABLE, REVALIDATE, asset_response
from app.widget.schemas import LOCALES, WID_PATTERN, DisplayOptions, WidgetConfig, WidgetPreview, WidgetSession
from app.widget.service import PREFLIGHT_HEADERS, Document, WidgetService, public_base

router = APIRouter(tags=["widget"], route_class=StrictRoute)


async def get_widget(request: Request) -> WidgetService:
    return services(request.app).widget


Widget = Annotated[WidgetService, Depends(get_widget)]


async def display_options(
    locale: Annotated[str | None, Query(max_length=16, description="en, de, es, fr, it, pt, ja, zh or ar; "
                                                                  "otherwise the broker's default")] = None,
    theme: Annotated[str | None, Query(max_length=8, description="light, dark or auto")] = None,
    features: Annotated[str | None, Query(max_length=200, description="comma list: narrows the broker's "
                                                                      "enabled features, never widens")] = None,
    wid: Annotated[str | None, Query(pattern=WID_PATTERN, description="the loader's widget instance id")] = None,
) -> DisplayOptions:
    return DisplayOptions(locale=locale, theme=theme, features=features, wid=wid)


Display = Annotated[DisplayOptions, Depends(display_options)]
SlugQuery = Annotated[str, Query(min_length=1, max_length=63, description="the broker's slug")]
KeyQuery = Annotated[str, Query(min_length=1, max_length=200, description="a publishable key, fxr_live_pk_…")]


def _json(body: dict[str, Any], headers: dict[str, str]) -> Response:
    return Response(orjson.dumps(body), media_type="application/json", headers=headers)


def _html(doc: Document, request: Request) -> Response:
    # A document is sent once (it carries a fresh session): gzipped per request, a few kB at level 6.
    body, coding = compress_once(doc.html.encode(), request.headers.get("accept-encoding"))
    headers = {**doc.headers, "Vary": VARY}
    if coding is not None:
        headers["Content-Encoding"] = coding
    return Response(body, media_type="text/html; charset=utf-8", headers=headers)


def _cors(origin: str) -> dict[str, str]:
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


# --- static files ----------------------------------------------------------------------------------
def _asset(name: str, request: Request, *, cross_origin: bool = False, cache_control: str | None = None) -> Response:
    asset = ASSETS.get(name)
    if asset is None:
        raise NotFound(f"No widget file {name}.")
    return asset_response(asset, request.headers.get("if-none-match"), request.headers.get("accept-encoding"),
                          cross_origin=cross_origin, **({"cache_control": cache_control} if cache_control else {}))


@router.get("/widget.js", include_in_schema=False)
async def loader(request: Request) -> Response:
    return _asset("widget.js", request, cross_origin=True)


@router.get("/widget/app.js", include_in_schema=False)
async def app_js(request: Request) -> Response:
    return _asset("app.js", request)


@router.get("/widget/app.css", include_in_schema=False)
async def app_css(request: Request) -> Response:
    return _asset("app.css", request)


@router.get("/widget/i18n/{locale}.json", include_in_schema=False)
async def translations(locale: Annotated[str, Path(max_length=16)], request: Request) -> Response:
    if locale not in LOCALES:  # the name never reaches the file system unless it is one of ours
        raise NotFound(f"No translations for {locale!r}.")
    return _asset(f"i18n/{locale}.json", request)


@router.get("/widget/v/{digest}/{name:path}", include_in_schema=False)
async def hashed_asset(digest: Annotated[str, Path(pattern=r"^[0-9a-f]{20}$")],
                       name: Annotated[str, Path(max_length=40)], request: Request) -> Response:
    """A file under its content hash (the frame document's links): cached for a year, `immutable`."""
    asset = ASSETS.get(name)  # only the fixed list of names; anything else is None
    if asset is None:
        raise NotFound(f"No widget file {name}.")
    return _asset(name, request, cache_control=IMMUTABLE if asset.digest == digest else REVALIDATE)


# --- the loader's config, CORS, and session renewal ------------------------------------------------
@router.get("/api/v1/widget/config", response_model=WidgetConfig,
            summary="Widget config and a 15-minute session, for a page on the broker's allowedOrigins")
async def widget_config(broker: SlugQuery, key: KeyQuery, widget: Widget, request: Request,
                        locale: Annotated[str | None, Query(max_length=16, description="the language of `title`; "
                                                            "otherwise the broker's default")] = None) -> Response:
    try:
        # Each answer mints a session: limited per client address like a full page (not per broker: a
        # busy broker's site loads its widget on every page view).
        await services(request.app).ratelimits.page_issuance(request, None)
        body, origin = await widget.config(request, broker, key, locale)
    except AppError as exc:
        # An error answered to one of the broker's own pages carries CORS, so its developer sees the real
        # problem (a revoked key, a rate limit) instead of an opaque CORS failure; other origins get none.
        allowed = await widget.allowed_origin(broker, request.headers.get("origin"))
        if allowed is not None:
            exc.headers = {**(exc.headers or {}), **_cors(allowed), "Access-Control-Expose-Headers": "X-Request-ID"}
        raise
    return _json(body, {**_cors(origin), "Cache-Control": "no-store", "Access-Control-Expose-Headers": "X-Request-ID"})


@router.options("/api/v1/widget/config", status_code=204, include_in_schema=False)
async def widget_config_preflight(broker: SlugQuery, key: KeyQuery, widget: Widget, request: Request) -> Response:
    # Same checks as the GET: an origin not on the allow-list never sees Access-Control-Allow-Origin.
    _, _, origin = await widget.check(broker, key, request.headers.get("origin"))
    return Response(status_code=204, headers={**_cors(origin), **PREFLIGHT_HEADERS})


@router.post("/api/v1/widget/session", response_model=WidgetSession,
             summary="Renew a widget session (Authorization: Bearer fxw_…): same broker, key and origin")
async def renew_session(widget: Widget, request: Request) -> Response:
    token = AuthService.credential(request)
    if not token or not token.startswith(PREFIX):
        raise Unauthorized("Send the widget session token: `Authorization: Bearer fxw_…`.")
    return _json(await widget.renew(token), {"Cache-Control": "no-store"})


@router.post("/api/v1/brokers/{broker_id}/widget/preview", response_model=WidgetPreview, tags=["widget"],
             summary="The widget as the broker's saved config shows it, for a preview on our own origin (the console)")
async def preview_session(target: BrokerScope, principal: CurrentPrincipal, widget: Widget,
                          request: Request) -> Response:
    require(principal, "brokers:read:own")
    session = await widget.preview_session(target)
    base = public_base(request, services(request.app).settings.public_base_url)
    return _json({"frameUrl": f"{base}/widget/preview?{urlencode({'session': session['token']})}",
                  "expiresAt": session["expiresAt"]}, {"Cache-Control": "no-store"})


# --- documents ---------------------------------------------------------------------------------------
@router.get("/widget/frame", response_class=HTMLResponse, include_in_schema=False)
async def frame(session: Annotated[str, Query(min_length=1, max_length=4096)], options: Display,
                widget: Widget, request: Request) -> Response:
    return _html(await widget.frame(session, options), request)


@router.get("/widget/preview", response_class=HTMLResponse, include_in_schema=False)
async def preview(session: Annotated[str, Query(min_length=1, max_length=4096)], options: Display,
                  widget: Widget, request: Request) -> Response:
    base = public_base(request, services(request.app).settings.public_base_url)
    own = urlsplit(base)
    return _html(await widget.preview(session, options, f"{own.scheme}://{own.netloc}"), request)


@router.get("/w/{slug}", response_class=HTMLResponse, include_in_schema=False)
async def full_page(slug: Annotated[str, Path(max_length=63)], options: Display, widget: Widget,
                    request: Request) -> Response:
    await services(request.app).ratelimits.page_issuance(request, f"slug:{slug}")
    return _html(await widget.page_for_slug(slug, options), request)


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def broker_domain(request: Request, options: Display, widget: Widget) -> Response:
    await services(request.app).ratelimits.page_issuance(request, f"host:{request.headers.get('host', '')}")
    doc = await widget.page_for_host(request.headers.get("host"), options)
    if doc is None:
        raise HTTPException(status_code=404)  # what `/` answered before: the plain 404 problem
    return _html(doc, request)
