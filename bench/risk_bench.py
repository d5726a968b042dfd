"""Per-call compute time of the risk library (app.calc.risk) on the issue's fixed workloads, as ratios
against plain-NumPy baselines run in the same process (and skfolio / riskfolio / empyrical when they
are importable), plus the /var endpoint p99 at 16 connections for workload (e).

    uv run python -m bench.risk_bench            # library workloads (~30 s)
    uv run python -m bench.risk_bench --http     # and the /var endpoint under wrk (~30 s more)
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import time
import timeit
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from app.calc.risk import estimators as est
from app.calc.risk.drawdown import drawdown
from app.calc.risk.var import VarInput, monte_carlo, portfolio_var

TARGETS_US = {"a": 36.0, "b": 755.0, "c": 41_000.0, "d": 1_000.0, "e": 500.0}  # issue: reference anchors / target


def per_call_us(fn: Callable[[], object], budget_s: float = 0.6) -> float:
    """Median over 7 repeats of the mean per-call time, loops sized to ~budget/7 per repeat."""
    fn()
    t = timeit.Timer(fn)
    once = max(t.timeit(1), 1e-7)
    loops = max(1, int(budget_s / 7 / once))
    return statistics.median(t.repeat(7, loops)) / loops * 1e6


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


def library() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def row(key: str, what: str, ours: Callable[[], object], base: Callable[[], object], base_name: str) -> None:
        o, b = per_call_us(ours), per_call_us(base)
        rows.append({"workload": key, "what": what, "ours_us": o, "baseline": base_name, "baseline_us": b,
                     "ratio": b / o, "target_us": TARGETS_US[key], "meets_target": o <= TARGETS_US[key]})

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

    def typical() -> None:
        for method in ("historical", "parametric", "cornish-fisher"):
            portfolio_var(VarInput(r6, names, np.arange(6), w6, method, [0.95, 0.99]))  # type: ignore[arg-type]
        drawdown(1e7 + np.cumsum(r6 @ w6), 1e7)

    def typical_np() -> None:
        np_hist(r6, w6)
        np_hist(r6, w6, 0.01)
        np_param_components(r6, w6)
        np_max_dd(1e7 + np.cumsum(r6 @ w6))

    row("e", "typical request: 6 pairs x 750 days, hist 95+99, parametric + components, CF, drawdown "
        "(each with full components)", typical, typical_np, "numpy equivalents (no components)")
    return rows


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
    args = p.parse_args(argv)
    rows = library()
    print("| workload | ours (us) | baseline | baseline (us) | baseline/ours | target (us) | met |")
    print("|---|---:|---|---:|---:|---:|---|")
    for r in rows:
        print(f"| ({r['workload']}) {r['what']} | {r['ours_us']:.1f} | {r['baseline']} | {r['baseline_us']:.1f} | "
              f"{r['ratio']:.2f} | {r['target_us']:.0f} | {'yes' if r['meets_target'] else 'NO'} |")
    missing = [k for k, v in anchors().items() if v is None]
    if missing:
        print(f"\nLibrary anchors not installed here (not run): {', '.join(missing)}")
    out: dict[str, Any] = {"library": rows, "anchors_missing": missing, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if args.http:
        h = http_p99(args.duration)
        out["http_var"] = h
        print(f"\n/var (e) at 16 connections, {h['generator']}: {h.get('rps', 0):.0f} req/s, p50 "
              f"{h.get('p50_ms')} ms, p99 {h.get('p99_ms')} ms (target <= 50 ms), errors {h.get('errors')}")
    from bench.http_bench import ROOT

    (ROOT / "bench" / "results" / "risk-latest.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
