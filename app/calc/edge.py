"""Reward-to-risk, break-even win rate, expectancy, Kelly and risk of ruin."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from app.calc.conversion import RateTable
from app.calc.errors import CalcError
from app.calc.flags import Explain, flag
from app.calc.instruments import InstrumentSpec
from app.calc.numbers import r10, s15
from app.calc.sizing import TakeProfit
from app.calc.trade import with_own_pair


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


def _explain_break_even(out: dict[str, Any], ex: Explain | None) -> None:
    if ex:
        ex.add("breakEvenWinRate", "(risk + cost) / (risk + reward)", {}, out["breakEvenWinRate"])


def levels_direction(entry: float, stop: float) -> Literal["long", "short"]:
    """The side a trade's levels give: stop below entry = long."""
    if stop == entry:
        raise CalcError("stopLoss", "stopLoss equals entryPrice: the stop distance is zero.", "STOP_EQUALS_ENTRY")
    return "long" if stop < entry else "short"


def check_take_profits(direction: Literal["long", "short"], entry: float, take_profits: Sequence[TakeProfit]) -> None:
    """Every take-profit on the winning side of entry."""
    for tp in take_profits:
        if (direction == "long" and tp.price <= entry) or (direction == "short" and tp.price >= entry):
            side = "above" if direction == "long" else "below"
            raise CalcError(tp.field, f"A {direction} trade needs its take-profit {side} entryPrice "
                            f"({tp.price} vs {entry}).", "TAKE_PROFIT_WRONG_SIDE")


def reward_risk_levels(entry: float, stop: float, direction: Literal["long", "short"],
                       take_profits: Sequence[TakeProfit], pip: float | None, cost_pips: float,
                       win_rate: float | None, ex: Explain | None = None, *, lots: float | None = None,
                       spec: InstrumentSpec | None = None, account: str | None = None,
                       rates: RateTable | None = None, commission_per_lot: float = 0.0) -> dict[str, Any]:
    """R:R from price levels: distances (take-profits weighted by share), in pips with `pip`, and with
    `lots` in money (spec, account and rates given) at the entry's conversion."""
    risk_dist = r10(abs(entry - stop))
    reward_dist = sum(tp.share * r10(abs(tp.price - entry)) for tp in take_profits)
    out: dict[str, Any] = {"direction": direction, "riskDistance": risk_dist, "rewardDistance": r10(reward_dist)}
    if pip:
        out["riskPips"] = r10(risk_dist / pip)
        out["rewardPips"] = r10(reward_dist / pip)
    risk, reward, cost = risk_dist, reward_dist, 0.0
    if cost_pips:
        assert pip
        cost = cost_pips * pip  # in price units, like the distances
        out["costPips"] = cost_pips
    if lots is not None:
        assert spec is not None and account is not None and rates is not None
        table = with_own_pair(spec, rates, entry, "entryPrice")
        x = table.convert_factor(spec.quote, account, instrument=spec.symbol)
        risk = risk_dist * spec.contract_size * x * lots
        reward = reward_dist * spec.contract_size * x * lots
        cost = 2.0 * commission_per_lot * lots
        out.update({"lots": lots, "riskAmount": r10(risk), "rewardAmount": r10(reward),
                    "commission": r10(cost), "ratesUsed": table.used_public(),
                    "conversionPaths": table.paths_public()})
        out["takeProfits"] = [{"price": tp.price, "share": tp.share,
                               "reward": r10(tp.share * abs(tp.price - entry) * spec.contract_size * x * lots)}
                              for tp in take_profits]
    out.update(reward_risk(risk, reward, cost, win_rate))
    if ex:
        ex.add("riskRewardRatio", "(reward - commission) / (risk + commission)",
               {"risk": r10(risk), "reward": r10(reward), "commission": r10(cost)}, out["riskRewardRatio"])
    _explain_break_even(out, ex)
    return out


def reward_risk_amounts(risk_amount: float, reward_amount: float, cost_per_trade: float, commission_per_lot: float,
                        lots: float | None, win_rate: float | None, ex: Explain | None = None) -> dict[str, Any]:
    """R:R from money amounts, net of a fixed cost per trade plus the round-turn commission of `lots`."""
    # Round-turn cost: a fixed cost per trade plus commission one way x 2 x lots.
    cost = cost_per_trade + 2.0 * commission_per_lot * (lots or 0.0)
    # One R in money is what a losing trade costs: the risk plus the round-turn cost.
    out = reward_risk(risk_amount, reward_amount, cost, win_rate, risk_amount + cost)
    out.update({"riskAmount": risk_amount, "rewardAmount": reward_amount, "commission": r10(cost)})
    _explain_break_even(out, ex)
    return out


def reward_risk_ratio(reward_to_risk: float, win_rate: float | None, risk_amount: float | None,
                      ex: Explain | None = None) -> dict[str, Any]:
    """R:R from the ratio alone (risk 1, reward rewardToRisk, no cost)."""
    out = reward_risk(1.0, reward_to_risk, 0.0, win_rate, risk_amount)
    _explain_break_even(out, ex)
    return out


# A computed edge this close to zero is zero: p b - q and W - (1 - W)/R are differences of floats
# (0.4 x 1.5 - 0.6 is 1.1e-16), and a sign read from rounding noise must not decide NO_EDGE.
EDGE_TOLERANCE = 1e-12


def _z(x: float) -> float:
    """No negative zero (and no float noise around zero) in an answer."""
    return 0.0 if abs(x) <= EDGE_TOLERANCE else x


def _explain_kelly(out: dict[str, Any], ex: Explain | None) -> None:
    if ex:
        ex.add("kellyFraction", "W - (1 - W) / R", {"W": out["winRate"], "R": out["payoffRatio"]},
               out["kellyFraction"])


def kelly_formula(win_rate: float, payoff: float, ex: Explain | None = None) -> dict[str, Any]:
    f = _z(win_rate - (1.0 - win_rate) / payoff)
    flags = [] if f > 0 else [flag("NO_EDGE", tolerance=EDGE_TOLERANCE)]
    out: dict[str, Any] = {
        "kellyFraction": r10(f),
        "halfKelly": r10(f / 2.0),
        "recommendedFraction": r10(max(f, 0.0)),
        "recommendedHalfKelly": r10(max(f / 2.0, 0.0)),
        "winRate": win_rate,
        "payoffRatio": payoff,
        "expectancyR": r10(_z(win_rate * payoff - (1.0 - win_rate))),
        "flags": flags,
    }
    _explain_kelly(out, ex)
    return out


def _growth_root(x: NDArray[np.float64], upper: float) -> float:
    """f in [0, upper) with mean(x / (1 + f x)) = 0 (the maximum of the concave mean(log(1 + f x))); 0
    when the slope at 0 is not positive, by bisection."""
    def slope(f: float) -> float:
        return float(np.mean(x / (1.0 + f * x)))

    if slope(0.0) <= EDGE_TOLERANCE:
        return 0.0
    hi = upper * (1.0 - 1e-12)
    if slope(hi) > 0:
        return hi
    return _last_positive(slope, 0.0, hi)


def _last_positive(f: Callable[[float], float], lo: float, hi: float) -> float:
    """Bisection for the sign change of f on (lo, hi), f(lo) > 0 >= f(hi); 200 halvings reach the float limit."""
    for _ in range(200):
        mid = (lo + hi) / 2
        if f(mid) > 0:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def kelly_from_trades(results: Sequence[float], ex: Explain | None = None) -> dict[str, Any]:
    """Formula Kelly from the list's win rate and payoff, the growth-optimal fraction to risk per 1R,
    and Vince's optimal f.

    The trades are R multiples (a result of -1 lost exactly the amount risked). The growth-optimal
    fraction of equity to risk per 1R, comparable with kellyFraction, is the root f* of
    mean(r / (1 + f r)) = 0, the maximum of G(f) = mean(log(1 + f r)) on 0 <= f < 1 / worst loss.
    Vince's optimal f is the same optimum in other units: the fraction of equity lost if the worst trade
    repeats, f_Vince = f* x |worst loss|.
    """
    r = np.asarray(results, dtype=np.float64)
    wins, losses = r[r > 0], r[r < 0]
    if losses.size == 0:
        raise CalcError("trades", "The trade list has no losing trade: the Kelly fraction is unbounded.")
    if wins.size == 0:
        base = kelly_formula(0.0, 1.0)
        base.update({"logOptimalFraction": 0.0, "logOptimalRiskFraction": 0.0, "vinceOptimalF": 0.0,
                     "trades": int(r.size), "worstLoss": r10(float(losses.min()))})
        _explain_kelly(base, ex)
        return base
    w = wins.size / r.size
    with np.errstate(over="ignore", divide="ignore"):
        payoff = float(wins.mean() / -losses.mean())
    if not 0 < payoff < math.inf:  # losses of denormal size: the ratio overflows
        raise CalcError("trades", "The average win over the average loss is not a finite number; give trade "
                        "results in money or R multiples of ordinary size.")
    out = kelly_formula(w, payoff)
    worst = float(-losses.min())
    f_r = _growth_root(r, 1.0 / worst)
    growth = float(np.mean(np.log1p(f_r * r)))
    out.update({
        "trades": int(r.size),
        "worstLoss": r10(-worst),
        "logOptimalRiskFraction": r10(f_r),
        "logOptimalFraction": r10(f_r),
        "logOptimalGrowthPerTrade": r10(_z(growth)),
        "vinceOptimalF": r10(f_r * worst),
        "units": {
            "trades": "R multiples (1 = the amount risked)",
            "kellyFraction": "W - (1 - W) / payoffRatio with payoffRatio = mean win / mean loss: the fraction "
                             "to risk per trade if every loss were the mean loss",
            "logOptimalRiskFraction": "fraction of equity to risk per 1R: root of mean(r / (1 + f r)) = 0",
            "vinceOptimalF": "fraction of equity lost if the worst trade repeats (Vince); = "
                             "logOptimalRiskFraction x |worstLoss|; risk per 1R = vinceOptimalF / |worstLoss|",
        },
    })
    _explain_kelly(out, ex)
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
    return _last_positive(g, 0.0, min(x_min, 1.0))


def risk_of_ruin(win_rate: float, payoff: float, capital_units: float | None, risk_fraction: float | None,
                 ruin_level: float, mc_paths: int, mc_trades: int, seed: int | None,
                 ex: Explain | None = None) -> dict[str, Any]:
    p, q, b = win_rate, 1.0 - win_rate, payoff
    edge = _z(p * b - q)
    out: dict[str, Any] = {"winRate": p, "payoffRatio": b, "edge": r10(edge), "expectancyR": r10(edge),
                           "flags": [] if edge > 0 else [flag("NO_EDGE", tolerance=EDGE_TOLERANCE)]}
    x = ruin_root(p, b) if edge > 0 else 1.0
    out["ruinRoot"] = s15(x)
    whole = float(b).is_integer()
    if capital_units is not None:
        out["capitalUnits"] = capital_units
        out["riskOfRuin"] = s15(x ** capital_units) if x < 1.0 else 1.0
        # The root formula is exact for a walk of +b / -1 with b whole (and a whole capital); otherwise
        # the walk can stop between levels and x^U only bounds the ruin probability from above.
        exact = x >= 1.0 or (whole and float(capital_units).is_integer())
        out["method"] = "root" if exact else "root-bound"
        out["riskOfRuinKind"] = "exact" if exact else "bound"
        if not exact:
            out["flags"].append(flag("RUIN_BOUND", payoffRatio=b, capitalUnits=capital_units))
        if mc_paths > 0 and risk_fraction is None:
            out["monteCarlo"] = _mc_ruin_units(p, b, capital_units, mc_paths, mc_trades, seed)
    if risk_fraction is not None:
        theta = _lundberg_theta(p, b, risk_fraction)
        out["riskFraction"] = risk_fraction
        out["ruinLevel"] = ruin_level
        out["lundbergExponent"] = s15(theta) if theta is not None else None
        bound = 1.0 if theta is None else ruin_level ** theta
        out["fixedFractionalRuinBound"] = s15(bound)
        out["fixedFractionalRuinKind"] = "bound"
        if mc_paths > 0:
            out["monteCarlo"] = _mc_ruin(p, b, risk_fraction, ruin_level, mc_paths, mc_trades, seed)
    if ex:
        ex.add("ruinRoot", "x in (0,1): p x^(b+1) - x + q = 0", {"p": win_rate, "b": payoff}, out["ruinRoot"])
    return out


def _mc_ruin_units(p: float, b: float, units: float, paths: int, trades: int, seed: int | None) -> dict[str, Any]:
    """Fixed risk units: capital U, each trade +b or -1; ruin = capital at or below 0 within `trades`."""
    rng = np.random.default_rng(seed)
    wins = rng.random((paths, trades)) < p
    capital = units + np.cumsum(np.where(wins, b, -1.0), axis=1)
    prob = float((capital <= 1e-12).any(axis=1).mean())
    se = math.sqrt(prob * (1 - prob) / paths)
    return {"paths": paths, "trades": trades, "seed": seed, "ruinProbability": r10(prob),
            "standardError": r10(se), "horizon": "ruin within monteCarloTrades trades (the root is for ever)"}


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
