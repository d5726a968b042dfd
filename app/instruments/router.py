"""Instrument catalogue: list and look up (symbol spelling normalised)."""

from __future__ import annotations

import math
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from app.calc.instruments import CATALOGUE, resolve
from app.calc.leverage import ESMA_CAPS, regulatory_cap
from app.instruments.schemas import CatalogueInstrument, InstrumentList
from app.jsonbody import StrictRoute

router = APIRouter(prefix="/api/v1/instruments", tags=["instruments"], route_class=StrictRoute)

_JURISDICTIONS = ("esma", "fca", "asic", "nfa")


def _with_caps(spec_public: dict[str, Any], symbol: str) -> dict[str, Any]:
    spec = CATALOGUE.get(symbol) or resolve(symbol)
    # inf = no cap because the product is not offered (NFA on a non-FX CFD): null, said so explicitly.
    caps = {j: regulatory_cap(spec, j) for j in _JURISDICTIONS}
    spec_public["leverageCaps"] = {j: (cap if math.isfinite(cap) else None) for j, cap in caps.items()}
    return spec_public


@router.get("", response_model=InstrumentList, summary="All catalogue instruments")
async def list_instruments(
    asset_class: Annotated[str | None, Query(alias="assetClass", description="e.g. fx-major, metal, index")] = None,
) -> Response:
    items = [_with_caps(s.public(), s.symbol) for s in CATALOGUE.values()
             if asset_class is None or s.asset_class == asset_class]
    return Response(orjson.dumps({"items": items, "count": len(items),
                                  "esmaLeverageCaps": ESMA_CAPS}), media_type="application/json")


@router.get("/{symbol}", response_model=CatalogueInstrument,
            summary="One instrument (EURUSD, EUR/USD and eur_usd all work)")
async def get_instrument(symbol: Annotated[str, Path(max_length=32)]) -> Response:
    spec = resolve(symbol, field="symbol")
    return Response(orjson.dumps(_with_caps(spec.public(), spec.symbol)), media_type="application/json")
