"""Load and soak (issue 20, point 5): the full one-machine production stack (bench/load/stack.py: Debian's
Postgres and Redis, `forexrisk migrate`, `forexrisk run --workers 2`, `forexrisk worker`) driven by wrk at a fixed
rate with a mix of routes (bench/load/mix.lua), while Redis and Postgres are killed and restarted on a schedule.
Prints and writes (bench/results/load-soak.json) requests, answers by status class, socket errors, p50/p99 and
the API's memory at start and end.

    python3 dev.py python -m bench.load.soak --duration 600 --rate 200

The schedule is in fractions of the duration: Redis killed at 20 % for 10 %, Postgres killed (immediate
shutdown, crash recovery at restart) at 50 % for 10 %, Redis again at 80 % for 5 %.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from app.calculations.schemas import POSITION_SIZE_EXAMPLE
from bench.load.stack import Stack, wait_for

ROOT = Path(__file__).resolve().parents[2]
FOREXRISK = Path(sys.executable).parent / "forexrisk"
SCHEDULE = (("redis", 0.20, 0.10), ("postgres", 0.50, 0.10), ("redis", 0.80, 0.05))


def rss_kib(pid: int) -> int:
    """Resident memory of a process and all its descendants (the uvicorn supervisor, its workers, pools)."""
    total = 0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(re.search(r"VmRSS:\s+(\d+)", status)[1])  # type: ignore[index]
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                pids.extend(int(c) for c in children)
        except (OSError, TypeError):
            continue
    return total


def sample_rss(pid: int, started: float, duration: float, out: list[tuple[float, float]], every: float = 30.0) -> None:
    """The API's memory every `every` seconds of the run: whether it levels off, not just start and end."""
    while (at := time.monotonic() - started) <= duration:
        out.append((round(at, 1), round(rss_kib(pid) / 1024, 1)))
        time.sleep(every)


def chaos(stack: Stack, duration: float, started: float, log: list[str]) -> None:
    for what, at, length in SCHEDULE:
        time.sleep(max(0.0, started + at * duration - time.monotonic()))
        log.append(f"{time.monotonic() - started:6.1f} s: kill {what}")
        stack.kill_redis() if what == "redis" else stack.kill_postgres()
        time.sleep(max(0.0, started + (at + length) * duration - time.monotonic()))
        stack.start_redis() if what == "redis" else stack.run_postgres()
        log.append(f"{time.monotonic() - started:6.1f} s: {what} back")


GRACE_S = 15  # after a store is back, this long still counts as its outage's recovery


def phase_of(window_s: float, duration: float) -> str:
    """Which part of the schedule a time window falls in: an outage, its recovery, or steady load."""
    for what, at, length in SCHEDULE:
        start, back = at * duration, (at + length) * duration
        if start <= window_s < back:
            return f"{what} down ({start:.0f}-{back:.0f} s)"
    for what, at, length in SCHEDULE:
        back = (at + length) * duration
        if back <= window_s < back + GRACE_S:
            return f"{what} recovering ({back:.0f}-{back + GRACE_S:.0f} s)"
    return "steady"


def failures(stdout: str, duration: float) -> list[dict[str, object]]:
    """The unexpected answers mix.lua reported (FAIL window|route|status|type|count), summed over threads."""
    counts: dict[tuple[int, str, int, str], int] = {}
    for raw in stdout.splitlines():
        if not raw.startswith("FAIL "):
            continue
        window, route, status, kind, count = raw[5:].split("|")
        key = (int(float(window)), route, int(status), kind.rsplit("/", 1)[-1])
        counts[key] = counts.get(key, 0) + int(count)
    return [{"window_s": w, "phase": phase_of(w, duration), "route": r, "status": st, "type": k, "count": n}
            for (w, r, st, k), n in sorted(counts.items())]


def by_phase(rows: list[dict[str, object]]) -> dict[str, dict[str, int]]:
    """Unexpected answers per phase of the schedule, by 'status type route'."""
    out: dict[str, dict[str, int]] = {}
    for row in rows:
        label = f"{row['status']} {row['type'] or '-'} {row['route']}"
        phase = out.setdefault(str(row["phase"]), {})
        phase[label] = phase.get(label, 0) + int(str(row["count"]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=600, help="seconds of load (default: %(default)s)")
    parser.add_argument("--rate", type=int, default=200, help="requests per second (default: %(default)s)")
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "load-soak.json"))
    parser.add_argument("--logs", metavar="DIR", help="keep the API's and the worker's logs (warnings and errors) here")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="forexrisk-soak-"))
    root.chmod(0o755)
    stack = Stack(root)
    api = worker = None
    try:
        stack.start()
        env = stack.production_env()
        subprocess.run([str(FOREXRISK), "migrate"], env={**env, "DATABASE_URL": stack.owner_url}, cwd=ROOT,
                       check=True, capture_output=True)
        keys = {}
        for tier in ("enterprise", "free"):
            out = subprocess.run([str(FOREXRISK), "admin", "create-broker", "--name", f"Soak {secrets.token_hex(3)}",
                                  "--tier", tier, "--json"], env=env, cwd=ROOT, check=True, capture_output=True,
                                 text=True).stdout
            keys[tier] = json.loads(out)["secretKey"]
        logs = Path(args.logs) if args.logs else None
        if logs is not None:
            logs.mkdir(parents=True, exist_ok=True)
        api_log = open(logs / "api.log", "wb") if logs else subprocess.DEVNULL  # noqa: SIM115 (closed at exit)
        worker_log = open(logs / "worker.log", "wb") if logs else subprocess.DEVNULL  # noqa: SIM115
        api = subprocess.Popen([str(FOREXRISK), "run", "--workers", "2", "--port", str(stack.api_port)], cwd=ROOT,
                               env={**env, "FOREXRISK_LOG_LEVEL": "warning"}, stdout=api_log, stderr=subprocess.STDOUT)
        worker = subprocess.Popen([str(FOREXRISK), "worker"], cwd=ROOT, env={**env, "FOREXRISK_LOG_LEVEL": "warning"},
                                  stdout=worker_log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{stack.api_port}"
        wait_for(lambda: httpx.get(f"{base}/readyz").json()["status"] == "ok", "forexrisk run", api)
        for _ in range(50):  # warm-up: first requests of each worker (caches), not measured
            httpx.post(f"{base}/api/v1/calculate/position-size",
                       headers={"Authorization": f"Bearer {keys['enterprise']}"}, json=POSITION_SIZE_EXAMPLE)
        rss_start = rss_kib(api.pid)
        load_start = os.getloadavg()
        delay_ms = args.connections * 1000 / args.rate
        started = time.monotonic()
        events: list[str] = []
        thread = threading.Thread(target=chaos, args=(stack, args.duration, started, events), daemon=True)
        thread.start()
        samples: list[tuple[float, float]] = []
        sampler = threading.Thread(target=sample_rss, args=(api.pid, started, args.duration, samples), daemon=True)
        sampler.start()
        wrk = subprocess.run(["wrk", "-t2", f"-c{args.connections}", f"-d{args.duration}s", "--timeout", "5s",
                              "--latency", "-s", str(ROOT / "bench" / "load" / "mix.lua"), base],
                             env={**os.environ, "FOREXRISK_KEY": keys["enterprise"], "FOREXRISK_FREE_KEY": keys["free"],
                                  "FOREXRISK_DELAY_MS": f"{delay_ms:.3f}"}, capture_output=True, text=True)
        thread.join(timeout=120)
        load_end = os.getloadavg()
        rss_end = rss_kib(api.pid)
        line = next((x for x in wrk.stdout.splitlines() if x.startswith("SOAK ")), None)
        if line is None:
            print(wrk.stdout, wrk.stderr, file=sys.stderr)
            return 1
        result = json.loads(line[5:])
        result["failures"] = failures(wrk.stdout, args.duration)
        result["failures_by_phase"] = by_phase(result["failures"])
        result.update({"target_rate": args.rate, "connections": args.connections,
                       "achieved_rate": round(result["requests"] / result["duration_s"], 1),
                       "api_rss_mib": {"start": round(rss_start / 1024, 1), "end": round(rss_end / 1024, 1)},
                       "rss_mib_samples": [{"at_s": at, "mib": mib} for at, mib in samples],
                       "loadavg_1m": {"start": load_start[0], "end": load_end[0]}, "events": events,
                       "ready_after": httpx.get(f"{base}/readyz").json()})
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
        return 0
    finally:
        for proc in (api, worker):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
