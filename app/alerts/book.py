"""The live book of one trader: risk at the stops, margin, margin level, net exposure by currency and the
portfolio VaR, from the account state (app.integrations.platform_events) and the broker's market data.

Prices come from the broker's quote chain (the pipeline's prepare steps): the open price stands in for the
entry, conversions to the account currency and the VaR's history are fetched as for a posted request. A part
that cannot be priced (no history, a provider down) is null with the reason, never the whole answer.
"""

from __future__ import annotations

import uuid
from typing import Any

from app.auth.admission import Caller
from app.auth.principal import Principal
from app.calc.errors import CalcError
from app.calculations.market import describe_quote
from app.calculations.routes import ROUTES_BY_PATH
from app.errors import AppError
from app.integrations.platform_events.repository import Account
from app.services import Services

PORTFOLIO = ROUTES_BY_PATH["/api/v1/calculate/portfolio"]
VAR = ROUTES_BY_PATH["/api/v1/calculate/var"]
VAR_CONFIDENCES = (0.95, 0.99)
# What each figure of the live book means (returned with it, as every calculation names its conventions).
CONVENTIONS: dict[str, str] = {
    "valuation": "current prices from the broker's quote chain (mid for values, bid/ask for conversions); an "
                 "instrument without a fresh quote at its open price, named in pricedAtOpen",
    "riskAtStop": "money lost if the stop is hit: lots x contract size x |openPrice - stopLoss|, in the account "
                  "currency at the current conversion rate; null without a stop (totalRiskComplete false)",
    "percentOfEquity": "100 x value / equity; null when equity is unknown or not above 0",
    "margin": "the platform's used margin (data.margin, else equity - freeMargin, floored at 0); without an "
              "account figure, the sum of required margins at the broker's leverage (marginSource computed)",
    "marginLevel": "equity / margin x 100, in %; null when no margin is used",
    "netExposure": "per currency, signed units (long > 0: 1 lot EURUSD bought is +100,000 EUR and -100,000 x price "
                   "USD), accountValue in the account currency at current prices; percentOfEquity on |accountValue|",
    "var": "1-day historical VaR and ES at 95 and 99 %, positive losses in the account currency, positions valued "
           "at the current price (the mid), daily returns from the market history (var.history names the window)",
}


async def system_caller(svc: Services, broker_id: uuid.UUID) -> Caller:
    """The broker as the prepare steps need it (its config picks the quote chain): a principal with no
    permissions, used only to price the broker's own book, never to authorise anything."""
    broker = await svc.auth.active_broker(broker_id)
    return Caller(Principal(broker_id=broker_id, kind="secret_key", permissions=frozenset()), broker)


def _pct(part: float | None, whole: float | None) -> float | None:
    if part is None or whole is None or whole <= 0:
        return None
    return round(100.0 * part / whole, 6)


def _problem(exc: AppError | CalcError) -> dict[str, Any]:
    if isinstance(exc, CalcError):
        return {"code": exc.code, "field": exc.field, "detail": exc.detail}
    return {"code": exc.slug, "field": None, "detail": exc.detail}


async def _prices(svc: Services, caller: Caller, account: Account
                  ) -> tuple[dict[str, Any], list[str], dict[str, dict[str, Any]]]:
    """Current prices of the book's instruments from the broker's chain (they value the net exposure); an
    instrument without a fresh quote is valued at its open price, and named."""
    market = svc.market_data
    symbols = list(dict.fromkeys(p.symbol for p in account.positions))
    try:
        found = (await market.lookup(caller.principal.broker_id, market.chain_for(caller.broker.config),
                                     symbols)).quotes
    except AppError:
        found = {}
    rates: dict[str, Any] = {}
    stale: list[str] = []
    views: dict[str, dict[str, Any]] = {}
    for p in account.positions:
        if p.symbol in rates:
            continue
        q = found.get(p.symbol)
        if q is None:
            rates[p.symbol] = p.open_price
            stale.append(p.symbol)
        else:
            rates[p.symbol] = {"bid": q.bid, "ask": q.ask}
            views[p.symbol] = describe_quote(q)
    return rates, stale, views


async def _portfolio(svc: Services, caller: Caller, account: Account, rates: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"accountCurrency": account.currency, "conversionRates": rates, "positions": [
        {"currencyPair": p.symbol, "side": p.side, "lots": p.lots, "entryPrice": p.open_price,
         **({"stopLoss": p.stop_loss} if p.stop_loss is not None else {})} for p in account.positions]}
    if account.balance is not None and account.balance > 0:
        body["accountBalance"] = account.balance
    req = await PORTFOLIO.prepare(PORTFOLIO.request.model_validate(body), caller, svc)  # type: ignore[misc]
    out: dict[str, Any] = PORTFOLIO.engine(req, False)
    return out


def _current(rate: Any) -> float:
    """The price a position is valued at now: the quote's mid, or the open price it stands in for."""
    return (float(rate["bid"]) + float(rate["ask"])) / 2 if isinstance(rate, dict) else float(rate)


async def _var(svc: Services, caller: Caller, account: Account, rates: dict[str, Any]) -> dict[str, Any]:
    # Valued at the current price like the exposure (not the open price): the loss a move would cause now.
    body = {"accountCurrency": account.currency, "confidence": list(VAR_CONFIDENCES), "positions": [
        {"currencyPair": p.symbol, "side": p.side, "lots": p.lots, "price": _current(rates[p.symbol])}
        for p in account.positions]}
    req = await VAR.prepare(VAR.request.model_validate(body), caller, svc)  # type: ignore[misc]
    out: dict[str, Any] = VAR.engine(req, False)
    return out


async def live_book(svc: Services, broker_id: uuid.UUID, account: Account) -> dict[str, Any]:
    equity = account.equity
    margin_used = account.margin
    out: dict[str, Any] = {
        "traderId": account.trader_id, "accountCurrency": account.currency, "balance": account.balance,
        "equity": equity, "freeMargin": account.free_margin, "asOf": account.updated_at,
        "marginCallAt": account.margin_call_at, "positions": [], "totalRiskAtStops": 0.0,
        "totalRiskPercentOfEquity": 0.0 if equity and equity > 0 else None, "totalRiskComplete": True,
        "margin": margin_used, "marginSource": "platform" if margin_used is not None else None,
        "marginLevel": _pct(equity, margin_used) if margin_used else None,
        "netExposureByCurrency": {}, "pricedAtOpen": [], "prices": {}, "var": None, "unavailable": [], "flags": [],
        "conventions": CONVENTIONS}
    if account.currency is None:
        out["unavailable"].append({"part": "book", "code": "NO_ACCOUNT_UPDATE",
                                   "detail": "No account.updated event yet: the account currency is unknown."})
        return out
    if not account.positions:
        return out
    caller = await system_caller(svc, broker_id)
    rates, stale, views = await _prices(svc, caller, account)
    out["prices"] = views
    if any(not v["live"] for v in views.values()):
        # A dated snapshot (development, or a chain that fell back to it) values the book: say so where a risk
        # desk reads the figures, not only in the price's label.
        out["flags"].append("PRICES_NOT_LIVE")
    try:
        pf = await _portfolio(svc, caller, account, rates)
    except (AppError, CalcError) as exc:
        out["unavailable"].append({"part": "portfolio", **_problem(exc)})
        return out
    out["flags"] += [f["code"] if isinstance(f, dict) else f for f in pf.get("flags", [])]
    out["pricedAtOpen"] = stale  # no provider of the broker's chain had a fresh quote: valued at the open price
    for p, r in zip(account.positions, pf["positions"], strict=True):
        out["positions"].append({
            "positionId": p.position_id, "symbol": p.symbol, "side": p.side, "lots": p.lots,
            "openPrice": p.open_price, "stopLoss": p.stop_loss, "takeProfit": p.take_profit,
            "riskAtStop": r["riskAtStop"], "riskPercentOfEquity": _pct(r["riskAtStop"], equity),
            "requiredMargin": r["requiredMargin"], "notional": r["notional"]})
    out["totalRiskAtStops"] = pf["totalRisk"]
    out["totalRiskComplete"] = pf["totalRiskComplete"]
    out["totalRiskPercentOfEquity"] = _pct(pf["totalRisk"], equity)
    if margin_used is None and pf["totalMargin"] is not None:  # the platform did not say: our own figure
        out["margin"], out["marginSource"] = pf["totalMargin"], "computed"
        out["marginLevel"] = _pct(equity, pf["totalMargin"]) if pf["totalMargin"] else None
    out["netExposureByCurrency"] = {
        cur: {"amount": x["amount"], "accountValue": x["accountValue"],
              "percentOfEquity": _pct(abs(x["accountValue"]) if x["accountValue"] is not None else None, equity)}
        for cur, x in pf["netExposureByCurrency"].items()}
    try:
        var = await _var(svc, caller, account, rates)
    except (AppError, CalcError) as exc:
        out["unavailable"].append({"part": "var", **_problem(exc)})
        return out
    out["var"] = {"method": var["method"], "horizonDays": var["horizonDays"], "observations": var["observations"],
                  "results": [{"confidence": r["confidence"], "var": r["var"], "es": r["es"]} for r in var["results"]],
                  "history": var.get("history")}
    return out
