"""Small helpers every calculation service shares (single, batch and risk): ids and the rate table."""

from __future__ import annotations

import os
import uuid
from typing import Any

from app.calc.conversion import RateTable
from app.schemas import SidedRate


def new_id() -> str:
    return str(uuid.UUID(bytes=os.urandom(16), version=4))


def rate_table(rates: dict[str, float | SidedRate] | None, field: str = "conversionRates") -> RateTable:
    plain: dict[str, Any] = {}
    for k, v in (rates or {}).items():
        plain[k] = ({"bid": v.bid, "ask": v.ask, "mid": v.mid} if isinstance(v, SidedRate) else v)
    return RateTable.from_mapping(plain, field)
