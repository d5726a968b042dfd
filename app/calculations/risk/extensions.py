"""Risk additions to two issue-2 endpoints: Monte Carlo /projection and the correlation and currency
figures of /portfolio. Called from app.calculations.service, which owns those routes."""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from app.calc import portfolio
from app.calc.conversion import RateTable
from app.calc.errors import CalcError
from app.calc.flags import flag
from app.calc.portfolio import Position
from app.calc.risk import projection as pj
from app.calculations.risk.schemas import ReturnsHistory
from app.calculations.risk.service import history

MAX_PROJECTION_CELLS = 2_000_000  # paths x trades


def projection_mc(*, start: float, risk_pct: float, reward_to_risk: float | None, win_rate: float | None,
                  trades: list[float] | None, n_trades: int, paths: int, seed: int | None, compounding: bool,
                  fixed_risk: float | None, thresholds_pct: list[float], ruin_level: float) -> dict[str, Any]:
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
    seed = seed if seed is not None else int.from_bytes(os.urandom(8), "big") >> 1
    r = np.array(trades, dtype=np.float64) if trades is not None else None
    res = pj.simulate(start, n_trades, paths, seed, risk_fraction=f, win_rate=win_rate, payoff=reward_to_risk,
                      r_multiples=r, compounding=compounding, fixed_risk=fixed_risk,
                      drawdown_thresholds=[t / 100.0 for t in thresholds_pct], ruin_level=ruin_level)
    # +inf = above the float range (res.overflow): null, flagged. Every other figure is finite.
    fan = {f"p{int(p)}": [_finite(x) for x in row] for p, row in zip(pj.FAN_PERCENTILES, res.fan, strict=True)}
    out: dict[str, Any] = {
        "method": "monte-carlo", "source": "trades" if r is not None else "win-rate",
        "paths": paths, "numberOfTrades": n_trades, "seed": seed, "compounding": compounding,
        "startBalance": start, "fan": fan, "fanPercentiles": list(pj.FAN_PERCENTILES),
        "medianFinalEquity": _finite(res.final_median), "meanFinalEquity": _finite(res.final_mean),
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
        ts = pj.trade_stats(r)
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
    a = pj.analytic(start, n_trades, f, risk_money, mean_r, sd_r, growth)
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


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def portfolio_extras(positions: list[Position], rows: list[dict[str, Any]], returns: ReturnsHistory | None,
                     rates: RateTable, account: str) -> dict[str, Any]:
    """Net exposure per currency and, with a returns history, the correlation-adjusted risk at the stops
    (app.calc.portfolio computes both; this turns the returns history into its matrix)."""
    out = portfolio.net_exposure(positions, rates, account)
    if returns is None:
        return out
    hist = history(returns, [p.spec.symbol for p in positions])
    out.update(portfolio.correlation_risk(positions, rows, hist.returns, hist.names, hist.factor_of))
    return out
