"""The prepare step of the routes that can take market history instead of series (issue 14, point 5).

- /atr with `symbol`: the symbol's daily bars fill high/low/close (close alone when the source has one
  price a day: the engine then estimates each true range close to close and flags it).
- /var without `returns`, /portfolio with `historyDays`: each position's pair gets its daily closes,
  aligned on the days every pair has, turned into simple returns (what the engine's delta mapping
  expects: P&L = exposure x return; app.calc.returns) and filled in as `returns`.

Request-given series always win: a request with candles or returns is left as it is. The provenance
(window, sources, labels) rides on the request privately; the engine names it in the answer, and the
result cache key includes it (HistoryRoute), so a cached answer never names the wrong source.
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any, TypeVar

import orjson

from app.auth.admission import Caller
from app.calc.errors import CalcError
from app.calc.instruments import normalise_symbol, resolve
from app.calc.returns import ALIGNMENT, RETURN_METHOD, aligned_simple_returns
from app.calculations.cache import ResultCache
from app.calculations.pipeline import CalcRoute
from app.calculations.risk import schemas as rs
from app.calculations.schemas import AtrRequest, PortfolioRequest
from app.integrations.market_data.history.service import HistorySeries
from app.services import Services

R = TypeVar("R", bound=rs.HistoryInputs)


class HistoryRoute(CalcRoute):
    """A route whose prepare step may fill series from the market history: the cache key adds where they
    came from (the filled series themselves are fields of the canonical request already)."""

    def cache_key(self, caller: Caller, req: Any, raw: bytes, explain: bool) -> str:
        used = req.history_used if isinstance(req, rs.HistoryInputs) else None
        body = self.adapter.dump_json(req)
        if used is not None:
            body += b"\n" + orjson.dumps(used, option=orjson.OPT_SORT_KEYS)
        return ResultCache.key(caller.principal.broker_id, caller.broker.config_version, self.kind, body, explain)


def _source(series: HistorySeries, bars: int, first: date, last: date) -> dict[str, Any]:
    return {"symbol": series.symbol, "source": series.source, "label": series.label,
            "development": series.development, "closeOnly": series.close_only,
            "firstDay": first.isoformat(), "lastDay": last.isoformat(), "bars": bars}


def _with_history(req: R, update: dict[str, Any], used: dict[str, Any]) -> R:
    out = req.model_copy(update=update)
    out._history = used
    return out


def _canonical(raw: str, field: str) -> str:
    try:
        return resolve(raw, None, field).symbol
    except CalcError:
        return normalise_symbol(raw)


async def prepare_atr(req: AtrRequest, caller: Caller, svc: Services) -> AtrRequest:
    if req.symbol is None:
        for name, value in (("days", req.days), ("from", req.from_day), ("to", req.to_day)):
            if value is not None:
                raise CalcError(name, f"{name} selects market history: give symbol with it.", "MISSING_FIELD")
        return req
    given = [n for n, v in (("high", req.high), ("low", req.low), ("close", req.close),
                            ("previousAtr", req.previous_atr), ("trueRange", req.true_range)) if v is not None]
    if given:
        raise CalcError("symbol", f"Give symbol (its daily history is used) or {', '.join(given)}, not both.",
                        "CONFLICTING_FIELDS")
    if req.days is not None and req.from_day is not None:
        raise CalcError("days", "Give days (the last N bars up to `to`) or from, not both.", "CONFLICTING_FIELDS")
    if req.from_day is not None and req.to_day is not None and req.from_day > req.to_day:
        raise CalcError("from", f"from ({req.from_day}) is after to ({req.to_day}).", "INVALID_WINDOW")
    if req.days is not None and req.days < req.period + 1:
        raise CalcError("days", f"period {req.period} needs at least {req.period + 1} daily bars.",
                        "TOO_FEW_OBSERVATIONS")
    symbol = resolve(req.symbol, None, "symbol").symbol
    count = None if req.from_day is not None else (req.days or max(svc.history.default_days, req.period + 1))
    series = await svc.history.daily(symbol, count=count, start=req.from_day, end=req.to_day,
                                     minimum=req.period + 1, field_name="symbol")
    bars = series.bars
    close_only = series.close_only or any(b.high is None or b.low is None for b in bars)
    update: dict[str, Any] = {"close": [b.close for b in bars]}
    if not close_only:
        update["high"] = [b.high for b in bars]
        update["low"] = [b.low for b in bars]
    used = {"from": bars[0].day.isoformat(), "to": bars[-1].day.isoformat(), "observations": len(bars),
            "development": series.development,
            "sources": [_source(series, len(bars), bars[0].day, bars[-1].day)]}
    return _with_history(req, update, used)


async def returns_from_history(svc: Services, positions: list[Any], days: int, end: date | None) -> \
        tuple[rs.ReturnsHistory, dict[str, Any]]:
    """`days` daily simple returns for every pair the positions hold, aligned on their common days."""
    wanted: dict[str, str] = {}  # symbol -> the field of its first position (errors name it)
    for i, p in enumerate(positions):
        f = f"positions[{i}].currencyPair"
        wanted.setdefault(_canonical(p.currency_pair, f), f)
    found = await asyncio.gather(*(svc.history.daily(sym, count=days + 1, end=end, minimum=2, field_name=f)
                                   for sym, f in wanted.items()))
    closes = {s.symbol: ([b.day.isoformat() for b in s.bars], [b.close for b in s.bars]) for s in found}
    days_used, series = aligned_simple_returns(closes, days)
    dates = days_used[1:]  # the day of each return
    first, last = date.fromisoformat(days_used[0]), date.fromisoformat(days_used[-1])
    used = {"from": first.isoformat(), "to": last.isoformat(), "observations": len(dates),
            "development": any(s.development for s in found),
            "sources": [_source(s, len(days_used), first, last) for s in found],
            "returnMethod": RETURN_METHOD, "alignment": ALIGNMENT}
    return rs.ReturnsHistory.model_construct(dates=dates, series=series), used


async def prepare_var(req: rs.VarRequest, caller: Caller, svc: Services) -> rs.VarRequest:
    if req.returns is not None:
        _no_window_with_returns(req.history_days, req.history_end)
        return req
    days = req.history_days or svc.history.default_days
    returns, used = await returns_from_history(svc, req.positions, days, req.history_end)
    return _with_history(req, {"returns": returns}, used)


async def prepare_portfolio(req: PortfolioRequest, caller: Caller, svc: Services) -> PortfolioRequest:
    if req.returns is not None:
        _no_window_with_returns(req.history_days, req.history_end)
        return req
    if req.history_days is None:
        if req.history_end is not None:
            raise CalcError("historyDays", "historyEnd needs historyDays (how many daily returns).", "MISSING_FIELD")
        return req  # no correlation asked for: the portfolio is computed at the stops alone, as before
    returns, used = await returns_from_history(svc, req.positions, req.history_days, req.history_end)
    return _with_history(req, {"returns": returns}, used)


def _no_window_with_returns(days: int | None, end: date | None) -> None:
    if days is not None or end is not None:
        field = "historyDays" if days is not None else "historyEnd"
        raise CalcError(field, f"returns are given, so no history is fetched: leave out {field} or returns.",
                        "CONFLICTING_FIELDS")
