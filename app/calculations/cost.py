"""The cost model: what a calculation costs, from its validated input, before it runs.

Every route prices its request as an estimate of engine CPU time (`cpu_us`), from the sizes that drive
the work (batch items, paths x assets, observations x positions, trades x paths, explain). From it:

- `units`: what the request is charged against the tier's rate limit. One unit buys up to UNIT_US of
  engine CPU, so a plain position size is 1 unit and a 100,000-path Monte Carlo is priced by its work.
  A batch costs at least one unit per 100 items (the published batch price).
- `heavy`: at or above HEAVY_US the engine call runs in the process pool (app.calculations.pool), never
  on the event loop.
- `cacheable`: at or above CACHE_MIN_US the result is worth a Redis round trip (~300 us measured) and
  goes to the result cache. This is decided from the input, not from a stopwatch, so the decision is
  the same on a busy machine and in tests.

The coefficients are microseconds of one core of the reference machine per unit of work, measured by
`python -m bench.cost_calibration` (it prints measured / model for every route up to its largest legal
input; the model is set to be at or above the measurement, so a tenant cannot buy CPU below its price).
The README's cost table is generated from the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

UNIT_US = 10_000.0  # engine CPU bought by one rate-limit unit
HEAVY_US = 5_000.0  # from here on the engine runs in the process pool
CACHE_MIN_US = 300.0  # from here on a result is worth caching (the measured Redis GET + SET)
BATCH_ITEMS_PER_UNIT = 100


@dataclass(frozen=True, slots=True)
class Work:
    cpu_us: float
    drivers: dict[str, Any] = field(default_factory=dict)  # what the estimate was computed from (for problems)
    min_units: int = 1

    @property
    def units(self) -> int:
        return max(self.min_units, math.ceil(self.cpu_us / UNIT_US))

    @property
    def heavy(self) -> bool:
        return self.cpu_us >= HEAVY_US

    @property
    def cacheable(self) -> bool:
        return self.cpu_us >= CACHE_MIN_US


# --- coefficients (us), see bench/cost_calibration.py ----------------------------------------------
BASE_US = 100.0  # a single small calculation (position size measures ~50-100 us of engine CPU)
EXPLAIN_FACTOR = 2.0

KELLY_TRADES_BASE = 2_000.0  # the log-optimal root from a trade list
KELLY_PER_TRADE = 0.4
ROR_BASE = 300.0
ROR_PER_CELL = 0.025  # Monte Carlo paths x trades
PROJECTION_MC_BASE = 2_000.0
PROJECTION_PER_CELL = 0.1  # paths x trades
PROJECTION_PER_OUTCOME = 1.0
ATR_PER_BAR = 2.0
DRAWDOWN_PER_OBS = 0.05
PORTFOLIO_PER_POSITION = 60.0
RETURNS_PER_CELL = 0.1  # observations x pairs: building, checking and using the returns matrix
VAR_BASE = 1_600.0  # includes the horizon revaluation (issue 13)
VAR_MC_PER_CELL = 0.07  # paths x positions
STRESS_PER_SCENARIO_POSITION = 12.0
STRESS_PER_WINDOW_CELL = 0.01  # observations x pairs x windows
BATCH_PER_ITEM = 11.0
BATCH_PER_ITEM_SLOW = 240.0  # items that take the single-request path (take-profits, unusual options)
BATCH_PER_ITEM_EXPLAIN = 340.0


def _explained(us: float, explain: bool) -> float:
    return us * EXPLAIN_FACTOR if explain else us


def single(req: Any, explain: bool) -> Work:
    return Work(_explained(BASE_US, explain))


def kelly(req: Any, explain: bool) -> Work:
    n = len(req.trades or ())
    us = BASE_US + (KELLY_TRADES_BASE + KELLY_PER_TRADE * n if n else 0.0)
    return Work(_explained(us, explain), {"trades": n})


def risk_of_ruin(req: Any, explain: bool) -> Work:
    cells = req.monte_carlo_paths * req.monte_carlo_trades
    return Work(_explained(ROR_BASE + ROR_PER_CELL * cells, explain),
                {"monteCarloPaths": req.monte_carlo_paths, "monteCarloTrades": req.monte_carlo_trades})


def projection(req: Any, explain: bool) -> Work:
    if req.outcomes is not None:
        n = len(req.outcomes)
        return Work(_explained(BASE_US + PROJECTION_PER_OUTCOME * n, explain), {"outcomes": n})
    cells = req.paths * req.number_of_trades
    return Work(_explained(PROJECTION_MC_BASE + PROJECTION_PER_CELL * cells, explain),
                {"paths": req.paths, "numberOfTrades": req.number_of_trades})


def atr(req: Any, explain: bool) -> Work:
    n = len(req.high or req.close or ())  # closes alone: one bar each
    return Work(_explained(BASE_US + ATR_PER_BAR * n, explain), {"bars": n})


def _observations(history: Any) -> tuple[int, int]:
    series = history.series if history is not None else {}
    n = max((len(v) for v in series.values()), default=0)
    return n, len(series)


def portfolio(req: Any, explain: bool) -> Work:
    n, k = _observations(req.returns)
    us = BASE_US + PORTFOLIO_PER_POSITION * len(req.positions) + RETURNS_PER_CELL * n * k
    return Work(_explained(us, explain), {"positions": len(req.positions), "observations": n})


def multi_leg(req: Any, explain: bool) -> Work:
    return Work(_explained(BASE_US * len(req.entries), explain), {"entries": len(req.entries)})


def var(req: Any, explain: bool) -> Work:
    n, k = _observations(req.returns)
    positions = len(req.positions)
    confidences = len(req.confidence) if isinstance(req.confidence, list) else 1
    cells = n * max(k, positions)
    us = VAR_BASE + RETURNS_PER_CELL * cells * (1 + 0.1 * (confidences - 1))
    drivers: dict[str, Any] = {"observations": n, "positions": positions, "method": req.method}
    if req.method == "monte-carlo":
        paths = req.paths or max(100, min(100_000, 1_000_000 // max(positions, 1)))
        us += VAR_MC_PER_CELL * paths * positions
        drivers["paths"] = paths
    return Work(us, drivers)


def stress(req: Any, explain: bool) -> Work:
    positions = len(req.positions)
    scenarios = (len(req.shocks or ()) and 1) + len(req.scenarios or ()) + 4  # the built-in set
    n, k = _observations(req.returns)
    cells = n * max(k, positions)
    us = BASE_US + STRESS_PER_SCENARIO_POSITION * scenarios * positions \
        + (RETURNS_PER_CELL + STRESS_PER_WINDOW_CELL * len(req.windows)) * cells
    return Work(us, {"positions": positions, "scenarios": scenarios, "observations": n})


def drawdown(req: Any, explain: bool) -> Work:
    n = len(req.equity or req.pnl or ())
    return Work(2 * BASE_US + DRAWDOWN_PER_OBS * n, {"observations": n})


def batch(n: int, slow_items: int, explain: bool) -> Work:
    """`slow_items`: items the vectorised path cannot take (they run one by one)."""
    per_slow = BATCH_PER_ITEM_EXPLAIN if explain else BATCH_PER_ITEM_SLOW
    us = BASE_US + BATCH_PER_ITEM * (n - slow_items) + per_slow * slow_items
    return Work(us, {"items": n, "explain": explain}, min_units=math.ceil(n / BATCH_ITEMS_PER_UNIT))
