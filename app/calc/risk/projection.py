"""Monte Carlo equity projections of a trading plan, trade statistics and closed-form checks.

Each trade's result is an R multiple (win: +payoff, loss: -1; or drawn i.i.d. with replacement from a
trade list). Fixed-fractional sizing risks `risk_fraction` of the current equity per trade:
E_t = E_(t-1) (1 + f R_t). Without compounding each trade risks a fixed money amount.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.calc.errors import CalcError
from app.calc.flags import flag
from app.calc.numbers import finite_or_none
from app.calc.risk.estimators import F64
from app.calc.risk.normal import ndtri

FAN_PERCENTILES = (5.0, 25.0, 50.0, 75.0, 95.0)


@dataclass(frozen=True, slots=True)
class ProjectionResult:
    fan: F64  # (len(FAN_PERCENTILES), trades + 1): equity percentiles per step, step 0 = start
    drawdown_probability: F64  # P(max drawdown >= threshold) per threshold
    max_drawdown_median: float
    final_median: float
    final_mean: float
    probability_of_loss: float
    ruin_probability: float
    paths: int
    trades: int
    overflow: bool = False  # some simulated equity is above the float range (~1.8e308): +inf in fan/final


def simulate(start: float, n_trades: int, paths: int, seed: int, *, risk_fraction: float,
             win_rate: float | None = None, payoff: float | None = None, r_multiples: F64 | None = None,
             compounding: bool = True, fixed_risk: float | None = None,
             drawdown_thresholds: Sequence[float] = (0.1, 0.2, 0.3, 0.5),
             ruin_level: float = 0.5) -> ProjectionResult:
    rng = np.random.default_rng(seed)
    if r_multiples is not None:
        r = r_multiples[rng.integers(0, r_multiples.size, size=(paths, n_trades))]
    else:
        assert win_rate is not None and payoff is not None
        r = np.where(rng.random((paths, n_trades)) < win_rate, payoff, -1.0)
    eq = np.empty((paths, n_trades + 1))
    eq[:, 0] = start
    if compounding:
        # A trade losing more than 1/f R would take equity below zero: it stops at zero (ruined).
        growth = np.maximum(1.0 + risk_fraction * r, 0.0)
        with np.errstate(over="ignore"):  # a path above ~1.8e308 is inf here; see overflow below
            np.cumprod(growth, axis=1, out=eq[:, 1:])
            eq[:, 1:] *= start
    else:
        risk = fixed_risk if fixed_risk is not None else start * risk_fraction
        np.cumsum(risk * r, axis=1, out=eq[:, 1:])
        eq[:, 1:] += start
    overflow = not bool(np.isfinite(eq).all())
    if overflow:
        # Some path left the range of a float (a large start balance compounding large R multiples). Its
        # equity is not representable, but its drawdowns and ruin are: they are ratios, computed here on
        # log equity (log E_t = log E_0 + sum log(1 + f R), -inf once ruined), where nothing overflows.
        with np.errstate(divide="ignore"):
            log_eq = np.empty_like(eq)
            log_eq[:, 0] = math.log(start)
            np.cumsum(np.log(growth), axis=1, out=log_eq[:, 1:])
            log_eq[:, 1:] += math.log(start)
            log_peak = np.maximum.accumulate(log_eq, axis=1)
            max_dd = np.min(np.expm1(np.where(np.isfinite(log_eq), log_eq - log_peak, -np.inf)), axis=1)
            ruined = log_eq.min(axis=1) <= (math.log(ruin_level * start) if ruin_level > 0 else -np.inf)
        fan = _percentiles_with_inf(eq)
    else:
        fan = np.percentile(eq, FAN_PERCENTILES, axis=0)
        peak = np.maximum.accumulate(eq, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            max_dd = np.min(np.where(peak > 0, eq / peak - 1.0, -1.0), axis=1)
        ruined = eq.min(axis=1) <= ruin_level * start
    final = eq[:, -1]
    with np.errstate(over="ignore", invalid="ignore"):
        final_median, final_mean = float(np.median(final)), float(final.mean())
    return ProjectionResult(
        fan=fan,
        drawdown_probability=np.array([float(np.mean(max_dd <= -t)) for t in drawdown_thresholds]),
        max_drawdown_median=float(np.median(max_dd)),
        final_median=final_median,
        final_mean=final_mean,
        probability_of_loss=float(np.mean(final < start)),
        ruin_probability=float(ruined.mean()),
        paths=paths,
        trades=n_trades,
        overflow=overflow,
    )


def _percentiles_with_inf(eq: F64) -> F64:
    """np.percentile(eq, FAN_PERCENTILES, axis=0) (linear, type 7) for columns holding +inf: between a
    finite order statistic and +inf the percentile is +inf, on the finite one exactly it is that value
    (np.percentile gives nan there: inf x 0). +inf means above the float range: the caller reports null."""
    s = np.sort(eq, axis=0)
    n = s.shape[0]
    out = np.empty((len(FAN_PERCENTILES), eq.shape[1]))
    for i, p in enumerate(FAN_PERCENTILES):
        h = (n - 1) * p / 100.0
        lo = min(int(math.floor(h)), n - 1)
        frac = h - lo
        a, b = s[lo], s[min(lo + 1, n - 1)]
        with np.errstate(invalid="ignore"):
            out[i] = np.where((frac == 0) | (a == b), a, a + (b - a) * frac)
    return out


@dataclass(frozen=True, slots=True)
class TradeStats:
    count: int
    decided: int  # non-zero results: the base of the win rate (quantstats)
    win_rate: float
    avg_win: float
    avg_loss: float  # positive
    payoff_ratio: float
    profit_factor: float
    expectancy: float  # mean result per trade
    std: float  # sample (ddof 1)
    kelly_fraction: float  # p - q / b, fraction of equity to risk per trade
    half_kelly: float


def trade_stats(r: F64) -> TradeStats:
    wins, losses = r[r > 0], r[r < 0]
    decided = wins.size + losses.size
    p = wins.size / decided if decided else 0.0
    avg_win = float(wins.mean()) if wins.size else 0.0
    avg_loss = float(-losses.mean()) if losses.size else 0.0
    payoff = avg_win / avg_loss if avg_loss > 0 else math.inf
    gross_loss = float(-losses.sum())
    kelly = p - (1 - p) / payoff if payoff > 0 else -math.inf
    return TradeStats(
        count=int(r.size), decided=decided, win_rate=p, avg_win=avg_win, avg_loss=avg_loss, payoff_ratio=payoff,
        profit_factor=float(wins.sum()) / gross_loss if gross_loss > 0 else math.inf,
        expectancy=float(r.mean()), std=float(r.std(ddof=1)) if r.size > 1 else 0.0,
        kelly_fraction=kelly, half_kelly=kelly / 2,
    )


@dataclass(frozen=True, slots=True)
class Analytic:
    fixed_risk_mean: float
    fixed_risk_sd: float
    fixed_risk_quantiles: dict[str, float]  # q05, q50, q95 of the P&L after n trades (normal, CLT)
    fixed_fraction_median_equity: float
    fixed_fraction_mean_equity: float


def analytic(start: float, n_trades: int, risk_fraction: float, fixed_risk: float, mean_r: float, sd_r: float,
             mean_log_growth: float) -> Analytic:
    """Closed forms for i.i.d. trades: fixed money risk P&L_N ~ Normal(N mean R risk, sqrt(N) sd R risk);
    fixed fraction median equity E0 exp(N E[log(1 + f R)]) and mean equity E0 (1 + f E[R])^N."""
    mean = n_trades * mean_r * fixed_risk
    sd = math.sqrt(n_trades) * sd_r * fixed_risk
    q = {f"q{int(round(p * 100)):02d}": mean + ndtri(p) * sd if p != 0.5 else mean for p in (0.05, 0.5, 0.95)}
    try:
        median_equity = start * math.exp(n_trades * mean_log_growth)
        mean_equity = start * (1 + risk_fraction * mean_r) ** n_trades
    except OverflowError:
        median_equity = mean_equity = math.inf
    if not (math.isfinite(median_equity) and math.isfinite(mean_equity)):
        # Compounding a large edge over many trades leaves the range of a JSON number (~1.8e308): the
        # figure is determined but cannot be written, so the request is refused naming what drives it.
        # The power itself may fit and only the product with the start balance overflow (to inf, silently).
        raise CalcError("numberOfTrades", f"The compounded equity after {n_trades} trades exceeds 1e308; use fewer "
                        "trades or a smaller riskPercentage or rewardToRisk.", "OUT_OF_RANGE")
    return Analytic(mean, sd, q, median_equity, mean_equity)


MAX_PROJECTION_CELLS = 2_000_000  # paths x trades


def monte_carlo(*, start: float, risk_pct: float, reward_to_risk: float | None, win_rate: float | None,
                  trades: list[float] | None, n_trades: int, paths: int, seed: int, compounding: bool,
                  fixed_risk: float | None, thresholds_pct: list[float], ruin_level: float) -> dict[str, Any]:
    """The Monte Carlo /projection answer: simulated fan, drawdown and ruin probabilities, trade statistics
    and the closed-form figures next to them, with the conventions named."""
    if trades is not None and (win_rate is not None or reward_to_risk is not None):
        raise CalcError("trades", "Give trades (R multiples), or winRate with rewardToRisk, not both.",
                        "CONFLICTING_FIELDS")
    if trades is None:
        if win_rate is None:
            raise CalcError("winRate", "Give outcomes, winRate with rewardToRisk, or trades.", "MISSING_FIELD")
        if reward_to_risk is None:
            raise CalcError("rewardToRisk", "winRate needs rewardToRisk.", "MISSING_FIELD")
    if paths * n_trades > MAX_PROJECTION_CELLS:
        raise CalcError("paths", f"paths x numberOfTrades = {paths} x {n_trades} exceeds {MAX_PROJECTION_CELLS:,}.",
                        "TOO_MANY_PATHS")
    f = risk_pct / 100.0
    r = np.array(trades, dtype=np.float64) if trades is not None else None
    res = simulate(start, n_trades, paths, seed, risk_fraction=f, win_rate=win_rate, payoff=reward_to_risk,
                      r_multiples=r, compounding=compounding, fixed_risk=fixed_risk,
                      drawdown_thresholds=[t / 100.0 for t in thresholds_pct], ruin_level=ruin_level)
    # +inf = above the float range (res.overflow): null, flagged. Every other figure is finite.
    fan = {f"p{int(p)}": [finite_or_none(x) for x in row] for p, row in zip(FAN_PERCENTILES, res.fan, strict=True)}
    out: dict[str, Any] = {
        "method": "monte-carlo", "source": "trades" if r is not None else "win-rate",
        "paths": paths, "numberOfTrades": n_trades, "seed": seed, "compounding": compounding,
        "startBalance": start, "fan": fan, "fanPercentiles": list(FAN_PERCENTILES),
        "medianFinalEquity": finite_or_none(res.final_median), "meanFinalEquity": finite_or_none(res.final_mean),
        "finalEquityPercentiles": {k: v[-1] for k, v in fan.items()},
        "probabilityOfLoss": res.probability_of_loss,
        "drawdownProbabilities": [{"thresholdPercentage": t, "probability": float(p)}
                                  for t, p in zip(thresholds_pct, res.drawdown_probability, strict=True)],
        "medianMaxDrawdown": res.max_drawdown_median,
        "ruinLevel": ruin_level, "ruinProbability": res.ruin_probability,
        "ruinStandardError": math.sqrt(res.ruin_probability * (1 - res.ruin_probability) / paths),
        "flags": [flag("EQUITY_ABOVE_FLOAT_RANGE")] if res.overflow else [],
    }
    risk_money = fixed_risk if fixed_risk is not None else start * f
    if r is not None:
        ts = trade_stats(r)
        out["tradeStatistics"] = {
            "count": ts.count, "nonZero": ts.decided, "winRate": ts.win_rate, "averageWin": ts.avg_win,
            "averageLoss": ts.avg_loss, "payoffRatio": ts.payoff_ratio, "profitFactor": ts.profit_factor,
            "expectancy": ts.expectancy, "stdDev": ts.std, "kellyFraction": ts.kelly_fraction,
            "halfKelly": ts.half_kelly}
        mean_r, sd_r = ts.expectancy, ts.std
        with np.errstate(divide="ignore"):  # a trade that loses 1/f R or more ruins: log 0 = -inf, growth -inf
            growth = float(np.mean(np.log1p(np.maximum(f * r, -1.0))))
    else:
        assert win_rate is not None and reward_to_risk is not None
        q = 1.0 - win_rate
        mean_r = win_rate * reward_to_risk - q
        sd_r = math.sqrt(win_rate * q) * (reward_to_risk + 1.0)
        growth = win_rate * math.log1p(f * reward_to_risk) + q * (math.log1p(-f) if f < 1 else -math.inf)
    a = analytic(start, n_trades, f, risk_money, mean_r, sd_r, growth)
    out["analytic"] = {
        "fixedRiskAmount": risk_money, "fixedRiskPnlMean": a.fixed_risk_mean, "fixedRiskPnlStdDev": a.fixed_risk_sd,
        "fixedRiskPnlQuantiles": a.fixed_risk_quantiles,
        "fixedFractionMedianEquity": a.fixed_fraction_median_equity,
        "fixedFractionMeanEquity": a.fixed_fraction_mean_equity,
    }
    out["conventions"] = {
        "trade": "R multiple per trade: win +rewardToRisk, loss -1; or drawn i.i.d. with replacement from trades",
        "sizing": "fixed fractional: equity x (1 + riskPercentage/100 x R)" if compounding
                  else "fixed money risk per trade (fixedRiskAmount, default startBalance x riskPercentage/100)",
        "drawdown": "per path, equity / running peak - 1 with startBalance as the first peak",
        "ruin": f"equity ever at or below {ruin_level} x startBalance",
        "analytic": "fixed risk: CLT normal P&L (sd with ddof 1 from trades); fixed fraction: median "
                    "E0 exp(N E[log(1+fR)]), mean E0 (1 + f E[R])^N",
        "generator": "numpy PCG64",
    }
    return out

