"""VaR/ES estimators on P&L scenarios and covariance estimates. Everything works column-wise on a
(T, k) matrix so one call values a portfolio, its positions alone and the portfolio without each
position (standalone and incremental VaR) at once. Give them column-major (Fortran-order) matrices:
each column is then contiguous and a per-column reduction or partition costs a few µs, where a
row-major (T, k) matrix is reduced k elements at a time.

Conventions (calc-conventions.md): alpha = 1 - confidence; VaR and ES are positive losses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

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


def _frozen(positions: NDArray[np.intp], weights: F64) -> TailWeights:
    positions.setflags(write=False)
    weights.setflags(write=False)
    return TailWeights(positions, weights)


# The weights depend only on (n, alpha, method) and are read-only: built once, not on every call
# (at most two numbers each).
@lru_cache(maxsize=1024)
def var_weights(n: int, alpha: float, method: QuantileMethod) -> TailWeights:
    if method == "discrete":  # k = ceil(alpha n): the k-th worst P&L (riskfolio, numpy inverted_cdf)
        return _frozen(np.array([_ceil(alpha * n) - 1]), np.array([1.0]))
    if method == "discrete-loss":  # lower quantile of the loss distribution at the confidence (skfolio)
        return _frozen(np.array([n - _ceil((1.0 - alpha) * n)]), np.array([1.0]))
    h = (n - 1) * alpha  # linear interpolation, Hyndman-Fan type 7 (numpy default, empyrical)
    lo = min(_floor(h), n - 2) if n > 1 else 0
    frac = max(h - lo, 0.0)
    if frac <= TAIL_EPS or n == 1:
        return _frozen(np.array([lo]), np.array([1.0]))
    return _frozen(np.array([lo, lo + 1]), np.array([1.0 - frac, frac]))


def es_weights(n: int, alpha: float, method: EsMethod) -> TailWeights:
    if method == "tail-mean":  # empyrical: plain mean of the floor((n-1) alpha) + 1 worst
        m = _floor((n - 1) * alpha) + 1
        return _frozen(np.arange(m), np.full(m, 1.0 / m))
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
    return _frozen(np.arange(size), w)


def apply_weights(sorted_pnl: F64, tw: TailWeights) -> F64:
    """-(weights . order statistics), per column of an ascending-sorted (T, k) matrix."""
    first, last = int(tw.positions[0]), int(tw.positions[-1])
    if tw.weights.size == 1 and tw.weights[0] == 1.0:  # one order statistic (a discrete VaR): the row itself
        return np.asarray(-sorted_pnl[first], dtype=np.float64)
    # The positions are a run (the tail for ES, two neighbours for a linear VaR): a view, not a copy.
    rows = sorted_pnl[first:last + 1] if last - first + 1 == tw.positions.size else sorted_pnl[tw.positions]
    return np.asarray(-(tw.weights @ rows), dtype=np.float64)


# Plans for windows up to this many observations are cached (64 of them): the ES weights hold
# alpha x n numbers, so longer series (Monte Carlo paths) build theirs per call, where it is cheap
# next to the simulation.
CACHED_PLAN_OBSERVATIONS = 5_000


def _tail_positions(n: int, confidences: Sequence[float], quantile: QuantileMethod,
                    es: EsMethod) -> tuple[tuple[tuple[TailWeights, TailWeights], ...], NDArray[np.intp], F64 | None]:
    plan = _tail_plan if n <= CACHED_PLAN_OBSERVATIONS else _tail_plan.__wrapped__
    return plan(n, tuple(confidences), quantile, es)


# The tail rows times a dense (2m, rows) weight matrix give every VaR and ES at every confidence in one
# product, where m pairs of weight vectors are m x 2 calls; up to this many weights (then the loop).
DENSE_TAIL_WEIGHTS = 16_384


@lru_cache(maxsize=64)
def _tail_plan(n: int, confidences: tuple[float, ...], quantile: QuantileMethod,
               es: EsMethod) -> tuple[tuple[tuple[TailWeights, TailWeights], ...], NDArray[np.intp], F64 | None]:
    plans: list[tuple[TailWeights, TailWeights]] = []
    kth: set[int] = set()
    for c in confidences:
        vw, ew = var_weights(n, 1.0 - c, quantile), es_weights(n, 1.0 - c, es)
        plans.append((vw, ew))
        kth.update(int(p) for p in vw.positions)
        # The ES weights are equal up to the last position: the sum needs that order statistic and the
        # set of the smaller ones before it, which a partition at the last position gives.
        kth.add(int(ew.positions[-1]))
    rows = max(kth) + 1
    dense = None
    if 2 * len(plans) * rows <= DENSE_TAIL_WEIGHTS:
        # Row i: the VaR weights at confidence i; row m + i: its ES weights, over the first `rows`
        # order statistics (zero elsewhere: a zero weight adds an exact zero).
        dense = np.zeros((2 * len(plans), rows))
        for i, (vw, ew) in enumerate(plans):
            dense[i, vw.positions] = vw.weights
            dense[len(plans) + i, ew.positions] = ew.weights
        dense.setflags(write=False)
    kth_array = np.array(sorted(kth), dtype=np.intp)
    kth_array.setflags(write=False)
    return tuple(plans), kth_array, dense


def partition_rows(a: F64, kth: NDArray[np.intp]) -> F64:
    """np.partition(a, kth, axis=-1) for ascending kth: the same guarantee (each kth element in its sorted
    place, smaller ones before it, larger after), built as one partition at the largest kth, then each
    smaller one within the prefix before the next. NumPy's own multi-kth partition of a 2-D array costs
    3.5-5x more (13 x 750 with kth (7, 37): 62 against 18 us; 13 x 20,000: 1,986 against 409 us); for
    one row it is the faster of the two."""
    if a.ndim == 1 or a.shape[0] == 1 or kth.size == 1:
        return np.partition(a, kth, axis=-1)
    out = np.partition(a, int(kth[-1]), axis=-1)
    for i in range(kth.size - 2, -1, -1):
        out[:, :int(kth[i + 1])].partition(int(kth[i]), axis=-1)  # in place, on the prefix view
    return out


def historical(pnl: F64, confidences: Sequence[float], quantile: QuantileMethod = "discrete",
               es: EsMethod = "rockafellar-uryasev") -> tuple[F64, F64]:
    """(VaR, ES) of each column of pnl (T, k) at each confidence: arrays of shape (len(conf), k).

    A partition at the order statistics used (not a full sort): O(T) per column. It runs along the
    last axis of pnl.T, which is contiguous for the column-major matrices the callers build (along
    axis 0 NumPy copies every column through a buffer: ~1.7x the time)."""
    n = pnl.shape[0]
    plans, kth, dense = _tail_positions(n, confidences, quantile, es)
    x = partition_rows(pnl.T, kth).T
    m = len(plans)
    if dense is not None:
        both = dense @ x[:dense.shape[1]]
        if math.isfinite(both.sum()):  # else a zero weight may meet an infinite order statistic: the loop below
            np.negative(both, out=both)
            return both[:m], both[m:]
    var = np.empty((m, pnl.shape[1]))
    shortfall = np.empty_like(var)
    for i, (vw, ew) in enumerate(plans):
        var[i] = apply_weights(x, vw)
        shortfall[i] = apply_weights(x, ew)
    return var, shortfall


def sample_covariance(returns: F64, ddof: int = 1) -> F64:
    centred = returns - returns.sum(axis=0) / returns.shape[0]
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
    s = np.array(sigma, dtype=np.float64, ndmin=1, copy=None)
    m = np.asarray(mean, dtype=np.float64)
    if horizon != 1.0:
        s, m = s * math.sqrt(horizon), m * horizon
    coefficients = _normal_coefficients(tuple(confidences))
    out = coefficients * s - m  # VaR rows, then ES rows
    return out[:len(confidences)], out[len(confidences):]


@lru_cache(maxsize=256)
def _normal_coefficients(confidences: tuple[float, ...]) -> F64:
    """z per confidence and then pdf(z) / alpha per confidence, as one read-only (2m, 1) column."""
    zs = [ndtri(c) for c in confidences]
    tails = [pdf(zi) / (1.0 - c) for zi, c in zip(zs, confidences, strict=True)]
    column = np.array(zs + tails)[:, None]
    column.setflags(write=False)
    return column


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
    n = pnl.shape[0]  # sum / n is what .mean() computes, without its per-call overhead (~4 us)
    cols = pnl.T  # (k, T): contiguous rows for the column-major matrices the callers build
    mean = cols.sum(axis=1) / n
    c = cols - mean[:, None]
    c2 = c * c
    # Row-wise dot products (BLAS): no c^3 or c^4 matrices are written.
    m2 = np.vecdot(c, c) / n
    m3 = np.vecdot(c2, c) / n
    m4 = np.vecdot(c2, c2) / n
    if all(v > DEGENERATE_VARIANCE for v in m2.tolist()):  # the usual case, without the masking below
        return Moments(mean, m2, m3 / m2**1.5, m4 / m2**2 - 3.0)
    ok = m2 > DEGENERATE_VARIANCE
    with np.errstate(divide="ignore", invalid="ignore"):
        safe_m2 = np.where(ok, m2, 1.0)
        skew = np.where(ok, m3 / safe_m2**1.5, 0.0)
        kurt = np.where(ok, m4 / safe_m2**2 - 3.0, 0.0)
    return Moments(mean, m2, skew, kurt)


def cf_z(z: float, s: F64 | float, k: F64 | float) -> F64:
    """Cornish-Fisher quantile (PerformanceAnalytics VaR.CornishFisher), z = ndtri(alpha) < 0."""
    return np.asarray(z + (z * z - 1) * s / 6 + (z**3 - 3 * z) * k / 24 - (2 * z**3 - 5 * z) * s * s / 36,
                      dtype=np.float64)


def cf_in_domain(s: F64, k: F64) -> NDArray[np.bool_]:
    """Where the Cornish-Fisher expansion is a quantile function (Maillard 2012, "A user's guide to the
    Cornish Fisher expansion"): z_cf(z) is increasing in z for every z. Its derivative is the quadratic
    a z^2 + b z + c with a = K/8 - S^2/6, b = S/3, c = 1 - K/8 + 5 S^2/36 (S skewness, K excess
    kurtosis); it stays non-negative iff a >= 0, c > 0 and b^2 - 4 a c <= 0, i.e.
    S^2/9 - 4 (K/8 - S^2/6)(1 - K/8 + 5 S^2/36) <= 0 with K/8 >= S^2/6."""
    if s.size <= 32:  # a request's book, positions and books-without: a dozen NumPy calls on tiny arrays cost 3x
        return np.array([_cf_point_in_domain(si, ki) for si, ki in zip(s.tolist(), k.tolist(), strict=True)],
                        dtype=np.bool_)
    s2, k8 = s * s, k / 8
    a = k8 - s2 / 6
    c = 1 - k8 + 5 * s * s / 36
    ok = (a >= -1e-12) & (c > 0) & (s2 / 9 - 4 * a * c <= 1e-12)
    return np.asarray(ok, dtype=np.bool_)


def _cf_point_in_domain(s: float, k: float) -> bool:
    s2, k8 = s * s, k / 8  # the same operations, in the same order, as the array form above
    a = k8 - s2 / 6
    c = 1 - k8 + 5 * s * s / 36
    return a >= -1e-12 and c > 0 and s2 / 9 - 4 * a * c <= 1e-12


def cornish_fisher(mo: Moments, confidences: Sequence[float], horizon: float) -> tuple[F64, F64, F64]:
    """(VaR, ES, z_cf) per confidence and column. VaR = -(mean T + z_cf sqrt(m2 T)).

    ES is the tail mean of the same Cornish-Fisher quantile function, in closed form from the
    truncated normal moments I_k = int_{-inf}^{z} u^k phi(u) du (I0 = a, I1 = -phi, I2 = a - z phi,
    I3 = -(z^2 + 2) phi). This is not PerformanceAnalytics' 'modified ES' (Boudt et al., Edgeworth
    density); it is the exact ES of the distribution whose quantiles the CF VaR reports.
    """
    sd = np.sqrt(mo.m2 * horizon if horizon != 1.0 else mo.m2)
    m = mo.mean * horizon if horizon != 1.0 else mo.mean
    s = mo.skewness
    # z_cf (cf_z) and the tail mean are both linear in (1, S, K, S^2) with coefficients that depend on
    # the confidence only: one product gives every confidence and column, quantiles in the first m rows.
    coefficients = _cf_coefficients(tuple(confidences))
    basis = np.empty((4, s.size))
    basis[0] = 1.0
    basis[1] = s
    basis[2] = mo.excess_kurtosis
    np.multiply(s, s, out=basis[3])
    z_rows = coefficients @ basis  # (2m, columns)
    out = z_rows * sd
    out += m
    np.negative(out, out=out)
    n_conf = coefficients.shape[0] // 2
    return out[:n_conf], out[n_conf:], z_rows[:n_conf]


@lru_cache(maxsize=256)
def _cf_coefficients(confidences: tuple[float, ...]) -> F64:
    """Coefficients of (1, S, K, S^2) in z_cf (one row per confidence) and then in the tail mean (one
    row per confidence): a read-only (2m, 4) matrix."""
    quantile_rows, tail_rows = [], []
    for c in confidences:
        a = 1.0 - c
        z = ndtri(a)
        phi = pdf(z)
        i0, i1, i2, i3 = a, -phi, a - z * phi, -(z * z + 2) * phi
        quantile_rows.append((z, (z * z - 1) / 6, (z**3 - 3 * z) / 24, -(2 * z**3 - 5 * z) / 36))
        tail_rows.append((i1 / a, (i2 - i0) / 6 / a, (i3 - 3 * i1) / 24 / a, -(2 * i3 - 5 * i1) / 36 / a))
    rows = np.array(quantile_rows + tail_rows)
    rows.setflags(write=False)
    return rows


def check_covariance(cov: F64, names: Sequence[str], fallback: bool) -> tuple[F64, bool]:
    """A square-root factor A with A A' = cov (Cholesky when positive definite).

    A singular covariance (a constant series, fewer days than pairs, one pair a combination of
    others) is reported as an error; with fallback its negative/zero eigenvalues are clipped at 0 and
    the eigen square root is used instead. Returns (factor, singular)."""
    vals, vecs = np.linalg.eigh(cov)
    if not singular_covariance(cov, vals, names, fallback):
        return np.asarray(np.linalg.cholesky(cov), dtype=np.float64), False
    return np.asarray(vecs * np.sqrt(np.clip(vals, 0.0, None)), dtype=np.float64), True


def singular_covariance(cov: F64, eigenvalues: NDArray[np.floating[Any]], names: Sequence[str], fallback: bool) -> bool:
    """Whether cov (with these ascending eigenvalues) is singular; raises the error check_covariance
    describes unless fallback. Parametric VaR needs only this, not the factor: np.linalg.eigvalsh."""
    top = float(eigenvalues[-1]) if eigenvalues.size else 0.0
    singular = top <= 0 or float(eigenvalues[0]) <= 1e-12 * top
    if singular and not fallback:
        flat = [names[int(i)] for i in np.flatnonzero(np.diag(cov) <= 1e-12 * max(top, 1e-300))]
        why = (f"{', '.join(flat)} {'has' if len(flat) == 1 else 'have'} zero variance" if flat
               else "some pair is a linear combination of the others, or there are too few observations")
        raise CalcError("returns.series", f"The covariance matrix is singular ({why}). Send "
                        "covarianceFallback: 'eigen-clip' to use the nearest positive semi-definite matrix.",
                        "SINGULAR_COVARIANCE")
    return singular
