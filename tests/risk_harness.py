"""Turns each risk vector into HTTP requests (data read from tests/reference/data) and collects the
answers under the vector's own expected keys. Nothing here computes an expected number.

A few expected keys pin what another library returns under a convention the vector itself tells us
not to adopt (NOT_ADOPTED); for those the API must give a different number, named in the reason."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

DATA = Path(__file__).parent / "reference"

# (vector id, expected key) -> why the API does not reproduce it
NOT_ADOPTED: dict[tuple[str, str], str] = {
    ("param_var_p6_ewma094", "riskfolio_ewma1"): "vector: pick riskmetrics_zero_mean (pandas ewm demeaned, bias=False)",
    ("param_var_p6_ewma094", "riskfolio_ewma2"): "vector: pick riskmetrics_zero_mean (pandas ewm adjust=False)",
    ("param_var_p6_ewma094", "pypfopt_exp_cov"): "vector: pick riskmetrics_zero_mean (full-sample demeaning)",
    ("risk_of_ruin_quantstats_formula", "risk_of_ruin"): "vector: quantstats' ((1-p)/(1+p))^n, 'Do not adopt'",
}
# Informative only, by the vector's own words (finite-horizon Monte Carlo checks with another seed).
INFORMATIVE = {"monte_carlo_check", "monte_carlo_estimate", "mc_relative_standard_error_at_100k_paths"}


@cache
def table(name: str) -> tuple[list[str], list[list[str]]]:
    with (DATA / name).open() as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def returns(name: str, columns: list[str]) -> dict[str, Any]:
    header, rows = table(name)
    idx = [header.index(c) for c in columns]
    return {"dates": [r[0] for r in rows], "series": {c: [float(r[i]) for r in rows] for c, i in zip(columns, idx,
                                                                                                   strict=True)}}


def column(name: str, col: str) -> list[float]:
    header, rows = table(name)
    i = header.index(col)
    return [float(r[i]) for r in rows]


def exposures(v: dict[str, Any]) -> dict[str, float]:
    i = v["inputs"]
    if "exposures_usd" in i:
        return dict(i["exposures_usd"])
    if "column" in i:  # one series: exposure 1 in the account currency turns P&L into the return
        return {i["column"]: 1.0}
    header, rows = table(i["positions"])
    return {r[0]: float(r[1]) for r in rows}


class Api:
    def __init__(self, client: TestClient) -> None:
        self.client = client

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.client.post(f"/api/v1/calculate/{path}", json=body)
        assert r.status_code == 200, (path, r.status_code, r.text[:2000])
        out: dict[str, Any] = r.json()
        return out

    def var(self, v: dict[str, Any], **extra: Any) -> dict[str, Any]:
        ex = exposures(v)
        body = {"accountCurrency": "USD", "returns": returns(v["inputs"]["data"], list(ex)),
                "positions": [{"currencyPair": p, "exposure": e} for p, e in ex.items()], **extra}
        return self.post("var", body)


def at(resp: dict[str, Any], conf: float, key: str) -> float:
    row = next(r for r in resp["results"] if abs(r["confidence"] - conf) < 1e-12)
    value: float = row[key]
    return value


def run_historical(api: Api, v: dict[str, Any]) -> dict[str, Any]:
    c, exp = v["inputs"]["confidence"], v["expected"]
    base = api.var(v, method="historical", confidence=c)
    linear = api.var(v, method="historical", confidence=c, quantileMethod="linear")
    tailmean = api.var(v, method="historical", confidence=c, esMethod="tail-mean")
    loss = api.var(v, method="historical", confidence=c, quantileMethod="discrete-loss")
    names = {"var": at(linear if "linear" in v["id"] else base, c, "var"),
             "es": at(tailmean if "tailmean" in v["id"] else base, c, "es"),
             "es_quantstats_historical": at(tailmean, c, "es"),
             "var_discrete": at(base, c, "var"), "var_riskfolio": at(base, c, "var"), "es_ru": at(base, c, "es"),
             "var_linear": at(linear, c, "var"), "es_tailmean": at(tailmean, c, "es"),
             "var_skfolio": at(loss, c, "var"), "var_riskfolio_alpha_as_1_minus_conf": at(loss, c, "var")}
    return {k: names[k] for k in exp}


def run_parametric(api: Api, v: dict[str, Any]) -> dict[str, Any]:
    i, exp = v["inputs"], v["expected"]
    confs = i["confidence"] if isinstance(i["confidence"], list) else [i["confidence"]]
    zero = api.var(v, method="parametric", confidence=confs)
    adj = api.var(v, method="parametric", confidence=confs, meanAdjusted=True)
    pa = api.var(v, method="parametric", confidence=confs, meanAdjusted=True, ddof=0)
    c = confs[0]
    got: dict[str, Any] = {"var": at(adj, c, "var"), "es": at(adj, c, "es"), "var_zero_mean": at(zero, c, "var"),
                           "var_ddof0_pa_style": at(pa, c, "var"), "es_ddof0_pa_style": at(pa, c, "es"),
                           "mean": adj["pnlStatistics"]["mean"], "std_ddof1": adj["pnlStatistics"]["stdDev"],
                           "sigma_usd": zero["sigma"]}
    for conf in confs:
        tag = f"{round(conf * 1000):d}".rstrip("0") if conf != 0.975 else "975"
        got[f"var_{tag}"] = at(zero, conf, "var")
        got[f"es_{tag}"] = at(zero, conf, "es")
        got[f"var_{tag}_mean_adjusted"] = at(adj, conf, "var")
    return {k: got[k] for k in exp}


def run_ewma(api: Api, v: dict[str, Any]) -> dict[str, Any]:
    i, exp = v["inputs"], v["expected"]
    if v["metric"] == "ewma_variance_forecast":
        r = api.var(v, method="ewma", ewmaLambda=i["lambda"], confidence=[0.99])
        got = {"sigma2_next_day": r["sigma"] ** 2, "sigma_next_day": r["sigma"], "var_99": at(r, 0.99, "var"),
               "sigma2_normalized_weights_skfolio_pandas": r["sigma"] ** 2,
               "sigma2_seed_r0sq_pandas_adjust_false": r["sigma"] ** 2}
        return {k: got[k] for k in exp}
    r = api.var(v, method="ewma", ewmaLambda=i["lambda"], confidence=i["confidence"])
    ours = {"sigma_usd": r["sigma"], "var_95": at(r, 0.95, "var"), "var_99": at(r, 0.99, "var")}
    return {k: ours for k in exp}  # the NOT_ADOPTED keys are checked to differ


def run_volatility(api: Api, v: dict[str, Any]) -> dict[str, Any]:
    got: dict[str, Any] = {}
    for periods in (252, 260, 365):
        stats = api.var(v, method="parametric", confidence=0.95, periodsPerYear=periods)["pnlStatistics"]
        got[f"annual_vol_{periods}"] = stats["annualisedVolatility"]
        got["daily_std_ddof1"] = stats["stdDev"]
    return {k: got[k] for k in v["expected"]}


def run_cornish_fisher(api: Api, v: dict[str, Any]) -> dict[str, Any]:
    c = v["inputs"]["confidence"]
    r = api.var(v, method="cornish-fisher", confidence=c)
    got = {"var": at(r, c, "var"), "skewness": r["pnlStatistics"]["skewness"],
           "excess_kurtosis": r["pnlStatistics"]["excessKurtosis"], "z_cf": at(r, c, "zCornishFisher"),
           "var_gaussian_ddof0": at(r, c, "gaussianVar")}
    return {k: got[k] for k in v["expected"]}


def run_monte_carlo(api: Api, v: dict[str, Any]) -> dict[str, Any]:
    key = next(iter(v["expected"]))  # var_95 or es_975: the tolerance applies to it
    conf = 0.95 if key == "var_95" else 0.975
    r = api.var(v, method="monte-carlo", confidence=conf, paths=v["inputs"]["paths"], seed=7)
    got: dict[str, Any] = {key: at(r, conf, "var" if key.startswith("var") else "es")}
    se = at(r, conf, "varStandardError" if key.startswith("var") else "esStandardError")
    got["mc_relative_standard_error_at_100k_paths"] = se / got[key]
    return got


def run_components(api: Api, v: dict[str, Any]) -> dict[str, Any]:
    r = api.var(v, method="parametric", confidence=v["inputs"]["confidence"])
    comp = {c["currencyPair"]: c for c in r["components"]}
    return {"total_var": r["results"][0]["var"],
            "component_var": {p: c["componentVar"] for p, c in comp.items()},
            "marginal_var_per_usd": {p: c["marginalVar"] for p, c in comp.items()},
            "pct_contribution": {p: c["contribution"] for p, c in comp.items()}}


def run_correlation_risk(api: Api, v: dict[str, Any]) -> dict[str, Any]:
    i = v["inputs"]
    # Positions whose risk at the stop is the vector's amount: 1 lot (100,000 units) x stop distance; USDCHF at
    # 1.0 converts CHF 1:1 into USD.
    price = {"EURUSD": 1.10, "GBPUSD": 1.27, "USDCHF": 1.0}
    positions = [{"currencyPair": p, "side": "long" if i["direction"][p] > 0 else "short", "lots": 1,
                  "entryPrice": price[p], "stopDistance": risk / 100_000}
                 for p, risk in i["risk_to_stop_usd"].items()]
    r = api.post("portfolio", {"accountCurrency": "USD", "positions": positions,
                               "returns": returns(i["data"], list(i["risk_to_stop_usd"]))})
    return {"sum_of_risks": r["totalRisk"], "correlation_adjusted_risk": r["correlationAdjustedRisk"],
            "correlation_matrix": r["correlation"]["matrix"]}


def run_stress_history(api: Api, v: dict[str, Any]) -> dict[str, Any]:
    ex = exposures(v)
    r = api.post("stress", {"accountCurrency": "USD", "positions": [{"currencyPair": p, "exposure": e}
                                                                    for p, e in ex.items()],
                            "returns": returns(v["inputs"]["data"], list(ex)), "windows": [1, 5]})
    day, week = r["historical"]["worstWindows"]
    return {"worst_pnl": day["pnl"], "worst_date": day["startDate"], "worst_index": day["startIndex"],
            "worst_5_day_pnl": week["pnl"]}


def run_drawdown(api: Api, v: dict[str, Any]) -> dict[str, Any]:
    i = v["inputs"]
    equity = column(i["data"], "equity_usd")
    assert equity == i["equity_usd"]
    with_base = api.post("drawdown", {"equity": equity, "initialEquity": i["initial_equity_usd"]})
    series = api.post("drawdown", {"equity": equity})

    def pick(r: dict[str, Any]) -> dict[str, Any]:
        return {"max_drawdown_pct": r["maxDrawdown"], "peak_row": r["peakIndex"], "trough_row": r["troughIndex"],
                "recovery_row": r["recoveryIndex"]}

    return {"with_initial_equity_as_peak": pick(with_base), "series_only_no_baseline": pick(series),
            "pyfolio_peak_valley_recovery_row": [series["peakIndex"], series["troughIndex"], series["recoveryIndex"]]}


def projection(api: Api, v: dict[str, Any], **extra: Any) -> dict[str, Any]:
    i = v["inputs"]
    return api.post("projection", {"startBalance": i.get("start_equity_usd", 100_000), "riskPercentage": 1,
                                   "trades": column(i["data"], i["column"]), "numberOfTrades": 100, "paths": 1000,
                                   "seed": 3, **extra})


def run_kelly(api: Api, v: dict[str, Any]) -> dict[str, Any]:
    ts = projection(api, v)["tradeStatistics"]
    names = {"win_rate": "winRate", "avg_win_r": "averageWin", "avg_loss_r": "averageLoss",
             "payoff_ratio": "payoffRatio", "profit_factor": "profitFactor", "expectancy_r": "expectancy",
             "kelly_fraction": "kellyFraction", "half_kelly": "halfKelly"}
    return {k: ts[names[k]] for k in v["expected"]}


def run_ruin(api: Api, v: dict[str, Any]) -> dict[str, Any]:
    i, exp = v["inputs"], v["expected"]
    if "data" in i:  # the quantstats formula: our projection's ruin estimate must not be it
        r = projection(api, v)
        return {"risk_of_ruin": r["ruinProbability"], "win_rate": r["tradeStatistics"]["winRate"],
                "n": r["tradeStatistics"]["count"]}
    if "risk_fraction_per_trade" in i:
        r = api.post("risk-of-ruin", {"winRate": i["win_probability"], "payoffRatio": i["payoff_r_on_win"],
                                      "riskFraction": i["risk_fraction_per_trade"],
                                      "ruinLevel": i["ruin_level_fraction_of_start"],
                                      "monteCarloPaths": 2000, "monteCarloTrades": 3000, "seed": 12})
        mc = r["monteCarlo"]
        # The vector: the Monte Carlo estimate must not exceed the bound (here within 4 standard errors).
        assert mc["ruinProbability"] <= r["fixedFractionalRuinBound"] + 4 * mc["standardError"], r
        return {"lundberg_bound": r["fixedFractionalRuinBound"], "adjustment_coefficient_theta": r["lundbergExponent"]}
    p = i.get("win_probability", i.get("win_rate"))
    payoff = float(i["payoff_units_on_win"]) if "payoff_units_on_win" in i else 1.0
    r = api.post("risk-of-ruin", {"winRate": p, "payoffRatio": payoff, "capitalUnits": i["capital_units"]})
    got = {"risk_of_ruin": r["riskOfRuin"], "root_x": r["ruinRoot"], "edge": r["edge"]}
    return {k: got[k] for k in exp if k not in INFORMATIVE}


def run_risk_reward(api: Api, v: dict[str, Any]) -> dict[str, Any]:
    i = v["inputs"]
    base = {"entryPrice": i["entry"], "stopLoss": i["stop"], "takeProfit": i["target"], "pipSize": i["pip"]}
    plain = api.post("risk-reward", base)
    costs = api.post("risk-reward", {**base, "costPips": i["round_trip_cost_pips"]})
    return {"risk_pips": plain["riskPips"], "reward_pips": plain["rewardPips"],
            "reward_to_risk": plain["unrounded"]["riskRewardRatio"],
            "breakeven_win_rate": plain["unrounded"]["breakEvenWinRate"],
            "breakeven_win_rate_with_costs": costs["unrounded"]["breakEvenWinRate"],
            "net_reward_to_risk_with_costs": costs["unrounded"]["riskRewardRatio"]}


def run_pnl_projection(api: Api, v: dict[str, Any]) -> dict[str, Any]:
    i = v["inputs"]
    assert i["fixed_fraction"] == 0.01 and i["n_future_trades"] == 100
    a = projection(api, v, fixedRiskAmount=i["fixed_risk_usd"])["analytic"]
    q = a["fixedRiskPnlQuantiles"]
    return {"fixed_risk_mean_usd": a["fixedRiskPnlMean"], "fixed_risk_sd_usd": a["fixedRiskPnlStdDev"],
            "fixed_risk_q05_usd": q["q05"], "fixed_risk_q50_usd": q["q50"], "fixed_risk_q95_usd": q["q95"],
            "fixed_fraction_median_equity": a["fixedFractionMedianEquity"],
            "fixed_fraction_mean_equity": a["fixedFractionMeanEquity"]}


RUNNERS: dict[str, Callable[[Api, dict[str, Any]], dict[str, Any]]] = {
    "historical_var": run_historical, "historical_es": run_historical, "historical_var_es": run_historical,
    "parametric_var_es": run_parametric, "parametric_var": run_ewma, "ewma_variance_forecast": run_ewma,
    "volatility_annualisation": run_volatility, "cornish_fisher_var": run_cornish_fisher,
    "monte_carlo_var_es": run_monte_carlo, "component_marginal_var": run_components,
    "correlation_adjusted_risk": run_correlation_risk, "stress_historical": run_stress_history,
    "max_drawdown": run_drawdown, "kelly_criterion": run_kelly, "risk_of_ruin": run_ruin,
    "risk_reward": run_risk_reward, "pnl_projection": run_pnl_projection,
}


def compare(expected: Any, got: Any, rel: float, path: str = "") -> list[str]:
    """Mismatches within the vector's relative tolerance (absolute 1e-12 where the expected value is 0)."""
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return [f"{path}: expected an object, got {got!r}"]
        errors: list[str] = []
        for k, e in expected.items():
            errors += [f"{path}.{k}: missing"] if k not in got else compare(e, got[k], rel, f"{path}.{k}")
        return errors
    if isinstance(expected, list):
        if not isinstance(got, list) or len(got) != len(expected):
            return [f"{path}: expected {expected!r}, got {got!r}"]
        pairs = enumerate(zip(expected, got, strict=True))
        return [e for n, (x, y) in pairs for e in compare(x, y, rel, f"{path}[{n}]")]
    if isinstance(expected, str) or isinstance(expected, bool):
        return [] if expected == got else [f"{path}: expected {expected!r}, got {got!r}"]
    if not isinstance(got, int | float) or isinstance(got, bool) or not math.isfinite(got):
        return [f"{path}: expected {expected}, got {got!r}"]
    limit = 1e-12 if expected == 0 else rel * abs(expected)
    return [] if abs(got - expected) <= limit else [f"{path}: expected {expected!r} (rel {rel}), got {got!r}"]
