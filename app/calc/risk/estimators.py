"""VaR/ES estimators on P&L scenarios and covariance estimates. Everything works column-wise on a
(T, k) matrix so one call values a portfolio, its positions alone and the portfolio without each
position (standalone and incremental VaR) at once.

Conventions (calc-conventions.md): alpha = 1 - confidence; VaR and ES are positive losses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from app.calc.errors import CalcError
from app.calc.risk.normal import ndtri, pdf

F64 = NDArray[np.float64]
QuantileMethod = Literal["discrete", "discrete-loss", "linear"]
EsMethod = Literal["rockafellar-uryasev", "tail-mean"]

# alpha = 1 - 0.95 is 0.050000000000000044, so alpha * 1000 = 50.00000000000004 and a bare ceil() moves
# to the 51st observation (the riskfolio trap in risk-vectors.json): products this close to an integer
# are that integer.
TAIL_EPS = 1e-9


def _ceil(x: float) -> int:
    return math.ceil(x - TAIL_EPS)


def _floor(x: float) -> int:
    return math.floor(x + TAIL_EPS)


def min_observations(confidence: float) -> int:
    """Observations needed for at least one scenario in the tail: alpha * n >= 1."""
    return _ceil(1.0 / (1.0 - confidence))


@dataclass(frozen=True, slots=True)
class TailWeights:
    """VaR (or ES) = -sum(weights * pnl[sorted positions]): which order statistics the estimate uses.
    The same weights applied to each position's P&L give its Euler (scenario) contribution."""

    positions: NDArray[np.intp]
    weights: F64


def var_weights(n: int, alpha: float, method: QuantileMethod) -> TailWeights:
    if method == "discrete":  # k = ceil(alpha n): the k-th worst P&L (riskfolio, numpy inverted_cdf)
        return TailWeights(np.array([_ceil(alpha * n) - 1]), np.array([1.0]))
    if method == "discrete-loss":  # lower quantile of the loss distribution at the confidence (skfolio)
        return TailWeights(np.array([n - _ceil((1.0 - alpha) * n)]), np.array([1.0]))
    h = (n - 1) * alpha  # linear interpolation, Hyndman-Fan type 7 (numpy default, empyrical)
    lo = min(_floor(h), n - 2) if n > 1 else 0
    frac = max(h - lo, 0.0)
    if frac <= TAIL_EPS or n == 1:
        return TailWeights(np.array([lo]), np.array([1.0]))
    return TailWeights(np.array([lo, lo + 1]), np.array([1.0 - frac, frac]))


def es_weights(n: int, alpha: float, method: EsMethod) -> TailWeights:
    if method == "tail-mean":  # empyrical: plain mean of the floor((n-1) alpha) + 1 worst
        m = _floor((n - 1) * alpha) + 1
        return TailWeights(np.arange(m), np.full(m, 1.0 / m))
    # Rockafellar-Uryasev: the floor(k) worst in full and the boundary observation by the remainder.
    k = alpha * n
    if abs(k - round(k)) <= TAIL_EPS:
        k = float(round(k))
    whole = math.floor(k)
    frac = k - whole
    size = whole + (1 if frac > 0 else 0)
    w = np.full(size, 1.0 / k)
    if frac > 0:
        w[-1] = frac / k
    return TailWeights(np.arange(size), w)


def apply_weights(sorted_pnl: F64, tw: TailWeights) -> F64:
    """-(weights . order statistics), per column of an ascending-sorted (T, k) matrix."""
    return np.asarray(-(tw.weights @ sorted_pnl[tw.positions]), dtype=np.float64)


def _tail_positions(n: int, confidences: Sequence[float], quantile: QuantileMethod,
                    es: EsMethod) -> tuple[list[tuple[TailWeights, TailWeights]], list[int]]:
    plans: list[tuple[TailWeights, TailWeights]] = []
    kth: set[int] = set()
    for c in confidences:
        vw, ew = var_weights(n, 1.0 - c, quantile), es_weights(n, 1.0 - c, es)
        plans.append((vw, ew))
        kth.update(int(p) for p in vw.positions)
        # The ES weights are equal up to the last position: the sum needs only the split before it.
        kth.update(int(p) for p in ew.positions[-2:])
    return plans, sorted(kth)


def historical(pnl: F64, confidences: Sequence[float], quantile: QuantileMethod = "discrete",
               es: EsMethod = "rockafellar-uryasev") -> tuple[F64, F64]:
    """(VaR, ES) of each column of pnl (T, k) at each confidence: arrays of shape (len(conf), k).

    A partition at the order statistics used (not a full sort): O(T) per column."""
    n = pnl.shape[0]
    plans, kth = _tail_positions(n, confidences, quantile, es)
    x = np.partition(pnl, kth, axis=0)
    var = np.empty((len(confidences), pnl.shape[1]))
    shortfall = np.empty_like(var)
    for i, (vw, ew) in enumerate(plans):
        var[i] = apply_weights(x, vw)
        shortfall[i] = apply_weights(x, ew)
    return var, shortfall


def sample_covariance(returns: F64, ddof: int = 1) -> F64:
    centred = returns - returns.mean(axis=0)
    return np.asarray(centred.T @ centred / (returns.shape[0] - ddof), dtype=np.float64)


def ewma_covariance(returns: F64, lam: float) -> F64:
    """RiskMetrics (1996) EWMA forecast for the next day: zero mean, weights (1 - lam) lam^k on the
    k-th most recent r r', normalised to sum 1 (the 'riskmetrics_zero_mean' convention of the vectors;
    with short windows this equals a zero seed with the 1/(1 - lam^n) correction, as skfolio does)."""
    n = returns.shape[0]
    w = lam ** np.arange(n - 1, -1, -1, dtype=np.float64)
    w /= w.sum()
    return np.asarray((returns * w[:, None]).T @ returns, dtype=np.float64)


def normal_var_es(sigma: F64 | float, mean: F64 | float, confidences: Sequence[float],
                  horizon: float) -> tuple[F64, F64]:
    """Delta-normal VaR = z sigma sqrt(T) - mean T; ES = sigma sqrt(T) pdf(z) / alpha - mean T."""
    s = np.atleast_1d(np.asarray(sigma, dtype=np.float64)) * math.sqrt(horizon)
    m = np.atleast_1d(np.asarray(mean, dtype=np.float64)) * horizon
    z = np.array([ndtri(c) for c in confidences])
    tail = np.array([pdf(zi) / (1.0 - c) for zi, c in zip(z, confidences, strict=True)])
    return z[:, None] * s[None, :] - m[None, :], tail[:, None] * s[None, :] - m[None, :]


@dataclass(frozen=True, slots=True)
class Moments:
    mean: F64
    m2: F64  # population (ddof 0) central moments
    skewness: F64
    excess_kurtosis: F64


# Below this variance m2**3 underflows to zero and the standardised moments are undefined: such a
# P&L is constant for every practical purpose, and it gets skew = kurtosis = 0.
DEGENERATE_VARIANCE = 1e-100


def moments(pnl: F64) -> Moments:
    mean = pnl.mean(axis=0)
    c = pnl - mean
    c2 = c * c
    m2 = c2.mean(axis=0)
    m3 = (c2 * c).mean(axis=0)
    m4 = (c2 * c2).mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = m2 > DEGENERATE_VARIANCE
        skew = np.where(ok, m3 / np.where(ok, m2, 1.0) ** 1.5, 0.0)
        kurt = np.where(ok, m4 / np.where(ok, m2, 1.0) ** 2 - 3.0, 0.0)
    return Moments(mean, m2, skew, kurt)


def cf_z(z: float, s: F64, k: F64) -> F64:
    """Cornish-Fisher quantile (PerformanceAnalytics VaR.CornishFisher), z = ndtri(alpha) < 0."""
    return np.asarray(z + (z * z - 1) * s / 6 + (z**3 - 3 * z) * k / 24 - (2 * z**3 - 5 * z) * s * s / 36,
                      dtype=np.float64)


def cf_in_domain(s: F64, k: F64) -> NDArray[np.bool_]:
    """Where the Cornish-Fisher expansion is a quantile function (Maillard 2012, "A user's guide to the
    Cornish Fisher expansion"): z_cf(z) is increasing in z for every z. Its derivative is the quadratic
    a z^2 + b z + c with a = K/8 - S^2/6, b = S/3, c = 1 - K/8 + 5 S^2/36 (S skewness, K excess
    kurtosis); it stays non-negative iff a >= 0, c > 0 and b^2 - 4 a c <= 0, i.e.
    S^2/9 - 4 (K/8 - S^2/6)(1 - K/8 + 5 S^2/36) <= 0 with K/8 >= S^2/6."""
    a = k / 8 - s * s / 6
    c = 1 - k / 8 + 5 * s * s / 36
    ok = (a >= -1e-12) & (c > 0) & (s * s / 9 - 4 * a * c <= 1e-12)
    return np.asarray(ok, dtype=np.bool_)


def cornish_fisher(mo: Moments, confidences: Sequence[float], horizon: float) -> tuple[F64, F64, F64]:
    """(VaR, ES, z_cf) per confidence and column. VaR = -(mean T + z_cf sqrt(m2 T)).

    ES is the tail mean of the same Cornish-Fisher quantile function, in closed form from the
    truncated normal moments I_k = int_{-inf}^{z} u^k phi(u) du (I0 = a, I1 = -phi, I2 = a - z phi,
    I3 = -(z^2 + 2) phi). This is not PerformanceAnalytics' 'modified ES' (Boudt et al., Edgeworth
    density); it is the exact ES of the distribution whose quantiles the CF VaR reports.
    """
    sd = np.sqrt(mo.m2 * horizon)
    m = mo.mean * horizon
    s, k = mo.skewness, mo.excess_kurtosis
    var = np.empty((len(confidences), sd.size))
    es = np.empty_like(var)
    zcf = np.empty_like(var)
    for i, c in enumerate(confidences):
        a = 1.0 - c
        z = ndtri(a)
        phi = pdf(z)
        i0, i1, i2, i3 = a, -phi, a - z * phi, -(z * z + 2) * phi
        tail = (i1 + s / 6 * (i2 - i0) + k / 24 * (i3 - 3 * i1) - s * s / 36 * (2 * i3 - 5 * i1)) / a
        zcf[i] = cf_z(z, s, k)
        var[i] = -(m + zcf[i] * sd)
        es[i] = -(m + tail * sd)
    return var, es, zcf


def check_covariance(cov: F64, names: Sequence[str], fallback: bool) -> tuple[F64, bool]:
    """A square-root factor A with A A' = cov (Cholesky when positive definite).

    A singular covariance (a constant series, fewer days than pairs, one pair a combination of
    others) is reported as an error; with fallback its negative/zero eigenvalues are clipped at 0 and
    the eigen square root is used instead. Returns (factor, singular)."""
    vals, vecs = np.linalg.eigh(cov)
    top = float(vals[-1]) if vals.size else 0.0
    singular = top <= 0 or float(vals[0]) <= 1e-12 * top
    if not singular:
        return np.asarray(np.linalg.cholesky(cov), dtype=np.float64), False
    if not fallback:
        flat = [names[int(i)] for i in np.flatnonzero(np.diag(cov) <= 1e-12 * max(top, 1e-300))]
        why = (f"{', '.join(flat)} {'has' if len(flat) == 1 else 'have'} zero variance" if flat
               else "some pair is a linear combination of the others, or there are too few observations")
        raise CalcError("returns.series", f"The covariance matrix is singular ({why}). Send "
                        "covarianceFallback: 'eigen-clip' to use the nearest positive semi-definite matrix.",
                        "SINGULAR_COVARIANCE")
    return np.asarray(vecs * np.sqrt(np.clip(vals, 0.0, None)), dtype=np.float64), True
