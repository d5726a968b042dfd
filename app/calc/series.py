"""Deterministic series: equity path of a fixed-fractional sequence, Wilder ATR."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from app.calc.numbers import r10


def outcome_path(start: float, risk_pct: float, reward_to_risk: float, outcomes: Sequence[str],
                 compounding: bool) -> dict[str, Any]:
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
    return {
        "balancePath": path,
        "finalBalance": r10(balance),
        "returnPercentage": r10((balance / start - 1.0) * 100.0),
        "maxDrawdownPercentage": r10(max_dd * 100.0),
        "trades": len(outcomes),
        "wins": sum(1 for o in outcomes if o == "W"),
    }


def wilder_update(previous: float, true_range: float, period: int) -> float:
    return ((period - 1) * previous + true_range) / period


def atr_series(high: Sequence[float], low: Sequence[float], close: Sequence[float], period: int) -> dict[str, Any]:
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
    return {"trueRange": [r10(float(x)) for x in tr], "atr": atr, "latestAtr": atr[-1], "period": period}
