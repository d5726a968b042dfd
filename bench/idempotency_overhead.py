"""Cost of IdempotencyMiddleware on a request that does not use it (no `Idempotency-Key` header).

    uv run python -m bench.idempotency_overhead

Calls a no-op ASGI app directly and through the middleware with the scope of a typical calculation
request (POST, 8 headers) and of a GET, in-process, and prints the added time per request. The
whole HTTP request costs ~310 us on the position-size route (3,196 req/s, README), the figure to compare with.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from app.idempotency.middleware import IdempotencyMiddleware

HEADERS = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk"), (b"accept", b"*/*"),
           (b"content-type", b"application/json"), (b"content-length", b"190"),
           (b"authorization", b"Bearer fxr_live_sk_" + b"x" * 40), (b"x-request-id", b"abc"),
           (b"connection", b"keep-alive")]


async def noop(scope: Scope, receive: Receive, send: Send) -> None:
    return None


async def receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def send(message: Message) -> None:
    return None


async def per_call(app: Any, scope: Scope, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        await app(scope, receive, send)
    return (time.perf_counter() - start) / n


async def main(n: int = 500_000, rounds: int = 5) -> None:
    wrapped = IdempotencyMiddleware(noop)
    for method, path in (("POST", "/api/v1/calculate/position-size"), ("POST", "/api/v1/calculate/batch"),
                         ("GET", "/api/v1/calculations"), ("POST", "/api/v1/calculate/position-size")):
        scope: Scope = {"type": "http", "method": method, "path": path, "headers": HEADERS}
        bare = min([await per_call(noop, scope, n) for _ in range(rounds)])
        mid = min([await per_call(wrapped, scope, n) for _ in range(rounds)])
        print(f"{method:4} {path:36} bare {bare * 1e9:6.0f} ns  with middleware {mid * 1e9:6.0f} ns  "
              f"added {(mid - bare) * 1e9:5.0f} ns")


if __name__ == "__main__":
    asyncio.run(main())
