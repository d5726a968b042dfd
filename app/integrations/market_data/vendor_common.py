"""Small parsing helpers shared by the vendor adapters."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from app.calc.instruments import split_pair
from app.integrations.market_data.quotes import ProviderBadResponse

_FRACTION = re.compile(r"(\.\d{6})\d+")


def rfc3339(value: Any, what: str) -> datetime:
    """An RFC 3339 time (nanoseconds allowed: Python keeps microseconds) as aware UTC."""
    if not isinstance(value, str):
        raise ProviderBadResponse(f"{what}: expected an RFC 3339 time, got {type(value).__name__}")
    try:
        when = datetime.fromisoformat(_FRACTION.sub(r"\1", value.replace("Z", "+00:00")))
    except ValueError:
        raise ProviderBadResponse(f"{what}: {value!r} is not an RFC 3339 time") from None
    if when.tzinfo is None:
        raise ProviderBadResponse(f"{what}: {value!r} has no UTC offset")
    return when.astimezone(UTC)


def price(value: Any, what: str) -> float:
    """A positive finite price, sent as a JSON number or a decimal string (OANDA sends strings)."""
    try:
        number = float(value) if isinstance(value, str | int | float) and not isinstance(value, bool) else math.nan
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise ProviderBadResponse(f"{what}: {value!r} is not a positive price")
    return number


def currency_pairs(symbols: list[str] | tuple[str, ...]) -> dict[str, tuple[str, str]]:
    """The symbols that are currency (or metal / crypto) pairs, with their base and quote: vendors quote
    pairs; an index or a share CFD is simply not asked for (absent = this provider does not have it)."""
    out: dict[str, tuple[str, str]] = {}
    for symbol in symbols:
        pair = split_pair(symbol)
        if pair is not None:
            out[symbol] = pair
    return out
