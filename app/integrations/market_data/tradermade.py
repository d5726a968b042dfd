"""TraderMade live rates: bid, ask and mid of many currency pairs in one call.

Documented format (TraderMade REST API documentation, live endpoint:
https://marketdata.tradermade.com/docs/restful-api , also https://tm-marketdata.com/documentation ; the
same shape is used in TraderMade's own tutorial code and published integrations, e.g. Chainlink's
tradermade adapter fixtures):

    GET {base}/api/v1/live?currency=EURUSD,GBPUSD&api_key=<key>

    200 {"endpoint": "live",
         "quotes": [{"ask": 1.16198, "base_currency": "EUR", "bid": 1.16196, "mid": 1.16197,
                     "quote_currency": "USD"}, ...],      CFDs carry "instrument" instead of the two codes
         "requested_time": "Fri, 05 Nov 2021 17:11:25 GMT",
         "timestamp": 1636132286}                         Unix seconds of the prices
    A refused request (bad key, plan, limit) is 401/403/429 with a JSON message body. Not confirmed from
    the documentation we could read: the exact error body ({"message": ...} or {"errors": ...}, both
    handled) and the per-pair error entry ({"error": ..., "instrument": ..., "message": ...} in place of
    the prices, read as "this pair is absent").

The one `timestamp` of the answer is the time of every quote in it.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from app.integrations.market_data.quotes import MarketQuote, ProviderBadResponse
from app.integrations.market_data.resilience import VendorHttp
from app.integrations.market_data.vendor_common import currency_pairs, price


def tradermade_error(response: httpx.Response, doc: Any) -> str | None:
    if not isinstance(doc, dict):
        return None
    if isinstance(doc.get("message"), str) and "quotes" not in doc:
        return str(doc["message"])
    errors = doc.get("errors")
    if errors:
        return errors if isinstance(errors, str) else str(errors)[:300]
    return None


class TraderMadeProvider:
    name = "tradermade"
    shared = True  # public market prices: one cached copy serves every broker

    def __init__(self, http: VendorHttp, base_url: str, api_key: str, freshness_seconds: float = 60.0,
                 timeout_seconds: float = 2.0) -> None:
        self.http = http
        self.url = f"{base_url.rstrip('/')}/api/v1/live"
        self._api_key = api_key
        self.freshness_seconds = freshness_seconds
        self.timeout_seconds = timeout_seconds

    async def fetch(self, symbols: Sequence[str], broker_id: uuid.UUID) -> dict[str, MarketQuote]:
        pairs = currency_pairs(tuple(symbols))
        if not pairs:
            return {}
        doc = await self.http.get_json(self.name, self.url,
                                       params={"currency": ",".join(pairs), "api_key": self._api_key},
                                       headers={"Accept": "application/json"}, timeout=self.timeout_seconds,
                                       error_detail=tradermade_error)
        if not isinstance(doc, dict) or not isinstance(doc.get("quotes"), list):
            raise ProviderBadResponse("expected an object with a `quotes` list")
        stamp = doc.get("timestamp")
        if isinstance(stamp, bool) or not isinstance(stamp, int | float) or not math.isfinite(stamp):
            raise ProviderBadResponse(f"`timestamp` {stamp!r} is not Unix seconds")
        when = datetime.fromtimestamp(stamp, UTC)
        out: dict[str, MarketQuote] = {}
        for i, entry in enumerate(doc["quotes"]):
            if not isinstance(entry, dict):
                raise ProviderBadResponse(f"quotes[{i}] is not an object")
            if "error" in entry:
                continue  # the vendor cannot price this one: absent
            code = entry.get("instrument")
            if isinstance(entry.get("base_currency"), str) and isinstance(entry.get("quote_currency"), str):
                code = entry["base_currency"] + entry["quote_currency"]
            if code not in pairs:
                continue
            bid = price(entry.get("bid"), f"quotes[{i}].bid")
            ask = price(entry.get("ask"), f"quotes[{i}].ask")
            mid = price(entry["mid"], f"quotes[{i}].mid") if entry.get("mid") is not None else None
            if bid > ask or (mid is not None and not bid <= mid <= ask):
                raise ProviderBadResponse(f"quotes[{i}]: bid {bid}, mid {mid}, ask {ask} out of order")
            out[code] = MarketQuote(symbol=code, bid=bid, ask=ask, time=when, source=self.name, given_mid=mid)
        return out
