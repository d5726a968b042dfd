"""Rounding helpers shared by the scalar and the vectorised paths."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

# A quotient like 0.29 / 0.01 is 28.999999999999996 in binary floating point; a value this close to
# the next whole step is that step (calc-conventions: "epsilon snap of 1e-9 steps").
STEP_EPSILON = 1e-9


def step_decimals(step: float) -> int:
    """Decimal places of a lot step (0.01 -> 2, 1e-05 -> 5, 1 -> 0)."""
    exp = Decimal(repr(step)).normalize().as_tuple().exponent
    return max(0, -int(exp))


def floor_to_step(value: float, step: float) -> float:
    if value <= 0:
        return 0.0
    n = math.floor(value / step + STEP_EPSILON)
    return round(n * step, step_decimals(step))


def nearest_step(value: float, step: float) -> float:
    if value <= 0:
        return 0.0
    n = math.floor(value / step + 0.5 + STEP_EPSILON)
    return round(n * step, step_decimals(step))


def half_up(x: float, decimals: int) -> float:
    """x rounded half-up (away from zero at a tie) to `decimals` places, from its shortest decimal form."""
    return float(Decimal(repr(x)).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP))


def finite_or_none(x: float) -> float | None:
    """A figure for the response: null where it cannot be represented (inf, nan), the reason flagged by the caller."""
    return float(x) if math.isfinite(x) else None


def r10(x: float) -> float:
    """Drop binary-float noise (6.6000000000000005 -> 6.6) for output. Same arithmetic as
    numpy.round(x, 10), so the batch path returns identical numbers."""
    y = x * 1e10
    if abs(y) >= 9e15 or not math.isfinite(y):
        return x
    return round(y) / 1e10 + 0.0  # + 0.0: -1e-12 rounds to -0.0, and no answer shows a negative zero


def s15(x: float) -> float:
    """Drop binary-float noise relative to the value (15 significant digits) for ratios and
    probabilities, where r10's absolute 1e-10 would cost precision (1/3 -> 0.3333333333)."""
    return float(f"{x:.15g}") + 0.0 if math.isfinite(x) else x


def no_negative_zero(obj: Any) -> Any:
    """The answer with every -0.0 replaced by 0.0 (dicts and lists walked in place; -0.0 + 0.0 is 0.0)."""
    if isinstance(obj, float):
        return obj + 0.0
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, float | dict | list):
                obj[k] = no_negative_zero(v)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            if isinstance(v, float | dict | list):
                obj[i] = no_negative_zero(v)
    return obj
