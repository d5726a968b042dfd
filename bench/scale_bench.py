"""Scale-out and server choice on the full stack: 1 vs 2 workers, uvicorn vs granian, quiet vs busy.

    python -m bench.scale_bench [--duration 8] [--rounds 2] [--connections 64]

Every configuration serves bench.apps:app (the real API plus the calc-bare baseline) on its own port,
all started at once on one data directory (they share its embedded Postgres and Redis); only the one
being measured is loaded, so the idle ones cost nothing. wrk (pinned to core 0) loads
POST /api/v1/calculate/position-size and /bench/calc-bare. Configurations are measured in interleaved
rounds (u1, u2, g1, g2, u1, ...), so the machine's drift lands on every side of each ratio. The busy
runs repeat the same rounds while a second process keeps one core busy (a spin loop), the situation in
which the issue measured 2 workers giving only 1.0-1.37x of one.

Prints req/s and p99 per configuration and the ratios: 2 workers / 1 worker (target >= 1.7x, quiet
and busy), full stack / calc-bare, granian / uvicorn. Writes bench/results/scale-latest.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from bench import generators
from bench.payloads import POSITION_SIZE_BODY
from bench.server import ROOT, _wait_healthy, free_port, provision, stop

RESULTS = ROOT / "bench" / "results" / "scale-latest.json"
TARGET_SCALE = 1.7
PATHS = {"full": "/api/v1/calculate/position-size", "bare": "/bench/calc-bare"}


def command(server: str, workers: int, port: int) -> list[str]:
    if server == "uvicorn":
        return [sys.executable, "-m", "uvicorn", "bench.apps:app", "--host", "127.0.0.1", "--port", str(port),
                "--workers", str(workers), "--loop", "uvloop", "--http", "httptools", "--no-access-log",
                "--log-level", "warning"]
    return [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--loop", "uvloop", "--no-access-log", "--log-level", "warning",
            "bench.apps:app"]


@contextmanager
def servers(configs: list[tuple[str, int]]) -> Iterator[dict[tuple[str, int], int]]:
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp, ExitStack() as stack:
        Path(tmp).chmod(0o755)
        data_dir = Path(tmp) / "data"
        os.environ["BENCH_AUTHORIZATION"] = f"Bearer {provision(data_dir)}"
        env = {**os.environ, "FOREXRISK_DATA_DIR": str(data_dir), "FOREXRISK_DEMO_BROKER": "false"}
        ports: dict[tuple[str, int], int] = {}
        for server, workers in configs:
            port = free_port()
            log = Path(tmp) / f"{server}-{workers}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(command(server, workers, port), cwd=ROOT, stdout=out,
                                        stderr=subprocess.STDOUT, env=env, start_new_session=True)
            stack.callback(stop, proc, 20)
            _wait_healthy(proc, port, log, timeout=120)
            ports[(server, workers)] = port
        yield ports


def _spin() -> None:
    while True:
        pass


@contextmanager
def busy_core(active: bool) -> Iterator[None]:
    if not active:
        yield
        return
    proc = multiprocessing.get_context("spawn").Process(target=_spin, daemon=True)
    proc.start()
    try:
        yield
    finally:
        proc.terminate()
        proc.join()


def measure(port: int, path: str, connections: int, duration: int) -> dict[str, Any]:
    generators.run("wrk", port, path, POSITION_SIZE_BODY, connections, 2)  # warm-up, discarded
    r = generators.run("wrk", port, path, POSITION_SIZE_BODY, connections, duration)
    return {"rps": r["rps"], "p50_ms": r.get("p50_ms"), "p99_ms": r.get("p99_ms"), "errors": r.get("errors", 0)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--servers", default="uvicorn,granian")
    a = ap.parse_args(argv)
    configs = [(s, w) for s in a.servers.split(",") for w in (1, 2)]
    runs: dict[str, list[dict[str, Any]]] = {}
    with servers(configs) as ports:
        for busy in (False, True):
            with busy_core(busy):
                for _ in range(a.rounds):
                    for (server, workers), port in ports.items():
                        for target, path in PATHS.items():
                            name = f"{server} {workers}w {target}{' busy' if busy else ''}"
                            print(f"[bench] {name}", flush=True)
                            runs.setdefault(name, []).append(measure(port, path, a.connections, a.duration))
    summary = {name: {"rps": statistics.median(r["rps"] for r in rs),
                      "p99_ms": statistics.median(r["p99_ms"] for r in rs if r["p99_ms"] is not None),
                      "errors": sum(r["errors"] for r in rs)} for name, rs in runs.items()}
    print(f"\n{a.connections} connections, wrk pinned to core 0, {a.duration} s runs, {a.rounds} interleaved rounds, "
          f"load average at end {os.getloadavg()[0]:.2f}\n")
    print("| configuration | req/s | p99 ms | errors |")
    print("|---|---:|---:|---:|")
    for name, s in summary.items():
        print(f"| {name} | {s['rps']:,.0f} | {s['p99_ms']:.2f} | {s['errors']} |")
    print()
    ratios: dict[str, float] = {}
    for server, _ in configs[::2]:
        for busy in ("", " busy"):
            one, two = summary[f"{server} 1w full{busy}"]["rps"], summary[f"{server} 2w full{busy}"]["rps"]
            bare1 = summary[f"{server} 1w bare{busy}"]["rps"]
            ratios[f"{server}{busy}: 2 workers / 1 (full stack)"] = two / one
            ratios[f"{server}{busy}: 2 workers / 1 (calc-bare)"] = summary[f"{server} 2w bare{busy}"]["rps"] / bare1
            ratios[f"{server}{busy}: full stack / calc-bare (1 worker)"] = one / bare1
    if "granian 1w full" in summary and "uvicorn 1w full" in summary:
        for w in (1, 2):
            ratios[f"granian / uvicorn req/s, {w} worker(s)"] = \
                summary[f"granian {w}w full"]["rps"] / summary[f"uvicorn {w}w full"]["rps"]
            ratios[f"uvicorn / granian p99, {w} worker(s)"] = \
                summary[f"uvicorn {w}w full"]["p99_ms"] / summary[f"granian {w}w full"]["p99_ms"]
    for name, value in ratios.items():
        met = f" (target >= {TARGET_SCALE}: {'met' if value >= TARGET_SCALE else 'NOT met'})" \
            if "2 workers / 1 (full" in name else ""
        print(f"- {name}: {value:.2f}{met}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"summary": summary, "ratios": ratios, "runs": runs,
                                   "duration_s": a.duration, "connections": a.connections}, indent=2))


if __name__ == "__main__":
    main()
