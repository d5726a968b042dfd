"""Request bodies shared by the benchmarks (pre-serialised once, so building them never shows up in timings)."""

from __future__ import annotations

from typing import Any

import orjson

# The same body goes to all three single-request targets.
POSITION_SIZE: dict[str, Any] = {
    "accountBalance": 10000, "accountCurrency": "USD", "currencyPair": "EURUSD", "entryPrice": 1.1850,
    "stopLoss": 1.1820, "riskPercentage": 2, "leverage": 30,
}
POSITION_SIZE_BODY = orjson.dumps(POSITION_SIZE)

# (pair, entry, pip size): GBPJPY in a USD account needs USDJPY, given once at the top level of the batch.
_SYMBOLS = [("EURUSD", 1.1850, 0.0001), ("USDJPY", 150.0, 0.01), ("GBPJPY", 190.0, 0.01), ("GBPUSD", 1.2700, 0.0001)]


def batch_items(n: int) -> list[dict[str, Any]]:
    """n valid position-size items; balance and stop distance vary per item so no two neighbours are equal."""
    items = []
    for i in range(n):
        pair, entry, pip = _SYMBOLS[i % len(_SYMBOLS)]
        stop = 50.0 if pair == "USDJPY" else 10.0 + i % 40  # USDJPY: the 150 -> 149.5 stop from the brief
        items.append({
            "accountBalance": 5000 + (i % 97) * 100, "accountCurrency": "USD", "currencyPair": pair,
            "entryPrice": entry, "stopLoss": round(entry - stop * pip, 5), "riskPercentage": 1 + i % 3,
            "leverage": 30,
        })
    return items


def batch_body(n: int, fmt: str) -> bytes:
    return orjson.dumps({"items": batch_items(n), "conversionRates": {"USDJPY": 150.0}, "format": fmt})
