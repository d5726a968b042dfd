"""Batch endpoint throughput: one keep-alive connection, requests back to back, every response verified.

Only send-to-last-byte time is counted (the client's own JSON check of each response runs outside it), so
items/s is the server's rate including HTTP and localhost transfer, not the client's decode speed.
"""

from __future__ import annotations

import http.client
import time
from typing import Any

import orjson

from bench.generators import json_headers
from bench.payloads import batch_body

PATH = "/api/v1/calculate/batch"


def _post(conn: http.client.HTTPConnection, body: bytes) -> tuple[int, bytes, float]:
    start = time.perf_counter()
    conn.request("POST", PATH, body=body, headers=json_headers())
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, data, time.perf_counter() - start


def _check(status: int, data: bytes, n: int) -> tuple[str | None, list[str]]:
    """(error or None, top-level keys of the response)."""
    if status != 200:
        return f"HTTP {status}: {data[:2000].decode(errors='replace')}", []
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return f"HTTP 200 but invalid JSON ({exc}): {data[:500]!r}", []
    keys = list(doc) if isinstance(doc, dict) else []
    if not keys or doc.get("count") != n or doc.get("failed") != 0:
        summary = {k: doc.get(k) for k in ("count", "succeeded", "failed")} if keys else doc
        return f"HTTP 200 but expected count={n}, failed=0; got {summary}", keys
    return None, keys


def measure(port: int, n: int, fmt: str, seconds: float) -> dict[str, Any]:
    body = batch_body(n, fmt)
    result: dict[str, Any] = {"items_per_request": n, "format": fmt, "body_bytes": len(body), "error": None}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        status, data, _ = _post(conn, body)  # warm-up request, not timed, but checked
        error, keys = _check(status, data, n)
        result["response_keys"] = keys
        result["response_bytes"] = len(data)
        if error:
            result["error"] = error
            return result
        times: list[float] = []
        wall_end = time.perf_counter() + seconds
        while not times or time.perf_counter() < wall_end:
            # Identical batches are served from the result cache; leading whitespace (ignored by the
            # JSON parser, part of the cache key) makes every request a real computation.
            i = len(times) + 1
            status, data, took = _post(conn, b" " * (i % 97) + b"\t" * ((i // 97) % 97) + body)
            error, _ = _check(status, data, n)
            if error:
                result["error"] = f"request {len(times) + 2}: {error}"
                break
            times.append(took)
    except (OSError, http.client.HTTPException) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        return result
    finally:
        conn.close()
    if times:
        total = sum(times)
        result.update(requests=len(times), seconds=total, items_per_s=n * len(times) / total,
                      mean_ms=total / len(times) * 1000, min_ms=min(times) * 1000, max_ms=max(times) * 1000)
    if fmt.startswith("columns") and "columns" not in result["response_keys"]:
        result["note"] = f"format=columns answered with keys {result['response_keys']} (no 'columns')"
    return result
