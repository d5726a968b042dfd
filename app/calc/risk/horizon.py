"""VaR and ES over a horizon by exact revaluation, next to the linear (delta, sqrt-time) figures of var.py.

The linear figure maps an h-day move to P&L as exposure x return and scales the 1-day quantile by sqrt(h).
Over many days that is wrong in two ways: a price cannot fall below zero (a long position can lose at most
its exposure, the linear figure happily reports more), and a position quoted in another currency than the
account is converted at the moved rate. Here each position is revalued instead, as in stress.py:

    P&L = units x (P1 - P0) x X1 = E x (P1/P0 - 1) x (X1/X0)

with E the signed account-currency exposure, P1/P0 the h-day price relative of its pair and X1/X0 that of
its quote -> account conversion: the product of the relatives of the pairs on the conversion path that are
risk factors of the book (a pair used inverted contributes 1 / its relative); a pair of the path that is
not a risk factor (no returns series) is held at today's rate and named.

The input convention (calc-conventions.md, README "Risk and scenarios") is daily *simple* returns, and
`horizonDays` scales the dispersion by sqrt(h) and the mean by h. Sqrt-time aggregation holds for
i.i.d. log returns, which add over days; so the h-day move is taken in log space: a 1-day simple move x
becomes the h-day relative

    P1/P0 = (1 + x)^sqrt(h) = exp(sqrt(h) ln(1 + x))      (a move at or below -100 %: a price of zero)

and, where the method separates the mean m from the rest (1 + x = (1 + m)(1 + d)), (1 + m)^h (1 + d)^sqrt(h).
At h = 1 this is 1 + x exactly, so a book quoted in the account currency revalues to the linear figure at
one day (historical and Monte Carlo: to rounding); the two part as h grows or the moves get large.

Which scenarios are revalued:
- historical, monte-carlo: every scenario (observed day, simulated path); the same quantile and ES
  estimators as the linear figure are applied to the revalued P&L. This is the exact h-day VaR of the
  model "each day's move, compounded over sqrt(h) days".
- parametric, ewma, cornish-fisher: no scenarios, so the quantile scenario: the 1-day factor move along the
  book's covariance direction S w that gives the linear figure's loss (the most likely move with that
  loss under the normal model), d = -D S w / (w' S w), D = (linear VaR + mean P&L h) / sqrt(h); it is
  revalued with the rule above. For a one-factor book this is the exact quantile of the revalued P&L
  (revaluation is monotone in the move); the ES is the revaluation at the ES scenario (not the tail mean of
  the revalued P&L).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from app.calc.risk import estimators as est
from app.calc.risk.estimators import F64
from app.calc.risk.var import VarInput, VarResult, covariance, factor_exposures

# One hop of a position's quote -> account conversion that moves with a risk factor: (factor index, +1 when
# the amount is multiplied by the pair's rate, -1 when divided by it).
FactorLeg = tuple[int, int]
Basis = Literal["scenarios", "quantile-scenario"]

# The revalued figure differs "materially" from the linear one above this relative difference.
MATERIAL_DIFFERENCE = 0.01


@dataclass(frozen=True, slots=True)
class Revalued:
    var: F64  # (m,) per confidence; nan where it cannot be computed (a conversion through a price of zero)
    es: F64
    basis: Basis


def log_relative(moves: F64, horizon: float, mean: F64 | None = None) -> F64:
    """ln(P1/P0) over the horizon of 1-day simple moves (any shape, factors last): sqrt(h) ln(1 + x), or
    with the mean m split off, h ln(1 + m) + sqrt(h) (ln(1 + x) - ln(1 + m)) (both are ln(1 + x) at h = 1).
    -inf for a move at or below -100 %."""
    root_h = math.sqrt(horizon)
    with np.errstate(divide="ignore"):
        if mean is None:
            return np.asarray(root_h * np.log1p(np.maximum(moves, -1.0)), dtype=np.float64)
        log_mean = np.log1p(np.maximum(mean, -1.0))
        log_move = np.log1p(np.maximum(moves, -1.0))
        return np.asarray(horizon * log_mean + root_h * (log_move - log_mean), dtype=np.float64)


def revalue(log_rel: F64, factor_of: NDArray[np.intp], exposures: F64,
            legs: Sequence[Sequence[FactorLeg]]) -> F64:
    """Book P&L per scenario: sum_i E_i (P1/P0 - 1)_i (X1/X0)_i, from the h-day log relatives (N, f) of
    the factors. (P1/P0 - 1) = expm1(l) keeps full precision for small moves. Positions whose conversion
    does not move (quote = account, or held) sum per factor: one product."""
    moved = np.expm1(log_rel)  # (N, f): P1/P0 - 1 per factor
    converted = [i for i, position_legs in enumerate(legs) if position_legs]
    still = exposures.copy()
    still[converted] = 0.0
    pnl = moved @ np.bincount(factor_of, weights=still, minlength=log_rel.shape[1])
    with np.errstate(invalid="ignore", over="ignore"):
        for i in converted:
            conv_log = np.zeros(log_rel.shape[0])
            for factor, sign in legs[i]:
                conv_log += sign * log_rel[:, factor]
            pnl += exposures[i] * moved[:, factor_of[i]] * np.exp(conv_log)
    return np.asarray(pnl, dtype=np.float64)


def quantile_scenario(cov: F64, w: F64, mean: F64, loss: float, horizon: float) -> F64:
    """The 1-day dispersion move d (f,) along S w whose linear h-day P&L, w.(m h) + sqrt(h) w.d, is -loss."""
    sw = cov @ w
    wsw = float(w @ sw)
    if wsw <= 0:
        return np.zeros_like(w)
    dispersion_loss = (loss + float(w @ mean) * horizon) / math.sqrt(horizon)
    return np.asarray(-dispersion_loss * sw / wsw, dtype=np.float64)


def revalued_var(inp: VarInput, res: VarResult, legs: Sequence[Sequence[FactorLeg]]) -> Revalued:
    """The revalued VaR and ES at each confidence of inp, next to res (the linear figures)."""
    if inp.method in ("historical", "monte-carlo"):
        moves = inp.returns if inp.method == "historical" else res.extra["simulatedReturns"]
        pnl = revalue(log_relative(moves, inp.horizon), inp.factor_of, inp.exposures, legs)
        if not np.isfinite(pnl).all():
            nan = np.full(len(inp.confidences), np.nan)
            return Revalued(nan, nan.copy(), "scenarios")
        if inp.method == "historical":
            var, es = est.historical(pnl[:, None], inp.confidences, inp.quantile, inp.es_method)
        else:
            var, es = est.historical(pnl[:, None], inp.confidences)
        return Revalued(var[:, 0], es[:, 0], "scenarios")
    r = np.asarray(inp.returns, dtype=np.float64)
    w = factor_exposures(inp)
    if inp.method == "cornish-fisher":  # population moments, mean included
        cov, mean = est.sample_covariance(r, 0), r.mean(axis=0)
    else:
        cov = res.extra["covariance"] if "covariance" in res.extra else covariance(inp, r)
        mean = r.mean(axis=0) if inp.mean_adjusted else np.zeros(r.shape[1])
    out = np.empty((2, len(inp.confidences)))
    for row, losses in enumerate((res.var, res.es)):
        for j, loss in enumerate(losses):
            d = quantile_scenario(cov, w, mean, float(loss), inp.horizon)
            log_rel = log_relative((mean + d)[None, :], inp.horizon, mean)
            out[row, j] = -revalue(log_rel, inp.factor_of, inp.exposures, legs)[0]
    return Revalued(out[0], out[1], "quantile-scenario")


def material(linear: float, revalued: float, gross: float) -> bool:
    """|revalued - linear| above MATERIAL_DIFFERENCE of the linear figure (of the gross exposure when the
    linear figure is zero)."""
    if not math.isfinite(revalued):
        return True
    scale = abs(linear) if linear != 0 else gross
    return abs(revalued - linear) > MATERIAL_DIFFERENCE * scale
