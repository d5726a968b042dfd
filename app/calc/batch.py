"""Vectorised position size: the same arithmetic as app/calc/sizing.py on arrays, for batches.

Every input is a float64 (or bool) array of one length; the caller has already validated the items
and resolved the instrument specs, conversion factors and leverage per item.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from app.calc.numbers import STEP_EPSILON

F = NDArray[np.float64]
B = NDArray[np.bool_]

# Flag bits; names as in app/calc/flags.py.
CAPPED = 1
RAISED = 2
REFUSED = 4
EXCEEDS = 8
ABOVE_10 = 16
LEV_CAPPED = 32
DIRECTION_ASSUMED = 64
MARGIN_OVER_BALANCE = 128
# In the order the single-request path raises them.
FLAG_BITS = {DIRECTION_ASSUMED: "DIRECTION_ASSUMED", CAPPED: "CAPPED_AT_MAX_LOT",
             RAISED: "RAISED_TO_MIN_LOT_RISK_EXCEEDS_TARGET", REFUSED: "BELOW_MIN_LOT_NO_TRADE",
             EXCEEDS: "RISK_EXCEEDS_TARGET", ABOVE_10: "RISK_ABOVE_10_PERCENT", LEV_CAPPED: "LEVERAGE_CAPPED",
             MARGIN_OVER_BALANCE: "MARGIN_EXCEEDS_BALANCE"}


def r10(x: F) -> F:
    """numpy twin of app.calc.numbers.r10 (round(x * 1e10) / 1e10 with the same guard)."""
    y = x * 1e10
    out: F = np.where(np.abs(y) < 9e15, np.rint(y) / 1e10 + 0.0, x)
    return out


def floor_steps(value: F, step: F, scale: F) -> F:
    """Floor to the lot step with the 1e-9-step snap; scale = 10**decimals(step)."""
    n = np.floor(value / step + STEP_EPSILON)
    out: F = np.where(value > 0, np.rint(n * step * scale) / scale, 0.0)
    return out


@dataclass(slots=True)
class SizeArrays:
    balance: F
    entry: F
    distance: F          # stop distance in price units (as used in the loss)
    target: F            # target risk in account currency
    commission: F        # one way, per lot
    xq: F                # X(quote -> account) for the loss
    contract: F
    pip: F
    lot_step: F
    step_scale: F
    min_lot: F
    max_lot: F
    raise_min: B         # minLotPolicy raise (else refuse)
    margin_per_lot: F


def position_sizes(a: SizeArrays) -> tuple[dict[str, F], NDArray[np.int64]]:
    """(result columns, flag bits per item)."""
    value_per_lot = a.distance * a.contract * a.xq
    loss_per_lot = value_per_lot + 2.0 * a.commission
    exact = a.target / loss_per_lot
    lots = floor_steps(exact, a.lot_step, a.step_scale)
    flags = np.zeros(lots.shape, dtype=np.int64)
    capped = lots > a.max_lot
    lots = np.where(capped, a.max_lot, lots)
    flags |= np.where(capped, CAPPED, 0)
    below = lots < a.min_lot
    raised = below & a.raise_min
    lots = np.where(raised, a.min_lot, np.where(below, 0.0, lots))
    flags |= np.where(raised, RAISED, 0) | np.where(below & ~a.raise_min, REFUSED, 0)
    max_loss = lots * loss_per_lot
    flags |= np.where((max_loss > a.target * (1 + 1e-9)) & ~raised, EXCEEDS, 0)
    risk_pct = max_loss / a.balance * 100.0
    flags |= np.where(risk_pct > 10.0, ABOVE_10, 0)
    pip_value_per_lot = a.pip * a.contract * a.xq
    margin = lots * a.margin_per_lot
    flags |= np.where(margin > a.balance * (1 + 1e-12), MARGIN_OVER_BALANCE, 0)
    return {
        "lots": lots,
        "exact": exact,
        "loss_per_lot": loss_per_lot,
        "max_loss": max_loss,
        "risk_pct": risk_pct,
        "pip_value_per_lot": pip_value_per_lot,
        "pip_value": pip_value_per_lot * lots,
        "margin": margin,
        "margin_pct": margin / a.balance * 100.0,
    }, flags
