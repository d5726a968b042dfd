"""In-process cost of each platform layer on POST /position-size, no sockets (ASGI calls only).

    uv run python -m bench.layers_bench [--requests 20000]

Drives the ASGI app directly with 32 concurrent requests at a time, so HTTP parsing and the load
generator cost nothing and the differences are the layers' own. Variants, all in one process and run:
calc-bare (bench.apps' bare route: parse, calculate, serialise), the full app, and the full app with
one layer switched off at a time (rate limits, metrics middleware, result cache bookkeeping). Prints
microseconds per request and each variant's throughput ratio to calc-bare.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message

from bench.payloads import POSITION_SIZE_BODY

PATH = "/api/v1/calculate/position-size"


async def drive(app: ASGIApp, path: str, headers: list[tuple[bytes, bytes]], n: int, concurrency: int = 32,
                body: bytes = POSITION_SIZE_BODY) -> float:
    """Seconds for n requests, `concurrency` in flight; every response must be 200."""
    sem = asyncio.Semaphore(concurrency)
    statuses: list[int] = []

    async def one() -> None:
        async with sem:
            sent = False

            async def receive() -> Message:
                nonlocal sent
                if sent:
                    await asyncio.sleep(3600)
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}

            async def send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    statuses.append(message["status"])

            scope: dict[str, Any] = {
                "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
                "headers": headers, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
            }
            await app(scope, receive, send)

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    elapsed = time.perf_counter() - started
    bad = [s for s in statuses if s != 200]
    if bad:
        raise SystemExit(f"{path}: {len(bad)} non-200 responses, e.g. {bad[0]}")
    return elapsed


async def main(n: int, rounds: int) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="forexrisk-layers-"))
    data_dir.chmod(0o755)
    os.environ["FOREXRISK_DATA_DIR"] = str(data_dir)  # read when bench.apps builds the app
    import bench.apps as apps
    from app.admin.brokers.schemas import BrokerCreate
    from app.admin.brokers.service import create_broker
    from app.observability.middleware import MetricsMiddleware
    from app.services import services

    api: Any = apps.api
    async with api.router.lifespan_context(api):
        svc = services(api)
        broker = await create_broker(svc.db, svc.auth, BrokerCreate(name="Layers", tier="enterprise"))
        headers = [(b"authorization", f"Bearer {broker['secretKey']}".encode()),
                   (b"content-type", b"application/json")]
        stack = api.middleware_stack or api.build_middleware_stack()
        api.middleware_stack = stack
        gates = svc.ratelimits

        def without_metrics() -> ASGIApp:
            # The stack is built outermost-first; skip the MetricsMiddleware wrapper.
            node: Any = stack
            while node is not None and not isinstance(node, MetricsMiddleware):
                node = getattr(node, "app", None)
            inner: ASGIApp = node.app if node is not None else stack

            async def call(scope: Any, receive: Any, send: Any) -> None:
                scope["app"] = api  # what FastAPI.__call__ sets before its middleware stack
                await inner(scope, receive, send)

            return call

        variants: dict[str, tuple[ASGIApp, str, dict[str, Any]]] = {
            "calc-bare": (apps.app, "/bench/calc-bare", {}),
            "full stack": (apps.app, PATH, {}),
            "full, rate limits off": (apps.app, PATH, {"limits": False}),
            "full, metrics middleware off": (without_metrics(), PATH, {}),
        }
        results: dict[str, list[float]] = {name: [] for name in variants}
        for app, path, _ in variants.values():  # warm-up
            await drive(app, path, headers, 2000)
        for _ in range(rounds):
            for name, (app, path, opts) in variants.items():
                gates.enabled = opts.get("limits", True)
                results[name].append(await drive(app, path, headers, n) / n * 1e6)
                gates.enabled = True
        base = statistics.median(results["calc-bare"])
        print(f"\n{n:,} requests x {rounds} rounds per variant, 32 in flight, in-process ASGI (no sockets)\n")
        print("| variant | µs/request (median) | throughput vs calc-bare |")
        print("|---|---:|---:|")
        for name, values in results.items():
            us = statistics.median(values)
            print(f"| {name} | {us:.1f} | {base / us:.2f} |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    asyncio.run(main(a.requests, a.rounds))
