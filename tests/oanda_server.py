"""A local HTTP server on loopback that speaks OANDA v20's documented candles endpoint
(GET /v3/instruments/{instrument}/candles, Bearer token, RFC 3339 times, `{"errorMessage": ...}` errors),
including its 401/400 refusals, 429 rate limits, 5xx and answers that never come (slow)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

TOKEN = "test-token-0123456789"


def weekdays(first: date, last: date) -> Iterator[date]:
    d = first
    while d <= last:
        if d.weekday() < 5:
            yield d
        d += timedelta(days=1)


def candle_time(day: date) -> str:
    """The 17:00 New York open of trading day `day`, the evening before, in UTC (nine fractional digits,
    as OANDA writes it): 21:00Z in New York summer time, 22:00Z in winter."""
    prev = day - timedelta(days=1)
    summer = date(prev.year, 3, 8) <= prev < date(prev.year, 11, 1)  # close enough for test data
    hour = 21 if summer else 22
    return datetime(prev.year, prev.month, prev.day, hour, tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%S.000000000Z")


def make_bars(first: date, last: date, base: float = 1.1) -> list[dict[str, Any]]:
    """Deterministic test OHLC (a zig-zag), one per weekday: test input for the adapter, not market data."""
    out = []
    for i, d in enumerate(weekdays(first, last)):
        c = round(base + 0.001 * ((i * 7) % 11) - 0.004, 5)
        o = round(c - 0.0008 + 0.0003 * (i % 3), 5)
        h = round(max(o, c) + 0.0011 + 0.0001 * (i % 5), 5)
        lo = round(min(o, c) - 0.0009 - 0.0001 * (i % 4), 5)
        out.append({"day": d, "o": o, "h": h, "l": lo, "c": c})
    return out


@dataclass
class OandaServer:
    bars: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # instrument (EUR_USD) -> bars
    script: list[str] = field(default_factory=list)  # answers to give first, one per request: 429, 500, slow, junk
    requests: list[dict[str, Any]] = field(default_factory=list)
    incomplete_last: bool = False  # mark the last candle of an answer complete=false (the day still trading)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    httpd: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self.httpd is not None
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def candle_calls(self, instrument: str | None = None) -> int:
        return sum(1 for r in self.requests if instrument is None or r["instrument"] == instrument)

    def answer(self, path: str, query: dict[str, list[str]],
               headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        parts = path.strip("/").split("/")
        if len(parts) != 4 or parts[:2] != ["v3", "instruments"] or parts[3] != "candles":
            return 404, {"errorMessage": "The requested path does not exist"}, {}
        instrument = parts[2]
        with self.lock:
            self.requests.append({"instrument": instrument, "query": query, "headers": headers})
            step = self.script.pop(0) if self.script else "ok"
        if headers.get("authorization") != f"Bearer {TOKEN}":
            return 401, {"errorMessage": "Insufficient authorization to perform request."}, {}
        if step == "429":
            return 429, {"errorMessage": "Requests per second exceeded"}, {"Retry-After": "0"}
        if step == "500":
            return 500, {"errorMessage": "Internal server error"}, {}
        if step == "slow":
            self.release.wait(60)  # answers only once the test is over: the client's timeout fires first
            return 503, {"errorMessage": "too late"}, {}
        if step == "junk":
            return 200, {"instrument": instrument, "granularity": "D", "candles": [{"time": "x", "mid": {}}]}, {}
        if instrument not in self.bars:
            return 400, {"errorMessage": "Invalid value specified for 'instrument'"}, {}
        for name, want in (("granularity", "D"), ("price", "M")):
            if query.get(name) != [want]:
                return 400, {"errorMessage": f"Invalid value specified for '{name}'"}, {}
        start = datetime.fromisoformat(query["from"][0])
        end = datetime.fromisoformat(query["to"][0])
        candles = []
        for b in self.bars[instrument]:
            t = candle_time(b["day"])
            if start <= datetime.fromisoformat(t) < end:
                candles.append({"complete": True, "volume": 1000, "time": t,
                                "mid": {k: f"{b[k]:.5f}" for k in ("o", "h", "l", "c")}})
        if candles and self.incomplete_last:
            candles[-1]["complete"] = False
        return 200, {"instrument": instrument, "granularity": "D", "candles": candles}, {}

    def start(self) -> OandaServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                url = urlparse(self.path)
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, body, extra = server.answer(url.path, parse_qs(url.query), headers)
                payload = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for k, v in extra.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): nobody to answer

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
