"""Drawdown of an equity curve, with the starting equity as the first peak.

A first-bar loss counts (calc-conventions.md; empyrical/quantstats/skfolio/riskfolio on returns):
equity [90, ...] from 100 is a 10 % drawdown at bar 0, not 0 %. Indices are 0-based positions in the
given series; -1 is the starting equity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from app.calc.risk.estimators import F64


@dataclass(frozen=True, slots=True)
class Spell:
    start: int  # first bar below the peak
    end: int  # last bar below the peak
    length: int  # bars below the peak
    recovered: bool


@dataclass(frozen=True, slots=True)
class Drawdown:
    max_drawdown: float  # compounded fraction, <= 0
    max_drawdown_money: float  # <= 0
    peak_index: int | None
    trough_index: int | None
    recovery_index: int | None  # first bar back at or above the peak; None while under water
    peak_equity: float
    trough_equity: float
    longest_underwater: Spell | None
    current_drawdown: float
    current_drawdown_money: float
    underwater_bars: int
    series: F64  # drawdown fraction per bar of the given series


def drawdown(equity: F64, initial_equity: float | None = None) -> Drawdown:
    offset = 0
    eq = equity
    if initial_equity is not None:
        eq = np.empty(equity.size + 1, dtype=np.result_type(initial_equity, equity))
        eq[0] = initial_equity
        eq[1:] = equity
        offset = 1
    peak = np.maximum.accumulate(eq)
    dd = eq / peak
    dd -= 1.0
    trough = int(dd.argmin())
    worst = float(dd[trough])
    current = float(dd[-1])
    money = float(eq[-1] - peak[-1])
    if worst >= 0:  # never below the running peak
        return Drawdown(0.0, 0.0, None, None, None, float(peak[-1]), float(peak[-1]), None, current, money, 0,
                        dd[offset:])
    below = dd < 0
    spell = _longest_spell(below)
    bars = int(np.count_nonzero(below[offset:]))
    top = peak[trough]
    # The peak of this drawdown: the last bar at the running maximum before the trough.
    peak_at = trough - int((eq[trough::-1] == top).argmax())
    after = np.flatnonzero(eq[trough + 1:] >= top)
    recovery = trough + 1 + int(after[0]) - offset if after.size else None
    longest = None
    if spell is not None:
        start, end, recovered = spell
        longest = Spell(start - offset, end - offset, end - start + 1, recovered)
    return Drawdown(worst, float(eq[trough] - top), peak_at - offset, trough - offset, recovery, float(top),
                    float(eq[trough]), longest, current, money, bars, dd[offset:])


def _longest_spell(below: NDArray[np.bool_]) -> tuple[int, int, bool] | None:
    """(first, last, recovered) of the longest run of True; the earliest of equal runs."""
    # Where below changes, with False on either side: up, down, up, down, ...
    padded = np.zeros(below.size + 2, dtype=np.bool_)
    padded[1:-1] = below
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    if not edges.size:
        return None
    starts, ends = edges[::2], edges[1::2]  # ends: one past the last bar of the run
    i = int((ends - starts).argmax())
    return int(starts[i]), int(ends[i] - 1), bool(ends[i] < below.size)
