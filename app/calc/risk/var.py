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
    r = inp.returns
    w = factor_exposures(inp)
    if inp.method == "monte-carlo":
        return _monte_carlo(inp, r, w)
    if inp.method in ("parametric", "ewma"):
        return _parametric(inp, r, w)
    pnl = r @ w
    alone = r[:, inp.factor_of] * inp.exposures  # (T, P) each position by itself
    without = pnl[:, None] - alone  # (T, P) the book without each position
    if inp.method == "historical":
        return _historical(inp, r, pnl, alone, without)
    return _cornish_fisher(inp, r, pnl, alone, without)


def _historical(inp: VarInput, r: F64, pnl: F64, alone: F64, without: F64) -> VarResult:
    root_t = math.sqrt(inp.horizon)
    var, es = est.historical(pnl[:, None], inp.confidences, inp.quantile, inp.es_method)
    # Euler contributions of a quantile: the positions' P&L in the scenario(s) that set the VaR.
    order = np.argsort(pnl, kind="stable")
    tw = est.var_weights(pnl.size, 1.0 - inp.confidences[0], inp.quantile)
    marginal_f = -(tw.weights @ r[order[tw.positions]]) * root_t
    c0 = inp.confidences[:1]
    standalone = est.historical(alone, c0, inp.quantile, inp.es_method)[0][0] * root_t
    rest = est.historical(without, c0, inp.quantile, inp.es_method)[0][0] * root_t
    total = var[:, 0] * root_t
    scenario_rows = [int(i) for i in order[tw.positions]]
    return _result(inp, total, es[:, 0] * root_t, marginal_f, standalone, rest,
                   {"varScenarioIndices": scenario_rows})


def _cornish_fisher(inp: VarInput, r: F64, pnl: F64, alone: F64, without: F64) -> VarResult:
    mo = est.moments(pnl[:, None])
    var, es, zcf = est.cornish_fisher(mo, inp.confidences, inp.horizon)
    c0 = inp.confidences[:1]
    gauss_mo = est.Moments(mo.mean, mo.m2, np.zeros(1), np.zeros(1))
    gaussian, gaussian_es, _ = est.cornish_fisher(gauss_mo, inp.confidences, inp.horizon)
    standalone = _cf_safe(alone, c0, inp.horizon)
    rest = _cf_safe(without, c0, inp.horizon)
    extra: dict[str, Any] = {"zCornishFisher": zcf[:, 0], "gaussianVarPopulation": gaussian[:, 0],
                             "cornishFisherVar": var[:, 0].copy(), "cornishFisherEs": es[:, 0].copy()}
    in_domain = bool(est.cf_in_domain(mo.skewness, mo.excess_kurtosis)[0])
    has_losses = bool((pnl < 0).any())
    extra["inDomain"] = in_domain
    if in_domain and not (has_losses and (var[:, 0] < 0).any()):
        marginal_f = _cf_gradient(r, pnl, inp.confidences[0], inp.horizon)
        return _result(inp, var[:, 0], np.maximum(es[:, 0], var[:, 0]), marginal_f, standalone, rest, extra)
    # Out of the domain (or a negative VaR for a book that has lost money): the safe value is the larger
    # of the Gaussian (population moments, mean included) and the historical (discrete, R-U) figures;
    # ES is at least the VaR. Components: the historical scenario allocation scaled to that VaR.
    root_t = math.sqrt(inp.horizon)
    h_var, h_es = est.historical(pnl[:, None], inp.confidences)
    safe = np.maximum(gaussian[:, 0], h_var[:, 0] * root_t)
    if has_losses:  # never a VaR below zero for a book that has lost money
        safe = np.maximum(safe, 0.0)
    safe_es = np.maximum(np.maximum(gaussian_es[:, 0], h_es[:, 0] * root_t), safe)
    order = np.argsort(pnl, kind="stable")
    tw = est.var_weights(pnl.size, 1.0 - inp.confidences[0], "discrete")
    marginal_h = -(tw.weights @ r[order[tw.positions]]) * root_t
    h0 = float(h_var[0, 0]) * root_t
    marginal_f = marginal_h * (float(safe[0]) / h0) if h0 != 0 else np.zeros_like(marginal_h)
    extra["outOfDomain"] = True
    extra["safeRule"] = "max(gaussian, historical)"
    return _result(inp, safe, safe_es, marginal_f, standalone, rest, extra)


def _cf_safe(cols: F64, confidences: Sequence[float], horizon: float) -> F64:
    """Cornish-Fisher VaR per column at one confidence, with the same safe rule where a column leaves the
    domain (or would report a negative VaR despite losses)."""
    mo = est.moments(cols)
    var = est.cornish_fisher(mo, confidences, horizon)[0][0]
    bad = ~est.cf_in_domain(mo.skewness, mo.excess_kurtosis) | ((var < 0) & (cols < 0).any(axis=0))
    if not bad.any():
        return np.asarray(var, dtype=np.float64)
    gauss = est.cornish_fisher(est.Moments(mo.mean, mo.m2, np.zeros_like(mo.m2), np.zeros_like(mo.m2)),
                               confidences, horizon)[0][0]
    hist = est.historical(cols, confidences)[0][0] * math.sqrt(horizon)
    return np.asarray(np.where(bad, np.maximum(gauss, hist), var), dtype=np.float64)


def _cf_gradient(r: F64, pnl: F64, confidence: float, horizon: float) -> F64:
    """dVaR_CF/dw: through the mean and the central moments m2, m3, m4 of the P&L (co-moments with
    each pair), the chain rule over S = m3 m2^-1.5 and K = m4 m2^-2 - 3."""
    n = pnl.size
    c = pnl - pnl.mean()
    d = r - r.mean(axis=0)
    c2 = c * c
    m2, m3, m4 = float(c2.mean()), float((c2 * c).mean()), float((c2 * c2).mean())
    if m2 <= est.DEGENERATE_VARIANCE:
        return np.zeros(r.shape[1])
    co = d.T @ np.column_stack((c, c2, c2 * c)) / n  # (f, 3): E[d c], E[d c^2], E[d c^3]
    dm2, dm3, dm4 = 2 * co[:, 0], 3 * co[:, 1], 4 * co[:, 2]
    s, k = m3 / m2**1.5, m4 / m2**2 - 3.0
    ds = dm3 / m2**1.5 - 1.5 * m3 / m2**2.5 * dm2
    dk = dm4 / m2**2 - 2 * m4 / m2**3 * dm2
    z = ndtri(1.0 - confidence)
    zcf = float(est.cf_z(z, np.array([s]), np.array([k]))[0])
    dz = ((z * z - 1) / 6 - 2 * (2 * z**3 - 5 * z) * s / 36) * ds + (z**3 - 3 * z) / 24 * dk
    sd = math.sqrt(m2)
    return np.asarray(-(horizon * r.mean(axis=0) + math.sqrt(horizon) * (dz * sd + zcf * dm2 / (2 * sd))),
                      dtype=np.float64)


def covariance(inp: VarInput, r: F64) -> F64:
    return est.ewma_covariance(r, inp.ewma_lambda) if inp.method == "ewma" else est.sample_covariance(r, inp.ddof)


def _parametric(inp: VarInput, r: F64, w: F64) -> VarResult:
    cov = covariance(inp, r)
    _, singular = est.check_covariance(cov, inp.factor_names, inp.covariance_fallback)
    mu = r.mean(axis=0) if inp.mean_adjusted else np.zeros(r.shape[1])
    sw = cov @ w
    sigma = math.sqrt(max(float(w @ sw), 0.0))
    var, es = est.normal_var_es(sigma, float(mu @ w), inp.confidences, inp.horizon)
    z0 = ndtri(inp.confidences[0])
    root_t = math.sqrt(inp.horizon)
    marginal_f = (z0 * root_t * sw / sigma if sigma > 0 else np.zeros_like(sw)) - mu * inp.horizon
    f, e = inp.factor_of, inp.exposures
    diag = np.diag(cov)[f]
    alone_sigma = np.abs(e) * np.sqrt(diag)
    # The book without each position, as its own quadratic form: sigma^2 - 2 e (Sw)_f + e^2 S_ff cancels
    # catastrophically when the position is most of the book.
    rest_w = np.repeat(w[None, :], e.size, axis=0)
    rest_w[np.arange(e.size), f] -= e
    rest_sigma = np.sqrt(np.clip(np.einsum("pf,fg,pg->p", rest_w, cov, rest_w), 0.0, None))
    c0 = inp.confidences[:1]
    standalone = est.normal_var_es(alone_sigma, e * mu[f], c0, inp.horizon)[0][0]
    rest = est.normal_var_es(rest_sigma, float(mu @ w) - e * mu[f], c0, inp.horizon)[0][0]
    extra: dict[str, Any] = {"sigma": sigma, "sigmaHorizon": sigma * root_t, "singularCovariance": singular}
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
                             "esStandardError": mc.es_se, "singularCovariance": singular}
    return _result(inp, mc.var, mc.es, marginal_f, standalone, rest, extra)


def _result(inp: VarInput, var: F64, es: F64, marginal_f: F64, standalone: F64, rest: F64,
            extra: dict[str, Any]) -> VarResult:
    marginal = marginal_f[inp.factor_of]
    component = inp.exposures * marginal
    return VarResult(np.asarray(var, dtype=np.float64), np.asarray(es, dtype=np.float64), marginal, component,
                     var[0] - rest, standalone, extra)
