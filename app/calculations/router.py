"""Thin HTTP layer of the calculation API: parse, call the service, answer bytes."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.auth.principal import Principal
from app.calculations import batch, service
from app.calculations import schemas as s
from app.calculations.cache import ResultCache
from app.calculations.routing import (
    DEFAULT_POLICY,
    EXPLAIN_PARAM,
    JSON,
    MISS,
    REQUEST_MODELS,
    authorise,
    cache_key,
    check_json,
    json_post,
    record,
    serve_hit,
    wants_explain,
)

router = APIRouter(prefix="/api/v1/calculate", tags=["calculations"])

json_post(router, "/position-size", s.PositionSizeRequest, s.PositionSizeResponse, service.position_size,
          summary="Position size from account risk",
          description="Percent or fixed-money risk, stop as price, pips, points or ATR, exact lot-step rounding, "
                      "min/max lot policy, commission, margin check, take-profits. `lots` instead of a risk gives "
                      "the risk of that size (reverse mode).",
          example=s.POSITION_SIZE_EXAMPLE)
json_post(router, "/pip-value", s.PipValueRequest, s.PipValueResponse, service.pip_value,
          summary="Pip and tick value in the account currency",
          example={"accountCurrency": "USD", "currencyPair": "USDJPY", "lots": 1, "price": 150.0})
json_post(router, "/margin", s.MarginRequest, s.MarginResponse, service.margin,
          summary="Required margin, free margin, margin level, max lots by free margin",
          example={"accountCurrency": "USD", "currencyPair": "EURUSD", "lots": 1, "price": 1.175, "leverage": 50})
json_post(router, "/pnl", s.PnlRequest, s.PnlResponse, service.pnl,
          summary="Profit and loss, converted to the account currency at the close",
          example={"accountCurrency": "EUR", "currencyPair": "GBPUSD", "side": "long", "lots": 1,
                   "openPrice": 1.56397, "closePrice": 1.56612, "conversionRates": {"EURUSD": 1.106}})
json_post(router, "/risk-reward", s.RiskRewardRequest, s.RiskRewardResponse, service.risk_reward,
          summary="Reward-to-risk ratio, break-even win rate and expectancy",
          example={"entryPrice": 1.1, "stopLoss": 1.095, "takeProfit": 1.11, "currencyPair": "EURUSD",
                   "winRate": 0.45})
json_post(router, "/kelly", s.KellyRequest, s.KellyResponse, service.kelly,
          summary="Kelly fraction (formula, half Kelly, log-optimal from a trade list)",
          example={"winRate": 0.55, "payoffRatio": 1.5})
json_post(router, "/risk-of-ruin", s.RiskOfRuinRequest, s.RiskOfRuinResponse, service.risk_of_ruin,
          summary="Risk of ruin (fixed risk units) and the fixed-fractional ruin bound",
          example={"winRate": 0.55, "payoffRatio": 1, "capitalUnits": 10})
json_post(router, "/lots", s.LotsRequest, None, service.lots,
          summary="Units and lots: lot classes, tradeable lots by the lot step and min-lot policy",
          example={"currencyPair": "EURUSD", "units": 66666.67})
json_post(router, "/portfolio", s.PortfolioRequest, None, service.portfolio_risk,
          summary="Open positions: risk at the stops, margin, largest contributor",
          example={"accountCurrency": "USD", "accountBalance": 10000, "positions": [
              {"currencyPair": "EURUSD", "side": "long", "lots": 0.5, "entryPrice": 1.1, "stopLossPips": 30}]})
json_post(router, "/multi-leg", s.MultiLegRequest, None, service.multi_leg,
          summary="One trade entered at several prices with a shared stop",
          example={"accountCurrency": "USD", "currencyPair": "EURUSD", "entries": [{"price": 1.1}, {"price": 1.101}],
                   "stopLoss": 1.106, "riskAmount": 300})
json_post(router, "/projection", s.ProjectionRequest, None, service.projection,
          summary="Equity path of a win/loss sequence at a fixed-fractional risk",
          example={"startBalance": 10000, "riskPercentage": 1, "rewardToRisk": 2, "outcomes": ["W", "L", "W"]})
json_post(router, "/atr", s.AtrRequest, None, service.atr,
          summary="Average true range (Wilder)",
          example={"previousAtr": 0.0134, "trueRange": 0.028, "period": 20})
json_post(router, "/cross-rate", s.CrossRateRequest, None, service.cross_rate,
          summary="Cross rate (bid/ask) from quoted pairs",
          example={"target": "EURAUD", "conversionRates": {"EURUSD": {"bid": 1.2166, "ask": 1.2171},
                                                           "AUDUSD": {"bid": 0.6834, "ask": 0.6839}}})
json_post(router, "/convert", s.ConvertRequest, None, service.convert,
          summary="Convert an amount between currencies (mid, loss side, profit side)",
          example={"amount": 200, "from": "GBP", "to": "USD",
                   "conversionRates": {"GBPUSD": {"bid": 1.2698, "ask": 1.2702}}})

REQUEST_MODELS.append(s.BatchRequest)


@router.post(
    "/batch", response_model=s.BatchResponse, response_model_exclude_none=True,
    summary="Up to 10,000 position sizes in one call, computed vectorised",
    description="`items`: position-size requests. Results come back in order, one per item, each with `ok` and "
                "either `result` or its own `error` (problem detail naming the field). Send `\"format\": "
                "\"columns\"` to get the results as one array per field (fastest).",
    openapi_extra={"requestBody": {"required": True, "content": {JSON: {
        "schema": {"$ref": "#/components/schemas/BatchRequest"},
        "example": {"items": [s.POSITION_SIZE_EXAMPLE, {**s.POSITION_SIZE_EXAMPLE, "riskPercentage": 1}]}}}},
        "parameters": [EXPLAIN_PARAM]},
    responses={413: {"description": "More items than the limit (problem+json)"}},
)
async def position_size_batch(request: Request) -> Response:
    principal, broker = await authorise(request)
    policy = broker.policy if broker else DEFAULT_POLICY
    check_json(request)
    limit: int = request.app.state.settings.batch_max_items
    raw = await request.body()
    explain = wants_explain(request.scope["query_string"])
    cache: ResultCache = request.app.state.result_cache
    size_class = cache.size_class(raw)
    # A batch's canonical form is its exact bytes: re-serialising 10,000 items would cost more than
    # the hash saves. Identical batches (retries, dashboards polling) hit; reformatted ones miss.
    key = cache_key(principal, broker, "batch", raw, explain)
    if cache.worth_lookup("batch", size_class):
        hit = await cache.get(key, time.monotonic())
        if hit is not None:
            await charge_units(request, principal, hit.units)
            return serve_hit(request, principal, "batch", raw, hit.fresh(), stored=False)
    started = time.thread_time_ns()  # CPU time: a preempted worker must not look costly
    body, summary = batch.run_with_summary(raw, limit, explain, policy)
    costly = cache.observe("batch", size_class, (time.thread_time_ns() - started) / 1000)
    units = -(-summary["count"] // BATCH_UNIT)
    await charge_units(request, principal, units)
    # Stored as a summary (id and counts): the per-item results are the client's to keep.
    record(request, principal, "batch", raw, summary)
    if not costly:
        return Response(body, media_type=JSON)
    cache.put(key, body, summary["calculationId"], time.monotonic(), units)
    return Response(body, media_type=JSON, headers=MISS)


BATCH_UNIT = 100  # items per rate-limit unit: a batch of n items costs ceil(n / 100) requests


async def charge_units(request: Request, principal: Principal, units: int) -> None:
    """A batch costs one unit per 100 items; the first unit was charged on admission. (The rest is
    charged after parsing, when the count is known; a refused batch's result is discarded.)"""
    if units > 1:
        await request.app.state.ratelimits.charge(request, principal, units - 1)
