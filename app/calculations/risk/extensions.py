"""Risk additions to two issue-2 endpoints: Monte Carlo /projection and the correlation and currency
figures of /portfolio. Called from app.calculations.service, which owns those routes."""

from __future__ import annotations

import os
from typing import Any

from app.calc import portfolio
from app.calc.conversion import RateTable
from app.calc.portfolio import Position
from app.calc.risk import projection as pj
from app.calculations.risk.schemas import ReturnsHistory
from app.calculations.risk.service import history


def projection_mc(*, start: float, risk_pct: float, reward_to_risk: float | None, win_rate: float | None,
                  trades: list[float] | None, n_trades: int, paths: int, seed: int | None, compounding: bool,
                  fixed_risk: float | None, thresholds_pct: list[float], ruin_level: float) -> dict[str, Any]:
    """The engine's Monte Carlo projection (app.calc.risk.projection.monte_carlo); a request without a
    seed gets a fresh one from the OS, reported in the answer so the run can be repeated."""
    seed = seed if seed is not None else int.from_bytes(os.urandom(8), "big") >> 1
    return pj.monte_carlo(start=start, risk_pct=risk_pct, reward_to_risk=reward_to_risk, win_rate=win_rate,
                          trades=trades, n_trades=n_trades, paths=paths, seed=seed, compounding=compounding,
                          fixed_risk=fixed_risk, thresholds_pct=thresholds_pct, ruin_level=ruin_level)


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
