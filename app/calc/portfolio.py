"""Risk at the stops and margin of several open positions, and one trade entered in several legs."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from app.calc.conversion import RateTable
from app.calc.errors import CalcError, MissingRate
from app.calc.flags import Explain, flag
from app.calc.instruments import InstrumentSpec
from app.calc.leverage import resolve_leverage
from app.calc.numbers import floor_to_step, r10
from app.calc.sizing import margin_per_lot
from app.calc.trade import with_own_pair


@dataclass(slots=True)
class Position:
    spec: InstrumentSpec
    side: Literal["long", "short"]
    lots: float
    entry: float | None
    stop_distance: float | None  # price distance, already resolved from stopLoss / pips / price
    leverage: float | None
    field: str


def position(spec: InstrumentSpec, side: Literal["long", "short"], lots: float | None, units: float | None,
             entry: float | None, stop_loss: float | None, stop_loss_pips: float | None,
             stop_distance: float | None, leverage: float | None, field: str) -> Position:
    """One open position from the request's figures: lots (or units / contractSize), and the stop distance
    in price units from at most one of stopLoss (with entry), stopLossPips, stopDistance."""
    lot = lots if lots is not None else (units or 0.0) / spec.contract_size
    distance: float | None = stop_distance
    if stop_loss is not None:
        assert entry is not None
        distance = r10(abs(entry - stop_loss))
    elif stop_loss_pips is not None:
        distance = stop_loss_pips * spec.pip_size
    return Position(spec, side, lot, entry, distance, leverage, field)


def open_positions(account: str, balance: float | None, positions: list[Position], rates: RateTable,
                   jurisdiction: str | None, free_margin: float | None, ex: Explain | None = None) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    total_risk = 0.0
    total_margin = 0.0
    all_have_stops = True
    used: dict[str, Any] = {}
    margin_flags: list[dict[str, Any]] = []
    for pos in positions:
        spec = pos.spec
        table = with_own_pair(spec, rates, pos.entry)
        row: dict[str, Any] = {"currencyPair": spec.symbol, "side": pos.side, "lots": r10(pos.lots),
                               "units": r10(pos.lots * spec.contract_size)}
        if pos.stop_distance is not None:
            x = table.convert_factor(spec.quote, account, "mid", f"{pos.field}.conversionRates", spec.symbol)
            risk = pos.lots * pos.stop_distance * spec.contract_size * x
            row["riskAtStop"] = r10(risk)
            row["stopDistancePips"] = r10(pos.stop_distance / spec.pip_size)
            total_risk += risk
        else:
            all_have_stops = False
            row["riskAtStop"] = None
        if pos.entry is not None or spec.margin_mode == "fx":
            lev, rule, _ = resolve_leverage(spec, pos.leverage, jurisdiction)
            try:
                mpl, notional = margin_per_lot(spec, pos.entry or 0.0, lev, table, account)
            except MissingRate as exc:  # the risk figures do not need it: margin null, flagged
                margin_flags.append(flag("MARGIN_UNAVAILABLE", neededRate=exc.needed, position=pos.field,
                                         detail=exc.detail))
                row.update({"requiredMargin": None, "notional": None, "leverage": lev, "leverageCap": rule})
            else:
                row.update({"requiredMargin": r10(mpl * pos.lots), "notional": r10(notional * pos.lots),
                            "leverage": lev, "leverageCap": rule})
                total_margin += mpl * pos.lots
        else:
            raise CalcError(f"{pos.field}.entryPrice", f"{spec.symbol} margin needs the entry price.")
        row["ratesUsed"] = table.used_public()
        used.update(row["ratesUsed"])
        rows.append(row)
    for row in rows:
        if row["riskAtStop"] is not None and total_risk > 0:
            row["riskShare"] = r10(row["riskAtStop"] / total_risk)
    out: dict[str, Any] = {
        "accountCurrency": account,
        "positions": rows,
        "riskByPosition": [row["riskAtStop"] for row in rows],
        "totalRisk": r10(total_risk),
        "totalRiskComplete": all_have_stops,
        "totalMargin": None if margin_flags else r10(total_margin),
        "totalMarginComplete": not margin_flags,
        "marginByPosition": [row["requiredMargin"] for row in rows],
        "ratesUsed": used,
        "flags": ([] if all_have_stops else [flag("UNBOUNDED_RISK")]) + margin_flags,
    }
    stops = [(i, row["riskAtStop"]) for i, row in enumerate(rows) if row["riskAtStop"] is not None]
    if stops:
        i, _ = max(stops, key=lambda t: t[1])
        out["largestContributor"] = {"index": i, "currencyPair": rows[i]["currencyPair"],
                                     "riskAtStop": rows[i]["riskAtStop"]}
    if balance is not None:
        out["totalRiskPercentage"] = r10(total_risk / balance * 100.0)
    if not margin_flags:
        if balance is not None:
            out["marginPercentage"] = r10(total_margin / balance * 100.0)
            out["freeMarginAfter"] = r10((free_margin if free_margin is not None else balance) - total_margin)
        elif free_margin is not None:
            out["freeMarginAfter"] = r10(free_margin - total_margin)
    if ex:
        for i, row in enumerate(rows):
            ex.add(f"positions[{i}].riskAtStop", "lots x stopDistance x contractSize x X(quote->account)",
                   {"lots": row["lots"]}, row["riskAtStop"])
        ex.add("totalRisk", "sum of riskAtStop", {}, out["totalRisk"])
        ex.add("totalMargin", "sum of requiredMargin", {}, out["totalMargin"])
    return out


def net_exposure(positions: list[Position], rates: RateTable, account: str) -> dict[str, Any]:
    """Net units per currency (a long base/quote position is +units of base, -units x price of quote) and
    their account-currency value (null where no rate converts it); a position whose price is unknown, or
    an instrument that is not a currency pair, leaves the total incomplete."""
    net: dict[str, float] = {}
    complete = True
    for pos in positions:
        spec = pos.spec
        if spec.base == spec.symbol:
            complete = False
            continue
        table = with_own_pair(spec, rates, pos.entry)
        try:
            price = table.cross(spec.base, spec.quote).mid
        except MissingRate:
            complete = False
            continue
        units = pos.lots * spec.contract_size * (1.0 if pos.side == "long" else -1.0)
        net[spec.base] = net.get(spec.base, 0.0) + units
        net[spec.quote] = net.get(spec.quote, 0.0) - units * price
    by_ccy: dict[str, Any] = {}
    for ccy, amount in net.items():
        try:
            value: float | None = amount * rates.convert_factor(ccy, account)
        except MissingRate:
            value = None
        by_ccy[ccy] = {"amount": amount, "accountValue": value}
    return {"netExposureByCurrency": by_ccy, "netExposureComplete": complete}


def correlation_risk(positions: list[Position], rows: list[dict[str, Any]], returns: NDArray[np.float64],
                     names: list[str], factor_of: NDArray[np.intp]) -> dict[str, Any]:
    """The correlation-adjusted risk at the stops sqrt(r' C r), r_i = direction x riskAtStop (a heuristic of
    FX risk calculators: stop-outs treated as jointly normal moves scaled to each trade's risk, not a
    probability statement). returns: observations x pairs (columns `names`); factor_of: each position's
    column."""
    if returns.shape[0] < 3:
        raise CalcError("returns.series", "A correlation needs at least 3 observations.", "TOO_FEW_OBSERVATIONS")
    sd = returns.std(axis=0)
    zero = [names[i] for i in np.flatnonzero(sd == 0)]
    if zero:
        raise CalcError(f"returns.series.{zero[0]}", f"{zero[0]} has zero variance: no correlation.",
                        "SINGULAR_COVARIANCE")
    corr = np.corrcoef(returns, rowvar=False).reshape(len(names), len(names))
    risk = np.array([(row["riskAtStop"] or 0.0) * (1.0 if pos.side == "long" else -1.0)
                     for pos, row in zip(positions, rows, strict=True)])
    c = corr[np.ix_(factor_of, factor_of)]
    return {
        "correlationAdjustedRisk": float(math.sqrt(max(float(risk @ c @ risk), 0.0))),
        "sumOfRisks": float(np.abs(risk).sum()),
        "correlation": {"pairs": names, "matrix": [[float(x) for x in row] for row in corr],
                        "observations": int(returns.shape[0]), "method": "pearson"},
    }


def multi_leg(spec: InstrumentSpec, account: str, rates: RateTable, entries: list[tuple[float, float]],
              stop: float, direction: Literal["long", "short"] | None, risk_amount: float | None,
              risk_percentage: float | None, balance: float | None, commission_per_lot: float,
              ex: Explain | None = None) -> dict[str, Any]:
    """Size one trade entered at several prices with one shared stop.

    entries: (price, weight). Lots of leg i are proportional to its weight (equal weights = equal lots);
    the scale k solves sum_i k w_i L_i = risk, with L_i the loss per lot of leg i. The risk is
    balance x riskPercentage / 100 when riskPercentage is given (with the balance), else riskAmount.
    """
    if risk_percentage is not None:
        assert balance is not None
        risk = balance * risk_percentage / 100.0
    else:
        risk = risk_amount or 0.0
    first = entries[0][0]
    side: Literal["long", "short"] = "long" if stop < first else "short"
    if direction is not None and direction != side:
        raise CalcError("stopLoss", f"A {direction} trade needs the stop on the other side of its entries.",
                        "STOP_LOSS_WRONG_SIDE")
    for i, (price, _) in enumerate(entries):
        if (side == "long" and price <= stop) or (side == "short" and price >= stop):
            raise CalcError(f"entries[{i}].price", "Every entry must be on the same side of the stop.",
                            "STOP_LOSS_WRONG_SIDE")
    table = with_own_pair(spec, rates, first)
    x = table.convert_factor(spec.quote, account)
    loss = [r10(abs(p - stop)) * spec.contract_size * x + 2 * commission_per_lot for p, _ in entries]
    weighted = sum(w * lpl for (_, w), lpl in zip(entries, loss, strict=True))
    k = risk / weighted
    legs: list[dict[str, Any]] = []
    total = 0.0
    for (price, w), lpl in zip(entries, loss, strict=True):
        exact = k * w
        lots = floor_to_step(exact, spec.lot_step)
        leg_risk = lots * lpl
        total += leg_risk
        legs.append({"entryPrice": price, "weight": w, "exactLots": r10(exact), "lots": lots,
                     "stopDistancePips": r10(abs(price - stop) / spec.pip_size), "risk": r10(leg_risk)})
    out: dict[str, Any] = {
        "direction": side,
        "stopLoss": stop,
        "legs": legs,
        "riskByLeg": [leg["risk"] for leg in legs],
        "lotsByLeg": [leg["lots"] for leg in legs],
        "targetRiskAmount": r10(risk),
        "totalRisk": r10(total),
        "totalLots": r10(sum(leg["lots"] for leg in legs)),
        "ratesUsed": table.used_public(),
    }
    if balance is not None:
        out["riskPercentage"] = r10(total / balance * 100.0)
    if ex:
        ex.add("scale", "riskAmount / sum(weight_i x lossPerLot_i)", {"riskAmount": r10(risk)},
               legs[0]["exactLots"] / legs[0]["weight"])
        for i, leg in enumerate(legs):
            ex.add(f"legs[{i}].lots", "scale x weight, floored to lotStep", {"weight": leg["weight"]}, leg["lots"])
    return out
