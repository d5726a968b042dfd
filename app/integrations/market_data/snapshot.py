"""The development snapshot: ECB reference rates of one past day, shipped in snapshot_ecb.json.

Always `live=False` with a label naming the source and date, so nothing can present it as a live price;
the service never uses it when the environment is production. Its quotes do not go stale (freshness is
infinite): the label and the date travel with every rate taken from it instead.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from app.integrations.market_data.quotes import MarketQuote

SNAPSHOT_FILE = Path(__file__).with_name("snapshot_ecb.json")


class SnapshotProvider:
    name = "snapshot"
    shared = True
    freshness_seconds = math.inf

    def __init__(self, path: Path = SNAPSHOT_FILE) -> None:
        doc = json.loads(path.read_text())
        self.date: str = doc["date"]
        self.time = datetime.fromisoformat(doc["timeUtc"])
        self.label = (f"{doc['source']} of {self.date} — dated snapshot, reference mid (no spread), not live")
        self.rates: dict[str, float] = {symbol: float(rate) for symbol, rate in doc["rates"].items()}

    async def fetch(self, symbols: Sequence[str], broker_id: uuid.UUID) -> dict[str, MarketQuote]:
        return {symbol: self.quote(symbol) for symbol in symbols if symbol in self.rates}

    def quote(self, symbol: str) -> MarketQuote:
        rate = self.rates[symbol]
        return MarketQuote(symbol=symbol, bid=rate, ask=rate, time=self.time, source=self.name, live=False,
                           label=self.label)
