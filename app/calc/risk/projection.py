"""Monte Carlo equity projections of a trading plan, trade statistics and closed-form checks.

Each trade's result is an R multiple (win: +payoff, loss: -1; or drawn i.i.d. with replacement from a
trade list). Fixed-fractional sizing risks `risk_fraction` of the current equity per trade:
E_t = E_(t-1) (1 + f R_t). Without compounding each trade risks a fixed money amount.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.calc.errors import CalcError
from app.calc.risk.estimators import F64
from app.calc.risk.normal import ndtri

FAN_PERCENTILES = (5.0, 25.0, 50.0, 75.0, 95.0)


@dataclass(frozen=True, slots=True)
class ProjectionResult:
    fan: F64  # (len(FAN_PERCENTILES), trades + 1): equity percentiles per step, step 0 = start
    drawdown_probability: F64  # P(max drawdown >= threshold) per threshold
    max_drawdown_median: float
    final_median: float
    final_mean: float
    probability_of_loss: float
    ruin_probability: float
    paths: int
    trades: int
    overflow: bool = False  # some simulated equity is above the float range (~1.8e308): +inf in fan/final


def simulate(start: float, n_trades: int, paths: int, seed: int, *, risk_fraction: float,
             win_rate: float | None = None, payoff: float | None = None, r_multiples: F64 | None = None,
             compounding: bool = True, fixed_risk: float | None = None,
             drawdown_thresholds: Sequence[float] = (0.1, 0.2, 0.3, 0.5),
             ruin_level: float = 0.5) -> ProjectionResult:
    rng = np.random.default_rng(seed)
    if r_multiples is not None:
        r = r_multiples[rng.integers(0, r_multiples.size, size=(paths, n_trades))]
    else:
        assert win_rate is not None and payoff is not None
        r = np.where(rng.random((paths, n_trades)) < win_rate, payoff, -1.0)
    eq = np.empty((paths, n_trades + 1))
    eq[:, 0] = start
    if compounding:
        # A trade losing more than 1/f R would take equity below zero: it stops at zero (ruined).
        growth = np.maximum(1.0 + risk_fraction * r, 0.0)
        with np.errstate(over="ignore"):  # a path above ~1.8e308 is inf here; see overflow below
            np.cumprod(growth, axis=1, out=eq[:, 1:])
            eq[:, 1:] *= start
    else:
        risk = fixed_risk if fixed_risk is not None else start * risk_fraction
        np.cumsum(risk * r, axis=1, out=eq[:, 1:])
        eq[:, 1:] += start
    overflow = not bool(np.isfinite(eq).all())
    if overflow:
        # Some path left the range of a float (a large start balance compounding large R multiples). Its
        # equity is not representable, but its drawdowns and ruin are: they are ratios, computed here on
        # log equity (log E_t = log E_0 + sum log(1 + f R), -inf once ruined), where nothing overflows.
        with np.errstate(divide="ignore"):
            log_eq = np.empty_like(eq)
            log_eq[:, 0] = math.log(start)
            np.cumsum(np.log(growth), axis=1, out=log_eq[:, 1:])
            log_eq[:, 1:] += math.log(start)
            log_peak = np.maximum.accumulate(log_eq, axis=1)
            max_dd = np.min(np.expm1(np.where(np.isfinite(log_eq), log_eq - log_peak, -np.inf)), axis=1)
            ruined = log_eq.min(axis=1) <= (math.log(ruin_level * start) if ruin_level > 0 else -np.inf)
        fan = _percentiles_with_inf(eq)
    else:
        fan = np.percentile(eq, FAN_PERCENTILES, axis=0)
        peak = np.maximum.accumulate(eq, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            max_dd = np.min(np.where(peak > 0, eq / peak - 1.0, -1.0), axis=1)
        ruined = eq.min(axis=1) <= ruin_level * start
    final = eq[:, -1]
    with np.errstate(over="ignore", invalid="ignore"):
        final_median, final_mean = float(np.median(final)), float(final.mean())
    return ProjectionResult(
        fan=fan,
        drawdown_probability=np.array([float(np.mean(max_dd <= -t)) for t in drawdown_thresholds]),
        max_drawdown_median=float(np.median(max_dd)),
        final_median=final_median,
        final_mean=final_mean,
        probability_of_loss=float(np.mean(final < start)),
        ruin_probability=float(ruined.mean()),
        paths=paths,
        trades=n_trades,
        overflow=overflow,
    )


def _percentiles_with_inf(eq: F64) -> F64:
    """np.percentile(eq, FAN_PERCENTILES, axis=0) (linear, type 7) for columns holding +inf: between a
    finite order statistic and +inf the percentile is +inf, on the finite one exactly it is that value
    (np.percentile gives nan there: inf x 0). +inf means above the float range: the caller reports null."""
    s = np.sort(eq, axis=0)
    n = s.shape[0]
    out = np.empty((len(FAN_PERCENTILES), eq.shape[1]))
    for i, p in enumerate(FAN_PERCENTILES):
        h = (n - 1) * p / 100.0
        lo = min(int(math.floor(h)), n - 1)
        frac = h - lo
        a, b = s[lo], s[min(lo + 1, n - 1)]
        with np.errstate(invalid="ignore"):
            out[i] = np.where((frac == 0) | (a == b), a, a + (b - a) * frac)
    return out


@dataclass(frozen=True, slots=True)
class TradeStats:
    count: int
    decided: int  # non-zero results: the base of the win rate (quantstats)
    win_rate: float
    avg_win: float
    avg_loss: float  # positive
    payoff_ratio: float
    profit_factor: float
    expectancy: float  # mean result per trade
    std: float  # sample (ddof 1)
    kelly_fraction: float  # p - q / b, fraction of equity to risk per trade
    half_kelly: float


def trade_stats(r: F64) -> TradeStats:
    wins, losses = r[r > 0], r[r < 0]
    decided = wins.size + losses.size
    p = wins.size / decided if decided else 0.0
    avg_win = float(wins.mean()) if wins.size else 0.0
    avg_loss = float(-losses.mean()) if losses.size else 0.0
    payoff = avg_win / avg_loss if avg_loss > 0 else math.inf
    gross_loss = float(-losses.sum())
    kelly = p - (1 - p) / payoff if payoff > 0 else -math.inf
    return TradeStats(
        count=int(r.size), decided=decided, win_rate=p, avg_win=avg_win, avg_loss=avg_loss, payoff_ratio=payoff,
        profit_factor=float(wins.sum()) / gross_loss if gross_loss > 0 else math.inf,
        expectancy=float(r.mean()), std=float(r.std(ddof=1)) if r.size > 1 else 0.0,
        kelly_fraction=kelly, half_kelly=kelly / 2,
    )


@dataclass(frozen=True, slots=True)
class Analytic:
    fixed_risk_mean: float
    fixed_risk_sd: float
    fixed_risk_quantiles: dict[str, float]  # q05, q50, q95 of the P&L after n trades (normal, CLT)
    fixed_fraction_median_equity: float
    fixed_fraction_mean_equity: float


def analytic(start: float, n_trades: int, risk_fraction: float, fixed_risk: float, mean_r: float, sd_r: float,
             mean_log_growth: float) -> Analytic:
    """Closed forms for i.i.d. trades: fixed money risk P&L_N ~ Normal(N mean R risk, sqrt(N) sd R risk);
    fixed fraction median equity E0 exp(N E[log(1 + f R)]) and mean equity E0 (1 + f E[R])^N."""
    mean = n_trades * mean_r * fixed_risk
    sd = math.sqrt(n_trades) * sd_r * fixed_risk
    q = {f"q{int(round(p * 100)):02d}": mean + ndtri(p) * sd if p != 0.5 else mean for p in (0.05, 0.5, 0.95)}
    try:
        median_equity = start * math.exp(n_trades * mean_log_growth)
        mean_equity = start * (1 + risk_fraction * mean_r) ** n_trades
    except OverflowError:
        median_equity = mean_equity = math.inf
    if not (math.isfinite(median_equity) and math.isfinite(mean_equity)):
        # Compounding a large edge over many trades leaves the range of a JSON number (~1.8e308): the
        # figure is determined but cannot be written, so the request is refused naming what drives it.
        # The power itself may fit and only the product with the start balance overflow (to inf, silently).
        raise CalcError("numberOfTrades", f"The compounded equity after {n_trades} trades exceeds 1e308; use fewer "
                        "trades or a smaller riskPercentage or rewardToRisk.", "OUT_OF_RANGE")
    return Analytic(mean, sd, q, median_equity, mean_equity)
