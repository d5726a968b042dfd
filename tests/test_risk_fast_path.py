"""The vectorised risk engine equals a straightforward implementation of the same conventions.

app.calc.risk values the book, every position alone and the book without every position in one
column-major matrix, batches the confidences, and writes the Cornish-Fisher gradient as scalar
partials; the reference below does each number on its own, one column at a time, with a full sort,
plain loops and the textbook formulas (calc-conventions.md), so a restructuring for speed that
changes a result shows up here. Random books: several pairs per position, shared pairs, long and
short, ties, every quantile and ES convention, horizons, mean adjustment and ddof.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np
import pytest

from app.calc.risk.drawdown import drawdown
from app.calc.risk.var import VarInput, portfolio_var

EPS = 1e-9  # products this close to an integer are that integer (estimators.TAIL_EPS)
N = NormalDist()


def ceil_(x: float) -> int:
    return math.ceil(x - EPS)


def floor_(x: float) -> int:
    return math.floor(x + EPS)


def var_terms(n: int, conf: float, quantile: str) -> list[tuple[int, float]]:
    """(sorted position, weight) pairs whose weighted P&L is minus the VaR."""
    a = 1.0 - conf
    if quantile == "discrete":
        return [(ceil_(a * n) - 1, 1.0)]
    if quantile == "discrete-loss":
        return [(n - ceil_(conf * n), 1.0)]
    h = (n - 1) * a
    lo = min(floor_(h), n - 2) if n > 1 else 0
    frac = max(h - lo, 0.0)
    return [(lo, 1.0)] if frac <= EPS or n == 1 else [(lo, 1.0 - frac), (lo + 1, frac)]


def ref_var(x: np.ndarray, conf: float, quantile: str) -> float:
    xs = np.sort(x)
    return -sum(wt * float(xs[p]) for p, wt in var_terms(x.size, conf, quantile))


def ref_es(x: np.ndarray, conf: float, es_method: str) -> float:
    xs = np.sort(x)
    n, a = x.size, 1.0 - conf
    if es_method == "tail-mean":
        m = floor_((n - 1) * a) + 1
        return -float(np.mean(xs[:m]))
    k = a * n
    if abs(k - round(k)) <= EPS:
        k = float(round(k))
    whole = math.floor(k)
    tail = float(np.sum(xs[:whole])) + ((k - whole) * float(xs[whole]) if k > whole else 0.0)
    return -tail / k


def book_weights(inp: VarInput) -> np.ndarray:
    w = np.zeros(inp.returns.shape[1])
    for f, e in zip(inp.factor_of, inp.exposures, strict=True):
        w[f] += e
    return w


def reference_historical(inp: VarInput) -> dict[str, Any]:
    r, root_t, c0 = inp.returns, math.sqrt(inp.horizon), inp.confidences[0]
    w = book_weights(inp)
    pnl = r @ w
    order = np.argsort(pnl, kind="stable")
    terms = var_terms(pnl.size, c0, inp.quantile)
    marginal_f = -sum(wt * r[order[p]] for p, wt in terms) * root_t
    alone = [r[:, f] * e for f, e in zip(inp.factor_of, inp.exposures, strict=True)]
    return {"var": [ref_var(pnl, c, inp.quantile) * root_t for c in inp.confidences],
            "es": [ref_es(pnl, c, inp.es_method) * root_t for c in inp.confidences],
            "marginal": marginal_f[inp.factor_of],
            "standalone": [ref_var(x, c0, inp.quantile) * root_t for x in alone],
            "rest": [ref_var(pnl - x, c0, inp.quantile) * root_t for x in alone],
            "rows": [int(order[p]) for p, _ in terms]}


def reference_parametric(inp: VarInput) -> dict[str, Any]:
    r, h = inp.returns, inp.horizon
    t, k = r.shape
    if inp.method == "ewma":
        lam = inp.ewma_lambda
        weights = np.array([lam ** (t - 1 - i) for i in range(t)])
        weights /= weights.sum()
        cov = sum(weights[i] * np.outer(r[i], r[i]) for i in range(t))
    else:
        cov = np.cov(r, rowvar=False, ddof=inp.ddof).reshape(k, k)
    mu = r.mean(axis=0) if inp.mean_adjusted else np.zeros(k)
    w = book_weights(inp)

    def var_es(wv: np.ndarray, c: float) -> tuple[float, float]:
        sigma = math.sqrt(max(float(wv @ cov @ wv), 0.0)) * math.sqrt(h)
        z = N.inv_cdf(c)
        return z * sigma - float(mu @ wv) * h, sigma * N.pdf(z) / (1.0 - c) - float(mu @ wv) * h

    sigma = math.sqrt(float(w @ cov @ w))
    c0 = inp.confidences[0]
    alone, rest = [], []
    for f, e in zip(inp.factor_of, inp.exposures, strict=True):
        own = np.zeros(k)
        own[f] = e
        alone.append(var_es(own, c0)[0])
        rest.append(var_es(w - own, c0)[0])
    marginal_f = N.inv_cdf(c0) * math.sqrt(h) * (cov @ w) / sigma - mu * h
    return {"var": [var_es(w, c)[0] for c in inp.confidences], "es": [var_es(w, c)[1] for c in inp.confidences],
            "marginal": marginal_f[inp.factor_of], "standalone": alone, "rest": rest, "sigma": sigma}


def cf_moments(x: np.ndarray) -> tuple[float, float, float, float]:
    mean = float(np.mean(x))
    m2, m3, m4 = (float(np.mean((x - mean) ** j)) for j in (2, 3, 4))
    if m2 <= 1e-100:
        return mean, m2, 0.0, 0.0
    return mean, m2, m3 / m2**1.5, m4 / m2**2 - 3.0


def cf_quantile(z: float, s: float, k: float) -> float:
    return z + (z * z - 1) * s / 6 + (z**3 - 3 * z) * k / 24 - (2 * z**3 - 5 * z) * s * s / 36


def cf_var_es(x: np.ndarray, c: float, h: float) -> tuple[float, float, float]:
    mean, m2, s, k = cf_moments(x)
    a = 1.0 - c
    z = N.inv_cdf(a)
    phi = N.pdf(z)
    i0, i1, i2, i3 = a, -phi, a - z * phi, -(z * z + 2) * phi
    tail = (i1 + s / 6 * (i2 - i0) + k / 24 * (i3 - 3 * i1) - s * s / 36 * (2 * i3 - 5 * i1)) / a
    zcf = cf_quantile(z, s, k)
    sd = math.sqrt(m2 * h)
    return -(mean * h + zcf * sd), -(mean * h + tail * sd), zcf


def cf_monotone(x: np.ndarray) -> bool:
    """Maillard (2012): the expansion is a quantile function where dz_cf/dz >= 0 for every z. Differentiating
    cf_quantile gives the quadratic A z^2 + B z + C with A = K/8 - S^2/6, B = S/3, C = 1 - K/8 + 5 S^2/36,
    non-negative on the whole line iff A >= 0, C > 0 and its discriminant B^2 - 4 A C <= 0 (1e-12 slack
    on the boundary, as calc-conventions states it)."""
    _, _, s, k = cf_moments(x)
    a, b, c = k / 8 - s * s / 6, s / 3, 1 - k / 8 + 5 * s * s / 36
    return a >= -1e-12 and c > 0 and b * b - 4 * a * c <= 1e-12


def cf_needs_fallback(x: np.ndarray, c0: float, h: float) -> bool:
    """Out of the domain, or a negative VaR (at the first confidence) for a column that has lost money."""
    return not cf_monotone(x) or (cf_var_es(x, c0, h)[0] < 0 and bool(np.any(x < 0)))


def gaussian_var_es(x: np.ndarray, c: float, h: float) -> tuple[float, float]:
    """Normal VaR and ES with the column's mean and population variance (Cornish-Fisher with S = K = 0)."""
    mean, m2 = float(np.mean(x)), float(np.mean((x - np.mean(x)) ** 2))
    z, sd = N.inv_cdf(1.0 - c), math.sqrt(m2 * h)
    return -(mean * h + z * sd), -mean * h + sd * N.pdf(z) / (1.0 - c)


def cf_column_var(x: np.ndarray, c0: float, h: float) -> float:
    """A position alone or the book without one: the expansion, or max(Gaussian, historical) outside."""
    if not cf_needs_fallback(x, c0, h):
        return cf_var_es(x, c0, h)[0]
    return max(gaussian_var_es(x, c0, h)[0], ref_var(x, c0, "discrete") * math.sqrt(h))


def reference_cornish_fisher(inp: VarInput) -> dict[str, Any]:
    r, h, c0 = inp.returns, inp.horizon, inp.confidences[0]
    w = book_weights(inp)
    pnl = r @ w
    alone = [r[:, f] * e for f, e in zip(inp.factor_of, inp.exposures, strict=True)]
    book = [cf_var_es(pnl, cf, h) for cf in inp.confidences]
    gaussian = [gaussian_var_es(pnl, cf, h)[0] for cf in inp.confidences]
    common = {"standalone": [cf_column_var(x, c0, h) for x in alone],
              "rest": [cf_column_var(pnl - x, c0, h) for x in alone],
              "zcf": [b[2] for b in book], "gaussian": gaussian,
              "cfVar": [b[0] for b in book], "cfEs": [b[1] for b in book], "inDomain": cf_monotone(pnl)}
    if cf_needs_fallback(pnl, c0, h):
        # The safe figure: max(Gaussian, historical (discrete VaR, Rockafellar-Uryasev ES)), never below zero
        # for a book that has lost money; ES at least the VaR; the historical scenario allocation (the
        # discrete VaR's scenario row) scaled to that VaR.
        root_t = math.sqrt(h)
        var = [max(gaussian_var_es(pnl, cf, h)[0], ref_var(pnl, cf, "discrete") * root_t) for cf in inp.confidences]
        if np.any(pnl < 0):
            var = [max(v, 0.0) for v in var]
        es = [max(gaussian_var_es(pnl, cf, h)[1], ref_es(pnl, cf, "rockafellar-uryasev") * root_t, v)
              for cf, v in zip(inp.confidences, var, strict=True)]
        order = np.argsort(pnl, kind="stable")
        marginal_h = -sum(wt * r[order[p]] for p, wt in var_terms(pnl.size, c0, "discrete")) * root_t
        h0 = ref_var(pnl, c0, "discrete") * root_t
        marginal_f = marginal_h * (var[0] / h0) if h0 != 0 else np.zeros(r.shape[1])
        return {"var": var, "es": es, "marginal": marginal_f[inp.factor_of], "outOfDomain": True, **common}
    # The gradient as first written (before it was folded into scalar partials): vectors of
    # dm2/dw, dm3/dw, dm4/dw through the chain rule over S and K.
    n = pnl.size
    c = pnl - pnl.mean()
    d = r - r.mean(axis=0)
    m2, m3, m4 = float(np.mean(c**2)), float(np.mean(c**3)), float(np.mean(c**4))
    dm2, dm3, dm4 = (j * (d.T @ c ** (j - 1)) / n for j in (2, 3, 4))
    s, k = m3 / m2**1.5, m4 / m2**2 - 3.0
    ds = dm3 / m2**1.5 - 1.5 * m3 / m2**2.5 * dm2
    dk = dm4 / m2**2 - 2 * m4 / m2**3 * dm2
    z = N.inv_cdf(1.0 - c0)
    dz = ((z * z - 1) / 6 - 2 * (2 * z**3 - 5 * z) * s / 36) * ds + (z**3 - 3 * z) / 24 * dk
    sd = math.sqrt(m2)
    marginal_f = -(h * r.mean(axis=0) + math.sqrt(h) * (dz * sd + cf_quantile(z, s, k) * dm2 / (2 * sd)))
    return {"var": [b[0] for b in book], "es": [max(b[1], b[0]) for b in book],
            "marginal": marginal_f[inp.factor_of], "outOfDomain": False, **common}


def random_input(seed: int, method: str) -> VarInput:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 7))
    t = int(rng.choice([60, 101, 250, 750]))
    mix = rng.normal(size=(k, k)) * 0.004
    r = (rng.standard_t(5, size=(t, k)) if seed % 2 else rng.standard_normal((t, k))) @ mix
    if seed % 3 == 0:
        r = np.round(r, 4)  # ties in the P&L
    p = int(rng.integers(1, 8))
    factor_of = np.concatenate((np.arange(min(k, p)), rng.integers(0, k, max(p - k, 0)))).astype(np.intp)
    exposures = rng.uniform(-1e6, 1e6, p)
    confs = [[0.95, 0.99], [0.99], [0.9, 0.95, 0.975, 0.99], [0.95]][seed % 4]
    return VarInput(r, [f"F{i}" for i in range(k)], factor_of, exposures, method, confs,  # type: ignore[arg-type]
                    horizon=[1.0, 10.0][seed % 2], quantile=["discrete", "discrete-loss", "linear"][seed % 3],  # type: ignore[arg-type]
                    es_method=["rockafellar-uryasev", "tail-mean"][(seed // 3) % 2],  # type: ignore[arg-type]
                    mean_adjusted=bool(seed % 5 % 2), ddof=seed % 2, covariance_fallback=True)


def close(got: Any, want: Any, scale: float, what: str) -> None:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, what
    # 1e-12 relative to the size of the numbers involved (incremental VaR and small marginals are
    # differences of much larger ones).
    assert np.allclose(got, want, rtol=1e-12, atol=1e-12 * scale), (what, got, want)


SEEDS = range(24)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("method", ["historical", "parametric", "ewma", "cornish-fisher"])
def test_engine_equals_reference(seed: int, method: str) -> None:
    inp = random_input(seed, method)
    got = portfolio_var(inp)
    want = {"historical": reference_historical, "cornish-fisher": reference_cornish_fisher}.get(
        method, reference_parametric)(inp)
    scale = max(float(np.max(np.abs(want["var"]))), 1e-300)
    close(got.var, want["var"], scale, "var")
    close(got.es, want["es"], scale, "es")
    close(got.standalone, want["standalone"], scale, "standalone")
    close(got.incremental, want["var"][0] - np.asarray(want["rest"]), scale, "incremental")
    marginal_scale = max(float(np.max(np.abs(want["marginal"]))), 1e-300)
    close(got.marginal, want["marginal"], marginal_scale, "marginal")
    close(got.component, inp.exposures * np.asarray(want["marginal"]), scale, "component")
    if method == "historical":
        assert got.extra["varScenarioIndices"] == want["rows"]
    if method == "cornish-fisher":
        close(got.extra["zCornishFisher"], want["zcf"], 1.0, "zCornishFisher")
        close(got.extra["gaussianVarPopulation"], want["gaussian"], scale, "gaussianVarPopulation")
        close(got.extra["cornishFisherVar"], want["cfVar"], scale, "cornishFisherVar")
        close(got.extra["cornishFisherEs"], want["cfEs"], scale, "cornishFisherEs")
        assert got.extra["inDomain"] is want["inDomain"]
        assert bool(got.extra.get("outOfDomain")) is want["outOfDomain"]
        assert np.all(np.asarray(got.es) >= np.asarray(got.var))
    if method in ("parametric", "ewma"):
        close(got.extra["sigma"], want["sigma"], want["sigma"], "sigma")


def reference_drawdown(equity: list[float], initial: float | None) -> dict[str, Any]:
    eq = ([initial] if initial is not None else []) + equity
    offset = 1 if initial is not None else 0
    peak: list[float] = []
    dd: list[float] = []
    for x in eq:
        peak.append(max(x, peak[-1]) if peak else x)
        dd.append(x / peak[-1] - 1.0)
    trough = min(range(len(dd)), key=lambda i: (dd[i], i))
    runs: list[tuple[int, int]] = []
    start: int | None = None
    for i, below in enumerate([x < 0 for x in dd] + [False]):
        if below and start is None:
            start = i
        elif not below and start is not None:
            runs.append((start, i - 1))
            start = None
    out: dict[str, Any] = {"max_drawdown": min(0.0, dd[trough]), "current_drawdown": dd[-1],
                           "underwater_bars": sum(x < 0 for x in dd[offset:])}
    if dd[trough] >= 0:
        out.update(peak_index=None, trough_index=None, recovery_index=None, longest=None)
        return out
    top = peak[trough]
    peak_at = max(i for i in range(trough + 1) if eq[i] == top)
    recovery = next((i for i in range(trough + 1, len(eq)) if eq[i] >= top), None)
    first, last = max(runs, key=lambda sl: (sl[1] - sl[0], -sl[0]))
    out.update(peak_index=peak_at - offset, trough_index=trough - offset,
               recovery_index=None if recovery is None else recovery - offset,
               longest=(first - offset, last - offset, last - first + 1, last + 1 < len(eq)))
    return out


@pytest.mark.parametrize("seed", range(40))
def test_drawdown_equals_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    equity = (1e5 * np.cumprod(1 + rng.normal(0.0, 0.02, int(rng.integers(1, 400))))).tolist()
    if seed % 4 == 0:
        equity = [round(x, -3) for x in equity]  # equal peaks and flat stretches
    initial = [None, 1e5, 2e5][seed % 3]
    got = drawdown(np.array(equity), initial)
    want = reference_drawdown(equity, initial)
    assert got.max_drawdown == pytest.approx(want["max_drawdown"], rel=1e-12, abs=1e-15)
    assert got.current_drawdown == pytest.approx(want["current_drawdown"], rel=1e-12, abs=1e-15)
    assert (got.peak_index, got.trough_index, got.recovery_index, got.underwater_bars) == (
        want["peak_index"], want["trough_index"], want["recovery_index"], want["underwater_bars"])
    spell = got.longest_underwater
    assert (None if spell is None else (spell.start, spell.end, spell.length, spell.recovered)) == want["longest"]
