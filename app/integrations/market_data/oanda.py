"""OANDA v20 REST pricing: bid and ask of many instruments in one call.

Documented format (developer.oanda.com, "Pricing Endpoints" and "Troubleshooting & Errors":
https://developer.oanda.com/rest-live-v20/pricing-ep/ ,
https://developer.oanda.com/rest-live-v20/troubleshooting-errors/ ; schema ClientPrice in OANDA's v20
OpenAPI spec, https://github.com/oanda/v20-openapi):

    GET {base}/v3/accounts/{accountID}/pricing?instruments=EUR_USD,USD_JPY
    Authorization: Bearer <token>
    Accept-Datetime-Format: RFC3339

    200 {"time": "...", "prices": [{"type": "PRICE", "instrument": "EUR_USD",
         "time": "2016-06-22T18:41:36.201836422Z", "status": "tradeable", "tradeable": true,
         "bids": [{"price": "1.13015", "liquidity": 10000000}, ...],
         "asks": [{"price": "1.13028", "liquidity": 10000000}, ...],
         "closeoutBid": "1.13000", "closeoutAsk": "1.13043"}]}
    errors: {"errorMessage": "Insufficient authorization to perform request."} with 400/401/403/404/405;
    429 when the connection's request rate is exceeded.

Prices are decimal strings; the first entry of `bids`/`asks` is the top of book. An instrument with an
empty side (no liquidity) is treated as not quoted. `tradeable: false` (market closed) keeps its last
price and time: the staleness rule decides whether it can be used.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import httpx

from app.integrations.market_data.quotes import MarketQuote, ProviderBadResponse
from app.integrations.market_data.resilience import VendorHttp
from app.integrations.market_data.vendor_common import currency_pairs, price, rfc3339


def oanda_error(response: httpx.Response, doc: Any) -> str | None:
    if isinstance(doc, dict) and isinstance(doc.get("errorMessage"), str):
        return str(doc["errorMessage"])
    return None


class OandaProvider:
    name = "oanda"
    shared = True  # public market prices: one cached copy serves every broker

    def __init__(self, http: VendorHttp, base_url: str, account_id: str, token: str,
                 freshness_seconds: float = 30.0, timeout_seconds: float = 2.0) -> None:
        self.http = http
        self.url = f"{base_url.rstrip('/')}/v3/accounts/{account_id}/pricing"
        self._headers = {"Authorization": f"Bearer {token}", "Accept-Datetime-Format": "RFC3339"}
        self.freshness_seconds = freshness_seconds
        self.timeout_seconds = timeout_seconds

    async def fetch(self, symbols: Sequence[str], broker_id: uuid.UUID) -> dict[str, MarketQuote]:
        pairs = currency_pairs(tuple(symbols))
        if not pairs:
            return {}
        by_instrument = {f"{base}_{quote}": symbol for symbol, (base, quote) in pairs.items()}
        doc = await self.http.get_json(self.name, self.url, params={"instruments": ",".join(by_instrument)},
                                       headers=self._headers, timeout=self.timeout_seconds, error_detail=oanda_error)
        if not isinstance(doc, dict) or not isinstance(doc.get("prices"), list):
            raise ProviderBadResponse("expected an object with a `prices` list")
        out: dict[str, MarketQuote] = {}
        for i, entry in enumerate(doc["prices"]):
            if not isinstance(entry, dict):
                raise ProviderBadResponse(f"prices[{i}] is not an object")
            symbol = by_instrument.get(entry.get("instrument"))  # type: ignore[arg-type]
            if symbol is None:
                continue  # not asked for
            bids, asks = entry.get("bids"), entry.get("asks")
            if not isinstance(bids, list) or not isinstance(asks, list):
                raise ProviderBadResponse(f"prices[{i}]: `bids` and `asks` must be lists")
            if not bids or not asks or not isinstance(bids[0], dict) or not isinstance(asks[0], dict):
                continue  # no liquidity on a side: not a usable quote
            bid = price(bids[0].get("price"), f"prices[{i}].bids[0].price")
            ask = price(asks[0].get("price"), f"prices[{i}].asks[0].price")
            if bid > ask:
                raise ProviderBadResponse(f"prices[{i}]: bid {bid} above ask {ask}")
            when = rfc3339(entry.get("time"), f"prices[{i}].time")
            out[symbol] = MarketQuote(symbol=symbol, bid=bid, ask=ask, time=when, source=self.name)
        return out
