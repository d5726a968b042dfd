"""Rules between the HTTP schemas and the pure calc layer: cross-field checks (each naming its field),
instrument resolution with overrides, the rate table, and response assembly."""

from __future__ import annotations

from typing import Any

from app.calc import conversion, edge, portfolio, series, sizing, trade
from app.calc.errors import CalcError
from app.calc.flags import Explain, flag
from app.calc.instruments import (
    InstrumentSpec,
    normalise_currency,
    normalise_node,
    normalise_symbol,
    resolve,
    split_pair,
)
from app.calc.numbers import no_negative_zero, r10
from app.calculations import schemas as s
from app.calculations.common import new_id, rate_table
from app.calculations.risk.extensions import portfolio_extras, projection_mc
from app.schemas import InstrumentOverride


def instrument(symbol: str, override: InstrumentOverride | None, field: str = "currencyPair",
               override_field: str = "instrument") -> InstrumentSpec:
    return resolve(symbol, override.as_overrides() if override else None, field, override_field)


def one_of(values: dict[str, Any], what: str) -> str:
    given = [k for k, v in values.items() if v is not None]
    if len(given) != 1:
        names = ", ".join(values)
        if not given:
            raise CalcError(next(iter(values)), f"Give one of {names} ({what}).", "MISSING_FIELD")
        raise CalcError(given[1], f"Give only one of {names} ({what}); got {', '.join(given)}.", "CONFLICTING_FIELDS")
    return given[0]


def _finish(out: dict[str, Any], ex: Explain | None) -> dict[str, Any]:
    out["calculationId"] = new_id()
    if ex is not None:
        out["explain"] = ex.steps
    return no_negative_zero(out)  # type: ignore[no-any-return]


def take_profits(tp: float | list[s.TakeProfitLevel] | None) -> list[sizing.TakeProfit]:
    if tp is None:
        return []
    if isinstance(tp, float | int):
        return [sizing.TakeProfit(float(tp), 1.0, "takeProfit")]
    total = sum(level.share for level in tp)
    if abs(total - 1.0) > 1e-9:
        raise CalcError("takeProfit", f"Take-profit shares must add up to 1 (got {total:g}).", "SHARES_NOT_ONE")
    return [sizing.TakeProfit(level.price, level.share, f"takeProfit[{i}].price") for i, level in enumerate(tp)]


def position_size_input(req: s.PositionSizeRequest,
                        broker_max_leverage: float | None = None) -> sizing.PositionSizeInput:
    if req.entry_price is None:
        raise CalcError("entryPrice", "entryPrice is required, unless a direction is given with marketRates on "
                        "(then the ask for a long, the bid for a short comes from the broker's quote chain; "
                        "batch items always give it).", "MISSING_FIELD")
    account = normalise_currency(req.account_currency, "accountCurrency")
    spec = instrument(req.currency_pair, req.instrument)
    stop_field = one_of({"stopLoss": req.stop_loss, "stopLossPips": req.stop_loss_pips,
                         "stopLossPoints": req.stop_loss_points, "atr": req.atr}, "the stop")
    if stop_field != "atr" and (req.atr_multiplier != 1.0 or req.spread_adjust_stop):
        raise CalcError("atrMultiplier", "atrMultiplier and spreadAdjustStop apply only with atr.",
                        "CONFLICTING_FIELDS")
    one_of({"riskPercentage": req.risk_percentage, "riskAmount": req.risk_amount, "lots": req.lots}, "the risk")
    if req.risk_amount is not None and req.risk_amount > req.account_balance:
        raise CalcError("riskAmount", "riskAmount exceeds accountBalance.", "RISK_ABOVE_BALANCE")
    spread = spread_distance(req, spec)
    if req.spread_adjust_stop and spread == 0:
        raise CalcError("spread", "spreadAdjustStop needs the spread: spread (a price distance) or spreadPips.",
                        "MISSING_FIELD")
    table = rate_table(req.conversion_rates)
    return sizing.PositionSizeInput(
        balance=req.account_balance, account_currency=account, spec=spec, entry=req.entry_price, rates=table,
        stop_loss=req.stop_loss, stop_loss_pips=req.stop_loss_pips, stop_loss_points=req.stop_loss_points,
        atr=req.atr, atr_multiplier=req.atr_multiplier, spread=spread, spread_adjust_stop=req.spread_adjust_stop,
        risk_percentage=req.risk_percentage, risk_amount=req.risk_amount, lots=req.lots, direction=req.direction,
        take_profits=take_profits(req.take_profit), leverage=req.leverage, jurisdiction=req.jurisdiction,
        broker_max_leverage=broker_max_leverage, commission_per_lot=req.commission_per_lot,
        free_margin=req.free_margin, min_lot_policy=req.min_lot_policy, conversion_at=req.conversion_at,
        rate_side=req.rate_side, lot_rounding=req.lot_rounding,
    )


# A spread given as a price distance above this share of the price, or not below the ATR stop distance
# it would widen, is a pip count sent in the wrong field (0.8 on EURUSD is 8,000 pips): 422.
SPREAD_MAX_SHARE_OF_PRICE = 0.05


def spread_distance(req: s.PositionSizeRequest, spec: InstrumentSpec) -> float:
    """The spread as a price distance: `spread` is one already, `spreadPips` is converted with pipSize."""
    if req.spread is not None and req.spread_pips is not None:
        raise CalcError("spreadPips", "Give spread (a price distance) or spreadPips, not both.", "CONFLICTING_FIELDS")
    if req.spread_pips is not None:
        return r10(req.spread_pips * spec.pip_size)
    spread = req.spread or 0.0
    if spread > 0:
        stop = (req.atr or 0.0) * req.atr_multiplier
        if spread > SPREAD_MAX_SHARE_OF_PRICE * (req.entry_price or 0.0) or (req.atr is not None and spread >= stop):
            pips = spread / spec.pip_size
            raise CalcError("spread", f"spread is a price distance: {spread:g} is {pips:,.0f} pips of {spec.symbol}"
                            f"{', not below the ATR stop distance' if req.atr is not None and spread >= stop else ''}"
                            ". For a spread in pips send spreadPips.", "SPREAD_UNIT")
    return spread


def position_size(req: s.PositionSizeRequest, explain: bool = False) -> dict[str, Any]:
    # The broker's maxLeverage (from its config, set by the calculation route) caps the leverage.
    ex = Explain() if explain else None
    return _finish(sizing.position_size(position_size_input(req, req.broker_max_leverage), ex), ex)


def _units_lots(spec: InstrumentSpec, lots: float | None, units: float | None) -> tuple[float, float]:
    one_of({"lots": lots, "units": units}, "the size")
    return trade.units_and_lots(spec, lots, units)


def pip_value(req: s.PipValueRequest, explain: bool = False) -> dict[str, Any]:
    ex = Explain() if explain else None
    account = normalise_currency(req.account_currency, "accountCurrency")
    spec = instrument(req.currency_pair, req.instrument)
    if req.lots is None and req.units is None:
        units, lots = spec.contract_size, 1.0
    else:
        units, lots = _units_lots(spec, req.lots, req.units)
    out = trade.pip_value(spec, account, rate_table(req.conversion_rates), units, lots, req.price, ex)
    out["currencyPair"] = spec.symbol
    return _finish(out, ex)


def _sized(req: s.MarginRequest | s.PnlRequest) -> tuple[str, InstrumentSpec, float, float]:
    """(account currency, instrument, units, lots) of a request that names one position."""
    account = normalise_currency(req.account_currency, "accountCurrency")
    spec = instrument(req.currency_pair, req.instrument)
    units, lots = _units_lots(spec, req.lots, req.units)
    return account, spec, units, lots


def margin(req: s.MarginRequest, explain: bool = False) -> dict[str, Any]:
    ex = Explain() if explain else None
    account, spec, units, lots = _sized(req)
    if req.open_price is not None and req.side is None:
        raise CalcError("side", "openPrice needs the position's side for its unrealised P&L.", "MISSING_FIELD")
    out = trade.margin(spec, account, rate_table(req.conversion_rates), units, lots, req.price, req.leverage,
                       req.jurisdiction, req.account_balance, req.free_margin, req.side, req.open_price, ex,
                       broker_max=req.broker_max_leverage)
    out["currencyPair"] = spec.symbol
    return _finish(out, ex)


def pnl(req: s.PnlRequest, explain: bool = False) -> dict[str, Any]:
    ex = Explain() if explain else None
    account, spec, units, lots = _sized(req)
    out = trade.pnl(spec, account, rate_table(req.conversion_rates), units, lots, req.side, req.open_price,
                    req.close_price, req.commission_per_lot, req.swap, ex)
    out["currencyPair"] = spec.symbol
    return _finish(out, ex)


def risk_reward(req: s.RiskRewardRequest, explain: bool = False) -> dict[str, Any]:
    ex = Explain() if explain else None
    mode = one_of({"entryPrice": req.entry_price, "rewardAmount": req.reward_amount,
                   "rewardToRisk": req.reward_to_risk}, "price levels, money amounts or the ratio")
    if mode == "entryPrice":
        out = _rr_levels(req, ex)
    elif mode == "rewardAmount":
        if req.risk_amount is None:
            raise CalcError("riskAmount", "rewardAmount needs riskAmount.", "MISSING_FIELD")
        if req.commission_per_lot and req.lots is None:
            raise CalcError("lots", "commissionPerLot needs lots.", "MISSING_FIELD")
        assert req.reward_amount is not None
        out = edge.reward_risk_amounts(req.risk_amount, req.reward_amount, req.cost_per_trade,
                                       req.commission_per_lot, req.lots, req.win_rate, ex)
    else:
        assert req.reward_to_risk is not None
        out = edge.reward_risk_ratio(req.reward_to_risk, req.win_rate, req.risk_amount, ex)
    return _finish(out, ex)


def _rr_levels(req: s.RiskRewardRequest, ex: Explain | None) -> dict[str, Any]:
    entry = req.entry_price
    assert entry is not None
    if req.stop_loss is None:
        raise CalcError("stopLoss", "Price levels need stopLoss.", "MISSING_FIELD")
    if req.take_profit is None:
        raise CalcError("takeProfit", "Price levels need takeProfit.", "MISSING_FIELD")
    direction = edge.levels_direction(entry, req.stop_loss)
    tps = take_profits(req.take_profit)
    edge.check_take_profits(direction, entry, tps)
    spec = instrument(req.currency_pair, req.instrument) if req.currency_pair else None
    pip = req.pip_size or (spec.pip_size if spec else None)
    if req.cost_pips:
        if not pip:
            raise CalcError("costPips", "costPips needs pipSize or a known currencyPair.", "MISSING_FIELD")
        if req.lots is not None:
            raise CalcError("costPips", "With lots give the cost as commissionPerLot.", "CONFLICTING_FIELDS")
    if req.lots is None:
        return edge.reward_risk_levels(entry, req.stop_loss, direction, tps, pip, req.cost_pips, req.win_rate, ex)
    if spec is None or req.account_currency is None:
        raise CalcError("currencyPair", "Money figures need currencyPair and accountCurrency.", "MISSING_FIELD")
    account = normalise_currency(req.account_currency, "accountCurrency")
    return edge.reward_risk_levels(entry, req.stop_loss, direction, tps, pip, req.cost_pips, req.win_rate, ex,
                                   lots=req.lots, spec=spec, account=account, rates=rate_table(req.conversion_rates),
                                   commission_per_lot=req.commission_per_lot)


def kelly(req: s.KellyRequest, explain: bool = False) -> dict[str, Any]:
    ex = Explain() if explain else None
    if req.trades is not None:
        if req.win_rate is not None or req.payoff_ratio is not None:
            raise CalcError("trades", "Give trades, or winRate with payoffRatio, not both.", "CONFLICTING_FIELDS")
        out = edge.kelly_from_trades(req.trades, ex)
    else:
        if req.win_rate is None:
            raise CalcError("winRate", "Give winRate and payoffRatio, or a list of trades.", "MISSING_FIELD")
        if req.payoff_ratio is None:
            raise CalcError("payoffRatio", "winRate needs payoffRatio.", "MISSING_FIELD")
        out = edge.kelly_formula(req.win_rate, req.payoff_ratio, ex)
    return _finish(out, ex)


def risk_of_ruin(req: s.RiskOfRuinRequest, explain: bool = False) -> dict[str, Any]:
    ex = Explain() if explain else None
    if req.capital_units is None and req.risk_fraction is None:
        raise CalcError("capitalUnits", "Give capitalUnits (fixed risk units) and/or riskFraction.", "MISSING_FIELD")
    if req.monte_carlo_paths * req.monte_carlo_trades > 10_000_000:
        raise CalcError("monteCarloPaths", "monteCarloPaths x monteCarloTrades must not exceed 10,000,000.")
    out = edge.risk_of_ruin(req.win_rate, req.payoff_ratio, req.capital_units, req.risk_fraction, req.ruin_level,
                            req.monte_carlo_paths, req.monte_carlo_trades, req.seed, ex)
    return _finish(out, ex)


def lots(req: s.LotsRequest, explain: bool = False) -> dict[str, Any]:
    ex = Explain() if explain else None
    spec = instrument(req.currency_pair, req.instrument)
    units, lot = _units_lots(spec, req.lots, req.units)
    out = trade.lot_breakdown(spec, units, lot, req.lot_rounding, req.min_lot_policy, ex)
    out["currencyPair"] = spec.symbol
    return _finish(out, ex)


def portfolio_risk(req: s.PortfolioRequest, explain: bool = False) -> dict[str, Any]:
    ex = Explain() if explain else None
    account = normalise_currency(req.account_currency, "accountCurrency")
    table = rate_table(req.conversion_rates)
    positions: list[portfolio.Position] = []
    for i, p in enumerate(req.positions):
        f = f"positions[{i}]"
        spec = instrument(p.currency_pair, p.instrument, f"{f}.currencyPair", f"{f}.instrument")
        one_of({f"{f}.lots": p.lots, f"{f}.units": p.units}, "the size")
        given = {f"{f}.stopLoss": p.stop_loss, f"{f}.stopLossPips": p.stop_loss_pips,
                 f"{f}.stopDistance": p.stop_distance}
        if any(v is not None for v in given.values()):
            which = one_of(given, "the stop")
            if which.endswith("stopLoss"):
                if p.entry_price is None:
                    raise CalcError(f"{f}.entryPrice", "stopLoss needs entryPrice.", "MISSING_FIELD")
                assert p.stop_loss is not None
                wrong = p.stop_loss >= p.entry_price if p.side == "long" else p.stop_loss <= p.entry_price
                if wrong:
                    raise CalcError(which, f"A {p.side} position needs its stop on the losing side of entryPrice.",
                                    "STOP_LOSS_WRONG_SIDE")
        positions.append(portfolio.position(spec, p.side, p.lots, p.units, p.entry_price, p.stop_loss,
                                            p.stop_loss_pips, p.stop_distance, p.leverage, f))
    out = portfolio.open_positions(account, req.account_balance, positions, table, req.jurisdiction,
                                   req.free_margin, ex)
    out.update(portfolio_extras(positions, out["positions"], req.returns, table, account))
    return _finish(_with_history(out, req.history_used, []), ex)


def multi_leg(req: s.MultiLegRequest, explain: bool = False) -> dict[str, Any]:
    account = normalise_currency(req.account_currency, "accountCurrency")
    spec = instrument(req.currency_pair, req.instrument)
    one_of({"riskAmount": req.risk_amount, "riskPercentage": req.risk_percentage}, "the risk")
    if req.risk_percentage is not None and req.account_balance is None:
        raise CalcError("accountBalance", "riskPercentage needs accountBalance.", "MISSING_FIELD")
    ex = Explain() if explain else None
    out = portfolio.multi_leg(spec, account, rate_table(req.conversion_rates),
                              [(e.price, e.weight) for e in req.entries], req.stop_loss, req.direction,
                              req.risk_amount, req.risk_percentage, req.account_balance, req.commission_per_lot, ex)
    return _finish(out, ex)


def projection(req: s.ProjectionRequest, explain: bool = False) -> dict[str, Any]:
    if req.outcomes is None:
        return _finish(projection_mc(
            start=req.start_balance, risk_pct=req.risk_percentage, reward_to_risk=req.reward_to_risk,
            win_rate=req.win_rate, trades=req.trades, n_trades=req.number_of_trades, paths=req.paths, seed=req.seed,
            compounding=req.compounding, fixed_risk=req.fixed_risk_amount, thresholds_pct=req.drawdown_thresholds,
            ruin_level=req.ruin_level), None)
    if req.reward_to_risk is None:
        raise CalcError("rewardToRisk", "outcomes need rewardToRisk.", "MISSING_FIELD")
    extra = [n for n in ("win_rate", "trades", "seed", "fixed_risk_amount") if getattr(req, n) is not None]
    if extra:
        raise CalcError("outcomes", "outcomes replay one sequence; winRate, trades, seed and fixedRiskAmount are for "
                        "the Monte Carlo projection (leave outcomes out).", "CONFLICTING_FIELDS")
    ex = Explain() if explain else None
    out = series.outcome_path(req.start_balance, req.risk_percentage, req.reward_to_risk, req.outcomes,
                              req.compounding, ex)
    out["method"] = "sequence"
    return _finish(out, ex)


def atr(req: s.AtrRequest, explain: bool = False) -> dict[str, Any]:
    used = req.history_used
    if req.symbol is not None and used is None:  # prepare fills the candles; without it there is nothing to run
        raise CalcError("symbol", "symbol needs the market history, which this call path does not fetch; give "
                        "high/low/close instead.", "HISTORY_UNAVAILABLE")
    if req.high is None and req.low is None and req.close is not None:
        if len(req.close) < req.period + 1:
            raise CalcError("close", f"At least {req.period + 1} closes are needed for period {req.period} (one "
                            "true range per close after the first).", "TOO_FEW_OBSERVATIONS")
        ex = Explain() if explain else None
        out = series.atr_close_to_close(req.close, req.period, ex)
        return _finish(_with_history(out, used, [flag("ATR_CLOSE_ONLY_HISTORY")]), ex)
    if req.high is not None or req.low is not None or req.close is not None:
        if req.high is None or req.low is None or req.close is None:
            missing = next(n for n, v in (("high", req.high), ("low", req.low), ("close", req.close)) if v is None)
            raise CalcError(missing, "A price series needs high, low and close (or close alone).", "MISSING_FIELD")
        if not len(req.high) == len(req.low) == len(req.close):
            raise CalcError("low", "high, low and close must have the same length.", "LENGTH_MISMATCH")
        if len(req.high) < req.period:
            raise CalcError("high", f"At least {req.period} bars are needed for period {req.period}.",
                            "TOO_FEW_OBSERVATIONS")
        for i, (h, lo) in enumerate(zip(req.high, req.low, strict=True)):
            if lo > h:
                raise CalcError(f"low[{i}]", "low is above high.", "INVALID_BAR")
        ex = Explain() if explain else None
        return _finish(_with_history(series.atr_series(req.high, req.low, req.close, req.period, ex), used, []), ex)
    if req.previous_atr is None or req.true_range is None:
        field = "previousAtr" if req.previous_atr is None else "trueRange"
        raise CalcError(field, "Give previousAtr with trueRange, high/low/close series, or symbol.", "MISSING_FIELD")
    ex = Explain() if explain else None
    return _finish(series.wilder_step(req.previous_atr, req.true_range, req.period, ex), ex)


def _with_history(out: dict[str, Any], used: dict[str, Any] | None, flags: list[dict[str, Any]]) -> dict[str, Any]:
    """Name the market history a calculation was filled from, and flag development data."""
    if used is not None:
        out["history"] = used
        if used["development"]:
            flags.append(flag("DEVELOPMENT_HISTORY"))
    if flags:
        out["flags"] = [*out.get("flags", []), *flags]
    return out


def cross_rate(req: s.CrossRateRequest, explain: bool = False) -> dict[str, Any]:
    target = normalise_symbol(req.target)
    pair = split_pair(target)
    if pair is None:
        raise CalcError("target", f"'{req.target}' is not a currency pair.", "UNKNOWN_INSTRUMENT")
    ex = Explain() if explain else None
    return _finish(conversion.cross_rate(rate_table(req.conversion_rates), target, pair[0], pair[1], req.decimals,
                                         ex), ex)


def convert(req: s.ConvertRequest, explain: bool = False) -> dict[str, Any]:
    src = normalise_node(req.from_currency, "from")
    dst = normalise_node(req.to_currency, "to")
    ex = Explain() if explain else None
    return _finish(conversion.convert(rate_table(req.conversion_rates), src, dst, req.amount, ex), ex)
