"""Risk routes: VaR/ES with components, stress scenarios, drawdown. /portfolio and /projection (issue 2
routes, extended here) live in app.calculations.router."""

from __future__ import annotations

from fastapi import APIRouter

from app.calculations.routing import json_post
from app.risk import schemas as s
from app.risk import service

router = APIRouter(prefix="/api/v1/calculate", tags=["risk"])

json_post(router, "/var", s.VarRequest, None, service.var,
          summary="Value at risk and expected shortfall, with Euler components",
          description="Historical (discrete or linear quantile; Rockafellar-Uryasev or tail-mean ES), parametric "
                      "(zero mean, sample covariance), EWMA (RiskMetrics, lambda 0.94), Cornish-Fisher or Monte Carlo "
                      "(Cholesky, paths, seed, standard errors). Several confidences per call; `horizonDays` scales "
                      "by sqrt(T). Per position: componentVar (sums to the total), marginalVar, incrementalVar, "
                      "standaloneVar; diversificationBenefit. Limits: 50 positions, 20,000 observations, "
                      "1,000,000 Monte Carlo paths x pairs.",
          example=s.VAR_EXAMPLE, explain=False)
json_post(router, "/stress", s.StressRequest, None, service.stress,
          summary="Stress P&L under shocks per pair or currency, named and built-in historical scenarios",
          description="Built-in: chf-depeg-2015, chf-depeg-2015-intraday, gbp-flash-crash-2016, "
                      "covid-usd-squeeze-2020. With `returns`: the worst realised 1- and 5-day P&L of today's book.",
          example={"accountCurrency": "USD", "positions": [{"currencyPair": "USDCHF", "exposure": 100000}],
                   "shocks": {"CHF": 0.15}, "builtinScenarios": "all"}, explain=False)
json_post(router, "/drawdown", s.DrawdownRequest, None, service.drawdown,
          summary="Maximum and current drawdown of an equity or P&L series",
          description="Compounded drawdown with `initialEquity` as the first peak (a first-bar loss counts); peak, "
                      "trough and recovery indices (-1 = initialEquity), longest underwater spell.",
          example={"equity": [90, 95, 100, 98, 97, 103, 101, 99, 104, 102], "initialEquity": 100}, explain=False)
