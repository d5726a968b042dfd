"""Position size (percent, fixed money, ATR stop, reverse), pip value and margin for one trade.

Scalar Python on purpose: one calculation costs a few microseconds, NumPy's fixed cost would be
~10x that (perf-notes 5.3). The batch path (app/calc/batch.py) is the vectorised twin; a property
test keeps both in agreement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from app.calc.conversion import Quote, RateTable, Side, merge_used
from app.calc.errors import CalcError, MissingRate
from app.calc.flags import Explain, flag
from app.calc.instruments import InstrumentSpec, split_pair
from app.calc.leverage import resolve_leverage
from app.calc.numbers import floor_to_step, nearest_step, r10, step_decimals

Direction = Literal["long", "short"]
CONVENTIONS_VERSION = "2026-12-02"

# The instrument's own pair in conversionRates is the market now; entryPrice is the trader's level. They
# may differ (a pending order), but not by much: above OWN_RATE_FLAG (relative) the answer is flagged,
# above OWN_RATE_REFUSE it is a 422 (USDJPY 100 against an entry of 150 changes the size by 50 %).
OWN_RATE_FLAG = 0.01
OWN_RATE_REFUSE = 0.20


@dataclass(slots=True)
class TakeProfit:
    price: float
    share: float
    field: str


@dataclass(slots=True)
class PositionSizeInput:
    balance: float
    account_currency: str
    spec: InstrumentSpec
    entry: float
    rates: RateTable
    stop_loss: float | None = None
    stop_loss_pips: float | None = None
    stop_loss_points: float | None = None
    atr: float | None = None
    atr_multiplier: float = 1.0
    spread: float = 0.0  # price distance (spreadPips x pipSize when given in pips)
    spread_adjust_stop: bool = False
    risk_percentage: float | None = None
    risk_amount: float | None = None
    lots: float | None = None  # reverse mode: a given size -> its risk
    direction: Direction | None = None
    take_profits: list[TakeProfit] = field(default_factory=list)
    leverage: float | None = None
    jurisdiction: str | None = None
    broker_max_leverage: float | None = None
    commission_per_lot: float = 0.0
    free_margin: float | None = None
    min_lot_policy: Literal["raise", "refuse"] = "raise"
    conversion_at: Literal["entry", "stop"] = "entry"
    rate_side: Literal["mid", "conservative"] = "mid"
    lot_rounding: Literal["down", "nearest"] = "down"


@dataclass(slots=True)
class StopLevels:
    direction: Direction
    direction_source: str
    stop: float
    distance: float


def resolve_stop(inp: PositionSizeInput, ex: Explain | None) -> StopLevels:
    spec, entry = inp.spec, inp.entry
    if inp.stop_loss is not None:
        if inp.stop_loss == entry:
            raise CalcError("stopLoss", "stopLoss equals entryPrice: the stop distance is zero.", "STOP_EQUALS_ENTRY")
        direction: Direction = "long" if inp.stop_loss < entry else "short"
        if inp.direction is not None and inp.direction != direction:
            side = "below" if inp.direction == "long" else "above"
            raise CalcError("stopLoss", f"A {inp.direction} position needs stopLoss {side} entryPrice "
                            f"({inp.stop_loss} vs {entry}).", "STOP_LOSS_WRONG_SIDE")
        if ex:
            ex.add("direction", "stopLoss < entryPrice ? long : short",
                   {"entryPrice": entry, "stopLoss": inp.stop_loss}, direction)
        # r10: 1.1850 - 1.1820 is 0.0030000000000001137 in binary; prices never carry 10 decimals.
        distance = r10(abs(entry - inp.stop_loss))
        if distance <= 0:  # e.g. entryPrice 1e-20, stopLoss 5e-21: no loss per lot to divide by
            raise CalcError("stopLoss", "stopLoss is within 1e-10 of entryPrice: prices resolve to 10 decimals, so "
                            "the stop distance is zero.", "STOP_EQUALS_ENTRY")
        return StopLevels(direction, "stopLoss", inp.stop_loss, distance)

    if inp.direction is not None:
        direction, source = inp.direction, "direction"
    elif inp.take_profits:
        direction = "long" if inp.take_profits[0].price > entry else "short"
        source = "takeProfit"
    else:
        direction, source = "long", "assumed"
    if inp.stop_loss_pips is not None:
        distance = inp.stop_loss_pips * spec.pip_size
        formula, used = "stopLossPips x pipSize", {"stopLossPips": inp.stop_loss_pips, "pipSize": spec.pip_size}
        fname = "stopLossPips"
    elif inp.stop_loss_points is not None:
        distance = inp.stop_loss_points * spec.tick_size
        formula, used = "stopLossPoints x tickSize", {"stopLossPoints": inp.stop_loss_points,
                                                      "tickSize": spec.tick_size}
        fname = "stopLossPoints"
    else:
        assert inp.atr is not None
        distance = inp.atr * inp.atr_multiplier
        formula, used = "atr x atrMultiplier", {"atr": inp.atr, "atrMultiplier": inp.atr_multiplier}
        if inp.spread_adjust_stop:
            distance += inp.spread
            formula += " + spread"
            used["spread"] = inp.spread
        fname = "atr"
    if distance <= 0:
        raise CalcError(fname, "The stop distance must be positive.")
    stop = r10(entry - distance if direction == "long" else entry + distance)
    if stop <= 0:
        raise CalcError(fname, f"A stop {distance} below entry {entry} would be at or below zero.")
    if ex:
        ex.add("stopDistance", formula, used, r10(distance))
        ex.add("stopLoss", "entryPrice - distance (long) | entryPrice + distance (short)",
               {"entryPrice": entry, "direction": direction}, stop)
    return StopLevels(direction, source, stop, distance)


def own_pair(spec: InstrumentSpec) -> tuple[str, str] | None:
    return split_pair(spec.symbol) if spec.base != spec.symbol else None


def rate_tables(inp: PositionSizeInput, stop: float) -> tuple[RateTable, RateTable]:
    """(market table, loss table). The instrument's own pair is at the request's rate or, if absent,
    at entryPrice; with conversionAt "stop" the loss table has it at the stop price instead."""
    pair = own_pair(inp.spec)
    market = inp.rates
    if pair is not None and not market.has(*pair):
        market = market.copy()  # the caller's table stays as given
        market.set(pair[0], pair[1], Quote(inp.entry, inp.entry), "entryPrice")
    if inp.conversion_at == "stop" and pair is not None:
        loss = market.copy()
        loss.set(pair[0], pair[1], Quote(stop, stop), "stopLoss")
        return market, loss
    return market, market


def check_own_rate(spec: InstrumentSpec, rates: RateTable, level: float, level_field: str,
                   flags: list[dict[str, Any]]) -> None:
    """The own pair's rate in conversionRates against the trader's price level (entry or close): flag
    above OWN_RATE_FLAG relative difference, 422 above OWN_RATE_REFUSE."""
    pair = own_pair(spec)
    if pair is None or not rates.has(*pair):
        return
    rate = rates.quotes[pair].mid
    diff = abs(rate / level - 1.0)
    if diff > OWN_RATE_REFUSE:
        raise CalcError(f"conversionRates.{spec.symbol}",
                        f"conversionRates.{spec.symbol} = {rate:g} is {diff:.0%} away from {level_field} {level:g} "
                        f"(more than {OWN_RATE_REFUSE:.0%}): one of them is wrong. The rate converts the "
                        f"instrument's own currencies; {level_field} is the trade's level.", "RATE_LEVEL_MISMATCH")
    if diff > OWN_RATE_FLAG:
        data: dict[str, Any] = {"rate": rate, level_field: level, "relativeDifference": round(diff, 6)}
        flags.append(flag("OWN_RATE_DIFFERS_FROM_PRICE", **data))


def loss_side(rate_side: str) -> Side:
    # Paying a loss in quote currency costs more account currency at the ask of quote/account.
    return "ask" if rate_side == "conservative" else "mid"


def profit_side(rate_side: str) -> Side:
    return "bid" if rate_side == "conservative" else "mid"


def margin_per_lot(spec: InstrumentSpec, price: float, leverage: float, market: RateTable, account: str,
                   field_name: str = "conversionRates") -> tuple[float, float]:
    """(margin for one lot in account currency, notional of one lot in account currency)."""
    if spec.margin_mode == "fx":
        x = market.convert_factor(spec.margin_currency, account, "mid", field_name, spec.symbol)
        notional = spec.contract_size * x
    else:
        x = market.convert_factor(spec.quote, account, "mid", field_name, spec.symbol)
        notional = spec.contract_size * price * x
    if spec.margin_mode == "cfd":
        return notional * spec.margin_rate, notional
    return notional / leverage * spec.margin_rate, notional


def position_size(inp: PositionSizeInput, ex: Explain | None = None) -> dict[str, Any]:
    spec, entry, balance = inp.spec, inp.entry, inp.balance
    flags: list[dict[str, Any]] = []
    lv = resolve_stop(inp, ex)
    direction = lv.direction

    for tp in inp.take_profits:
        if (direction == "long" and tp.price <= entry) or (direction == "short" and tp.price >= entry):
            side = "above" if direction == "long" else "below"
            raise CalcError(tp.field, f"A {direction} position needs its take-profit {side} entryPrice "
                            f"({tp.price} vs {entry}).", "TAKE_PROFIT_WRONG_SIDE")

    if lv.direction_source == "assumed":
        flags.append(flag("DIRECTION_ASSUMED", direction="long"))
    check_own_rate(spec, inp.rates, entry, "entryPrice", flags)
    market, loss_rates = rate_tables(inp, lv.stop)
    account = inp.account_currency
    xq_loss = loss_rates.convert_factor(spec.quote, account, loss_side(inp.rate_side), instrument=spec.symbol)
    commission_rt = 2.0 * inp.commission_per_lot
    value_per_lot = lv.distance * spec.contract_size * xq_loss
    loss_per_lot = value_per_lot + commission_rt
    if ex:
        ex.add("quoteToAccount", f"X({spec.quote}->{account})", {"conversionAt": inp.conversion_at,
               "rateSide": inp.rate_side}, xq_loss)
        ex.add("lossPerLot", "|entryPrice - stopLoss| x contractSize x X(quote->account) + 2 x commissionPerLot",
               {"distance": r10(lv.distance), "contractSize": spec.contract_size, "commissionPerLot":
                inp.commission_per_lot}, r10(loss_per_lot))

    step = spec.lot_step
    if inp.lots is not None:  # reverse: risk of a given size
        lots = floor_to_step(inp.lots, step)
        if abs(lots - inp.lots) > 1e-12:
            flags.append(flag("ROUNDED_TO_LOT_STEP", givenLots=inp.lots, lotStep=step))
        target = lots * loss_per_lot
        exact_lots = inp.lots
    else:
        if inp.risk_amount is not None:
            target = inp.risk_amount
            if ex:
                ex.add("targetRisk", "riskAmount", {"riskAmount": inp.risk_amount}, target)
        else:
            assert inp.risk_percentage is not None
            target = balance * inp.risk_percentage / 100.0
            if ex:
                ex.add("targetRisk", "accountBalance x riskPercentage / 100",
                       {"accountBalance": balance, "riskPercentage": inp.risk_percentage}, r10(target))
        exact_lots = target / loss_per_lot
        lots = (nearest_step if inp.lot_rounding == "nearest" else floor_to_step)(exact_lots, step)
        if ex:
            ex.add("exactLots", "targetRisk / lossPerLot", {"targetRisk": r10(target),
                   "lossPerLot": r10(loss_per_lot)}, r10(exact_lots))
            ex.add("tradeableLots", f"{inp.lot_rounding} to lotStep", {"lotStep": step}, lots)
        if lots > spec.max_lot:
            lots = spec.max_lot
            flags.append(flag("CAPPED_AT_MAX_LOT", maxLot=spec.max_lot))
        if lots < spec.min_lot:
            if inp.min_lot_policy == "raise":
                lots = spec.min_lot
                flags.append(flag("RAISED_TO_MIN_LOT_RISK_EXCEEDS_TARGET", minLot=spec.min_lot))
            else:
                lots = 0.0
                flags.append(flag("BELOW_MIN_LOT_NO_TRADE", minLot=spec.min_lot))

    max_loss = lots * loss_per_lot
    # 1e-9 relative: the lot-step snap may land a hair above the exact size; that is not a breach.
    if inp.lots is None and max_loss > target * (1 + 1e-9) and not any(
            f["code"] == "RAISED_TO_MIN_LOT_RISK_EXCEEDS_TARGET" for f in flags):
        flags.append(flag("RISK_EXCEEDS_TARGET", targetRisk=r10(target), actualRisk=r10(max_loss)))
    risk_pct = max_loss / balance * 100.0
    if risk_pct > 10.0:
        flags.append(flag("RISK_ABOVE_10_PERCENT"))
    # Pip value converts like the loss it measures (conversionAt, rateSide).
    pip_value_per_lot = spec.pip_size * spec.contract_size * xq_loss

    leverage, rule, limits = resolve_leverage(spec, inp.leverage, inp.jurisdiction, inp.broker_max_leverage)
    if inp.leverage is not None and leverage < inp.leverage:
        flags.append(flag("LEVERAGE_CAPPED", requested=inp.leverage, applied=leverage, rule=rule))
    if not_offered_to_us_retail(spec, inp.jurisdiction):
        flags.append(flag("NOT_OFFERED_TO_US_RETAIL", assetClass=spec.asset_class))
    # Margin never blocks the size: without a rate for it the size comes back with margin null.
    mpl_or_none: float | None
    try:
        mpl_or_none, notional_or_none = margin_per_lot(spec, entry, leverage, market, account)
    except MissingRate as exc:
        mpl_or_none = notional_or_none = None
        flags.append(flag("MARGIN_UNAVAILABLE", neededRate=exc.needed, detail=exc.detail))
    margin = None if mpl_or_none is None else lots * mpl_or_none
    if ex:
        ex.add("maxLoss", "lots x lossPerLot", {"lots": lots}, r10(max_loss))
        ex.add("leverage", "min(requested, regulatory cap, broker max)", dict(limits), leverage)
        ex.add("requiredMargin", _margin_formula(spec), {"lots": lots, "leverage": leverage,
               "marginRate": spec.margin_rate}, None if margin is None else r10(margin))

    stop_x = _stop_rate_factor(inp, market, lv.stop, xq_loss)
    exact_margin = None if mpl_or_none is None else exact_lots * mpl_or_none
    out: dict[str, Any] = {
        "direction": direction,
        "directionSource": lv.direction_source,
        "entryPrice": entry,
        "stopLoss": lv.stop,
        "stopDistance": r10(lv.distance),
        "stopDistancePips": r10(lv.distance / spec.pip_size),
        "positionSize": r10(lots * spec.contract_size),
        "lotSize": lots,
        "exactPositionSize": r10(exact_lots * spec.contract_size),
        "exactLotSize": r10(exact_lots),
        "targetRiskAmount": r10(target),
        "targetRiskPercentage": r10(target / balance * 100.0),
        "maxLoss": r10(max_loss),
        "riskPercentage": r10(risk_pct),
        "lossPerLot": r10(loss_per_lot),
        "commission": r10(commission_rt * lots),
        "pipValue": r10(pip_value_per_lot * lots),
        "pipValuePerLot": r10(pip_value_per_lot),
        "requiredMargin": _opt(margin),
        "marginPercentage": None if margin is None else r10(margin / balance * 100.0),
        "marginPerLot": _opt(mpl_or_none),
        "notional": None if notional_or_none is None else r10(notional_or_none * lots),
        "leverage": leverage,
        "leverageCap": rule,
        "leverageLimits": limits,
        # BabyPips' method: the pip value that would lose exactly the target at the stop.
        "pipValueNeeded": r10(target / (lv.distance / spec.pip_size)),
        "targetRiskAmountQuote": r10(target / xq_loss),
        # What the tradeable size loses if the quote->account rate at the stop is the stop price
        # (differs from maxLoss when the pair converts itself and conversionAt is "entry").
        "maxLossAtStopRate": r10(lots * (lv.distance * spec.contract_size * stop_x + commission_rt)),
        "exactPipValue": r10(pip_value_per_lot * exact_lots),
        "exactRequiredMargin": _opt(exact_margin),
        "exactMarginPercentage": None if exact_margin is None else r10(exact_margin / balance * 100.0),
        "spread": inp.spread,
    }
    if margin is not None and inp.free_margin is None and margin > balance * (1 + 1e-12):
        # No free margin given: the balance is the most that could carry the position.
        flags.append(flag("MARGIN_EXCEEDS_BALANCE", requiredMargin=r10(margin), accountBalance=balance,
                          marginPercentage=r10(margin / balance * 100.0)))
    if inp.free_margin is not None and mpl_or_none is not None:
        mpl = mpl_or_none
        max_by_margin = floor_to_step(inp.free_margin / mpl, step) if mpl > 0 else spec.max_lot
        out["maxLotsByMargin"] = max_by_margin
        if lots > max_by_margin + 1e-12:
            flags.append(flag("EXCEEDS_MAX_SIZE_BY_MARGIN", freeMargin=inp.free_margin,
                              marginLimitedLotSize=max_by_margin))
            out["marginLimitedLotSize"] = max_by_margin
            out["marginLimitedPositionSize"] = r10(max_by_margin * spec.contract_size)

    if inp.take_profits:
        xq_profit = market.convert_factor(spec.quote, account, profit_side(inp.rate_side))
        out.update(_take_profit(inp, lots, entry, lv, loss_per_lot, max_loss, xq_profit, commission_rt))

    out["flags"] = flags
    out["ratesUsed"], out["conversionPaths"] = merge_used(market, loss_rates)
    out["instrument"] = spec.public()
    out["conventions"] = conventions(spec, inp.conversion_at, inp.rate_side, inp.lot_rounding, inp.min_lot_policy)
    return out


def conventions(spec: InstrumentSpec, conversion_at: str, rate_side: str, lot_rounding: str,
                min_lot_policy: str) -> dict[str, Any]:
    """The conventions one position size used (the batch's fast path builds the same dict)."""
    return {
        "version": CONVENTIONS_VERSION,
        "conversionAt": conversion_at,
        "rateSide": rate_side,
        "lotRounding": lot_rounding,
        "minLotPolicy": min_lot_policy,
        "commission": "commissionPerLot is one way, charged on open and close, in account currency",
        "marginMode": spec.margin_mode,
        "pipSize": spec.pip_size,
        "spread": "price distance (spreadPips x pipSize when given in pips)",
        "direction": "from the levels (stopLoss, else takeProfit), else the direction field; with none of "
                     "them long is assumed and flagged DIRECTION_ASSUMED",
        "conversion": "shortest path in the graph of conversionRates plus the instrument's own price "
                      "(fewest hops, then USD, EUR, alphabetical); see conversionPaths",
        "ownRateCheck": f"conversionRates' own-pair rate vs entryPrice: flag above {OWN_RATE_FLAG:.0%}, "
                        f"422 above {OWN_RATE_REFUSE:.0%}",
    }


# The per-item choices a batch item echoes (the prose of the conventions is given once per batch).
ITEM_CONVENTION_KEYS = ("version", "conversionAt", "rateSide", "lotRounding", "minLotPolicy", "marginMode", "pipSize")


def item_conventions(conv: dict[str, Any]) -> dict[str, Any]:
    return {k: conv[k] for k in ITEM_CONVENTION_KEYS}


def _opt(x: float | None) -> float | None:
    return None if x is None else r10(x)


def not_offered_to_us_retail(spec: InstrumentSpec, jurisdiction: str | None) -> bool:
    """NFA/CFTC: retail forex only; CFDs on indices, metals, commodities, crypto and shares are not
    offered to US retail clients (no regulatory leverage exists for them)."""
    return jurisdiction == "nfa" and not spec.asset_class.startswith("fx")


def _stop_rate_factor(inp: PositionSizeInput, market: RateTable, stop: float, current: float) -> float:
    pair = own_pair(inp.spec)
    if pair is None or inp.conversion_at == "stop":
        return current
    at_stop = market.copy()
    at_stop.set(pair[0], pair[1], Quote(stop, stop), "stopLoss")
    return at_stop.convert_factor(inp.spec.quote, inp.account_currency, loss_side(inp.rate_side),
                                  instrument=inp.spec.symbol)


def _margin_formula(spec: InstrumentSpec) -> str:
    if spec.margin_mode == "fx":
        return "lots x contractSize x X(marginCurrency->account) / leverage x marginRate"
    if spec.margin_mode == "cfd":
        return "lots x contractSize x price x X(quote->account) x marginRate"
    return "lots x contractSize x price x X(quote->account) / leverage x marginRate"


def _take_profit(inp: PositionSizeInput, lots: float, entry: float, lv: StopLevels, loss_per_lot: float,
                 max_loss: float, xq: float, commission_rt: float) -> dict[str, Any]:
    spec = inp.spec
    step = spec.lot_step
    legs: list[dict[str, Any]] = []
    remaining = lots
    gross_total = 0.0
    gross_per_lot = 0.0
    for i, tp in enumerate(inp.take_profits):
        last = i == len(inp.take_profits) - 1
        leg_lots = round(remaining, step_decimals(step)) if last else floor_to_step(lots * tp.share, step)
        remaining -= leg_lots
        move = abs(tp.price - entry)
        per_lot = move * spec.contract_size * xq
        gross = leg_lots * per_lot
        gross_total += gross
        gross_per_lot += tp.share * per_lot
        legs.append({"price": tp.price, "share": tp.share, "lots": leg_lots,
                     "pips": r10(move / spec.pip_size), "grossProfit": r10(gross),
                     "riskRewardRatio": r10(move / lv.distance)})
    net = gross_total - commission_rt * lots
    if lots > 0:
        rr = net / max_loss
    else:  # no tradeable size: the ratio of one lot split by share
        rr = (gross_per_lot - commission_rt) / loss_per_lot
    return {"takeProfits": legs, "potentialProfit": r10(net), "riskRewardRatio": r10(rr),
            "breakEvenWinRate": r10(1.0 / (1.0 + rr)) if rr > 0 else 1.0}
