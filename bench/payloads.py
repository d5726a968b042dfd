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


FIELDS_3 = ["lotSize", "maxLoss", "riskPercentage"]


def batch_body(n: int, fmt: str) -> bytes:
    """fmt: rows | columns (item rows in, one array per field out) | columns-in (arrays in and out; the
    account currency and leverage given once) | columns-in-fields (the same, answering 3 fields)."""
    items = batch_items(n)
    if not fmt.startswith("columns-in"):
        return orjson.dumps({"items": items, "conversionRates": {"USDJPY": 150.0}, "format": fmt})
    names = ("accountBalance", "currencyPair", "entryPrice", "stopLoss", "riskPercentage")
    columns: dict[str, Any] = {k: [it[k] for it in items] for k in names}
    columns.update(accountCurrency="USD", leverage=30)
    doc: dict[str, Any] = {"columns": columns, "conversionRates": {"USDJPY": 150.0}, "format": "columns"}
    if fmt == "columns-in-fields":
        doc["fields"] = FIELDS_3
    return orjson.dumps(doc)
