"""Deterministic series: equity path of a fixed-fractional sequence, Wilder ATR."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from app.calc.flags import Explain
from app.calc.numbers import r10


def outcome_path(start: float, risk_pct: float, reward_to_risk: float, outcomes: Sequence[str],
                 compounding: bool, ex: Explain | None = None) -> dict[str, Any]:
    """Balance after each trade when every trade risks risk_pct of the (current or starting) balance,
    a win pays reward_to_risk times the risk and a loss costs the risk."""
    f = risk_pct / 100.0
    balance = start
    path: list[float] = []
    peak, max_dd = start, 0.0
    for o in outcomes:
        risk = (balance if compounding else start) * f
        balance += risk * reward_to_risk if o == "W" else -risk
        path.append(r10(balance))
        peak = max(peak, balance)
        max_dd = max(max_dd, (peak - balance) / peak)
    out: dict[str, Any] = {
        "balancePath": path,
        "finalBalance": r10(balance),
        "returnPercentage": r10((balance / start - 1.0) * 100.0),
        "maxDrawdownPercentage": r10(max_dd * 100.0),
        "trades": len(outcomes),
        "wins": sum(1 for o in outcomes if o == "W"),
    }
    if ex:
        ex.add("trade", "risk = balance x riskPercentage / 100 (start balance without compounding); "
               "win: + risk x rewardToRisk, loss: - risk", {"compounding": compounding}, path)
    return out


def wilder_update(previous: float, true_range: float, period: int) -> float:
    return ((period - 1) * previous + true_range) / period


WILDER_FORMULA = "((period - 1) x previousAtr + trueRange) / period"


def wilder_step(previous: float, true_range: float, period: int, ex: Explain | None = None) -> dict[str, Any]:
    """One Wilder ATR update from the previous ATR and the latest true range."""
    value = r10(wilder_update(previous, true_range, period))
    if ex:
        ex.add("atr", WILDER_FORMULA, {"previousAtr": previous, "trueRange": true_range, "period": period}, value)
    return {"atr": value, "period": period, "method": "wilder", "formula": WILDER_FORMULA}


def atr_series(high: Sequence[float], low: Sequence[float], close: Sequence[float], period: int,
               ex: Explain | None = None) -> dict[str, Any]:
    """Wilder ATR: true range max(H-L, |H-C_prev|, |L-C_prev|); the first ATR is the mean of the first
    `period` true ranges, then ATR_t = ((n-1) ATR_{t-1} + TR_t) / n."""
    h, lo, c = (np.asarray(v, dtype=np.float64) for v in (high, low, close))
    prev = np.concatenate(([np.nan], c[:-1]))
    tr = np.fmax(h - lo, np.fmax(np.abs(h - prev), np.abs(lo - prev)))
    tr[0] = h[0] - lo[0]
    atr: list[float | None] = [None] * len(tr)
    value = float(tr[:period].mean())
    atr[period - 1] = r10(value)
    for i in range(period, len(tr)):
        value = wilder_update(value, float(tr[i]), period)
        atr[i] = r10(value)
    out: dict[str, Any] = {"trueRange": [r10(float(x)) for x in tr], "atr": atr, "latestAtr": atr[-1],
                           "period": period}
    if ex:
        ex.add("trueRange", "max(high - low, |high - previous close|, |low - previous close|)", {},
               out["trueRange"])
        ex.add("atr", "first: mean of `period` true ranges; then ((period - 1) x ATR + TR) / period",
               {"period": period}, out["latestAtr"])
    return out


def atr_close_to_close(close: Sequence[float], period: int, ex: Explain | None = None) -> dict[str, Any]:
    """Wilder ATR from closes only (high and low unknown, e.g. one reference fix a day): the true range of
    bar t is estimated as |C_t - C_(t-1)|, one per close after the first; then Wilder smoothing as above.
    A close-to-close range misses the intraday extremes, so it underestimates the true range."""
    c = np.asarray(close, dtype=np.float64)
    tr = np.abs(np.diff(c))
    atr: list[float | None] = [None] * len(tr)
    value = float(tr[:period].mean())
    atr[period - 1] = r10(value)
    for i in range(period, len(tr)):
        value = wilder_update(value, float(tr[i]), period)
        atr[i] = r10(value)
    out: dict[str, Any] = {"trueRange": [r10(float(x)) for x in tr], "atr": atr, "latestAtr": atr[-1],
                           "period": period, "trueRangeMethod": "close-to-close"}
    if ex:
        ex.add("trueRange", "|close - previous close| (high and low unknown), one per close after the first", {},
               out["trueRange"])
        ex.add("atr", "first: mean of `period` true ranges; then ((period - 1) x ATR + TR) / period",
               {"period": period}, out["latestAtr"])
    return out
