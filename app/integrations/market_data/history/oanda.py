"""OANDA v20 daily candles, as documented.

Docs: https://developer.oanda.com/rest-live-v20/instrument-ep/ (GET /v3/instruments/{instrument}/candles)
and the v20 definitions of Candlestick / CandlestickData (https://developer.oanda.com/rest-live-v20/instrument-df/);
machine-readable: the v20 OpenAPI spec as packaged in https://docs.rs/crate/oanda-v20-openapi/ (CandlesResponse,
Candlestick, CandlestickData).

Request: `Authorization: Bearer <token>`, `Accept-Datetime-Format: RFC3339`, query `granularity=D`, `price=M`
(midpoint candles), `from`/`to` (RFC 3339), `dailyAlignment=17`, `alignmentTimezone=America/New_York` (the FX
day closes at 17:00 New York; these are OANDA's defaults, sent explicitly). At most 5,000 candles per call.
Answer: `{"instrument": "EUR_USD", "granularity": "D", "candles": [{"time": "...Z", "complete": true,
"volume": 123, "mid": {"o": "1.1", "h": "1.2", "l": "1.0", "c": "1.15"}}]}`, prices as decimal strings.
Errors: `{"errorMessage": "..."}` with 400 (bad instrument or parameter), 401 (token), 404, 405; 429 when
rate-limited; 5xx.

Base URLs: https://api-fxtrade.oanda.com (live) or https://api-fxpractice.oanda.com (practice).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx

from app.integrations.market_data.history.bars import DailyBar, ProviderMalformed
from app.integrations.market_data.history.http import get_json

MAX_CANDLES = 5000  # per request (documented limit)
CHUNK_DAYS = 4000  # calendar days per request: at most ~2,900 trading days, well below MAX_CANDLES


def instrument_name(symbol: str) -> str:
    return f"{symbol[:3]}_{symbol[3:]}"


def trading_day(candle_time: str) -> date:
    """A daily candle aligned at 17:00 New York opens at 21:00 or 22:00 UTC (summer/winter) the evening
    before the trading day it belongs to; seven hours later is always that day."""
    t = datetime.fromisoformat(candle_time)  # 3.11 reads "Z" and nine fractional digits
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return (t.astimezone(UTC) + timedelta(hours=7)).date()


def _refusal(resp: httpx.Response) -> str:
    try:
        msg = resp.json().get("errorMessage")
    except (ValueError, AttributeError):
        msg = None
    return str(msg)[:200] if msg else resp.reason_phrase


class OandaHistory:
    name = "oanda"
    label = "OANDA v20 daily midpoint candles (17:00 New York close)"
    development = False
    close_only = False
    available_until: date | None = None  # live: windows end at the last complete day

    def __init__(self, client: httpx.AsyncClient, base_url: str, token: str, *, retries: int = 2,
                 backoff: float = 0.5) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.retries = retries
        self.backoff = backoff

    def covers(self, symbol: str) -> bool:
        return len(symbol) == 6 and symbol.isalpha()

    async def fetch_daily(self, symbol: str, start: date, end: date) -> list[DailyBar]:
        bars: list[DailyBar] = []
        chunk_start = start
        while chunk_start <= end:
            chunk_end = min(end, chunk_start + timedelta(days=CHUNK_DAYS - 1))
            bars.extend(await self._fetch(symbol, chunk_start, chunk_end))
            chunk_start = chunk_end + timedelta(days=1)
        return bars

    async def _fetch(self, symbol: str, start: date, end: date) -> list[DailyBar]:
        # The candle of trading day D opens the evening before (UTC); noon bounds catch exactly D in [start, end].
        params = {"granularity": "D", "price": "M", "dailyAlignment": "17", "alignmentTimezone": "America/New_York",
                  "from": _rfc3339(start - timedelta(days=1)), "to": _rfc3339(end)}
        url = f"{self.base_url}/v3/instruments/{instrument_name(symbol)}/candles"
        body = await get_json(self.client, self.name, url,
                              params=params, headers={"Authorization": f"Bearer {self.token}",
                                                      "Accept-Datetime-Format": "RFC3339"},
                              retries=self.retries, backoff=self.backoff, refusal=_refusal)
        return parse_candles(body, symbol, start, end)


def _rfc3339(d: date) -> str:
    return datetime.combine(d, time(12), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_candles(body: Any, symbol: str, start: date, end: date) -> list[DailyBar]:
    """The documented CandlesResponse to bars; incomplete candles (the day still trading) are left out."""
    candles = body.get("candles") if isinstance(body, dict) else None
    if not isinstance(candles, list):
        raise ProviderMalformed("oanda", "answer has no 'candles' list")
    out: dict[date, DailyBar] = {}
    for i, c in enumerate(candles):
        try:
            if not c["complete"]:
                continue
            mid = c["mid"]
            o, h, lo, cl = (float(mid[k]) for k in ("o", "h", "l", "c"))
            day = trading_day(str(c["time"]))
        except (KeyError, TypeError, ValueError):
            raise ProviderMalformed("oanda", f"candle {i} is not in the documented format") from None
        if not all(0 < v < 1e9 for v in (o, h, lo, cl)) or lo > h or not lo <= o <= h or not lo <= cl <= h:
            raise ProviderMalformed("oanda", f"candle {i} has inconsistent prices")
        if start <= day <= end:
            out[day] = DailyBar(symbol, day, o, h, lo, cl, "oanda")
    return [out[d] for d in sorted(out)]
