"""Reward-to-risk, break-even win rate, expectancy, Kelly and risk of ruin."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from app.calc.errors import CalcError
from app.calc.flags import flag
from app.calc.numbers import r10, s15


def reward_risk(risk: float, reward: float, cost: float = 0.0, win_rate: float | None = None,
                risk_amount: float | None = None) -> dict[str, Any]:
    """R:R net of a round-turn cost k that both sides lose: (reward - k) / (risk + k).

    Break-even win rate = (risk + k) / (risk + reward); expectancy in R units = W x R - (1 - W).
    """
    gross_rr = reward / risk
    net_rr = (reward - cost) / (risk + cost)
    out: dict[str, Any] = {
        "riskRewardRatio": r10(net_rr),
        "grossRiskRewardRatio": r10(gross_rr),
        "breakEvenWinRate": r10((risk + cost) / (risk + reward)),
        "breakEvenWinRateWithoutCosts": r10(1.0 / (1.0 + gross_rr)),
        # The ratios above are rounded to 10 decimals (the issue-2 contract); a ratio such as 1/3 loses
        # relative precision there, so the full-precision values come along.
        "unrounded": {"riskRewardRatio": s15(net_rr), "grossRiskRewardRatio": s15(gross_rr),
                      "breakEvenWinRate": s15((risk + cost) / (risk + reward)),
                      "breakEvenWinRateWithoutCosts": s15(1.0 / (1.0 + gross_rr))},
    }
    if cost:
        out["riskWithCosts"] = r10(risk + cost)
        out["rewardNetOfCosts"] = r10(reward - cost)
    if win_rate is not None:
        e_r = win_rate * net_rr - (1.0 - win_rate)
        out["expectancyR"] = r10(e_r)
        if risk_amount is not None:
            out["expectancy"] = r10(e_r * risk_amount)
    return out


def kelly_formula(win_rate: float, payoff: float) -> dict[str, Any]:
    f = win_rate - (1.0 - win_rate) / payoff
    flags = [] if f > 0 else [flag("NO_EDGE")]
    return {
        "kellyFraction": r10(f),
        "halfKelly": r10(f / 2.0),
        "recommendedFraction": r10(max(f, 0.0)),
        "recommendedHalfKelly": r10(max(f / 2.0, 0.0)),
        "winRate": win_rate,
        "payoffRatio": payoff,
        "expectancyR": r10(win_rate * payoff - (1.0 - win_rate)),
        "flags": flags,
    }


def kelly_from_trades(results: Sequence[float]) -> dict[str, Any]:
    """Formula Kelly from the list's win rate and payoff, and the log-optimal fraction.

    Each result is expressed in units of the worst loss (Vince's optimal f), so the fraction f is the
    share of equity lost if the worst trade repeats; the growth G(f) = mean(log(1 + f r_i)) is concave
    and maximised by bisection on G'(f) over [0, 1).
    """
    r = np.asarray(results, dtype=np.float64)
    wins, losses = r[r > 0], r[r < 0]
    if losses.size == 0:
        raise CalcError("trades", "The trade list has no losing trade: the Kelly fraction is unbounded.")
    if wins.size == 0:
        base = kelly_formula(0.0, 1.0)
        base.update({"logOptimalFraction": 0.0, "trades": int(r.size), "worstLoss": r10(float(losses.min()))})
        return base
    w = wins.size / r.size
    with np.errstate(over="ignore", divide="ignore"):
        payoff = float(wins.mean() / -losses.mean())
    if not 0 < payoff < math.inf:  # losses of denormal size: the ratio overflows
        raise CalcError("trades", "The average win over the average loss is not a finite number; give trade "
                        "results in money or R multiples of ordinary size.")
    out = kelly_formula(w, payoff)
    worst = float(-losses.min())
    x = r / worst  # worst loss -> -1

    def slope(f: float) -> float:
        return float(np.mean(x / (1.0 + f * x)))

    if slope(0.0) <= 0:
        f_opt = 0.0
    else:
        lo, hi = 0.0, 1.0 - 1e-12
        if slope(hi) > 0:
            f_opt = hi
        else:
            for _ in range(100):
                mid = (lo + hi) / 2
                if slope(mid) > 0:
                    lo = mid
                else:
                    hi = mid
            f_opt = (lo + hi) / 2
    growth = float(np.mean(np.log1p(f_opt * x)))
    out.update({
        "trades": int(r.size),
        "worstLoss": r10(-worst),
        "logOptimalFraction": r10(f_opt),
        "logOptimalGrowthPerTrade": r10(growth),
        "logOptimalRiskFraction": r10(f_opt),
    })
    return out


def ruin_root(win_rate: float, payoff: float) -> float:
    """x in (0, 1) with p x^(b+1) - x + q = 0 (the walk +b / -1); 1 when p b <= q."""
    p, q, b = win_rate, 1.0 - win_rate, payoff
    if p * b <= q:
        return 1.0
    if b == 1.0:
        return q / p

    def g(x: float) -> float:
        return float(p * x ** (b + 1.0) - x + q)

    # g(0) = q > 0, g(1) = 0 with g'(1) = p(b+1) - 1 > 0 when p b > q: the other root lies below 1,
    # where g is negative just left of 1. Bisection on (0, x_min) with x_min the minimum of g.
    x_min = float((1.0 / (p * (b + 1.0))) ** (1.0 / b))
    lo, hi = 0.0, min(x_min, 1.0)
    for _ in range(200):
        mid = (lo + hi) / 2
        if g(mid) > 0:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def risk_of_ruin(win_rate: float, payoff: float, capital_units: float | None, risk_fraction: float | None,
                 ruin_level: float, mc_paths: int, mc_trades: int, seed: int | None) -> dict[str, Any]:
    p, q, b = win_rate, 1.0 - win_rate, payoff
    edge = p * b - q
    out: dict[str, Any] = {"winRate": p, "payoffRatio": b, "edge": r10(edge), "expectancyR": r10(edge),
                           "flags": [] if edge > 0 else [flag("NO_EDGE")]}
    x = ruin_root(p, b)
    out["ruinRoot"] = s15(x)
    if capital_units is not None:
        out["capitalUnits"] = capital_units
        out["riskOfRuin"] = s15(x ** capital_units) if x < 1.0 else 1.0
        out["method"] = "root"
    if risk_fraction is not None:
        theta = _lundberg_theta(p, b, risk_fraction)
        out["riskFraction"] = risk_fraction
        out["ruinLevel"] = ruin_level
        out["lundbergExponent"] = s15(theta) if theta is not None else None
        bound = 1.0 if theta is None else ruin_level ** theta
        out["fixedFractionalRuinBound"] = s15(bound)
        if mc_paths > 0:
            out["monteCarlo"] = _mc_ruin(p, b, risk_fraction, ruin_level, mc_paths, mc_trades, seed)
    return out


def _lundberg_theta(p: float, b: float, f: float) -> float | None:
    """theta > 0 with p (1 + f b)^-theta + q (1 - f)^-theta = 1; None when no edge in log terms."""
    q = 1.0 - p
    up, down = math.log1p(f * b), math.log1p(-f)
    if p * up + q * down <= 0:  # log-growth not positive: ruin is certain in the long run
        return None

    def h(t: float) -> float:
        return p * math.exp(-t * up) + q * math.exp(-t * down) - 1.0

    hi = 1.0
    while h(hi) < 0:
        hi *= 2.0
        if hi > 1e6:
            return None
    lo = 0.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if h(mid) < 0:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _mc_ruin(p: float, b: float, f: float, level: float, paths: int, trades: int,
             seed: int | None) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    wins = rng.random((paths, trades)) < p
    steps = np.where(wins, math.log1p(f * b), math.log1p(-f))
    log_eq = np.cumsum(steps, axis=1)
    ruined = (log_eq <= math.log(level)).any(axis=1)
    prob = float(ruined.mean())
    se = math.sqrt(prob * (1 - prob) / paths)
    return {"paths": paths, "trades": trades, "seed": seed, "ruinProbability": r10(prob),
            "standardError": r10(se)}
