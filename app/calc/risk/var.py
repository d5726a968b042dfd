"""Portfolio VaR and ES by five methods, with Euler components, marginal, incremental and standalone VaR.

Exposure mapping (delta): position P&L = signed account-currency exposure x pair return. Positions
on the same pair share one risk factor, so a book with a long and a short on EURUSD has a
well-defined (non-singular) covariance; each position's Euler component is its exposure times the
marginal VaR of its pair, which sums to the total exactly (VaR is homogeneous of degree 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from app.calc.risk import estimators as est
from app.calc.risk.estimators import F64, EsMethod, QuantileMethod
from app.calc.risk.normal import ndtri, pdf

Method = Literal["historical", "parametric", "ewma", "cornish-fisher", "monte-carlo"]


@dataclass(frozen=True, slots=True)
class VarInput:
    returns: F64  # (T, f): daily simple returns of each risk factor (pair)
    factor_names: Sequence[str]
    factor_of: NDArray[np.intp]  # (P,): factor index of each position
    exposures: F64  # (P,): signed exposure in account currency
    method: Method = "historical"
    confidences: Sequence[float] = (0.95, 0.99)
    horizon: float = 1.0
    quantile: QuantileMethod = "discrete"
    es_method: EsMethod = "rockafellar-uryasev"
    ewma_lambda: float = 0.94
    mean_adjusted: bool = False
    ddof: int = 1
    paths: int = 100_000
    seed: int = 0
    covariance_fallback: bool = False


@dataclass(slots=True)
class VarResult:
    var: F64  # (m,) per confidence
    es: F64
    marginal: F64  # (P,) per unit of exposure, at confidences[0]
    component: F64  # (P,) sums to var[0]
    incremental: F64  # (P,) var[0] - VaR without the position
    standalone: F64  # (P,) VaR of the position alone
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def diversification_benefit(self) -> float:
        return float(self.standalone.sum() - self.var[0])


def factor_exposures(inp: VarInput) -> F64:
    return np.bincount(inp.factor_of, weights=inp.exposures, minlength=len(inp.factor_names)).astype(np.float64)


def portfolio_var(inp: VarInput) -> VarResult:
    w = factor_exposures(inp)
    if inp.method == "monte-carlo":
        return _monte_carlo(inp, inp.returns, w)
    # Column-major: every per-factor (per-column) sum, moment and partition below then runs over
    # contiguous memory (a row-major (T, f) matrix is reduced f elements at a time).
    r = np.asfortranarray(inp.returns)
    if inp.method in ("parametric", "ewma"):
        return _parametric(inp, r, w)
    scenarios = _scenarios(r, w, inp.factor_of, inp.exposures)
    if inp.method == "historical":
        return _historical(inp, r, scenarios)
    return _cornish_fisher(inp, r, scenarios)


def _scenarios(r: F64, w: F64, factor_of: NDArray[np.intp], exposures: F64) -> F64:
    """(T, 1 + 2P), column-major: the book's P&L, each position by itself, the book without each
    position. One estimator call on it values the book, standalone and incremental VaR at once."""
    p = exposures.size
    # Built as its transpose, (1 + 2P, T) row-major: every row written below is contiguous.
    out = np.empty((1 + 2 * p, r.shape[0]))
    pnl = np.matmul(w, r.T, out=out[0])
    alone = out[1:p + 1]
    np.multiply(r.T[factor_of], exposures[:, None], out=alone)
    np.subtract(pnl, alone, out=out[p + 1:])
    return out.T


def _historical(inp: VarInput, r: F64, scenarios: F64) -> VarResult:
    root_t = math.sqrt(inp.horizon)
    p = inp.exposures.size
    var, es = est.historical(scenarios, inp.confidences, inp.quantile, inp.es_method)
    var0 = float(var[0, 0])
    if root_t != 1.0:
        var, es = var * root_t, es * root_t
    var_first = var[0]
    standalone, rest = var_first[1:p + 1], var_first[p + 1:]
    # Euler contributions of a quantile: the positions' P&L in the scenario(s) that set the VaR.
    tw = est.var_weights(scenarios.shape[0], 1.0 - inp.confidences[0], inp.quantile)
    rows = _scenario_rows(scenarios[:, 0], tw, var0)
    if rows.size == 1 and tw.weights[0] == 1.0:  # one scenario: minus its returns (the same product)
        marginal_f = r[int(rows[0])] * -root_t
    else:
        marginal_f = -(tw.weights @ r[rows]) * root_t
    return _result(inp, var[:, 0], es[:, 0], marginal_f, standalone, rest,
                   {"varScenarioIndices": rows.tolist()})


def _scenario_rows(pnl: F64, tw: est.TailWeights, var0: float) -> NDArray[np.intp]:
    """np.argsort(pnl, kind="stable")[tw.positions]: the observations whose P&L sets the VaR (var0,
    before the horizon scaling). A VaR on one order statistic is minus that observation's P&L, so no
    sort is needed: among the observations equal to it, in series order, the one at its rank."""
    if tw.positions.size == 1:
        ties = np.flatnonzero(pnl == -var0)
        if ties.size == 1:  # the value occurs once (the usual case): that observation
            return ties
        rank = int(tw.positions[0]) - int(np.count_nonzero(pnl < -var0))
        if 0 <= rank < ties.size:
            return ties[rank:rank + 1]
    return np.argsort(pnl, kind="stable")[tw.positions]


def _cornish_fisher(inp: VarInput, r: F64, scenarios: F64) -> VarResult:
    p = inp.exposures.size
    mo = est.moments(scenarios)  # the book, each position alone, the book without each position
    var, es, zcf = est.cornish_fisher(mo, inp.confidences, inp.horizon)
    pnl = scenarios[:, 0]
    # Maillard's domain and the sign rule, per column: outside it (or a negative VaR for a column that
    # has lost money) a column's figure is the larger of its Gaussian and historical VaR.
    in_domain_cols = est.cf_in_domain(mo.skewness, mo.excess_kurtosis)
    bad = ~in_domain_cols
    col_min: F64 | None = None  # each column's worst P&L, computed once when a rule needs it
    if any(v < 0 for v in var[0].tolist()):  # the sign rule needs the columns' losses only then
        col_min = scenarios.T.min(axis=1)  # (T, k) column-major: its transpose's rows are contiguous
        bad |= (var[0] < 0) & (col_min < 0)
    # The Gaussian figures: Cornish-Fisher with S = K = 0 (population moments, mean included).
    gaussian, gaussian_es = est.normal_var_es(np.sqrt(mo.m2), mo.mean, inp.confidences, inp.horizon)
    root_t = math.sqrt(inp.horizon)
    chosen = var[0].copy()  # per column, at the first confidence: the expansion or the safe value
    bad_cols = np.flatnonzero(bad)
    if bad_cols.size:
        # One partition of every column that needs its historical figures (the book's at every
        # confidence, the others' at the first).
        h_var, h_es = est.historical(scenarios if bad_cols.size == bad.size else scenarios[:, bad_cols],
                                     inp.confidences)
        h_var0 = float(h_var[0, 0])  # before the horizon scaling (the book's, if it is bad)
        if root_t != 1.0:
            h_var, h_es = h_var * root_t, h_es * root_t
        safe_cols = np.maximum(gaussian[0, bad_cols], h_var[0])
        # Never a VaR below zero for a column that has lost money (the book's rule below, per column).
        if col_min is None:
            col_min = scenarios.T.min(axis=1)
        lost = col_min[bad_cols] < 0
        chosen[bad_cols] = np.where(lost, np.maximum(safe_cols, 0.0), safe_cols)
    standalone, rest = chosen[1:p + 1], chosen[p + 1:]
    extra: dict[str, Any] = {"zCornishFisher": zcf[:, 0], "gaussianVarPopulation": gaussian[:, 0],
                             "cornishFisherVar": var[:, 0], "cornishFisherEs": es[:, 0]}
    extra["inDomain"] = bool(in_domain_cols[0])
    if not bad[0]:
        marginal_f = _cf_gradient(r, pnl, inp.confidences[0], inp.horizon)
        return _result(inp, var[:, 0], np.maximum(es[:, 0], var[:, 0]), marginal_f, standalone, rest, extra)
    # Out of the domain (or a negative VaR for a book that has lost money): the safe value is the larger
    # of the Gaussian (population moments, mean included) and the historical (discrete, R-U) figures;
    # ES is at least the VaR. Components: the historical scenario allocation scaled to that VaR.
    safe = np.maximum(gaussian[:, 0], h_var[:, 0])
    # Never a VaR below zero for a book that has lost money (a positive historical VaR is a loss).
    if h_var0 > 0 or pnl.min() < 0:
        safe = np.maximum(safe, 0.0)
    safe_es = np.maximum(np.maximum(gaussian_es[:, 0], h_es[:, 0]), safe)
    tw = est.var_weights(pnl.size, 1.0 - inp.confidences[0], "discrete")
    marginal_h = r[int(_scenario_rows(pnl, tw, h_var0)[0])] * -root_t  # the scenario of the discrete VaR
    h0 = float(h_var[0, 0])
    marginal_f = marginal_h * (float(safe[0]) / h0) if h0 != 0 else np.zeros_like(marginal_h)
    extra["outOfDomain"] = True
    extra["safeRule"] = "max(gaussian, historical)"
    return _result(inp, safe, safe_es, marginal_f, standalone, rest, extra)


def _cf_gradient(r: F64, pnl: F64, confidence: float, horizon: float) -> F64:
    """dVaR_CF/dw: through the mean and the central moments m2, m3, m4 of the P&L (co-moments with
    each pair), the chain rule over S = m3 m2^-1.5 and K = m4 m2^-2 - 3.

    Every partial derivative below is a plain float; only dm_j/dw = j E[d c^(j-1)] (d: the pairs'
    centred returns, c: the centred P&L) is a vector, so the whole gradient is one product d' v."""
    n = pnl.size
    c = pnl - pnl.sum() / n
    c2 = c * c
    m2, m3, m4 = float(c2.sum()) / n, float(c2 @ c) / n, float(c2 @ c2) / n
    if m2 <= est.DEGENERATE_VARIANCE:
        return np.zeros(r.shape[1])
    s, k = m3 / m2**1.5, m4 / m2**2 - 3.0
    z = ndtri(1.0 - confidence)
    zcf = float(est.cf_z(z, s, k))
    sd = math.sqrt(m2)
    dz_ds = (z * z - 1) / 6 - 2 * (2 * z**3 - 5 * z) * s / 36
    dz_dk = (z**3 - 3 * z) / 24
    ds_dm2, ds_dm3 = -1.5 * m3 / m2**2.5, 1 / m2**1.5
    dk_dm2, dk_dm4 = -2 * m4 / m2**3, 1 / m2**2
    # d(z_cf sd)/dm_j: the quantile's sensitivity to each central moment of the P&L.
    g2 = sd * (dz_ds * ds_dm2 + dz_dk * dk_dm2) + zcf / (2 * sd)
    g3 = sd * dz_ds * ds_dm3
    g4 = sd * dz_dk * dk_dm4
    mean_r = r.sum(axis=0) / n
    v = (2 * g2 + (3 * g3 + 4 * g4 * c) * c) * c / n  # sum_j g_j dm_j/dw = d' v
    return np.asarray(-(horizon * mean_r + math.sqrt(horizon) * ((r - mean_r).T @ v)), dtype=np.float64)


def covariance(inp: VarInput, r: F64) -> F64:
    return est.ewma_covariance(r, inp.ewma_lambda) if inp.method == "ewma" else est.sample_covariance(r, inp.ddof)


def _parametric(inp: VarInput, r: F64, w: F64) -> VarResult:
    cov = covariance(inp, r)
    singular = est.singular_covariance(cov, np.linalg.eigvalsh(cov), inp.factor_names, inp.covariance_fallback)
    f, e = inp.factor_of, inp.exposures
    p = e.size
    # The weights of the book, each position alone and the book without each position, one row each:
    # one product and one row-wise dot give every sigma. The book without a position is its own
    # quadratic form: sigma^2 - 2 e (Sw)_f + e^2 S_ff cancels catastrophically when the position is
    # most of the book.
    alone_w = np.zeros((p, w.size))
    alone_w[np.arange(p), f] = e
    weights = np.concatenate((w[None, :], alone_w, w - alone_w))
    cov_w = weights @ cov  # row 0: (S w)'
    sigmas = np.sqrt(np.maximum(np.vecdot(cov_w, weights), 0.0))
    sigma = float(sigmas[0])
    z0 = ndtri(inp.confidences[0])
    root_t = math.sqrt(inp.horizon)
    sw = cov_w[0]
    marginal_f = sw * (z0 * root_t / sigma) if sigma > 0 else np.zeros_like(sw)
    means: F64 | float = 0.0
    if inp.mean_adjusted:
        mu = r.mean(axis=0)
        marginal_f = marginal_f - mu * inp.horizon
        means = weights @ mu
    # One call for the book, each position alone and the book without each position.
    var, es = est.normal_var_es(sigmas, means, inp.confidences, inp.horizon)
    standalone, rest = var[0, 1:p + 1], var[0, p + 1:]
    extra: dict[str, Any] = {"sigma": sigma, "sigmaHorizon": sigma * root_t, "singularCovariance": singular,
                             "covariance": cov}  # for horizon.revalued_var, which would otherwise rebuild it
    return _result(inp, var[:, 0], es[:, 0], marginal_f, standalone, rest, extra)


@dataclass(slots=True)
class MonteCarlo:
    var: F64
    es: F64
    var_se: F64
    es_se: F64
    simulated: F64  # (paths, f) simulated factor returns


def monte_carlo(cov_factor: F64, w: F64, confidences: Sequence[float], paths: int, seed: int,
                horizon: float = 1.0, mean: F64 | None = None, keep_factors: bool = True) -> MonteCarlo:
    """Multivariate normal 1-day factor returns Z A' (A A' = covariance, Cholesky), P&L = sim w;
    discrete VaR and Rockafellar-Uryasev ES of the simulated P&L, scaled by sqrt(horizon).

    Standard errors: VaR from the asymptotic quantile variance a(1-a)/(N f(q)^2) with the normal
    density at the simulated sigma (the simulated model is normal); ES from the tail sample,
    (Var(L | tail) + (1-a)(ES - VaR)^2) / (N a)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((paths, cov_factor.shape[0]))
    if keep_factors:
        sim = z @ cov_factor.T
        if mean is not None:
            sim += mean
        pnl = sim @ w
    else:
        sim = np.empty((0, 0))
        pnl = z @ (cov_factor.T @ w) + (float(mean @ w) if mean is not None else 0.0)
    var, es = est.historical(pnl[:, None], confidences)
    sd = float(pnl.std(ddof=1))
    var_se = np.empty(len(confidences))
    es_se = np.empty(len(confidences))
    losses = -pnl
    for i, c in enumerate(confidences):
        a = 1.0 - c
        dens = pdf(ndtri(c)) / sd if sd > 0 else math.inf
        var_se[i] = math.sqrt(a * c / paths) / dens
        tail = losses[losses >= var[i, 0]]
        tail_var = float(tail.var()) if tail.size > 1 else 0.0
        es_se[i] = math.sqrt((tail_var + c * (es[i, 0] - var[i, 0]) ** 2) / (paths * a))
    root_t = math.sqrt(horizon)
    return MonteCarlo(var[:, 0] * root_t, es[:, 0] * root_t, var_se * root_t, es_se * root_t, sim)


def _monte_carlo(inp: VarInput, r: F64, w: F64) -> VarResult:
    cov = est.sample_covariance(r, inp.ddof)
    factor, singular = est.check_covariance(cov, inp.factor_names, inp.covariance_fallback)
    mu = r.mean(axis=0) if inp.mean_adjusted else None
    mc = monte_carlo(factor, w, inp.confidences, inp.paths, inp.seed, inp.horizon, mu)
    root_t = math.sqrt(inp.horizon)
    # Components: the Euler allocation of the simulated (normal) model, scaled to the simulated VaR so
    # they sum to it exactly; a scenario allocation at one simulated quantile would be mostly noise.
    sw = cov @ w
    wsw = float(w @ sw)
    marginal_f = mc.var[0] * sw / wsw if wsw > 0 else np.zeros_like(sw)
    sim = mc.simulated
    alone = sim[:, inp.factor_of] * inp.exposures
    c0 = inp.confidences[:1]
    standalone = est.historical(alone, c0)[0][0] * root_t
    rest = est.historical((sim @ w)[:, None] - alone, c0)[0][0] * root_t
    extra: dict[str, Any] = {"paths": inp.paths, "seed": inp.seed, "varStandardError": mc.var_se,
                             "esStandardError": mc.es_se, "singularCovariance": singular,
                             "simulatedReturns": sim}  # 1-day factor moves, for horizon.revalued_var
    return _result(inp, mc.var, mc.es, marginal_f, standalone, rest, extra)


def _result(inp: VarInput, var: F64, es: F64, marginal_f: F64, standalone: F64, rest: F64,
            extra: dict[str, Any]) -> VarResult:
    marginal = marginal_f[inp.factor_of]
    component = inp.exposures * marginal
    return VarResult(np.asarray(var, dtype=np.float64), np.asarray(es, dtype=np.float64), marginal, component,
                     var[0] - rest, standalone, extra)
