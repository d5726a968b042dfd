"""Pip value, margin, P&L and lot conversions for a single instrument."""

from __future__ import annotations

from typing import Any, Literal

from app.calc.conversion import Quote, RateTable, merge_used
from app.calc.errors import CalcError
from app.calc.flags import Explain, flag
from app.calc.instruments import InstrumentSpec
from app.calc.leverage import resolve_leverage
from app.calc.numbers import floor_to_step, nearest_step, r10
from app.calc.sizing import check_own_rate, margin_per_lot, own_pair


def with_own_pair(spec: InstrumentSpec, rates: RateTable, price: float | None,
                  source: str = "price") -> RateTable:
    """The table with the instrument's own pair at `price` when the table lacks it. A copy, never the
    caller's table: positions on one pair at different prices must not see each other's price."""
    pair = own_pair(spec)
    if pair is not None and price is not None and not rates.has(*pair):
        rates = rates.copy()
        rates.set(pair[0], pair[1], Quote(price, price), source)
    return rates


def units_and_lots(spec: InstrumentSpec, lots: float | None, units: float | None) -> tuple[float, float]:
    if lots is not None:
        return lots * spec.contract_size, lots
    assert units is not None
    return units, units / spec.contract_size


def pip_value(spec: InstrumentSpec, account: str, rates: RateTable, units: float, lots: float,
              price: float | None, ex: Explain | None = None) -> dict[str, Any]:
    rates = with_own_pair(spec, rates, price)
    x = rates.convert_factor(spec.quote, account, instrument=spec.symbol)
    per_unit_quote = spec.pip_size
    out: dict[str, Any] = {
        "accountCurrency": account,
        "quoteCurrency": spec.quote,
        "pipSize": spec.pip_size,
        "tickSize": spec.tick_size,
        "pointsPerPip": r10(spec.pip_size / spec.tick_size),
        "units": r10(units),
        "lots": r10(lots),
        "pipValue": r10(per_unit_quote * units * x),
        "pipValuePerLot": r10(per_unit_quote * spec.contract_size * x),
        "pipValuePerUnit": r10(per_unit_quote * x),
        "pipValueQuote": r10(per_unit_quote * units),
        "pipValuePerLotQuote": r10(per_unit_quote * spec.contract_size),
        "tickValue": r10(spec.tick_size * units * x),
        "tickValuePerLot": r10(spec.tick_size * spec.contract_size * x),
        "quoteToAccountRate": x,
    }
    pair = own_pair(spec)
    if pair is not None and spec.base != account:
        try:
            xb = rates.convert_factor(spec.quote, spec.base)
            out["pipValueBase"] = r10(per_unit_quote * units * xb)
            out["baseCurrency"] = spec.base
        except CalcError:
            pass  # the base-currency figure is informative only
    if ex:
        ex.add("pipValue", "pipSize x units x X(quote->account)",
               {"pipSize": spec.pip_size, "units": units, "X": x}, out["pipValue"])
    out["ratesUsed"], out["conversionPaths"] = merge_used(rates)
    return out


def margin(spec: InstrumentSpec, account: str, rates: RateTable, units: float, lots: float, price: float | None,
           leverage: float | None, jurisdiction: str | None, balance: float | None, free_margin: float | None,
           side: Literal["long", "short"] | None, open_price: float | None,
           ex: Explain | None = None, broker_max: float | None = None) -> dict[str, Any]:
    # CFD margin needs the instrument price; FX margin needs it only to convert the base currency.
    pair = own_pair(spec)
    if price is None and pair is not None and rates.has(*pair):
        q = rates.quotes[pair]
        # A buy fills at the ask, a sell at the bid (OANDA "time-of-trade" sided rate).
        price = q.ask if side == "long" else q.bid if side == "short" else q.mid
    if price is None and spec.margin_mode != "fx":
        raise CalcError("price", f"{spec.symbol} margin needs the instrument price.")
    marks = rates.quotes.get(pair) if pair is not None else None  # current quote, to mark the position
    if pair is not None and price is not None:
        # Margin is fixed at the fill price (an explicit price wins over the table's quote).
        rates = rates.copy()
        rates.set(pair[0], pair[1], Quote(price, price), "price")
    lev, rule, limits = resolve_leverage(spec, leverage, jurisdiction, broker_max)
    mpl, notional_per_lot = margin_per_lot(spec, price or 0.0, lev, rates, account)
    m = mpl * lots
    out: dict[str, Any] = {
        "accountCurrency": account,
        "units": r10(units),
        "lots": r10(lots),
        "price": price,
        "marginMode": spec.margin_mode,
        "marginRate": spec.margin_rate,
        "leverage": lev,
        "leverageCap": rule,
        "leverageLimits": limits,
        "effectiveLeverage": r10(1.0 / spec.margin_rate if spec.margin_mode == "cfd" else lev / spec.margin_rate),
        "notional": r10(notional_per_lot * lots),
        "requiredMargin": r10(m),
        "marginPerLot": r10(mpl),
        "marginCurrency": spec.margin_currency if spec.margin_mode == "fx" else spec.quote,
        "marginRequirementRate": r10(mpl / notional_per_lot) if notional_per_lot > 0 else None,
    }
    if spec.margin_mode == "fx":
        out["marginInMarginCurrency"] = r10(units / lev * spec.margin_rate)
    if ex:
        ex.add("requiredMargin", "lots x marginPerLot", {"lots": lots, "marginPerLot": r10(mpl)}, r10(m))
    equity = balance
    if open_price is not None and side is not None and balance is not None:
        # Marked at the closing side: a long closes at the bid, a short at the ask.
        close = (marks.bid if side == "long" else marks.ask) if marks is not None else price
        assert close is not None
        move = (close - open_price) if side == "long" else (open_price - close)
        x = rates.convert_factor(spec.quote, account, instrument=spec.symbol)
        pnl = move * units * x
        out["unrealizedPnl"] = r10(pnl)
        equity = balance + pnl
        out["equity"] = r10(equity)
    if balance is not None:
        out["marginPercentage"] = r10(m / balance * 100.0)
    if equity is not None:
        out["marginLevel"] = r10(equity / m * 100.0) if m > 0 else None
    # One free-margin figure per meaning: before this position (the freeMargin given, else the equity)
    # and after it (before - requiredMargin). `freeMargin` is the "after" figure under its old name.
    before = free_margin if free_margin is not None else equity
    if before is not None:
        out["freeMarginBefore"] = r10(before)
        out["freeMarginSource"] = "freeMargin" if free_margin is not None else (
            "equity" if open_price is not None and side is not None else "accountBalance")
        out["freeMarginAfter"] = r10(before - m)
        out["freeMargin"] = out["freeMarginAfter"]
        out["maxLotsByMarginExact"] = r10(before / mpl)
        out["maxLotsByMargin"] = floor_to_step(before / mpl, spec.lot_step)
    flags: list[dict[str, Any]] = []
    if free_margin is None and balance is not None and m > balance * (1 + 1e-12):
        flags.append(flag("MARGIN_EXCEEDS_BALANCE", requiredMargin=r10(m), accountBalance=balance,
                          marginPercentage=r10(m / balance * 100.0)))
    if free_margin is not None and m > free_margin * (1 + 1e-12):
        flags.append(flag("EXCEEDS_MAX_SIZE_BY_MARGIN", freeMargin=free_margin,
                          marginLimitedLotSize=out["maxLotsByMargin"]))
    out["flags"] = flags
    out["ratesUsed"], out["conversionPaths"] = merge_used(rates)
    return out


def pnl(spec: InstrumentSpec, account: str, rates: RateTable, units: float, lots: float,
        side: Literal["long", "short"], open_price: float, close_price: float, commission_per_lot: float,
        swap: float, ex: Explain | None = None) -> dict[str, Any]:
    # Converted at the close: the instrument's own pair is at the close price unless a rate is given.
    flags: list[dict[str, Any]] = []
    check_own_rate(spec, rates, close_price, "closePrice", flags)
    rates = with_own_pair(spec, rates, close_price, "closePrice")
    move = close_price - open_price if side == "long" else open_price - close_price
    pnl_quote = move * units
    x = rates.convert_factor(spec.quote, account, instrument=spec.symbol)
    gross = pnl_quote * x
    commission = 2.0 * commission_per_lot * lots
    net = gross - commission + swap
    if ex:
        ex.add("pnlQuote", "(close - open) x units (long) | (open - close) x units (short)",
               {"open": open_price, "close": close_price, "units": units}, r10(pnl_quote))
        ex.add("pnlAccount", "pnlQuote x X(quote->account at close)", {"X": x}, r10(gross))
    return {
        "side": side,
        "accountCurrency": account,
        "quoteCurrency": spec.quote,
        "units": r10(units),
        "lots": r10(lots),
        "priceChange": r10(close_price - open_price),
        "pips": r10(move / spec.pip_size),
        "pnlQuote": r10(pnl_quote),
        "grossPnl": r10(gross),
        "commission": r10(commission),
        "swap": swap,
        "netPnl": r10(net),
        "pnl": r10(net),
        "returnOnNotional": r10(move / open_price),
        "flags": flags,
        "ratesUsed": merge_used(rates)[0],
        "conversionPaths": merge_used(rates)[1],
    }


def lot_breakdown(spec: InstrumentSpec, units: float, lots: float, rounding: Literal["down", "nearest"],
                  min_lot_policy: Literal["raise", "refuse"], ex: Explain | None = None) -> dict[str, Any]:
    tradeable = (nearest_step if rounding == "nearest" else floor_to_step)(lots, spec.lot_step)
    flags: list[dict[str, Any]] = []
    if tradeable > spec.max_lot:
        tradeable = spec.max_lot
        flags.append(flag("CAPPED_AT_MAX_LOT", maxLot=spec.max_lot))
    if tradeable < spec.min_lot:
        if min_lot_policy == "raise" and lots > 0:
            tradeable = spec.min_lot
            flags.append(flag("RAISED_TO_MIN_LOT_RISK_EXCEEDS_TARGET", minLot=spec.min_lot))
        else:
            tradeable = 0.0
            flags.append(flag("BELOW_MIN_LOT_NO_TRADE", minLot=spec.min_lot))
    c = spec.contract_size
    out: dict[str, Any] = {
        "units": r10(units),
        "lots": r10(lots),
        "standardLots": r10(units / 100_000),
        "miniLots": r10(units / 10_000),
        "microLots": r10(units / 1_000),
        "contractLots": r10(lots),
        "tradeableLots": tradeable,
        "tradeableUnits": r10(tradeable * c),
        "contractSize": c,
        "lotStep": spec.lot_step,
        "minLot": spec.min_lot,
        "maxLot": spec.max_lot,
        "minUnits": r10(spec.min_lot * c),
        "stepUnits": r10(spec.lot_step * c),
        "maxUnits": r10(spec.max_lot * c),
        "flags": flags,
    }
    if ex:
        ex.add("lots", "units / contractSize", {"units": units, "contractSize": c}, out["lots"])
        ex.add("tradeableLots", f"{rounding} to lotStep, then minLot/maxLot policy",
               {"lotStep": spec.lot_step, "minLot": spec.min_lot, "maxLot": spec.max_lot,
                "minLotPolicy": min_lot_policy}, out["tradeableLots"])
    return out
