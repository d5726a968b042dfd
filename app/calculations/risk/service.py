"""Rules between the risk schemas and app.calc.risk: exposures from lots, the returns matrix and its
checks (each naming its field), response assembly with the conventions used."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.calc.errors import CalcError, UnknownInstrument
from app.calc.flags import flag
from app.calc.instruments import normalise_currency, normalise_symbol, resolve, split_pair
from app.calc.numbers import finite_or_none, no_negative_zero
from app.calc.risk import drawdown as dd
from app.calc.risk import horizon as hz
from app.calc.risk import stress as st
from app.calc.risk.estimators import DEGENERATE_VARIANCE, F64, min_observations
from app.calc.risk.var import VarInput, portfolio_var
from app.calc.trade import with_own_pair
from app.calculations.common import new_id, rate_table
from app.calculations.risk import schemas as s

MAX_MC_CELLS = 1_000_000  # Monte Carlo paths x pairs per request
DELTA_MAPPING = "position P&L = signed account-currency exposure x pair return (delta mapping)"


@dataclass(frozen=True, slots=True)
class Book:
    account: str
    symbols: list[str]  # per position, canonical
    pairs: list[tuple[str, str, str]]  # per position: (symbol, base, quote); base/quote "" for opaque factors
    exposures: F64
    rates_used: dict[str, Any]
    # Per position: the legs of its quote -> account conversion (None when no rate path is known).
    paths: list[list[st.Leg] | None] | None = None


def _legs(table: Any, quote: str, account: str) -> list[st.Leg] | None:
    """The conversion path quote -> account in the table, as (base, quote, inverted) legs."""
    if not quote or quote == account:
        return [] if quote == account else None
    try:
        c = table.copy().cross(quote, account)
    except CalcError:
        return None
    legs: list[st.Leg] = []
    for u, sym in zip(c.currencies, c.path, strict=False):
        legs.append((sym[:3], sym[3:], sym[:3] != u))
    return legs


def book(account_raw: str, positions: list[s.RiskPosition], rates: Any) -> Book:
    account = normalise_currency(account_raw, "accountCurrency")
    table = rate_table(rates)
    symbols, pairs, exposures = [], [], []
    paths: list[list[st.Leg] | None] = []
    used: dict[str, Any] = {}
    for i, p in enumerate(positions):
        f = f"positions[{i}]"
        symbol = normalise_symbol(p.currency_pair)
        if p.exposure is not None:
            if p.lots is not None or p.side is not None:
                raise CalcError(f"{f}.lots", "Give exposure, or lots with side, not both.", "CONFLICTING_FIELDS")
            try:  # a catalogue instrument gets its currencies (for currency shocks); others are opaque factors
                spec = resolve(p.currency_pair, p.instrument.as_overrides() if p.instrument else None,
                               f"{f}.currencyPair", f"{f}.instrument")
                base, quote = (spec.base, spec.quote) if split_pair(spec.symbol) else ("", spec.quote)
                symbol = spec.symbol
            except UnknownInstrument:
                base, quote = "", ""
            exposure = p.exposure
            if quote:
                # The conversion path with the own pair in the graph (its level does not matter: only the
                # shock factors along the path enter the revaluation).
                own_t = with_own_pair(spec, table, 1.0) if base else table
                paths.append(_legs(own_t, quote, account))
            else:
                paths.append(None)
        else:
            if p.lots is None:
                raise CalcError(f"{f}.exposure", "Give exposure (signed, account currency) or lots with side.",
                                "MISSING_FIELD")
            if p.side is None:
                raise CalcError(f"{f}.side", "lots need a side (long or short).", "MISSING_FIELD")
            spec = resolve(p.currency_pair, p.instrument.as_overrides() if p.instrument else None,
                           f"{f}.currencyPair", f"{f}.instrument")
            symbol = spec.symbol
            own = with_own_pair(spec, table, p.price)
            price = p.price
            if price is None:
                pair = split_pair(spec.symbol)
                if pair is None:
                    raise CalcError(f"{f}.price", f"{spec.symbol} needs its price for the exposure.", "MISSING_FIELD")
                price = own.cross(pair[0], pair[1], f"{f}.price").mid
            x = own.convert_factor(spec.quote, account, "mid", "conversionRates")
            # Notional in the quote currency (units x price), in account currency: the value whose
            # relative change is the pair return.
            exposure = (1.0 if p.side == "long" else -1.0) * p.lots * spec.contract_size * price * x
            base, quote = (spec.base, spec.quote) if split_pair(spec.symbol) else ("", spec.quote)
            used.update(own.used_public())
            paths.append(_legs(own, spec.quote, account))
        symbols.append(symbol)
        pairs.append((symbol, base, quote))
        exposures.append(exposure)
    return Book(account, symbols, pairs, np.array(exposures, dtype=np.float64), used, paths)


@dataclass(frozen=True, slots=True)
class History:
    names: list[str]  # risk factors (pairs) used, in position order of first appearance
    returns: F64  # (T, f)
    factor_of: np.ndarray[Any, np.dtype[np.intp]]
    dates: list[str] | None


def history(h: s.ReturnsHistory, symbols: list[str], field: str = "returns") -> History:
    series: dict[str, tuple[str, list[float]]] = {}
    for key, values in h.series.items():
        series[normalise_symbol(key)] = (key, values)
    names: list[str] = []
    factor_of: list[int] = []
    for i, sym in enumerate(symbols):
        if sym not in series:
            raise CalcError(f"positions[{i}].currencyPair", f"No returns series for {sym} in {field}.series "
                            f"(it has {', '.join(sorted(series)) or 'none'}).", "MISSING_SERIES")
        if sym not in names:
            names.append(sym)
        factor_of.append(names.index(sym))
    lengths = {len(series[n][1]) for n in names}
    n_obs = len(series[names[0]][1])
    for n in names:
        key, values = series[n]
        if len(values) != n_obs:
            raise CalcError(f"{field}.series.{key}", f"Series have unequal lengths: {key} has {len(values)} "
                            f"observations, {series[names[0]][0]} has {n_obs}.", "LENGTH_MISMATCH")
    if h.dates is not None and len(h.dates) != n_obs:
        raise CalcError(f"{field}.dates", f"dates has {len(h.dates)} entries for {n_obs} observations.",
                        "LENGTH_MISMATCH")
    assert lengths
    r = np.array([series[n][1] for n in names], dtype=np.float64).T.copy()
    return History(names, r.reshape(n_obs, len(names)), np.array(factor_of, dtype=np.intp), h.dates)


def _confidences(c: float | list[float]) -> list[float]:
    return [c] if isinstance(c, float | int) else list(c)


def var(req: s.VarRequest, explain: bool = False) -> dict[str, Any]:
    b = book(req.account_currency, req.positions, req.conversion_rates)
    if req.returns is None:  # prepare fills them from the market history; without it there is nothing to run
        raise CalcError("returns", "Give returns (daily simple returns per pair).", "MISSING_FIELD")
    hist = history(req.returns, b.symbols)
    confs = _confidences(req.confidence)
    n, k = hist.returns.shape
    if req.method in ("historical", "cornish-fisher"):
        need = max(min_observations(c) for c in confs)
        if n < need:
            raise CalcError("returns.series", f"{n} observations are too few for confidence {max(confs)}: "
                            f"the {req.method} method needs at least {need} (alpha x n >= 1).",
                            "TOO_FEW_OBSERVATIONS")
    elif n < k + 1:
        raise CalcError("returns.series", f"{n} observations are too few to estimate the covariance of {k} pairs: "
                        f"at least {k + 1} are needed.", "TOO_FEW_OBSERVATIONS")
    paths = req.paths or max(100, min(100_000, MAX_MC_CELLS // k))
    if req.method == "monte-carlo" and paths * k > MAX_MC_CELLS:
        raise CalcError("paths", f"paths x pairs = {paths} x {k} exceeds {MAX_MC_CELLS:,}; use at most "
                        f"{MAX_MC_CELLS // k} paths.", "TOO_MANY_PATHS")
    seed = req.seed if req.seed is not None else int.from_bytes(os.urandom(8), "big") >> 1
    inp = VarInput(hist.returns, hist.names, hist.factor_of, b.exposures, req.method, confs, float(req.horizon_days),
                   req.quantile_method, req.es_method, req.ewma_lambda, req.mean_adjusted, req.ddof, paths, seed,
                   req.covariance_fallback == "eigen-clip")
    res = portfolio_var(inp)
    gross = float(np.abs(b.exposures).sum())
    legs, held = _factor_legs(b, hist.names)
    rev = hz.revalued_var(inp, res, legs)
    results: list[dict[str, Any]] = []
    for i, c in enumerate(confs):
        row: dict[str, Any] = {"confidence": c, "var": float(res.var[i]), "es": float(res.es[i]),
                               "varFraction": _frac(res.var[i], gross), "esFraction": _frac(res.es[i], gross)}
        row["revaluedVar"] = finite_or_none(rev.var[i])
        row["revaluedEs"] = finite_or_none(rev.es[i])
        if req.method == "monte-carlo":
            row["varStandardError"] = float(res.extra["varStandardError"][i])
            row["esStandardError"] = float(res.extra["esStandardError"][i])
        if req.method == "cornish-fisher":
            row["zCornishFisher"] = float(res.extra["zCornishFisher"][i])
            row["gaussianVar"] = float(res.extra["gaussianVarPopulation"][i])
            # The raw expansion, named: it is the reported figure only inside its domain.
            row["cornishFisherVar"] = float(res.extra["cornishFisherVar"][i])
            row["cornishFisherEs"] = float(res.extra["cornishFisherEs"][i])
        results.append(row)
    total = float(res.var[0])
    components = [{
        "index": i, "currencyPair": b.symbols[i], "exposure": float(b.exposures[i]),
        "componentVar": float(res.component[i]), "contribution": _frac(res.component[i], total),
        "marginalVar": float(res.marginal[i]), "incrementalVar": float(res.incremental[i]),
        "standaloneVar": float(res.standalone[i]),
    } for i in range(len(b.symbols))]
    pnl = hist.returns @ np.bincount(hist.factor_of, weights=b.exposures, minlength=k)
    out: dict[str, Any] = {
        "accountCurrency": b.account, "method": req.method, "horizonDays": req.horizon_days, "observations": n,
        "results": results, "components": components, "componentsConfidence": confs[0],
        "diversificationBenefit": res.diversification_benefit, "sumOfStandaloneVar": float(res.standalone.sum()),
        "grossExposure": gross, "netExposure": float(b.exposures.sum()),
        "pnlStatistics": _pnl_stats(pnl, req.periods_per_year),
        "flags": [], "ratesUsed": b.rates_used,
        "conventions": _var_conventions(req, confs),
    }
    if "sigma" in res.extra:
        out["sigma"], out["sigmaHorizon"] = res.extra["sigma"], res.extra["sigmaHorizon"]
    if req.method == "historical":
        rows = res.extra["varScenarioIndices"]
        out["varScenarios"] = [{"index": r, "date": hist.dates[r] if hist.dates else None} for r in rows]
    if req.method == "monte-carlo":
        out["monteCarlo"] = {"paths": paths, "seed": seed, "generator": "numpy PCG64, standard normal (ziggurat)",
                             "standardError": "VaR: sqrt(a(1-a)/N)/f(q) with the simulated normal density; "
                                              "ES: sqrt((Var(L|tail) + (1-a)(ES-VaR)^2)/(N a))"}
    out["revaluation"] = {
        "basis": rev.basis, "heldConversionPairs": held,
        "materialDifferenceThreshold": hz.MATERIAL_DIFFERENCE,
        "differsMaterially": any(hz.material(float(res.var[i]), float(rev.var[i]), gross)
                                 or hz.material(float(res.es[i]), float(rev.es[i]), gross) for i in range(len(confs))),
    }
    if out["revaluation"]["differsMaterially"]:
        worst = max(range(len(confs)), key=lambda i: abs(float(rev.var[i]) - float(res.var[i]))
                    if math.isfinite(float(rev.var[i])) else math.inf)
        out["flags"].append(flag("HORIZON_REVALUATION_DIFFERS", confidence=confs[worst],
                                 var=float(res.var[worst]), revaluedVar=finite_or_none(rev.var[worst])))
    if res.extra.get("outOfDomain"):
        out["flags"].append(flag("CORNISH_FISHER_OUT_OF_DOMAIN",
                                 skewness=out["pnlStatistics"].get("skewness"),
                                 excessKurtosis=out["pnlStatistics"].get("excessKurtosis"),
                                 safeRule=res.extra["safeRule"]))
    if res.extra.get("singularCovariance"):
        out["flags"].append(flag("SINGULAR_COVARIANCE_FALLBACK"))
    used = req.history_used
    if used is not None:  # the returns were filled from the market history: name it, flag development data
        out["history"] = used
        if used["development"]:
            out["flags"].append(flag("DEVELOPMENT_HISTORY"))
    out["calculationId"] = new_id()
    return no_negative_zero(out)  # type: ignore[no-any-return]



def _factor_legs(b: Book, names: list[str]) -> tuple[list[list[hz.FactorLeg]], list[str]]:
    """Per position, the hops of its quote -> account conversion that move with a risk factor (the pair
    has a returns series): (factor index, +1 multiply / -1 divide); and the pairs of those paths held at
    today's rate because no series moves them."""
    legs: list[list[hz.FactorLeg]] = []
    held: list[str] = []
    for path in b.paths or [None] * len(b.symbols):
        mine: list[hz.FactorLeg] = []
        for base, quote, inverted in path or []:
            pair = base + quote
            if pair in names:
                mine.append((names.index(pair), -1 if inverted else 1))
            elif pair not in held:
                held.append(pair)
        legs.append(mine)
    return legs, held


def _frac(x: float, gross: float) -> float | None:
    return float(x / gross) if gross > 0 else None


def _nz(x: float | None) -> float | None:
    """No negative zero: -0.0 + 0.0 is 0.0."""
    return None if x is None else x + 0.0


def _pnl_stats(pnl: F64, periods: int) -> dict[str, Any]:
    n = pnl.size
    mean = float(pnl.mean())
    c = pnl - mean
    m2 = float((c * c).mean())
    sd = float(math.sqrt(m2 * n / (n - 1))) if n > 1 else 0.0
    out: dict[str, Any] = {"mean": mean, "stdDev": sd, "stdDevPopulation": math.sqrt(m2),
                           "annualisedVolatility": sd * math.sqrt(periods), "periodsPerYear": periods}
    if m2 > DEGENERATE_VARIANCE:  # below it the standardised moments are undefined (m2**3 underflows)
        out["skewness"] = float((c**3).mean() / m2**1.5)
        out["excessKurtosis"] = float((c**4).mean() / m2**2 - 3.0)
    return out


def _var_conventions(req: s.VarRequest, confs: list[float]) -> dict[str, Any]:
    common = {"sign": "VaR and ES are positive losses in the account currency; *Fraction = / gross exposure",
              "exposureMapping": DELTA_MAPPING, "horizonScaling": "sqrt(horizonDays) on sigma/quantiles, "
              "horizonDays on the mean",
              "horizonRevaluation": "revaluedVar/revaluedEs: each position revalued, E x (P1/P0 - 1) x X1/X0, "
              "with the h-day relative (1 + x)^sqrt(h) of each 1-day simple move x ((1 + m)^h (1 + d)^sqrt(h), "
              "1 + x = (1 + m)(1 + d), with the mean m split off) for the pair and for each pair of its "
              "quote -> account path that has a series (others held, revaluation.heldConversionPairs); "
              "historical and monte-carlo revalue every "
              "scenario, the other methods the move along the covariance direction that gives the linear loss; "
              "var/es stay the linear (delta, sqrt-time) figures",
              "components": f"Euler allocation at confidence {confs[0]}: "
              "componentVar = exposure x marginalVar, summing to the total; incrementalVar = VaR - VaR without "
              "the position; diversificationBenefit = sum of standalone VaR - VaR"}
    by_method = {
        "historical": {"quantile": {"discrete": "k-th worst P&L, k = ceil(alpha n - 1e-9) (lower empirical "
                                                "quantile; at integer alpha n it is the (alpha n)-th worst)",
                                    "discrete-loss": "lower quantile of the losses at the confidence (skfolio)",
                                    "linear": "linear interpolation, type 7 (numpy, empyrical)"}[req.quantile_method],
                       "es": {"rockafellar-uryasev": "Rockafellar-Uryasev, fractional boundary weight",
                              "tail-mean": "mean of the floor((n-1) alpha)+1 worst (empyrical)"}[req.es_method],
                       "componentsMethod": "P&L of each position in the scenario(s) that set the VaR"},
        "parametric": {"distribution": "normal", "mean": "sample mean" if req.mean_adjusted else "zero",
                       "covariance": f"sample, ddof {req.ddof}", "z": "inverse normal CDF of the confidence",
                       "es": "sigma pdf(z) / alpha"},
        "ewma": {"distribution": "normal", "mean": "sample mean" if req.mean_adjusted else "zero",
                 "covariance": f"RiskMetrics EWMA, lambda {req.ewma_lambda}, zero mean, weights normalised to 1, "
                               "includes the latest day"},
        "cornish-fisher": {"expansion": "PerformanceAnalytics VaR.CornishFisher: population skewness and excess "
                                        "kurtosis, population variance, mean included",
                           "es": "tail mean of the Cornish-Fisher quantile function (closed form); not PA's "
                                 "Boudt modified ES",
                           "domain": "Maillard (2012): the expansion is used only where it is increasing in z, "
                                     "S^2/9 - 4 (K/8 - S^2/6)(1 - K/8 + 5 S^2/36) <= 0 with K/8 >= S^2/6; "
                                     "outside it (or when it gives a negative VaR for a book with losses) var = "
                                     "max(gaussian, historical), es = max(gaussian ES, historical ES, var), flag "
                                     "CORNISH_FISHER_OUT_OF_DOMAIN",
                           "componentsMethod": "analytic gradient through the P&L co-moments (Euler); out of "
                                               "the domain the historical scenario allocation scaled to var"},
        "monte-carlo": {"distribution": "multivariate normal, sample covariance (Cholesky)",
                        "estimator": "discrete VaR, Rockafellar-Uryasev ES of the simulated P&L",
                        "componentsMethod": "Euler allocation of the simulated normal model, scaled to the "
                                            "simulated VaR"},
    }
    return {**common, "method": req.method, **by_method[req.method]}


def stress(req: s.StressRequest, explain: bool = False) -> dict[str, Any]:
    b = book(req.account_currency, req.positions, req.conversion_rates)
    scenarios: list[st.Scenario] = []
    if req.shocks:
        scenarios.append(_scenario("custom", None, req.shocks, "shocks"))
    for i, named in enumerate(req.scenarios or []):
        scenarios.append(_scenario(named.name, named.description, named.shocks, f"scenarios[{i}].shocks"))
    builtin = req.builtin_scenarios
    if builtin is None and not scenarios and req.returns is None:
        builtin = "all"
    names = list(st.BUILTIN) if builtin == "all" else (builtin or [])
    for i, name in enumerate(names):
        if name not in st.BUILTIN:
            raise CalcError(f"builtinScenarios[{i}]", f"Unknown built-in scenario '{name}'; known: "
                            f"{', '.join(st.BUILTIN)}.", "UNKNOWN_SCENARIO")
        scenarios.append(st.BUILTIN[name])
    rows: list[dict[str, Any]] = []
    for sc in scenarios:
        r = st.stress(b.pairs, b.exposures, sc, b.account, b.paths)
        linear_total = float(r.linear_pnl.sum()) + 0.0
        rows.append({
            "name": sc.name, "source": sc.source, "description": sc.description, "period": sc.period,
            "totalPnl": r.total, "totalPnlFraction": _nz(_frac(r.total, float(np.abs(b.exposures).sum()))),
            "totalLinearPnl": linear_total,
            "positions": [{"index": i, "currencyPair": b.symbols[i], "exposure": float(b.exposures[i]),
                           "return": float(r.returns[i]), "shockFrom": r.shock_source[i], "pnl": float(r.pnl[i]),
                           "linearPnl": float(r.linear_pnl[i]),
                           "conversionFactor": float(r.conversion_factor[i]),
                           "conversionPath": None if b.paths is None or b.paths[i] is None
                           else [bs + q for bs, q, _ in b.paths[i] or []],
                           "conversionLegs": None if b.paths is None or b.paths[i] is None
                           else [{"pair": bs + q, "direction": "divide" if inverted else "multiply"}
                                 for bs, q, inverted in b.paths[i] or []]}
                          for i in range(len(b.symbols))],
        })
    out: dict[str, Any] = {"accountCurrency": b.account, "scenarios": rows, "ratesUsed": b.rates_used}
    if rows:
        worst = min(rows, key=lambda x: x["totalPnl"])
        out["worstScenario"] = {"name": worst["name"], "totalPnl": worst["totalPnl"]}
    if req.returns is not None:
        hist = history(req.returns, b.symbols)
        n = hist.returns.shape[0]
        position_pnl = hist.returns[:, hist.factor_of] * b.exposures
        worst_windows = []
        for i, w in enumerate(req.windows):
            if w > n:
                raise CalcError(f"windows[{i}]", f"A {w}-day window needs at least {w} observations (have {n}).",
                                "TOO_FEW_OBSERVATIONS")
            ww = st.worst_windows(position_pnl, w)
            worst_windows.append({
                "days": w, "pnl": ww.pnl, "startIndex": ww.start_index, "endIndex": ww.end_index,
                "startDate": hist.dates[ww.start_index] if hist.dates else None,
                "endDate": hist.dates[ww.end_index] if hist.dates else None,
                "pnlByPosition": [float(x) for x in ww.by_position]})
        out["historical"] = {"observations": n, "worstWindows": worst_windows}
    out["conventions"] = {
        "pnl": "exact revaluation: units x (shocked price - price) in the quote currency, converted at the shocked "
               "rates = exposure x return x conversionFactor, conversionFactor = X1/X0 of quote -> account along "
               "the conversion path (from the currency shocks when no path is known)",
        "linearPnl": "exposure x pair return (delta), shown alongside",
        "exposureMapping": DELTA_MAPPING,
        "currencyShock": "each currency's value moves by (1 + s) against a common numeraire; pair XY returns "
                         "(1 + s_X) / (1 + s_Y) - 1; a pair shock wins over currency shocks",
        "historicalWindows": "sum of the daily P&L of today's exposures over overlapping windows",
    }
    out["calculationId"] = new_id()
    return no_negative_zero(out)  # type: ignore[no-any-return]


def _scenario(name: str, description: str | None, shocks: dict[str, float], field: str) -> st.Scenario:
    pairs: dict[str, float] = {}
    currencies: dict[str, float] = {}
    for key, value in shocks.items():
        k = key.strip().upper()
        if len(k) == 3:
            currencies[normalise_currency(k, f"{field}.{key}")] = value
        else:
            pairs[normalise_symbol(key)] = value
    return st.Scenario(name, description or "", pairs, currencies)


def drawdown(req: s.DrawdownRequest, explain: bool = False) -> dict[str, Any]:
    if (req.equity is None) == (req.pnl is None):
        raise CalcError("equity", "Give equity, or pnl with initialEquity.", "MISSING_FIELD" if req.equity is None
                        else "CONFLICTING_FIELDS")
    if req.pnl is not None:
        if req.initial_equity is None:
            raise CalcError("initialEquity", "pnl needs initialEquity (the starting equity).", "MISSING_FIELD")
        equity = req.initial_equity + np.cumsum(np.array(req.pnl, dtype=np.float64))
        bad = np.flatnonzero(equity <= 0)
        if bad.size:
            raise CalcError(f"pnl[{int(bad[0])}]", "Equity falls to zero or below at this bar: a compounded "
                            "drawdown is undefined beyond -100 %.", "EQUITY_NOT_POSITIVE")
        field = "pnl"
    else:
        equity = np.array(req.equity, dtype=np.float64)
        field = "equity"
    if req.dates is not None and len(req.dates) != equity.size:
        raise CalcError("dates", f"dates has {len(req.dates)} entries for {equity.size} bars.", "LENGTH_MISMATCH")
    r = dd.drawdown(equity, req.initial_equity)

    def date(i: int | None) -> str | None:
        if i is None or req.dates is None:
            return None
        return "initial" if i < 0 else req.dates[i]

    out: dict[str, Any] = {
        "bars": int(equity.size), "input": field, "initialEquity": req.initial_equity,
        "maxDrawdown": r.max_drawdown, "maxDrawdownPercentage": r.max_drawdown * 100.0,
        "maxDrawdownMoney": r.max_drawdown_money, "peakIndex": r.peak_index, "troughIndex": r.trough_index,
        "recoveryIndex": r.recovery_index, "recovered": r.recovery_index is not None or r.peak_index is None,
        "peakEquity": r.peak_equity, "troughEquity": r.trough_equity,
        "currentDrawdown": r.current_drawdown, "currentDrawdownMoney": r.current_drawdown_money,
        "underwaterBars": r.underwater_bars,
        "longestUnderwater": None if r.longest_underwater is None else {
            "startIndex": r.longest_underwater.start, "endIndex": r.longest_underwater.end,
            "bars": r.longest_underwater.length, "recovered": r.longest_underwater.recovered},
    }
    if req.dates is not None:
        out["peakDate"], out["troughDate"] = date(r.peak_index), date(r.trough_index)
        out["recoveryDate"] = date(r.recovery_index)
    if req.include_series:
        out["drawdownSeries"] = [float(x) for x in r.series]
    out["conventions"] = {
        "drawdown": "equity / running peak - 1 (compounded), negative; money = equity - running peak",
        "firstPeak": "initialEquity (index -1), so a first-bar loss counts" if req.initial_equity is not None
                     else "the first bar (no initialEquity given)",
        "indices": "0-based bars of the given series; -1 = initialEquity; recovery = first bar at or above the peak",
    }
    out["calculationId"] = new_id()
    return no_negative_zero(out)  # type: ignore[no-any-return]
