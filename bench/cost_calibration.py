"""Calibrate and check the cost model (app/calculations/cost.py) against measured engine CPU time.

For each route and a range of input sizes up to the largest legal one, runs the engine in this process
(CPU time, best of a few runs) and prints the measured milliseconds beside the model's estimate and
the ratio. The model should never underestimate by much (ratio measured/estimate well under 1.5):
an underestimate lets a tenant buy CPU below its price, and a large one misroutes heavy work to the
event loop.

    python -m bench.cost_calibration            # every route
    python -m bench.cost_calibration var batch  # some routes
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from app.calc.errors import CalcError
from app.calculations import routes
from app.calculations.pipeline import CalcRoute
from app.calculations.schemas import POSITION_SIZE_EXAMPLE


def _returns(n: int, k: int) -> dict[str, Any]:
    rng = random.Random(7)
    pairs = ["EURUSD", "GBPUSD", "USDJPY", "AUDUSD", "USDCHF", "USDCAD", "NZDUSD", "EURGBP", "EURJPY", "GBPJPY"]
    names = [pairs[i] if i < len(pairs) else f"X{i}" for i in range(k)]
    return {"series": {p: [rng.gauss(0, 0.006) for _ in range(n)] for p in names}}, names  # type: ignore[return-value]


def _positions(names: list[str]) -> list[dict[str, Any]]:
    return [{"currencyPair": p, "exposure": 100_000.0 * (1 if i % 2 else -1)} for i, p in enumerate(names)]


def cases(kind: str) -> Iterator[tuple[str, dict[str, Any], bool]]:
    if kind == "var":
        for method in ("historical", "parametric", "ewma", "cornish-fisher"):
            for n, k in ((250, 6), (750, 6), (5000, 20), (20_000, 50)):
                ret, names = _returns(n, k)
                yield f"{method} {n}x{k}", {"accountCurrency": "USD", "positions": _positions(names), "returns": ret,
                                           "method": method}, False
        for paths, k in ((10_000, 6), (100_000, 10), (20_000, 50)):
            ret, names = _returns(750, k)
            yield f"mc {paths}x{k}", {"accountCurrency": "USD", "positions": _positions(names), "returns": ret,
                                      "method": "monte-carlo", "paths": paths, "seed": 1}, False
    elif kind == "risk-of-ruin":
        for paths, trades in ((0, 1000), (1000, 1000), (10_000, 1000), (1000, 10_000)):
            yield f"mc {paths}x{trades}", {"winRate": 0.55, "payoffRatio": 1.5, "capitalUnits": 20,
                                           "riskFraction": 0.02, "monteCarloPaths": paths,
                                           "monteCarloTrades": trades, "seed": 1}, False
    elif kind == "projection":
        for paths, trades in ((100, 100), (10_000, 100), (2000, 1000), (100_000, 20)):
            yield f"mc {paths}x{trades}", {"startBalance": 10_000, "riskPercentage": 1, "rewardToRisk": 2,
                                           "winRate": 0.5, "paths": paths, "numberOfTrades": trades, "seed": 1}, False
        yield "outcomes 100000", {"startBalance": 10_000, "riskPercentage": 1, "rewardToRisk": 2,
                                  "outcomes": ["W", "L"] * 50_000}, False
    elif kind == "kelly":
        for n in (10, 1000, 100_000):
            rng = random.Random(3)
            yield f"trades {n}", {"trades": [rng.choice([1.5, -1.0, 2.0, -1.0]) for _ in range(n)]}, False
    elif kind == "drawdown":
        for n in (1000, 20_000):
            yield f"equity {n}", {"equity": [100 + (i % 37) - (i % 11) for i in range(n)], "initialEquity": 100}, False
    elif kind == "stress":
        ret, names = _returns(20_000, 50)
        yield "builtin 50 positions", {"accountCurrency": "USD", "positions": _positions(names),
                                       "builtinScenarios": "all"}, False
        yield "returns 20000x50", {"accountCurrency": "USD", "positions": _positions(names), "returns": ret,
                                   "windows": [1, 5, 10, 20, 60]}, False
    elif kind == "atr":
        for n in (1000, 100_000):
            yield f"bars {n}", {"high": [1.1 + (i % 7) * 1e-3 for i in range(n)],
                                "low": [1.09 + (i % 5) * 1e-3 for i in range(n)],
                                "close": [1.095 + (i % 3) * 1e-3 for i in range(n)], "period": 14}, False
    elif kind == "portfolio":
        ret, names = _returns(20_000, 10)
        positions = [{"currencyPair": p, "side": "long", "lots": 0.5, "entryPrice": 1.1 if "JPY" not in p else 150.0,
                      "stopLossPips": 30} for p in names[:7] if p not in ("USDJPY", "EURJPY", "GBPJPY")]
        yield "5 positions + returns 20000", {"accountCurrency": "USD", "accountBalance": 10_000,
                                              "positions": positions,
                                              "conversionRates": {"USDCHF": 0.9, "USDCAD": 1.35},
                                              "returns": {"series": {p["currencyPair"]: ret["series"][p["currencyPair"]]
                                                                     for p in positions}}}, False
    elif kind == "batch":
        item = dict(POSITION_SIZE_EXAMPLE)
        tp = {**item, "takeProfit": 1.19}
        for n, explain, body in ((1000, False, item), (10_000, False, item), (10_000, False, tp),
                                 (1000, True, tp), (10_000, True, tp)):
            yield f"{n} items{' tp' if body is tp else ''}{' explain' if explain else ''}", {"items": [body] * n}, \
                explain
    else:
        route = routes.ROUTES[kind]
        if route.example is not None:
            yield "example", route.example, False
            yield "example explain", route.example, True


def measure(fn: Callable[[], Any], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.thread_time_ns()
        fn()
        best = min(best, (time.thread_time_ns() - started) / 1e6)
    return best


def main(argv: list[str]) -> int:
    kinds = argv or list(routes.ROUTES)
    print(f"{'route':<14}{'case':<34}{'measured ms':>12}{'model ms':>10}{'ratio':>7}{'units':>7}{'heavy':>7}")
    worst = 0.0
    for kind in kinds:
        route: CalcRoute = routes.ROUTES[kind]
        for label, body, explain in cases(kind):
            raw = orjson.dumps(body)
            req = route.parse(raw)
            work = route.price(req, explain)
            try:
                route.execute(req, explain)
            except CalcError as exc:
                print(f"{kind:<14}{label:<34}  refused by the engine: {exc.detail}")
                continue
            ms = measure(lambda route=route, req=req, explain=explain: route.execute(req, explain),  # type: ignore[misc]
                         repeat=1 if work.cpu_us > 1e6 else 3)
            ratio = ms / (work.cpu_us / 1000)
            worst = max(worst, ratio)
            print(f"{kind:<14}{label:<34}{ms:>12.2f}{work.cpu_us / 1000:>10.2f}{ratio:>7.2f}{work.units:>7}"
                  f"{'yes' if work.heavy else 'no':>7}", flush=True)
    print(f"worst measured/model ratio: {worst:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
