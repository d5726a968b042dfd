"""One vendor GET with explicit timeouts, retries with jitter and the vendor's answer mapped to our errors.

Hand-written rather than a retry library: what to retry depends on the answer (429 honours Retry-After,
5xx and timeouts back off, 401/400/404 never retry), and the loop is a dozen lines.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import httpx

from app.integrations.market_data.history.bars import (
    HistoryError,
    ProviderAuthError,
    ProviderMalformed,
    ProviderRateLimited,
    ProviderUnavailable,
    SymbolNotCovered,
)

MAX_RETRY_AFTER = 30.0  # seconds: a longer Retry-After is not waited for inside a request


async def get_json(client: httpx.AsyncClient, provider: str, url: str, *, params: dict[str, str],
                   headers: dict[str, str], retries: int, backoff: float,
                   refusal: Callable[[httpx.Response], str]) -> Any:
    """GET `url` and return its JSON body. `refusal(response)` extracts the vendor's own error message."""
    attempt = 0
    while True:
        failure: HistoryError
        wait = backoff * (2 ** attempt) * random.uniform(0.5, 1.5)  # full-ish jitter spreads retries apart
        try:
            resp = await client.get(url, params=params, headers=headers)
        except httpx.TimeoutException:
            failure = ProviderUnavailable(provider, "timed out")
        except httpx.TransportError as exc:
            failure = ProviderUnavailable(provider, f"connection failed ({type(exc).__name__})")
        else:
            if resp.status_code == 200:
                try:
                    return resp.json()
                except ValueError:
                    raise ProviderMalformed(provider, "answered 200 with a body that is not JSON") from None
            if resp.status_code in (401, 403):
                raise ProviderAuthError(provider, f"refused our credentials ({resp.status_code}: {refusal(resp)})")
            if resp.status_code in (400, 404):
                raise SymbolNotCovered(provider, f"refused the request ({resp.status_code}: {refusal(resp)})")
            if resp.status_code == 429:
                failure = ProviderRateLimited(provider, "rate limit reached (429)")
                after = resp.headers.get("retry-after", "")
                if after.replace(".", "", 1).isdigit():
                    wait = min(float(after), MAX_RETRY_AFTER)
            elif resp.status_code >= 500:
                failure = ProviderUnavailable(provider, f"server error {resp.status_code}")
            else:
                raise ProviderMalformed(provider, f"unexpected status {resp.status_code}")
        if attempt >= retries:
            raise failure
        attempt += 1
        await asyncio.sleep(wait)
