"""`GET /api/v1/quotes?symbols=EURUSD,USDJPY`: the broker's quote chain, as the calculations see it.

For secret and publishable keys and widget sessions, admitted and charged like a calculation (one admission
path: app.ratelimit.gate); the widget reads it to show the prices it will use.
"""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import Field

from app.auth.service import require
from app.calc.instruments import normalise_symbol, split_pair
from app.errors import InvalidField
from app.schemas import OutModel
from app.services import services

router = APIRouter(prefix="/api/v1", tags=["market data"])
MAX_SYMBOLS = 50
SYMBOLS_PER_UNIT = 10  # one upstream batch of a vendor serves about this many; cache hits cost the same


class QuoteOut(OutModel):
    symbol: str
    source: str | None = Field(description="The provider that priced it; null when none had it fresh")
    bid: float | None
    ask: float | None
    mid: float | None
    time: str | None = Field(description="When the provider priced it (UTC)")
    stale: bool = Field(description="true: no provider of the chain had it fresh (then no price is given)")
    live: bool | None = Field(default=None, description="false for a dated snapshot: not a live price")
    label: str | None = None
    providers_tried: list[str] | None = Field(default=None, description="For a missing quote: each provider "
                                              "and its outcome")


class QuotesOut(OutModel):
    providers: list[str] = Field(description="The broker's quote chain, in the order tried")
    quotes: list[QuoteOut]


def parse_symbols(raw: str) -> list[str]:
    out: list[str] = []
    for i, part in enumerate(p.strip() for p in raw.split(",")):
        if not part:
            continue
        sym = normalise_symbol(part)
        if split_pair(sym) is None:
            raise InvalidField("symbols", f"'{part}' (item {i}) is not a currency pair (expected e.g. EURUSD).")
        if sym not in out:
            out.append(sym)
    if not out:
        raise InvalidField("symbols", "Give one or more symbols, comma-separated (symbols=EURUSD,USDJPY).")
    if len(out) > MAX_SYMBOLS:
        raise InvalidField("symbols", f"At most {MAX_SYMBOLS} symbols per call (got {len(out)}).")
    return out


@router.get("/quotes", response_model=QuotesOut, summary="Quotes from the broker's chain of price sources",
            description=f"Bid, ask, mid, time and source per symbol, from the broker's own feed, the configured "
                        f"vendors, or (in development) a dated snapshot. Up to {MAX_SYMBOLS} symbols; one unit per "
                        f"{SYMBOLS_PER_UNIT} symbols.")
async def quotes(request: Request,
                 symbols: Annotated[str, Query(max_length=2000, description="Comma-separated, e.g. EURUSD,USDJPY")]
                 ) -> QuotesOut:
    svc = services(request.app)
    caller = await svc.ratelimits.admit(request)
    require(caller.principal, "calc:run")
    wanted = parse_symbols(symbols)
    await svc.ratelimits.charge(request, caller, math.ceil(len(wanted) / SYMBOLS_PER_UNIT))
    market = svc.market_data
    providers = market.chain_for(caller.broker.config)
    found = await market.lookup(caller.principal.broker_id, providers, wanted)
    out: list[QuoteOut] = []
    for sym in wanted:
        q = found.quotes.get(sym)
        if q is None:
            tried = [f"{a.provider}: {a.outcome}" for a in found.missing.get(sym, [])]
            out.append(QuoteOut(symbol=sym, source=None, bid=None, ask=None, mid=None, time=None, stale=True,
                                providers_tried=tried))
            continue
        out.append(QuoteOut(symbol=sym, source=q.source, bid=q.bid, ask=q.ask, mid=q.mid,
                            time=q.time.isoformat().replace("+00:00", "Z"), stale=False, live=q.live, label=q.label))
    return QuotesOut(providers=list(providers), quotes=out)
