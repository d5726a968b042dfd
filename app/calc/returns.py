"""Daily return series from closing prices of several symbols, aligned on their common days."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from app.calc.errors import CalcError

RETURN_METHOD = "simple: r_t = close_t / close_(t-1) - 1, between consecutive common days"
ALIGNMENT = "the days on which every symbol has a close (the intersection); the last observations + 1 of them"


def aligned_simple_returns(closes: Mapping[str, tuple[Sequence[str], Sequence[float]]], observations: int,
                           field: str = "historyDays") -> tuple[list[str], dict[str, list[float]]]:
    """`closes`: symbol -> (ISO days ascending, closes). Keeps the days every symbol has, takes the last
    `observations` + 1 of them and returns (those days, symbol -> simple returns): return t belongs to
    day t + 1 of the days returned, the first day is the base close of the first return. Simple
    returns because that is what the risk engine's exposure mapping expects (P&L = exposure x return)."""
    common: set[str] | None = None
    for days, _ in closes.values():
        common = set(days) if common is None else common & set(days)
    shared = sorted(common or ())
    if len(shared) < 2:
        raise CalcError(field, f"The symbols' daily histories share {len(shared)} day(s); at least 2 are needed "
                        "for one return.", "TOO_FEW_OBSERVATIONS")
    used = shared[-(observations + 1):]
    out: dict[str, list[float]] = {}
    for symbol, (days, values) in closes.items():
        by_day = dict(zip(days, values, strict=True))
        prices = [by_day[d] for d in used]
        out[symbol] = [prices[t] / prices[t - 1] - 1.0 for t in range(1, len(prices))]
    return used, out
