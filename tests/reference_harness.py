"""Turns each reference vector into HTTP requests against the API and collects the answers under the
vector's own expected keys. Inputs the vector leaves open (an entry price where only a pip distance
is given) get a plausible value that the expected figures do not depend on; nothing here computes an
expected number."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

PLAUSIBLE_PRICE = {"EURUSD": 1.10, "EURGBP": 0.85, "USDJPY": 150.0, "GBPUSD": 1.27, "XAUUSD": 2000.0}
POLICY = {"clamp_up": "raise", "reject": "refuse"}
CALC_MODE = {"FOREX": "fx", "CFD": "cfd", "CFDLEVERAGE": "cfd-leverage"}


class Api:
    def __init__(self, client: TestClient) -> None:
        self.client = client

    def post(self, path: str, body: dict[str, Any], expect: int = 200) -> dict[str, Any]:
        r = self.client.post(f"/api/v1/calculate/{path}", json=body)
        assert r.status_code == expect, (path, body, r.status_code, r.text)
        out: dict[str, Any] = r.json()
        return out


def overrides(i: dict[str, Any]) -> dict[str, Any]:
    keys = {"pip_size": "pipSize", "contract_size": "contractSize", "lot_step": "lotStep", "min_lot": "minLot",
            "max_lot": "maxLot", "tick_size": "tickSize", "digits": "digits", "pip_position": "pipPosition",
            "quote_currency": "quoteCurrency", "margin_rate": "marginRate"}
    return {v: i[k] for k, v in keys.items() if k in i}


def entry_for(i: dict[str, Any]) -> float:
    if "entry" in i:
        return float(i["entry"])
    rate = (i.get("rates") or {}).get(i["symbol"])
    if rate is not None:
        return float(rate if not isinstance(rate, dict) else (rate["bid"] + rate["ask"]) / 2)
    return PLAUSIBLE_PRICE[i["symbol"]]


def flag_codes(resp: dict[str, Any]) -> list[str]:
    return [f["code"] if isinstance(f, dict) else f for f in resp.get("flags", [])]


# ------------------------------------------------------------------ position size
PS_KEYS = {
    "risk_amount_target": "targetRiskAmount", "loss_per_lot": "lossPerLot", "lots_raw": "exactLotSize",
    "units_raw": "exactPositionSize", "lots": "lotSize", "units": "positionSize", "risk_amount_actual": "maxLoss",
    "risk_percent_actual": "riskPercentage", "pip_value_needed": "pipValueNeeded",
    "risk_amount_quote_ccy": "targetRiskAmountQuote", "stop_distance_pips": "stopDistancePips",
    "pip_value_per_lot": "pipValuePerLot", "loss_if_stopped_converted_at_sl_rate": "maxLossAtStopRate",
    "stop_loss": "stopLoss", "direction": "direction", "margin_at_20_to_1": "requiredMargin",
    # design-doc names
    "max_loss": "targetRiskAmount", "position_size_units_exact": "exactPositionSize",
    "lot_size_exact": "exactLotSize", "pip_value_exact_position": "exactPipValue",
    "required_margin_exact": "exactRequiredMargin", "margin_percent_exact": "exactMarginPercentage",
    "pip_value": "pipValue", "required_margin": "requiredMargin", "margin_percent": "marginPercentage",
    # turtle names
    "unit_raw": "exactLotSize", "contracts": "lotSize", "contracts_raw": "exactLotSize",
    "stop_value_per_contract": "lossPerLot",
}


def ps_body(i: dict[str, Any]) -> dict[str, Any]:
    if "account_size" in i:  # Turtle-style: N (ATR) units on a futures contract with $ per point
        return {
            "accountBalance": i["account_size"], "accountCurrency": "USD", "currencyPair": "TURTLEFUT",
            "entryPrice": 100.0, "atr": i.get("N", i.get("N_points")), "atrMultiplier": i.get("stop_in_N", 1),
            "riskPercentage": i["risk_fraction_per_N"] * 100 if "risk_fraction_per_N" in i else i["risk_percent"],
            "instrument": {"quoteCurrency": "USD", "contractSize": i["dollars_per_point"], "pipSize": 0.01,
                           "lotStep": i["contract_step"], "minLot": i["contract_step"], "maxLot": 1e6},
        }
    body: dict[str, Any] = {
        "accountBalance": i.get("balance", 10000), "accountCurrency": i["account_currency"],
        "currencyPair": i["symbol"], "entryPrice": entry_for(i),
    }
    if "stop_loss" in i:
        body["stopLoss"] = i["stop_loss"]
    elif "stop_distance_pips" in i:
        body["stopLossPips"] = i["stop_distance_pips"]
    elif "stop_distance_points" in i:
        body["stopLossPoints"] = i["stop_distance_points"]
    elif "atr" in i:
        body["atr"], body["atrMultiplier"] = i["atr"], i.get("atr_multiplier", 1.0)
        if i.get("spread_adjust_sl"):
            body["spread"], body["spreadAdjustStop"] = i["spread"], True
    if "risk_percent" in i:
        body["riskPercentage"] = i["risk_percent"]
    elif "risk_amount" in i:
        body["riskAmount"] = i["risk_amount"]
    for src, dst in (("direction", "direction"), ("leverage", "leverage"), ("lots_given", "lots")):
        if src in i:
            body[dst] = i[src]
    if "stopLoss" not in body and "direction" not in body:
        # A stop given as a distance leaves the side open; the vector's figures do not depend on it, and
        # the API flags an assumed side (DIRECTION_ASSUMED), so the harness states it.
        body["direction"] = "long"
    if i.get("rates"):
        body["conversionRates"] = i["rates"]
    if i.get("conversion_rate_point") == "stop_loss":
        body["conversionAt"] = "stop"
    if "min_lot_policy" in i:
        body["minLotPolicy"] = POLICY[i["min_lot_policy"]]
    ov = overrides(i)
    if ov:
        body["instrument"] = ov
    return body


def run_position_size(api: Api, v: dict[str, Any]) -> dict[str, Any]:
    i, exp = v["inputs"], v["expected"]
    body = ps_body(i)
    if "margin_at_20_to_1" in exp:
        body["leverage"] = 20
    resp = api.post("position-size", body)
    got: dict[str, Any] = {}
    for key, value in exp.items():
        if key == "flags":
            got[key] = flag_codes(resp)
        elif key == "tradeable":
            got[key] = {k: resp[PS_KEYS[k]] if k != "lots" else resp["lotSize"] for k in value}
            got[key]["units"] = resp["positionSize"]
            got[key]["risk_amount_actual"] = resp["maxLoss"]
            got[key]["risk_percent_actual"] = resp["riskPercentage"]
        elif key == "alternatives":
            got[key] = {name: _alternative(api, body, name, alt) for name, alt in value.items()}
        elif key.startswith("if_rounded_to_nearest"):
            r = api.post("position-size", {**body, "lotRounding": "nearest"})
            got[key] = {"risk_amount_actual": r["maxLoss"], "risk_percent_actual": r["riskPercentage"],
                        "flags": flag_codes(r)}
        else:
            got[key] = resp[PS_KEYS[key]]
    return got


def _alternative(api: Api, body: dict[str, Any], name: str, alt: Any) -> Any:
    if name == "min_lot_policy_reject":
        r = api.post("position-size", {**body, "minLotPolicy": "refuse"})
        return {"lots": r["lotSize"], "risk_amount_actual": r["maxLoss"], "flags": flag_codes(r)}
    if name.startswith("sl_rate_conversion_"):
        direction = name.split("_")[3]
        r = api.post("position-size", {**body, "conversionAt": "stop", "direction": direction})
        return r["positionSize"]
    raise AssertionError(f"unmapped alternative {name}")


# ------------------------------------------------------------------ pip value
def run_pip_value(api: Api, v: dict[str, Any]) -> dict[str, Any]:
    i, exp = v["inputs"], v["expected"]
    body: dict[str, Any] = {"accountCurrency": i["account_currency"], "currencyPair": i["symbol"]}
    if i.get("rates"):
        body["conversionRates"] = i["rates"]
    ov = overrides(i)
    if "value_of_0_01_move_per_lot_usd" in exp:
        ov["pipSize"] = 0.01  # the vector names the 0.01 move explicitly
    if ov:
        body["instrument"] = ov
    sizes = i.get("lots", 1.0)
    if "units" in i:
        responses = [api.post("pip-value", {**body, "units": i["units"]})]
    else:
        responses = [api.post("pip-value", {**body, "lots": lot}) for lot in (sizes if isinstance(sizes, list)
                                                                              else [sizes])]
    first = responses[0]
    account, quote = i["account_currency"], first["quoteCurrency"]
    base = i["symbol"][:3]
    got: dict[str, Any] = {}
    for key in exp:
        if key.startswith("pip_value_by_lots"):
            got[key] = [r["pipValue"] for r in responses]
        elif key == "stop_distance_pips":
            r = api.post("position-size", {**body, "accountBalance": 10000, "entryPrice": 1.1,
                                            "stopLossPoints": i["stop_distance_points"], "riskPercentage": 1})
            got[key] = r["stopDistancePips"]
        elif key in ("tick_size", "pip_size", "points_per_pip"):
            got[key] = first[{"tick_size": "tickSize", "pip_size": "pipSize", "points_per_pip": "pointsPerPip"}[key]]
        elif key == "value_of_0_01_move_per_lot_usd":
            got[key] = first["pipValuePerLot"]
        elif key.startswith("tick_value_per_lot"):
            got[key] = first["tickValuePerLot"]
        elif key in ("pip_value_per_lot", "pip_value_per_unit", "pip_value_position"):
            got[key] = first[{"pip_value_per_lot": "pipValuePerLot", "pip_value_per_unit": "pipValuePerUnit",
                              "pip_value_position": "pipValue"}[key]]
        else:  # pip_value[_per_lot]_<ccy>
            ccy = key.rsplit("_", 1)[1].upper()
            per_lot = "_per_lot_" in key
            if ccy == account:
                got[key] = first["pipValuePerLot" if per_lot else "pipValue"]
            elif ccy == quote:
                got[key] = first["pipValuePerLotQuote" if per_lot else "pipValueQuote"]
            elif ccy == base and not per_lot:
                got[key] = first["pipValueBase"]
            else:
                raise AssertionError(f"unmapped key {key}")
    return got


# ------------------------------------------------------------------ margin
def run_margin(api: Api, v: dict[str, Any]) -> dict[str, Any]:
    i, exp = v["inputs"], v["expected"]
    if "positions" in i:  # several positions: the portfolio endpoint
        body = {"accountCurrency": i["account_currency"], "accountBalance": i["balance"],
                "positions": [{"currencyPair": p["symbol"], "side": "long", "units": p["units"],
                               "entryPrice": p["price"], "leverage": i["leverage"]} for p in i["positions"]]}
        r = api.post("portfolio", body)
        return {"margin_by_position": r["marginByPosition"], "margin_total": r["totalMargin"],
                "free_margin_after": r["freeMarginAfter"]}
    body = {"accountCurrency": i["account_currency"], "currencyPair": i["symbol"]}
    if "units" in i:
        body["units"] = i["units"]
    else:
        body["lots"] = i.get("lots", 1.0)
    for src, dst in (("price", "price"), ("fill_price", "price"), ("balance", "accountBalance"),
                     ("free_margin", "freeMargin")):
        if src in i:
            body[dst] = i[src]
    if i.get("rates"):
        body["conversionRates"] = i["rates"]
    ov = overrides(i)
    if "calc_mode" in i:
        ov["marginMode"] = CALC_MODE[i["calc_mode"]]
    if "fill_price" in i:  # a buy at the ask, kept open: unrealised P&L at the bid
        body.update({"side": "long", "openPrice": i["fill_price"], "leverage": 1})
    got: dict[str, Any] = {}
    if "cases" in i:
        got["margin_by_case"] = []
        for case in i["cases"]:
            case_ov = {**ov, "marginMode": CALC_MODE[case["calc_mode"]], "marginRate": case["margin_rate"]}
            extra = {"leverage": case["leverage"]} if "leverage" in case else {}
            r = api.post("margin", {**body, **extra, "instrument": case_ov})
            got["margin_by_case"].append(r["requiredMargin"])
        return got
    levs = i.get("leverage")
    if isinstance(levs, list):
        got["margin_by_leverage"] = [api.post("margin", {**body, "leverage": lv, "instrument": ov} if ov else
                                              {**body, "leverage": lv})["requiredMargin"] for lv in levs]
        return got
    if levs is not None:
        body["leverage"] = levs
    if ov:
        body["instrument"] = ov
    r = api.post("margin", body)
    names = {"margin": "requiredMargin", "margin_currency_amount_eur": "marginInMarginCurrency",
             "margin_rate": "marginRequirementRate", "unrealized_pl_bid": "unrealizedPnl", "equity": "equity",
             "free_margin": "freeMargin", "margin_level_percent": "marginLevel", "notional": "notional",
             "effective_leverage": "effectiveLeverage", "margin_percent_of_balance": "marginPercentage",
             "max_lots_raw": "maxLotsByMarginExact", "max_lots": "maxLotsByMargin"}
    return {k: r[names[k]] for k in exp}


# ------------------------------------------------------------------ P&L, R:R, edge
def run_pnl(api: Api, v: dict[str, Any]) -> dict[str, Any]:
    i, exp = v["inputs"], v["expected"]
    if "take_profits" in i:  # several take-profits on a given size: position size in reverse mode
        body = {"accountBalance": 10000, "accountCurrency": i["account_currency"], "currencyPair": i["symbol"],
                "entryPrice": i["entry"], "stopLoss": i["stop_loss"], "lots": i["lots"],
                "takeProfit": i["take_profits"], "instrument": overrides(i)}
        r = api.post("position-size", body)
        return {"lots_by_tp": [t["lots"] for t in r["takeProfits"]],
                "reward_by_tp": [t["grossProfit"] for t in r["takeProfits"]],
                "reward_total": r["potentialProfit"], "risk_total": r["maxLoss"], "rr_blended": r["riskRewardRatio"]}
    if "gross_move_value_at_sl" in i:  # commission on both sides of a trade, in money
        r = api.post("risk-reward", {"riskAmount": i["gross_move_value_at_sl"],
                                     "rewardAmount": i["gross_move_value_at_tp"], "lots": i["lots"],
                                     "commissionPerLot": i["commission_per_lot_per_side"]})
        return {"commission_round_turn": r["commission"], "risk_with_commission": r["riskWithCosts"],
                "reward_net_of_commission": r["rewardNetOfCosts"]}
    body = {"accountCurrency": i["account_currency"], "currencyPair": i["symbol"], "side": i["direction"],
            "openPrice": i["open"], "closePrice": i["close"]}
    body["lots" if "lots" in i else "units"] = i.get("lots", i.get("units"))
    if i.get("rates"):
        body["conversionRates"] = i["rates"]
    ov = overrides(i)
    if ov:
        body["instrument"] = ov
    r = api.post("pnl", body)
    names = {"pnl_quote": "pnlQuote", "pnl_account": "grossPnl", "pips": "pips", "price_return": "priceChange"}
    return {k: r[names[k]] for k in exp}


def run_projection(api: Api, v: dict[str, Any]) -> dict[str, Any]:
    i = v["inputs"]
    r = api.post("projection", {"startBalance": i["start_balance"], "riskPercentage": i["risk_percent"],
                                "rewardToRisk": i["reward_to_risk"], "outcomes": i["outcomes"],
                                "compounding": i["compounding"]})
    return {"balance_path": r["balancePath"], "final_balance": r["finalBalance"],
            "return_percent": r["returnPercentage"]}


def run_expectancy(api: Api, v: dict[str, Any]) -> dict[str, Any]:
    i = v["inputs"]
    r = api.post("risk-reward", {"rewardToRisk": i["reward_to_risk"], "winRate": i["win_rate"],
                                 "riskAmount": i["risk_amount"]})
    return {"expectancy_R": r["expectancyR"], "expectancy_money": r["expectancy"]}


def run_risk_reward(api: Api, v: dict[str, Any]) -> dict[str, Any]:
    i = v["inputs"]
    r = api.post("risk-reward", {"entryPrice": i["entry"], "stopLoss": i["stop_loss"],
                                 "takeProfit": i["take_profit"], "pipSize": i["pip_size"]})
    return {"direction": r["direction"], "risk_pips": r["riskPips"], "reward_pips": r["rewardPips"],
            "reward_to_risk": r["riskRewardRatio"]}


def run_breakeven(api: Api, v: dict[str, Any]) -> dict[str, Any]:
    i = v["inputs"]
    if "reward_to_risk" in i:
        r = api.post("risk-reward", {"rewardToRisk": i["reward_to_risk"]})
        return {"breakeven_win_rate": r["breakEvenWinRate"]}
    r = api.post("risk-reward", {"riskAmount": i["risk_amount"], "rewardAmount": i["reward_amount"],
                                 "costPerTrade": i["cost_per_trade"]})
    return {"breakeven_win_rate": r["breakEvenWinRate"], "breakeven_without_costs": r["breakEvenWinRateWithoutCosts"]}


def run_kelly(api: Api, v: dict[str, Any]) -> dict[str, Any]:
    i, exp = v["inputs"], v["expected"]
    r = api.post("kelly", {"winRate": i["win_rate"], "payoffRatio": i["reward_to_risk"]})
    names = {"kelly_fraction": "kellyFraction", "half_kelly": "halfKelly",
             "recommended_fraction": "recommendedFraction"}
    return {k: (flag_codes(r) if k == "flags" else r[names[k]]) for k in exp}


def run_ruin(api: Api, v: dict[str, Any]) -> dict[str, Any]:
    i, exp = v["inputs"], v["expected"]
    win, loss = (float(x) for x in i["payoff"].split(":"))
    r = api.post("risk-of-ruin", {"winRate": i["win_rate"], "payoffRatio": win / loss,
                                  "capitalUnits": i["capital_units"]})
    return {k: r[{"edge": "edge", "risk_of_ruin": "riskOfRuin"}[k]] for k in exp}


# ------------------------------------------------------------------ lots, conversion, ATR, multi-leg
def run_lot_rounding(api: Api, v: dict[str, Any]) -> dict[str, Any]:
    i = v["inputs"]
    inst = {"lotStep": i["lot_step"], "minLot": i["min_lot"]}
    lots = [api.post("lots", {"currencyPair": "EURUSD", "lots": x, "minLotPolicy": POLICY[i["min_lot_policy"]],
                              "instrument": inst})["tradeableLots"] for x in i["lots_raw_values"]]
    return {"lots": lots}


def run_lot_conversion(api: Api, v: dict[str, Any]) -> dict[str, Any]:
    i, exp = v["inputs"], v["expected"]
    if "lotSize_cents" in i:
        inst = {"ctraderLotSize": i["lotSize_cents"], "ctraderMinVolume": i["minVolume_cents"],
                "ctraderStepVolume": i["stepVolume_cents"], "ctraderMaxVolume": i["maxVolume_cents"]}
        r = api.post("lots", {"currencyPair": "EURUSD", "lots": 1, "instrument": inst})
        names = {"contract_size_units": "contractSize", "min_units": "minUnits", "step_units": "stepUnits",
                 "max_units": "maxUnits", "min_lots": "minLot", "step_lots": "lotStep", "max_lots": "maxLot"}
        return {k: r[names[k]] for k in exp}
    r = api.post("lots", {"currencyPair": "EURUSD", "units": i["units"],
                          "instrument": {"contractSize": i["contract_size"], "lotStep": i["lot_step"]}})
    names = {"standard_lots": "standardLots", "mini_lots": "miniLots", "micro_lots": "microLots",
             "tradeable_lots_round_down": "tradeableLots", "tradeable_units": "tradeableUnits"}
    return {k: r[names[k]] for k in exp}


def run_conversion(api: Api, v: dict[str, Any]) -> dict[str, Any]:
    i, exp = v["inputs"], v["expected"]
    r = api.post("convert", {"amount": i["amount"], "from": i["from"], "to": i["to"], "conversionRates": i["rates"]})
    return {k: r[k.split("_")[0]] for k in exp}


def run_cross_rate(api: Api, v: dict[str, Any]) -> dict[str, Any]:
    i = v["inputs"]
    assert i["rounding"] == "half_up"
    r = api.post("cross-rate", {"target": i["target"], "conversionRates": i["rates"], "decimals": i["round_dp"]})
    return {"bid": r["bid"], "ask": r["ask"], "bid_unrounded": r["bidUnrounded"], "ask_unrounded": r["askUnrounded"]}


def run_atr(api: Api, v: dict[str, Any]) -> dict[str, Any]:
    i = v["inputs"]
    r = api.post("atr", {"previousAtr": i["previous_N"], "trueRange": i["true_range"], "period": i["period"]})
    # The vector also lists the 4-decimal display value of the same N.
    return {"N": r["atr"], "N_rounded_4dp": round(r["atr"], 4)}


def run_multi_leg(api: Api, v: dict[str, Any]) -> dict[str, Any]:
    i, exp = v["inputs"], v["expected"]
    if "legs" in i:
        positions, rates = [], {}
        for leg in i["legs"]:
            p: dict[str, Any] = {"currencyPair": leg["symbol"], "side": leg["direction"], "lots": leg["lots"],
                                 "entryPrice": entry_for(leg)}
            if "stop_loss" in leg:
                p["stopLoss"] = leg["stop_loss"]
            elif "stop_distance_pips" in leg:
                p["stopLossPips"] = leg["stop_distance_pips"]
            else:
                p["stopDistance"] = leg["stop_distance_price"]
            if overrides(leg):
                p["instrument"] = overrides(leg)
            rates.update(leg.get("rates") or {})
            positions.append(p)
        r = api.post("portfolio", {"accountCurrency": i["account_currency"], "accountBalance": i["balance"],
                                   "positions": positions, "conversionRates": rates})
        return {"risk_by_leg": r["riskByPosition"], "risk_total": r["totalRisk"],
                "risk_percent_total": r["totalRiskPercentage"]}
    assert i["allocation"] == "equal_lots"
    r = api.post("multi-leg", {"accountCurrency": i["account_currency"], "currencyPair": i["symbol"],
                               "entries": [{"price": p} for p in i["entries"]], "stopLoss": i["stop_loss"],
                               "direction": i["direction"], "riskAmount": i["risk_amount"],
                               "instrument": overrides(i)})
    lots = r["lotsByLeg"]
    assert len(set(lots)) == 1, lots
    got = {"stop_distance_pips": [leg["stopDistancePips"] for leg in r["legs"]], "lots_each": lots[0],
           "risk_by_leg": r["riskByLeg"], "risk_total": r["totalRisk"]}
    return {k: got[k] for k in exp}


def run_validation(api: Api, v: dict[str, Any]) -> dict[str, Any]:
    i = v["inputs"]
    if "symbol" in i:
        r = api.post("position-size", ps_body(i), expect=422)
    else:
        r = api.post("risk-reward", {"entryPrice": i["entry"], "stopLoss": i["stop_loss"],
                                     "takeProfit": i["take_profit"]}, expect=422)
    return {"error": r["errors"][0]["code"]}


RUNNERS: dict[str, Callable[[Api, dict[str, Any]], dict[str, Any]]] = {
    "position_size": run_position_size, "pip_value": run_pip_value, "margin": run_margin, "pnl": run_pnl,
    "pnl_projection": run_projection, "expectancy": run_expectancy, "risk_reward": run_risk_reward,
    "breakeven": run_breakeven, "kelly": run_kelly, "risk_of_ruin": run_ruin, "lot_rounding": run_lot_rounding,
    "lot_conversion": run_lot_conversion, "conversion": run_conversion, "cross_rate": run_cross_rate,
    "atr": run_atr, "multi_leg": run_multi_leg, "validation": run_validation,
}


def compare(expected: Any, got: Any, tol: dict[str, float], key: str = "", path: str = "") -> list[str]:
    """Mismatches between expected and got; numbers within the vector's absolute tolerance for the key."""
    errors: list[str] = []
    limit = tol.get(key, tol.get("default_abs", 0.0))
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return [f"{path}: expected an object, got {got!r}"]
        for k, e in expected.items():
            if k not in got:
                errors.append(f"{path}.{k}: missing")
                continue
            errors += compare(e, got[k], tol, k if k in tol else key, f"{path}.{k}")
    elif isinstance(expected, list):
        if not isinstance(got, list) or len(got) != len(expected):
            return [f"{path}: expected {expected!r}, got {got!r}"]
        if key == "flags" or path.endswith("flags"):
            return [] if sorted(expected) == sorted(got) else [f"{path}: expected {expected}, got {got}"]
        for n, (e, g) in enumerate(zip(expected, got, strict=True)):
            errors += compare(e, g, tol, key, f"{path}[{n}]")
    elif isinstance(expected, bool) or isinstance(expected, str):
        if expected != got:
            errors.append(f"{path}: expected {expected!r}, got {got!r}")
    elif isinstance(expected, int | float):
        if not isinstance(got, int | float) or isinstance(got, bool) or not math.isfinite(got) \
                or abs(got - expected) > limit + 1e-12:
            errors.append(f"{path}: expected {expected} (±{limit}), got {got!r}")
    else:
        raise AssertionError(f"unsupported expected value at {path}: {expected!r}")
    return errors
