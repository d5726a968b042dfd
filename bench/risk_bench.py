"""Per-call compute time of the risk library (app.calc.risk) on the issue's fixed workloads, as ratios
against plain-NumPy baselines run in the same process (and skfolio / riskfolio / empyrical when they
are importable), plus the /var endpoint p99 at 16 connections for workload (e).

Ours and the baseline are timed in alternating rounds (A, B, A, B, ...; 15 per side by default, each a
loop of ~40 ms), so load drift on the machine lands on both sides; the report gives each side's median
over its rounds, the ratio of the medians and the median of the per-round ratios ("paired").

    uv run python -m bench.risk_bench            # library workloads (~30 s)
    uv run python -m bench.risk_bench --timer cpu   # CPU time instead of wall: steadier on a busy machine
    uv run python -m bench.risk_bench --http     # and the /var endpoint under wrk (~30 s more)
    uv run python -m bench.risk_bench --against d03e6e7 --timer cpu   # (e) and its parts: that commit's
                                                 # engine against this one, interleaved (~40 s)

Typical bundle (e), old engine (d170a76) against the hot-path rewrite, alternating runs on the same
busy 2-core VM (details in bench/README.md): 2,365 -> 913 µs wall, 1,476 -> 566 µs CPU; ratio NumPy
baseline / ours 0.10 -> 0.24 (wall), 0.09 -> 0.26 (CPU). Parts (CPU): historical 231 -> 101,
parametric 188 -> 114, Cornish-Fisher 532 -> 143, drawdown 60 -> 51. The 0.5 ms target is not shown
under that load.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import orjson

from app.calc.risk import estimators as est
from app.calc.risk.drawdown import drawdown
from app.calc.risk.var import VarInput, monte_carlo, portfolio_var

TARGETS_US = {"a": 36.0, "b": 755.0, "c": 41_000.0, "d": 1_000.0, "e": 500.0}  # issue: reference anchors / target
ROUNDS = 15  # interleaved rounds per side and workload


TIMERS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def _loops(fn: Callable[[], object], round_s: float, timer: Callable[[], float]) -> int:
    """Calls per round so that one round of fn takes about round_s (fn is warmed up first)."""
    fn()
    t = timeit.Timer(fn, timer=timer)
    once = max(min(t.repeat(3, 1)), 1e-7)
    return max(1, int(round_s / once))


def interleaved(ours: Callable[[], object], base: Callable[[], object], rounds: int = ROUNDS,
                budget_s: float = 0.6, timer: str = "wall") -> dict[str, float]:
    """Per-call µs of ours and the baseline, timed in alternating rounds A, B, A, B, ... (each round the
    mean over a loop sized to ~budget/rounds), so load drift during the run lands on both sides.

    Returns the per-side medians over rounds, their ratio baseline / ours, and the median of the
    per-round ratios (each round's ours against the baseline timed right after it). timer "cpu" counts
    this process's CPU time instead of wall time (all its threads: BLAS threads count too)."""
    clock = TIMERS[timer]
    lo, lb = _loops(ours, budget_s / rounds, clock), _loops(base, budget_s / rounds, clock)
    to, tb = timeit.Timer(ours, timer=clock), timeit.Timer(base, timer=clock)
    o_us: list[float] = []
    b_us: list[float] = []
    for _ in range(rounds):
        o_us.append(to.timeit(lo) / lo * 1e6)
        b_us.append(tb.timeit(lb) / lb * 1e6)
    o, b = statistics.median(o_us), statistics.median(b_us)
    return {"ours_us": o, "baseline_us": b, "ratio": b / o,
            "paired_ratio": statistics.median(y / x for x, y in zip(o_us, b_us, strict=True)),
            "rounds": rounds, "ours_loops": lo, "baseline_loops": lb}


def data(n_assets: int, n_obs: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(n_assets, n_assets)) * 0.003
    return rng.standard_normal((n_obs, n_assets)) @ mix, rng.uniform(-1e6, 1e6, n_assets)


def np_hist(r: np.ndarray, w: np.ndarray, alpha: float = 0.05) -> tuple[float, float]:
    pnl = r @ w
    x = np.sort(pnl)
    k = int(np.ceil(alpha * pnl.size - 1e-9))
    return float(-x[k - 1]), float(-x[:k].mean())


def np_param_components(r: np.ndarray, w: np.ndarray, z: float = 1.6448536269514722) -> np.ndarray:
    cov = np.cov(r, rowvar=False)
    sw = cov @ w
    sigma = float(np.sqrt(w @ sw))
    return np.asarray(w * z * sw / sigma)


def np_mc(cov: np.ndarray, w: np.ndarray, paths: int) -> tuple[float, float]:
    sims = np.random.default_rng(3).multivariate_normal(np.zeros(w.size), cov, size=paths)
    return np_hist(sims, w)


def np_max_dd(eq: np.ndarray) -> float:
    return float((eq / np.maximum.accumulate(eq) - 1.0).min())


def anchors() -> dict[str, Callable[..., Any] | None]:
    out: dict[str, Callable[..., Any] | None] = {}
    for name, mod, attr in (("skfolio value_at_risk+cvar", "skfolio.measures", "value_at_risk"),
                            ("riskfolio Risk_Contribution", "riskfolio", "Risk_Contribution"),
                            ("empyrical max_drawdown", "empyrical", "max_drawdown")):
        try:
            out[name] = getattr(importlib.import_module(mod), attr)
        except Exception:  # not installed in this environment: reported, not faked
            out[name] = None
    return out


def np_cf(r: np.ndarray, w: np.ndarray, z: float = -1.6448536269514722) -> float:
    """Cornish-Fisher VaR of the book P&L alone: moments and the CF quantile, no components or ES."""
    pnl = r @ w
    c = pnl - pnl.mean()
    c2 = c * c
    m2 = float(c2.mean())
    s, k = float((c2 * c).mean()) / m2**1.5, float((c2 * c2).mean()) / m2**2 - 3.0
    zcf = z + (z * z - 1) * s / 6 + (z**3 - 3 * z) * k / 24 - (2 * z**3 - 5 * z) * s * s / 36
    return -(float(pnl.mean()) + zcf * math.sqrt(m2))


def library(rounds: int = ROUNDS, timer: str = "wall") -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def row(key: str, what: str, ours: Callable[[], object], base: Callable[[], object], base_name: str) -> None:
        t = interleaved(ours, base, rounds, timer=timer)
        target = TARGETS_US.get(key)
        rows.append({"workload": key, "what": what, "baseline": base_name, **t, "target_us": target,
                     "meets_target": None if target is None else t["ours_us"] <= target})

    r20, w20 = data(20, 1000)
    row("a", "historical VaR+ES 95 %, 20 positions x 1,000 days",
        lambda: est.historical((r20 @ w20)[:, None], [0.95]), lambda: np_hist(r20, w20), "numpy sort")
    inp_b = VarInput(r20, [f"F{i}" for i in range(20)], np.arange(20), w20, "parametric", [0.95])
    row("b", "parametric VaR + Euler/marginal/incremental/standalone, 20 positions",
        lambda: portfolio_var(inp_b), lambda: np_param_components(r20, w20), "numpy cov + Euler")
    cov20 = est.sample_covariance(r20)
    chol = np.linalg.cholesky(cov20)
    row("c", "Monte Carlo VaR/ES 95 %, 20 assets x 100,000 paths",
        lambda: monte_carlo(chol, w20, [0.95], 100_000, 3, keep_factors=False),
        lambda: np_mc(cov20, w20, 100_000), "numpy multivariate_normal")
    eq = 1e5 * np.cumprod(1 + np.random.default_rng(2).normal(0.0002, 0.01, 100_000))
    row("d", "max drawdown (+ peak/trough/recovery/underwater), 100,000 points",
        lambda: drawdown(eq, 1e5), lambda: np_max_dd(eq), "numpy accumulate")
    r6, w6 = data(6, 750)
    names = ["EURUSD", "GBPUSD", "USDJPY", "AUDUSD", "USDCHF", "USDCAD"]

    def typical_var(method: str) -> None:
        portfolio_var(VarInput(r6, names, np.arange(6), w6, method, [0.95, 0.99]))  # type: ignore[arg-type]

    def typical_dd() -> None:
        drawdown(1e7 + np.cumsum(r6 @ w6), 1e7)

    def typical() -> None:
        for method in ("historical", "parametric", "cornish-fisher"):
            typical_var(method)
        typical_dd()

    def typical_np() -> None:
        np_hist(r6, w6)
        np_hist(r6, w6, 0.01)
        np_param_components(r6, w6)
        np_max_dd(1e7 + np.cumsum(r6 @ w6))

    row("e", "typical request: 6 pairs x 750 days, hist 95+99, parametric + components, CF, drawdown "
        "(each with full components)", typical, typical_np, "numpy equivalents (no components)")
    # The parts of (e), each against the NumPy equivalent of its headline number.
    row("e1", "(e) historical VaR+ES 95+99 with components", lambda: typical_var("historical"),
        lambda: (np_hist(r6, w6), np_hist(r6, w6, 0.01)), "numpy sort x2 (no components)")
    row("e2", "(e) parametric VaR+ES 95+99 with components", lambda: typical_var("parametric"),
        lambda: np_param_components(r6, w6), "numpy cov + Euler")
    row("e3", "(e) Cornish-Fisher VaR+ES 95+99 with components", lambda: typical_var("cornish-fisher"),
        lambda: (np_cf(r6, w6), np_cf(r6, w6, -2.3263478740408408)), "numpy moments + CF x2 (no components)")
    row("e4", "(e) drawdown of the book's equity", typical_dd, lambda: np_max_dd(1e7 + np.cumsum(r6 @ w6)),
        "numpy accumulate")
    return rows


def engine_at(commit: str) -> tuple[ModuleType, ModuleType]:
    """(var, drawdown) modules of app.calc as of `commit`, imported under another package name so the
    two engines run in one process (app.calc imports nothing else from app: the import contracts)."""
    root = Path(__file__).resolve().parent.parent
    sha = subprocess.run(["git", "rev-parse", "--short=12", commit], cwd=root, check=True, capture_output=True,
                         text=True).stdout.strip()
    pkg = f"engine_{sha}"
    tmp = Path(tempfile.mkdtemp(prefix="risk-bench-"))
    names = subprocess.run(["git", "ls-tree", "-r", "--name-only", sha, "app/calc"], cwd=root, check=True,
                           capture_output=True, text=True).stdout.split()
    for name in names:
        if not name.endswith(".py"):
            continue
        text = subprocess.run(["git", "show", f"{sha}:{name}"], cwd=root, check=True, capture_output=True,
                              text=True).stdout
        out = tmp / pkg / Path(name).relative_to("app")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(re.sub(r"\bapp\.calc\b", f"{pkg}.calc", text))
    (tmp / pkg / "__init__.py").write_text("")
    sys.path.insert(0, str(tmp))
    return importlib.import_module(f"{pkg}.calc.risk.var"), importlib.import_module(f"{pkg}.calc.risk.drawdown")


def versus(commit: str, rounds: int = ROUNDS, timer: str = "wall") -> list[dict[str, Any]]:
    """Workload (e) and its parts: this checkout's engine ("ours") against the engine at `commit`
    ("baseline"), interleaved like every other row; baseline / ours above 1: this checkout is faster."""
    old_var, old_dd = engine_at(commit)
    r6, w6 = data(6, 750)
    names = ["EURUSD", "GBPUSD", "USDJPY", "AUDUSD", "USDCHF", "USDCAD"]

    def parts(var_mod: ModuleType, dd_mod: ModuleType) -> dict[str, Callable[[], object]]:
        def method(m: str) -> Callable[[], object]:
            return lambda: var_mod.portfolio_var(var_mod.VarInput(r6, names, np.arange(6), w6, m, [0.95, 0.99]))

        def dd() -> object:
            return dd_mod.drawdown(1e7 + np.cumsum(r6 @ w6), 1e7)

        hist, param, cf = method("historical"), method("parametric"), method("cornish-fisher")

        def bundle() -> None:
            hist()
            param()
            cf()
            dd()

        return {"e": bundle, "e1": hist, "e2": param, "e3": cf, "e4": dd}

    ours, base = parts(sys.modules["app.calc.risk.var"], sys.modules["app.calc.risk.drawdown"]), parts(old_var,
                                                                                                        old_dd)
    what = {"e": "bundle", "e1": "historical", "e2": "parametric", "e3": "Cornish-Fisher", "e4": "drawdown"}
    return [{"workload": k, "what": what[k], "against": commit, **interleaved(ours[k], base[k], rounds, timer=timer)}
            for k in ours]


def http_p99(duration: int) -> dict[str, Any]:
    from bench import generators
    from bench.server import running_server

    r6, w6 = data(6, 750)
    names = ["EURUSD", "GBPUSD", "USDJPY", "AUDUSD", "USDCHF", "USDCAD"]
    positions = [{"currencyPair": n, "exposure": float(x)} for n, x in zip(names, w6, strict=True)]
    body = orjson.dumps({"accountCurrency": "USD", "method": "historical", "confidence": [0.95, 0.99],
                         "positions": positions,
                         "returns": {"series": {n: r6[:, i].round(8).tolist() for i, n in enumerate(names)}}})
    generator = generators.choose("auto")
    with running_server() as server:
        generators.run(generator, server.port, "/api/v1/calculate/var", body, 16, 2)  # warm-up, discarded
        result = generators.run(generator, server.port, "/api/v1/calculate/var", body, 16, duration)
    result.update({"generator": generator, "connections": 16, "body_bytes": len(body), "target_p99_ms": 50.0})
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--http", action="store_true", help="also load /var at 16 connections")
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--rounds", type=int, default=ROUNDS, help=f"interleaved rounds per side (default {ROUNDS})")
    p.add_argument("--timer", choices=sorted(TIMERS), default="wall",
                   help="wall clock (default) or this process's CPU time (steadier on a shared, busy machine)")
    p.add_argument("--against", metavar="COMMIT",
                   help="only (e) and its parts: the engine at COMMIT as the baseline, interleaved")
    args = p.parse_args(argv)
    if args.against:
        vs = versus(args.against, args.rounds, args.timer)
        print(f"(e) and its parts, {args.timer} time, median µs per call over {args.rounds} interleaved rounds; "
              f"load average {os.getloadavg()[0]:.1f}.\n")
        print(f"| part | {args.against} (us) | this checkout (us) | {args.against} / this | paired |")
        print("|---|---:|---:|---:|---:|")
        for r in vs:
            print(f"| ({r['workload']}) {r['what']} | {r['baseline_us']:.1f} | {r['ours_us']:.1f} | "
                  f"{r['ratio']:.2f} | {r['paired_ratio']:.2f} |")
        return
    rows = library(args.rounds, args.timer)
    print(f"Median per-call µs ({args.timer} time) over {args.rounds} interleaved rounds per side "
          "(ours, baseline, ours, ...).\n")
    print("| workload | ours (us) | baseline | baseline (us) | baseline/ours | paired | target (us) | met |")
    print("|---|---:|---|---:|---:|---:|---:|---|")
    for r in rows:
        target = "" if r["target_us"] is None else f"{r['target_us']:.0f}"
        met = {None: "", True: "yes", False: "NO"}[r["meets_target"]]
        print(f"| ({r['workload']}) {r['what']} | {r['ours_us']:.1f} | {r['baseline']} | {r['baseline_us']:.1f} | "
              f"{r['ratio']:.2f} | {r['paired_ratio']:.2f} | {target} | {met} |")
    missing = [k for k, v in anchors().items() if v is None]
    if missing:
        print(f"\nLibrary anchors not installed here (not run): {', '.join(missing)}")
    out: dict[str, Any] = {"library": rows, "anchors_missing": missing, "timer": args.timer, "rounds": args.rounds,
                           "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if args.http:
        h = http_p99(args.duration)
        out["http_var"] = h
        print(f"\n/var (e) at 16 connections, {h['generator']}: {h.get('rps', 0):.0f} req/s, p50 "
              f"{h.get('p50_ms')} ms, p99 {h.get('p99_ms')} ms (target <= 50 ms), errors {h.get('errors')}")
    from bench.http_bench import ROOT

    (ROOT / "bench" / "results" / "risk-latest.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
