"""Instrument catalogue: list and look up (symbol spelling normalised)."""

from __future__ import annotations

import hashlib
import math
from functools import cache
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from app.calc.instruments import CATALOGUE, resolve
from app.calc.leverage import ESMA_CAPS, regulatory_cap
from app.encoding import VARY, Precompressed
from app.instruments.schemas import CatalogueInstrument, InstrumentList
from app.jsonbody import StrictRoute

router = APIRouter(prefix="/api/v1/instruments", tags=["instruments"], route_class=StrictRoute)

_JURISDICTIONS = ("esma", "fca", "asic", "nfa")
# The catalogue is part of the release: an hour in any cache, then revalidated with the ETag.
CACHE_CONTROL = "public, max-age=3600"


def _with_caps(spec_public: dict[str, Any], symbol: str) -> dict[str, Any]:
    spec = CATALOGUE.get(symbol) or resolve(symbol)
    # inf = no cap because the product is not offered (NFA on a non-FX CFD): null, said so explicitly.
    caps = {j: regulatory_cap(spec, j) for j in _JURISDICTIONS}
    spec_public["leverageCaps"] = {j: (cap if math.isfinite(cap) else None) for j, cap in caps.items()}
    return spec_public


@cache
def _listing(asset_class: str | None) -> tuple[Precompressed, str]:
    """The answer for one filter, built and compressed once (the set of asset classes is small; an unknown
    one is an empty list, cached like the others: at most one entry per distinct query string of 64 chars)."""
    items = [_with_caps(s.public(), s.symbol) for s in CATALOGUE.values()
             if asset_class is None or s.asset_class == asset_class]
    body = orjson.dumps({"items": items, "count": len(items), "esmaLeverageCaps": ESMA_CAPS})
    return Precompressed.of(body), hashlib.sha256(body).hexdigest()[:20]


_CLASSES = frozenset(s.asset_class for s in CATALOGUE.values())


@router.get("", response_model=InstrumentList, summary="All catalogue instruments (ETag; gzip or br on request)")
async def list_instruments(
    request: Request,
    asset_class: Annotated[str | None, Query(alias="assetClass", max_length=64,
                                             description="e.g. fx-major, metal, index")] = None,
) -> Response:
    listing, digest = _listing(asset_class if asset_class is None or asset_class in _CLASSES else "")
    body, coding = listing.pick(request.headers.get("accept-encoding"))
    etag = f'"{digest}"' if coding is None else f'"{digest}-{coding}"'
    headers = {"Cache-Control": CACHE_CONTROL, "ETag": etag, "Vary": VARY}
    tags = {t.strip().removeprefix("W/").strip('"').split("-")[0] for t in
            (request.headers.get("if-none-match") or "").split(",")}
    if digest in tags:
        return Response(status_code=304, headers=headers)
    if coding is not None:
        headers["Content-Encoding"] = coding
    return Response(body, media_type="application/json", headers=headers)


@router.get("/{symbol}", response_model=CatalogueInstrument,
            summary="One instrument (EURUSD, EUR/USD and eur_usd all work)")
async def get_instrument(symbol: Annotated[str, Path(max_length=32)]) -> Response:
    spec = resolve(symbol, field="symbol")
    return Response(orjson.dumps(_with_caps(spec.public(), spec.symbol)), media_type="application/json")
