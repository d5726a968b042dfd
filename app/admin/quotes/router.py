"""PUT /api/v1/brokers/{brokerId}/quotes: a broker pushes its own prices (secret key or BROKER_ADMIN).

Authorised like the other broker admin routes: `brokers:update:own` (a secret key with the default or
`brokers:write` scope, or a BROKER_ADMIN user with MFA); another broker's id is a 404; a publishable key
or a widget session is a 403. Each quote is checked on its own: bad ones are refused with their index,
the good ones are stored in one statement.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError

from app.admin.quotes.schemas import PushResult, QuoteIn, QuotesPush
from app.auth.service import require
from app.deps import BrokerScope, CurrentPrincipal
from app.errors import _errors_from_pydantic, pointer
from app.integrations.market_data.broker_feed import PushedQuote
from app.jsonbody import StrictRoute
from app.services import services

router = APIRouter(prefix="/api/v1/brokers", tags=["market data"], route_class=StrictRoute)


def _item_error(index: int, errors: list[dict[str, Any]]) -> dict[str, Any]:
    fields = ", ".join(dict.fromkeys(e["field"] for e in errors))
    return {"index": index, "type": "/problems/validation-error", "status": 422,
            "detail": f"Invalid field(s): {fields}", "errors": errors}


@router.put("/{broker_id}/quotes", response_model=PushResult,
            summary="Push the broker's own prices (its feed, first in the market-data fallback chain)",
            description="Up to 1,000 quotes a call. Each quote is checked on its own (positive finite prices, "
                        "bid ≤ mid ≤ ask, a known symbol, a time not in the future): bad ones are listed in "
                        "`errors` with their index, the others are stored. The latest price per symbol is kept.")
async def push_quotes(target: BrokerScope, body: QuotesPush, principal: CurrentPrincipal,
                      request: Request) -> dict[str, Any]:
    require(principal, "brokers:update:own")
    svc = services(request.app)
    market = svc.market_data
    received = datetime.now(UTC)
    latest = received + timedelta(seconds=svc.settings.market_data_push_max_skew_seconds)
    good: dict[str, PushedQuote] = {}
    errors: list[dict[str, Any]] = []
    for i, raw in enumerate(body.quotes):
        prefix = ("quotes", i)
        try:
            item = QuoteIn.model_validate(raw)
        except ValidationError as exc:
            errors.append(_item_error(i, _errors_from_pydantic(list(exc.errors()), prefix)))
            continue
        if item.time > latest:
            errors.append(_item_error(i, [{"field": f"quotes[{i}].time", "pointer": pointer((*prefix, "time")),
                                          "code": "future_time",
                                          "detail": "in the future (beyond the allowed clock skew)"}]))
            continue
        quote = PushedQuote(symbol=item.symbol, bid=item.bid, ask=item.ask, mid=item.mid, time=item.time)
        kept = good.get(quote.symbol)
        if kept is None or kept.time <= quote.time:  # one symbol twice in a call: the newer price wins
            good[quote.symbol] = quote
    accepted = len(body.quotes) - len(errors)
    if good:
        await market.feed.upsert(target, list(good.values()))
        await market.feed_pushed(target, list(good.values()))
    return {"accepted": accepted, "rejected": len(errors), "errors": errors, "received_at": received}
