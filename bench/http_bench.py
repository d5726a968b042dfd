"""HTTP throughput and latency of position-size against in-process baselines, all in one run.

    uv run python -m bench.http_bench [--duration 10] [--connections 64] [--quick] [--generator auto|wrk|python]

One uvicorn worker (core 1) serves bench.apps:app; the load generator runs on core 0. Targets run in the
order starlette-bare, fastapi-minimal, position-size, fastapi-minimal, position-size (the repeats are
interleaved so slow drift of the machine hits both sides of the ratio), each after a 2 s discarded warm-up,
and each target reports the median of its runs. Then the batch endpoint is timed. Results are printed as
Markdown and written to bench/results/http-latest.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import time
from datetime import UTC, datetime
from typing import Any

from bench import batch_bench, generators
from bench.generators import json_headers
from bench.payloads import POSITION_SIZE_BODY
from bench.server import ROOT, Server, running_server

TARGETS = {
    "starlette-bare": "/bench/starlette-bare",
    "fastapi-minimal": "/bench/fastapi-minimal",
    "calc-bare": "/bench/calc-bare",
    "position-size": "/api/v1/calculate/position-size",
}
FULL_ORDER = ["starlette-bare", "fastapi-minimal", "calc-bare", "position-size", "calc-bare", "position-size",
              "fastapi-minimal"]
WARMUP_S = 2
# The issue's targets.
MIN_RATIO_VS_FASTAPI = 0.8
MIN_RATIO_VS_CALC_BARE = 0.7  # issue 5: auth + limits + metrics keep >= 0.7x of the bare calculation endpoint
MAX_P99_MS = 30.0
MIN_BATCH_ITEMS_PER_S = 1_000_000
RESULTS = ROOT / "bench" / "results" / "http-latest.json"


def preflight(port: int, path: str) -> str | None:
    """One request per target before loading it: a target that errors would otherwise 'win' on throughput."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, body=POSITION_SIZE_BODY, headers=json_headers())
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    return None if resp.status == 200 else f"HTTP {resp.status}: {data[:1000].decode(errors='replace')}"


def load_run(server: Server, generator: str, path: str, connections: int, duration: int) -> dict[str, Any]:
    generators.run(generator, server.port, path, POSITION_SIZE_BODY, connections, WARMUP_S)  # discarded
    cpu, wall = server.cpu_seconds(), time.monotonic()
    result = generators.run(generator, server.port, path, POSITION_SIZE_BODY, connections, duration)
    # Near 100% means the server core was saturated; well below means the load generator was the limit.
    result["server_cpu"] = (server.cpu_seconds() - cpu) / (time.monotonic() - wall)
    return result


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def median(key: str) -> float | None:
        values = [r[key] for r in runs if r.get(key) is not None]
        return statistics.median(values) if values else None

    return {"runs": len(runs), "rps": median("rps"), "p50_ms": median("p50_ms"), "p99_ms": median("p99_ms"),
            "server_cpu": median("server_cpu"), "errors": sum(r.get("errors", 0) for r in runs)}


def environment(generator: str) -> dict[str, Any]:
    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return proc.stdout.strip() if proc.returncode == 0 else "unknown"

    versions = {p: importlib.metadata.version(p) for p in ("fastapi", "starlette", "pydantic", "uvicorn", "orjson")}
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split(" [")[0] \
        if generator == "wrk" else None
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"), "git_commit": git("rev-parse", "--short", "HEAD"),
        # Others edit app/ while benchmarks run: say whether the measured code differs from the commit.
        "app_uncommitted_changes": bool(git("status", "--porcelain", "app")), "python": platform.python_version(),
        "cpu_count": os.cpu_count(), "loadavg_1m_at_start": os.getloadavg()[0], "pinned": bool(generators.pin(0)),
        "generator": generator,
        "generator_version": wrk or "bench.loadgen (asyncio + uvloop, closed loop)", "versions": versions,
    }


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def report(out: dict[str, Any]) -> None:
    env, summary, ratios = out["environment"], out["summary"], out["ratios"]
    print(f"\n## HTTP benchmark ({env['timestamp']}, commit {env['git_commit']}"
          f"{' + uncommitted app/ changes' if env['app_uncommitted_changes'] else ''})\n")
    print(f"generator: {env['generator']} ({env['generator_version']}); {out['connections']} connections, "
          f"{out['duration_s']} s per run after {WARMUP_S} s warm-up; server: 1 uvicorn worker "
          f"(uvloop, httptools){', pinned to core 1, generator to core 0' if env['pinned'] else ', not pinned'}; "
          f"load average at start {env['loadavg_1m_at_start']:.2f}\n")
    print("| target | runs | req/s | p50 ms | p99 ms | ratio vs fastapi-minimal | errors | server CPU |")
    print("|---|---|---|---|---|---|---|---|")
    base = summary.get("fastapi-minimal", {}).get("rps")
    for name, s in summary.items():
        if "skipped" in s:
            print(f"| {name} | 0 | skipped: {s['skipped'][:80]} | | | | | |")
            continue
        ratio = s["rps"] / base if base and s["rps"] else None
        print(f"| {name} | {s['runs']} | {fmt(s['rps'], ',.0f')} | {fmt(s['p50_ms'], '.2f')} | "
              f"{fmt(s['p99_ms'], '.2f')} | {fmt(ratio, '.2f')} | {s['errors']} | {fmt(s['server_cpu'], '.0%')} |")
    gen_cpu = [r["generator_cpu"] for rs in out["runs"].values() for r in rs if "generator_cpu" in r]
    if gen_cpu:  # only bench.loadgen reports it; near 100% would mean the generator, not the server, was the limit
        print(f"\nload generator CPU (core 0): max {max(gen_cpu):.0%} of one core")
    print(f"\nposition-size / fastapi-minimal = {fmt(ratios['position_size_vs_fastapi_minimal'], '.3f')}; "
          f"position-size / starlette-bare = {fmt(ratios['position_size_vs_starlette_bare'], '.3f')}; "
          f"position-size / calc-bare = {fmt(ratios['position_size_vs_calc_bare'], '.3f')}")
    print("\n### Batch (one keep-alive connection, sequential, every response checked: 200 and failed == 0)\n")
    print("| items/request | format | requests | mean ms/request | items/s | note |")
    print("|---|---|---|---|---|---|")
    for b in out["batch"]:
        note = b["error"] or b.get("note", "")
        print(f"| {b['items_per_request']:,} | {b['format']} | {b.get('requests', 0)} | {fmt(b.get('mean_ms'), '.1f')} "
              f"| {fmt(b.get('items_per_s'), ',.0f')} | {note} |")
    print("\n### Against the issue's targets (measured in this run)\n")
    for check in out["checks"]:
        print(f"- {check['name']}: {check['measured']} -> {check['verdict']}")
    print(f"\nJSON: {RESULTS.relative_to(ROOT)}")


def checks(summary: dict[str, Any], ratios: dict[str, Any], batch: list[dict[str, Any]],
           connections: int) -> list[dict[str, str]]:
    def verdict(ok: bool | None) -> str:
        return "not measured" if ok is None else ("met" if ok else "NOT met")

    ratio = ratios["position_size_vs_fastapi_minimal"]
    p99 = summary.get("position-size", {}).get("p99_ms")
    big = [b for b in batch if b["items_per_request"] == 10_000 and b.get("items_per_s") and not b["error"]]
    best = max(big, key=lambda b: b["items_per_s"]) if big else None
    p99_note = "" if connections == 64 else f" (at {connections} connections, not 64)"
    bare = ratios["position_size_vs_calc_bare"]
    return [
        {"name": f"position-size (auth + limits + metrics + storage) >= {MIN_RATIO_VS_CALC_BARE}x calc-bare req/s",
         "measured": f"{fmt(bare, '.3f')}x",
         "verdict": verdict(None if bare is None else bare >= MIN_RATIO_VS_CALC_BARE)},
        {"name": f"position-size >= {MIN_RATIO_VS_FASTAPI}x fastapi-minimal req/s", "measured": f"{fmt(ratio, '.3f')}x",
         "verdict": verdict(None if ratio is None else ratio >= MIN_RATIO_VS_FASTAPI)},
        {"name": f"position-size p99 <= {MAX_P99_MS:.0f} ms at 64 connections", "measured": f"{fmt(p99, '.2f')} ms"
         + p99_note, "verdict": verdict(None if p99 is None or connections != 64 else p99 <= MAX_P99_MS)},
        {"name": f"batch >= {MIN_BATCH_ITEMS_PER_S:,} position sizes/s",
         "measured": f"{best['items_per_s']:,.0f}/s ({best['format']}, 10,000 items)" if best else "no successful run",
         "verdict": verdict(None if best is None else best["items_per_s"] >= MIN_BATCH_ITEMS_PER_S)},
    ]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=10, help="seconds per measured run (default 10)")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--quick", action="store_true", help="3 s runs, no interleaved repeats (smoke test)")
    ap.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto",
                    help="auto: wrk if on PATH, else the built-in asyncio generator")
    a = ap.parse_args(argv)
    duration = 3 if a.quick else a.duration
    order = list(TARGETS) if a.quick else FULL_ORDER
    generator = generators.choose(a.generator)
    out: dict[str, Any] = {"environment": environment(generator), "connections": a.connections,
                           "duration_s": duration, "quick": a.quick, "order": order}

    with running_server() as server:
        out["server_command"] = server.command
        if generators.pin(0):
            os.sched_setaffinity(0, {0})  # this process (the batch client) stays off the server's core too
        failed = {name: err for name, path in TARGETS.items() if (err := preflight(server.port, path))}
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in TARGETS}
        for name in order:
            if name in failed:
                continue
            print(f"[bench] {name}: {WARMUP_S} s warm-up + {duration} s with {generator}", flush=True)
            try:
                runs[name].append(load_run(server, generator, TARGETS[name], a.connections, duration))
            except subprocess.CalledProcessError as exc:
                failed[name] = f"load generator failed ({exc.returncode}): {exc.stderr[-1000:]}"
        batch = []
        for n, fmt_ in ((10_000, "rows"), (10_000, "columns"), (10_000, "columns-in"), (10_000, "columns-in-fields"),
                        (1_000, "rows"), (1_000, "columns")):
            print(f"[bench] batch {n:,} items, format {fmt_}: ~{duration} s", flush=True)
            batch.append(batch_bench.measure(server.port, n, fmt_, duration))

    summary = {name: {"skipped": failed[name]} if name in failed else summarise(runs[name]) for name in TARGETS}
    rps = {name: s.get("rps") for name, s in summary.items()}
    ratios = {
        "position_size_vs_fastapi_minimal": rps["position-size"] / rps["fastapi-minimal"]
        if rps["position-size"] and rps["fastapi-minimal"] else None,
        "position_size_vs_starlette_bare": rps["position-size"] / rps["starlette-bare"]
        if rps["position-size"] and rps["starlette-bare"] else None,
        "position_size_vs_calc_bare": rps["position-size"] / rps["calc-bare"]
        if rps["position-size"] and rps["calc-bare"] else None,
    }
    out.update(summary=summary, ratios=ratios, runs=runs, batch=batch,
               checks=checks(summary, ratios, batch, a.connections))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=2) + "\n")
    tmp.replace(RESULTS)  # atomic: a reader never sees half a file
    report(out)


if __name__ == "__main__":
    main()
