"""Load generators behind one call: wrk when installed, else bench.loadgen (asyncio) in its own process.

Both are pinned to core 0 (the server gets core 1) so they do not compete for the server's CPU.
Both return the same dict: rps, p50_ms, p75_ms, p90_ms, p99_ms, max_ms, requests, errors.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_TIME = r"([\d.]+)(us|ms|s|m|h)"


def choose(requested: str) -> str:
    if requested == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    if requested == "wrk" and not shutil.which("wrk"):
        raise SystemExit("--generator wrk: wrk is not on PATH (apt-get install wrk)")
    return requested


def pin(core: int) -> list[str]:
    """Command prefix pinning a process to one core, or nothing on a 1-core box / without taskset."""
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(core)]
    return []


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNIT_MS[unit]


def parse_wrk(out: str) -> dict[str, Any]:
    """Parse `wrk --latency` output. Raises ValueError if the summary line is missing."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    total = re.search(r"^\s*(\d+) requests in", out, re.M)
    if not rps or not total:
        raise ValueError(f"unexpected wrk output:\n{out}")
    result: dict[str, Any] = {"rps": float(rps.group(1)), "requests": int(total.group(1))}
    for p in (50, 75, 90, 99):
        m = re.search(rf"^\s+{p}%\s+{_TIME}\s*$", out, re.M)
        result[f"p{p}_ms"] = _ms(*m.groups()) if m else None
    stats = re.search(rf"^\s+Latency\s+{_TIME}\s+{_TIME}\s+{_TIME}", out, re.M)
    result["max_ms"] = _ms(stats.group(5), stats.group(6)) if stats else None
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    result["non_200"] = int(non2xx.group(1)) if non2xx else 0
    result["socket_errors"] = sum(int(x) for x in sock.groups()) if sock else 0
    result["errors"] = result["non_200"] + result["socket_errors"]
    return result


def json_headers() -> dict[str, str]:
    """Headers of a calculation request, with the bench broker's key when bench.server provisioned one."""
    auth = os.environ.get("BENCH_AUTHORIZATION")
    return {"Content-Type": "application/json", **({"Authorization": auth} if auth else {})}


def run_wrk(url: str, body: bytes, connections: int, duration: int, workdir: Path) -> dict[str, Any]:
    script = workdir / "post.lua"
    # A Lua long string needs no escaping; the level-3 brackets cannot occur in our JSON bodies.
    auth = os.environ.get("BENCH_AUTHORIZATION")  # the bench broker's key (bench.server provisions it)
    auth_line = f'wrk.headers["Authorization"] = "{auth}"\n' if auth else ""
    script.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n' + auth_line
                      + f"wrk.body = [===[{body.decode()}]===]\n")
    cmd = [*pin(0), "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    result = parse_wrk(proc.stdout)
    result["raw"] = proc.stdout
    return result


def run_python(port: int, path: str, body: bytes, connections: int, duration: int, workdir: Path) -> dict[str, Any]:
    body_file = workdir / "body.json"
    body_file.write_bytes(body)
    cmd = [*pin(0), sys.executable, "-m", "bench.loadgen", "--port", str(port), "--path", path,
           "--body-file", str(body_file), "--connections", str(connections), "--duration", str(duration)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def run(generator: str, port: int, path: str, body: bytes, connections: int, duration: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        if generator == "wrk":
            return run_wrk(f"http://127.0.0.1:{port}{path}", body, connections, duration, Path(tmp))
        return run_python(port, path, body, connections, duration, Path(tmp))
