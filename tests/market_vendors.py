"""Local quote vendors for the market-data tests: real HTTP on 127.0.0.1 (Starlette under uvicorn in a
thread), speaking OANDA v20 pricing and TraderMade live in their documented formats, errors included.

`Vendors.plan` scripts the next answers per vendor, one entry per request (then the default "ok"):
  "ok"        documented success body from `prices` (symbol -> (bid, ask, time))
  "401"/"403" the vendor's documented error body with that status
  "429:N"     429 with Retry-After: N          "429"   429 without Retry-After
  "500"/"503" server error                     "garbage" 200 with a body that is not JSON
  "hold"      no answer until the test ends (the client's timeout fires, whatever the machine's speed)
Every request is recorded (path, query, headers) so tests can check the request format and count calls.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class Seen:
    vendor: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class Vendors:
    # symbol -> (bid, ask, time) per vendor; time aware UTC
    prices: dict[str, dict[str, tuple[float, float, datetime]]] = field(default_factory=lambda: defaultdict(dict))
    plan: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    seen: list[Seen] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)
    gate: threading.Event | None = None  # when set to an Event: every answer waits for it
    token: str = "oanda-test-token"
    account: str = "101-004-1234567-001"
    api_key: str = "tm-test-key"
    base_url: str = ""

    def count(self, vendor: str) -> int:
        return sum(1 for s in self.seen if s.vendor == vendor)

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v3/accounts/{account}/pricing", self.oanda),
            Route("/api/v1/live", self.tradermade),
        ])

    async def _next(self, vendor: str, request: Request) -> str:
        self.seen.append(Seen(vendor, request.url.path, dict(request.query_params), dict(request.headers)))
        if self.gate is not None:
            while not self.gate.is_set() and not self.released.is_set():
                await asyncio.sleep(0.005)
        step = self.plan[vendor].pop(0) if self.plan[vendor] else "ok"
        if step == "hold":
            while not self.released.is_set():
                await asyncio.sleep(0.01)
        return step

    @staticmethod
    def _common(step: str, error_body: dict[str, Any]) -> Response | None:
        if step in ("401", "403"):
            return JSONResponse(error_body, status_code=int(step))
        if step.startswith("429"):
            headers = {"Retry-After": step.split(":", 1)[1]} if ":" in step else {}
            return JSONResponse(error_body, status_code=429, headers=headers)
        if step in ("500", "503"):
            return Response("upstream broke", status_code=int(step), media_type="text/plain")
        if step == "garbage":
            return Response("<html>maintenance</html>", status_code=200, media_type="application/json")
        return None

    async def oanda(self, request: Request) -> Response:
        step = await self._next("oanda", request)
        if request.headers.get("authorization") != f"Bearer {self.token}" or step in ("401", "403"):
            # OANDA's documented body for a bad or missing token / account (Troubleshooting & Errors).
            msg = ("Insufficient authorization to perform request." if step != "403"
                   else "The provided request was forbidden.")
            return JSONResponse({"errorMessage": msg}, status_code=403 if step == "403" else 401)
        if request.path_params["account"] != self.account:
            return JSONResponse({"errorMessage": "The provided request was forbidden."}, status_code=403)
        answer = self._common(step, {"errorMessage": "Too many requests"})
        if answer is not None:
            return answer
        wanted = request.query_params.get("instruments", "").split(",")
        prices = []
        for instrument in wanted:
            symbol = instrument.replace("_", "")
            if symbol not in self.prices["oanda"]:
                continue
            bid, ask, when = self.prices["oanda"][symbol]
            # Nanosecond RFC 3339 time, decimal strings, top of book first, as OANDA sends them.
            stamp = when.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"
            prices.append({
                "type": "PRICE", "instrument": instrument, "time": stamp, "status": "tradeable", "tradeable": True,
                "bids": [{"price": f"{bid:.5f}", "liquidity": 10000000}, {"price": f"{bid - 0.0001:.5f}",
                                                                           "liquidity": 50000000}],
                "asks": [{"price": f"{ask:.5f}", "liquidity": 10000000}],
                "closeoutBid": f"{bid - 0.0002:.5f}", "closeoutAsk": f"{ask + 0.0002:.5f}",
            } if bid > 0 else {
                "type": "PRICE", "instrument": instrument, "time": stamp, "status": "non-tradeable",
                "tradeable": False, "bids": [], "asks": [], "closeoutBid": "1.0", "closeoutAsk": "1.1",
            })
        return JSONResponse({"time": datetime.now(UTC).isoformat().replace("+00:00", "Z"), "prices": prices})

    async def tradermade(self, request: Request) -> Response:
        step = await self._next("tradermade", request)
        if request.query_params.get("api_key") != self.api_key or step == "401":
            return JSONResponse({"message": "api_key is invalid"}, status_code=401)
        answer = self._common(step, {"message": "Too many requests, please upgrade your plan"})
        if answer is not None:
            return answer
        quotes: list[dict[str, Any]] = []
        stamp = 0
        for code in request.query_params.get("currency", "").split(","):
            if code not in self.prices["tradermade"]:
                quotes.append({"error": 400, "instrument": code, "message": "currency code is invalid"})
                continue
            bid, ask, when = self.prices["tradermade"][code]
            stamp = int(when.timestamp())
            quotes.append({"ask": ask, "base_currency": code[:3], "bid": bid, "mid": round((bid + ask) / 2, 6),
                           "quote_currency": code[3:]})
        return JSONResponse({"endpoint": "live", "quotes": quotes,
                             "requested_time": datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT"),
                             "timestamp": stamp or int(time.time())})


class ServedVendors:
    """Runs the vendors under uvicorn in a daemon thread on a free loopback port."""

    def __init__(self, vendors: Vendors) -> None:
        self.vendors = vendors
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        vendors.base_url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(vendors.app(), log_level="warning", access_log=False, lifespan="off", ws="none",
                                http="h11", timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> Vendors:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test vendors did not start")
            time.sleep(0.01)
        return self.vendors

    def __exit__(self, *exc: object) -> None:
        self.vendors.released.set()
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
