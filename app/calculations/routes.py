"""Every calculation route, declared as data: path, request schema, engine, response model, cost model.

The pipeline (app.calculations.pipeline) serves them; `router` registers the same declarations with
FastAPI so the OpenAPI document is generated from them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from app.calculations import batch, cost, market, service
from app.calculations import market_history as mh
from app.calculations import responses as out
from app.calculations import schemas as s
from app.calculations.market import WithSources
from app.calculations.pipeline import (
    EXPLAIN_PARAM,
    JSON,
    CalcRoute,
    Outcome,
    handle,
)
from app.calculations.risk import responses as rout
from app.calculations.risk import schemas as rs
from app.calculations.risk import service as risk
from app.policy import BrokerPolicy
from app.schemas import MarketRates
from app.services import Services

PREFIX = "/api/v1/calculate"
UNIT = f"one unit per {cost.UNIT_US / 1000:.0f} ms of estimated engine CPU"


@dataclass(frozen=True, slots=True)
class BatchInput:
    raw: bytes  # the batch's canonical form is its exact bytes (re-serialising 10,000 items costs more)
    n: int
    slow_items: int
    limit: int
    policy: BrokerPolicy | None = None


class BatchRoute(CalcRoute):
    """The batch: the body is checked and counted on the event loop (to price it), and computed from its
    bytes by the engine (in the pool when heavy: bytes pickle far faster than 10,000 parsed items)."""

    def parse(self, raw: bytes, svc: Services | None = None) -> BatchInput:
        limit = svc.settings.batch_max_items if svc is not None else 10_000
        parsed = batch.parse(raw, limit)
        return BatchInput(raw, parsed.n, batch.slow_items(parsed), limit)

    def apply_policy(self, req: BatchInput, caller: Any) -> BatchInput:
        return replace(req, policy=caller.policy)

    def price(self, req: BatchInput, explain: bool) -> cost.Work:
        slow = req.n if explain or (req.policy is not None and not req.policy.trivial) else req.slow_items
        return cost.batch(req.n, slow, explain)

    def cache_key(self, caller: Any, req: BatchInput, raw: bytes, explain: bool) -> str:
        from app.calculations.cache import ResultCache

        return ResultCache.key(caller.principal.broker_id, caller.broker.config_version, self.kind, raw, explain)

    def execute(self, req: BatchInput, explain: bool) -> Outcome:
        body, summary = batch.run_with_summary(req.raw, req.limit, explain, req.policy)
        return Outcome(body, summary, stored_payload=False)


def _declare(*routes: CalcRoute) -> dict[str, CalcRoute]:
    for r in routes:
        # Rates a request leaves out come from the broker's quote chain, and the answer says which.
        if issubclass(r.request, MarketRates):
            r.engine = WithSources(r.engine)
            r.prepare = market.fill if r.prepare is None else market.Then(r.prepare, market.fill)
    return {PREFIX + r.path: r for r in routes}


ROUTES_BY_PATH = _declare(
    CalcRoute("/position-size", s.PositionSizeRequest, s.PositionSizeResponse, service.position_size, cost.single,
              summary="Position size from account risk",
              description="Percent or fixed-money risk, stop as price, pips, points or ATR, exact lot-step rounding, "
                          "min/max lot policy, commission, margin check, take-profits. `lots` instead of a risk gives "
                          "the risk of that size (reverse mode).",
              example=s.POSITION_SIZE_EXAMPLE),
    CalcRoute("/pip-value", s.PipValueRequest, s.PipValueResponse, service.pip_value, cost.single,
              summary="Pip and tick value in the account currency",
              example={"accountCurrency": "USD", "currencyPair": "USDJPY", "lots": 1, "price": 150.0}),
    CalcRoute("/margin", s.MarginRequest, s.MarginResponse, service.margin, cost.single,
              summary="Required margin, free margin, margin level, max lots by free margin",
              example={"accountCurrency": "USD", "currencyPair": "EURUSD", "lots": 1, "price": 1.175,
                       "leverage": 50}),
    CalcRoute("/pnl", s.PnlRequest, s.PnlResponse, service.pnl, cost.single,
              summary="Profit and loss, converted to the account currency at the close",
              example={"accountCurrency": "EUR", "currencyPair": "GBPUSD", "side": "long", "lots": 1,
                       "openPrice": 1.56397, "closePrice": 1.56612, "conversionRates": {"EURUSD": 1.106}}),
    CalcRoute("/risk-reward", s.RiskRewardRequest, s.RiskRewardResponse, service.risk_reward, cost.single,
              summary="Reward-to-risk ratio, break-even win rate and expectancy",
              example={"entryPrice": 1.1, "stopLoss": 1.095, "takeProfit": 1.11, "currencyPair": "EURUSD",
                       "winRate": 0.45}),
    CalcRoute("/kelly", s.KellyRequest, s.KellyResponse, service.kelly, cost.kelly,
              summary="Kelly fraction (formula, half Kelly, log-optimal from a trade list)",
              example={"winRate": 0.55, "payoffRatio": 1.5},
              cost_doc=f"{cost.BASE_US:.0f} us; with a trade list {cost.KELLY_TRADES_BASE:.0f} us + "
                       f"{cost.KELLY_PER_TRADE} us per trade; {UNIT}, at least 1."),
    CalcRoute("/risk-of-ruin", s.RiskOfRuinRequest, s.RiskOfRuinResponse, service.risk_of_ruin, cost.risk_of_ruin,
              summary="Risk of ruin (fixed risk units) and the fixed-fractional ruin bound",
              example={"winRate": 0.55, "payoffRatio": 1, "capitalUnits": 10},
              cost_doc=f"{cost.ROR_BASE:.0f} us + {cost.ROR_PER_CELL} us per Monte Carlo path x trade, {UNIT}."),
    CalcRoute("/lots", s.LotsRequest, out.LotsResponse, service.lots, cost.single,
              summary="Units and lots: lot classes, tradeable lots by the lot step and min-lot policy",
              example={"currencyPair": "EURUSD", "units": 66666.67}),
    mh.HistoryRoute("/portfolio", s.PortfolioRequest, out.PortfolioResponse, service.portfolio_risk, cost.portfolio,
              summary="Open positions: risk at the stops, margin, largest contributor",
              description="With `returns`, or `historyDays` (daily returns from the market history, named in "
                          "`history`): the correlation-adjusted risk at the stops.",
              prepare=mh.prepare_portfolio,
              example={"accountCurrency": "USD", "accountBalance": 10000, "positions": [
                  {"currencyPair": "EURUSD", "side": "long", "lots": 0.5, "entryPrice": 1.1, "stopLossPips": 30}]},
              cost_doc=f"{cost.PORTFOLIO_PER_POSITION:.0f} us per position + {cost.RETURNS_PER_CELL} us per return "
                       f"observation x pair, {UNIT}."),
    CalcRoute("/multi-leg", s.MultiLegRequest, out.MultiLegResponse, service.multi_leg, cost.multi_leg,
              summary="One trade entered at several prices with a shared stop",
              example={"accountCurrency": "USD", "currencyPair": "EURUSD",
                       "entries": [{"price": 1.1}, {"price": 1.101}], "stopLoss": 1.106, "riskAmount": 300}),
    CalcRoute("/projection", s.ProjectionRequest, out.ProjectionResponse, service.projection, cost.projection,
              summary="Equity path of a win/loss sequence at a fixed-fractional risk",
              example={"startBalance": 10000, "riskPercentage": 1, "rewardToRisk": 2, "outcomes": ["W", "L", "W"]},
              cost_doc=f"{cost.PROJECTION_MC_BASE:.0f} us + {cost.PROJECTION_PER_CELL} us per path x trade (Monte "
                       f"Carlo) or "
                       f"{cost.PROJECTION_PER_OUTCOME} us per outcome, {UNIT}."),
    mh.HistoryRoute("/atr", s.AtrRequest, out.AtrResponse, service.atr, cost.atr,
              summary="Average true range (Wilder)",
              description="From candles (high/low/close, or closes alone: close-to-close, flagged), one update "
                          "(previousAtr, trueRange), or `symbol` and `period`: the symbol's daily bars from the "
                          "market history (`days`, or `from`/`to`), named in `history` (window, source, label; "
                          "development history flagged DEVELOPMENT_HISTORY).",
              prepare=mh.prepare_atr,
              example={"previousAtr": 0.0134, "trueRange": 0.028, "period": 20},
              cost_doc=f"{cost.ATR_PER_BAR} us per bar, {UNIT}."),
    CalcRoute("/cross-rate", s.CrossRateRequest, out.CrossRateResponse, service.cross_rate, cost.single,
              summary="Cross rate (bid/ask) from quoted pairs",
              example={"target": "EURAUD", "conversionRates": {"EURUSD": {"bid": 1.2166, "ask": 1.2171},
                                                               "AUDUSD": {"bid": 0.6834, "ask": 0.6839}}}),
    CalcRoute("/convert", s.ConvertRequest, out.ConvertResponse, service.convert, cost.single,
              summary="Convert an amount between currencies (mid, loss side, profit side)",
              example={"amount": 200, "from": "GBP", "to": "USD",
                       "conversionRates": {"GBPUSD": {"bid": 1.2698, "ask": 1.2702}}}),
    BatchRoute("/batch", s.BatchRequest, out.PositionSizeBatchResponse, service.position_size, cost.single,
               summary="Up to 10,000 position sizes in one call, computed vectorised",
               description="`items`: position-size requests. Results come back in order, one per item, each with "
                           "`ok` and either `result` or its own `error` (problem detail naming the field). Send "
                           "`\"format\": \"columns\"` to get the results as one array per field (fastest).",
               example={"items": [s.POSITION_SIZE_EXAMPLE, {**s.POSITION_SIZE_EXAMPLE, "riskPercentage": 1}]},
               stores_payload=False,
               cost_doc=f"at least one unit per {cost.BATCH_ITEMS_PER_UNIT} items; {cost.BATCH_PER_ITEM} us per "
                        f"plain item, {cost.BATCH_PER_ITEM_SLOW} us per item with take-profits or a broker policy, "
                        f"{cost.BATCH_PER_ITEM_EXPLAIN} us per item with explain, {UNIT}."),
    mh.HistoryRoute("/var", rs.VarRequest, rout.VarResponse, risk.var, cost.var, tags=("risk",), prepare=mh.prepare_var,
              summary="Value at risk and expected shortfall, with Euler components",
              description="Historical (discrete or linear quantile; Rockafellar-Uryasev or tail-mean ES), parametric "
                          "(zero mean, sample covariance), EWMA (RiskMetrics, lambda 0.94), Cornish-Fisher or Monte "
                          "Carlo (Cholesky, paths, seed, standard errors). Several confidences per call; "
                          "`horizonDays` scales by sqrt(T). Per position: componentVar (sums to the total), "
                          "marginalVar, incrementalVar, standaloneVar; diversificationBenefit. Limits: 50 positions, "
                          "20,000 observations, 1,000,000 Monte Carlo paths x pairs. Without `returns`: "
                          "`historyDays` (default 250) daily simple returns per pair from the market history, "
                          "aligned on common days, named in `history`.",
              example=rs.VAR_EXAMPLE, explain=False,
              cost_doc=f"{cost.VAR_BASE:.0f} us + {cost.RETURNS_PER_CELL} us per observation x pair (+10 % per "
                       f"extra confidence), Monte Carlo {cost.VAR_MC_PER_CELL} us per path x position; {UNIT}."),
    CalcRoute("/stress", rs.StressRequest, rout.StressResponse, risk.stress, cost.stress, tags=("risk",),
              summary="Stress P&L under shocks per pair or currency, named and built-in historical scenarios",
              description="Built-in: chf-depeg-2015, chf-depeg-2015-intraday, gbp-flash-crash-2016, "
                          "covid-usd-squeeze-2020. With `returns`: the worst realised 1- and 5-day P&L of today's "
                          "book.",
              example={"accountCurrency": "USD", "positions": [{"currencyPair": "USDCHF", "exposure": 100000}],
                       "shocks": {"CHF": 0.15}, "builtinScenarios": "all"}, explain=False,
              cost_doc=f"{cost.STRESS_PER_SCENARIO_POSITION} us per scenario x position, {cost.RETURNS_PER_CELL} "
                       f"us per observation x pair + {cost.STRESS_PER_WINDOW_CELL} us per window, {UNIT}."),
    CalcRoute("/drawdown", rs.DrawdownRequest, rout.DrawdownResponse, risk.drawdown, cost.drawdown, tags=("risk",),
              summary="Maximum and current drawdown of an equity or P&L series",
              description="Compounded drawdown with `initialEquity` as the first peak (a first-bar loss counts); "
                          "peak, trough and recovery indices (-1 = initialEquity), longest underwater spell.",
              example={"equity": [90, 95, 100, 98, 97, 103, 101, 99, 104, 102], "initialEquity": 100},
              explain=False, cost_doc=f"{cost.DRAWDOWN_PER_OBS} us per observation, {UNIT}."),
)
ROUTES: dict[str, CalcRoute] = {r.kind: r for r in ROUTES_BY_PATH.values()}
REQUEST_MODELS = [r.request for r in ROUTES.values()]


class _Served(Response):
    """What the FastAPI-registered endpoint returns: the pipeline itself, run on the untouched request
    channel. (Requests normally reach the pipeline through CalculationDispatch before FastAPI's router;
    this keeps the registered route correct when something calls the app below that middleware.)"""

    def __init__(self, route: CalcRoute) -> None:
        self.route = route
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await handle(self.route, scope, receive, send)


def _endpoint(route: CalcRoute) -> Any:
    async def endpoint(request: Request) -> Response:
        return _Served(route)

    endpoint.__name__ = route.engine.__name__ if route.kind != "batch" else "position_size_batch"
    return endpoint


def _build_router() -> APIRouter:
    router = APIRouter()
    for path, r in ROUTES_BY_PATH.items():
        content: dict[str, Any] = {"schema": {"$ref": f"#/components/schemas/{r.request.__name__}"}}
        if r.example is not None:
            content["example"] = r.example
        description = (r.description + "\n\n" if r.description else "") + f"**Cost** (rate-limit units): {r.cost_doc}"
        router.add_api_route(
            path, _endpoint(r), methods=["POST"], response_model=r.response, summary=r.summary,
            description=description, response_model_exclude_none=True, tags=list(r.tags),
            openapi_extra={"requestBody": {"required": True, "content": {JSON: content}},
                           "parameters": [EXPLAIN_PARAM] if r.explain else []},
            responses={400: {"description": "Malformed JSON (problem+json)"},
                       401: {"description": "Missing or invalid API key or token (problem+json)"},
                       403: {"description": "Origin not allowed for a publishable key, or no calc permission"},
                       413: {"description": "Body too large (problem+json)"},
                       415: {"description": "Not JSON (problem+json)"},
                       422: {"description": "Invalid input; `errors[].field` names each field (problem+json)"},
                       429: {"description": "Rate limit exceeded, or the request costs more than the tier's "
                                            "burst (problem+json)"}},
        )
    return router


router = _build_router()


def warm_up() -> None:
    """Run each calculation once on its documented example before serving: the first call of a code path
    costs far more than later ones (lazy imports, first-use caches)."""
    for r in ROUTES.values():
        if r.example is None or isinstance(r, BatchRoute):
            continue
        try:
            r.execute(r.parse(orjson.dumps(r.example)), False)
        except Exception:  # an example that fails here fails its own tests instead
            continue
