"""Fallback HTTP/1.1 load generator for when wrk is not installed.

    python -m bench.loadgen --port 8000 --path /x --body-file body.json --connections 64 --duration 10

N keep-alive connections (asyncio.open_connection), each sending the same pre-built request in a closed
loop (next request only after the previous response), so like wrk it measures service time under a
fixed concurrency, not latency under an open arrival rate. Prints one JSON object on stdout.

It is slower than wrk: on one core it can become the bottleneck before the server does. The caller
reports the server's CPU use next to each figure so that shows up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any


def build_request(host: str, port: int, path: str, body: bytes) -> bytes:
    auth = os.environ.get("BENCH_AUTHORIZATION")  # the bench broker's key (bench.server provisions it)
    extra = f"Authorization: {auth}\r\n" if auth else ""
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n{extra}"
            f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n")
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one Content-Length response; return its status. Chunked responses are not supported (none here)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at < 0:
        raise ValueError("response without content-length")
    end = lower.index(b"\r\n", at + 2)
    await reader.readexactly(int(lower[at + 17:end]))
    return status


async def connection(host: str, port: int, request: bytes, deadline: float, latencies: list[float],
                     counts: dict[str, int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    perf = time.perf_counter
    try:
        while True:
            start = perf()
            if start >= deadline:
                return
            try:
                writer.write(request)
                status = await read_response(reader)
            except (OSError, ValueError, asyncio.IncompleteReadError):
                # Count it and start over on a fresh connection, as wrk does.
                counts["socket_errors"] += 1
                writer.close()
                try:
                    reader, writer = await asyncio.open_connection(host, port)
                except OSError:
                    return  # the server is gone; the error is already counted
                continue
            latencies.append(perf() - start)
            if status != 200:
                counts["non_200"] += 1
    finally:
        writer.close()


async def run(host: str, port: int, path: str, body: bytes, connections: int, duration: float) -> dict[str, Any]:
    request = build_request(host, port, path, body)
    latencies: list[float] = []
    counts = {"socket_errors": 0, "non_200": 0}
    before = resource.getrusage(resource.RUSAGE_SELF)  # excludes interpreter start-up from generator_cpu
    started = time.perf_counter()
    deadline = started + duration
    await asyncio.gather(*(connection(host, port, request, deadline, latencies, counts) for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float | None:  # nearest-rank percentile, in ms
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000 if latencies else None

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "requests": len(latencies), "elapsed_s": elapsed, "rps": len(latencies) / elapsed,
        "p50_ms": pct(50), "p75_ms": pct(75), "p90_ms": pct(90), "p99_ms": pct(99),
        "max_ms": latencies[-1] * 1000 if latencies else None,
        "errors": counts["socket_errors"] + counts["non_200"], **counts,
        # CPU the generator itself used per wall second: near 1.0 means it may be the bottleneck.
        "generator_cpu": (usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime) / elapsed,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", required=True)
    ap.add_argument("--body-file", type=Path, required=True)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--duration", type=float, default=10.0)
    a = ap.parse_args(argv)
    coro = run(a.host, a.port, a.path, a.body_file.read_bytes(), a.connections, a.duration)
    try:
        import uvloop  # installed with uvicorn[standard]; roughly doubles what one core can generate
        result = uvloop.run(coro)
    except ImportError:
        result = asyncio.run(coro)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
