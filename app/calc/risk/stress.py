"""Stress tests: linear P&L of today's exposures under shocks per pair or per currency, built-in
historical scenarios, and the worst realised days of a returns history.

Linear (delta) P&L = sum(exposure x pair return) (calc-conventions.md): second-order effects, such as
the move of the account currency against a position's quote currency, are left out, as in the VaR.

Currency shocks move each currency's value against one common numeraire (1 + s_C), so they are
consistent across every cross: the return of pair XY is (1 + s_X) / (1 + s_Y) - 1. A currency that is
not shocked keeps its value. A pair shock, when given, wins over the currency shocks for that pair.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from app.calc.risk.estimators import F64


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    pair_shocks: Mapping[str, float] = field(default_factory=dict)
    currency_shocks: Mapping[str, float] = field(default_factory=dict)
    source: str = "request"
    period: str | None = None


# Built-in scenarios. The sizes are approximate moves from widely reported market closes and
# intraday extremes, rounded; they are scenario inputs, not market data: calibrate with your own
# history before using them for anything regulatory.
BUILTIN: dict[str, Scenario] = {s.name: s for s in (
    Scenario(
        "chf-depeg-2015", "SNB removes the EUR/CHF 1.20 floor (15 January 2015), close to close: "
        "EURCHF about 1.2010 -> 1.03 (-14 %), USDCHF about 1.02 -> 0.86; modelled as CHF +17 % "
        "against every other currency.",
        currency_shocks={"CHF": 0.17}, source="builtin", period="2015-01-14/2015-01-15",
    ),
    Scenario(
        "chf-depeg-2015-intraday", "The same day at its intraday extreme: EURCHF traded near 0.85 "
        "(about -29 % from 1.2010), i.e. CHF +41 % against the euro; stops were filled far beyond "
        "their levels. Modelled as CHF +41 % against every other currency.",
        currency_shocks={"CHF": 0.41}, source="builtin", period="2015-01-15",
    ),
    Scenario(
        "gbp-flash-crash-2016", "Sterling 'flash event' in the Asian session of 7 October 2016: "
        "GBPUSD fell about 9 % (about 1.26 -> 1.15) within minutes before recovering most of it "
        "(BIS Markets Committee report, January 2017). Modelled as GBP -9 % against every other "
        "currency.",
        currency_shocks={"GBP": -0.09}, source="builtin", period="2016-10-07",
    ),
    Scenario(
        "covid-usd-squeeze-2020", "March 2020 dash for dollars, 9 to 19 March 2020, approximate "
        "closes: EURUSD -6.6 %, GBPUSD -11.2 %, AUDUSD -12.3 %, NZDUSD -11.4 %, USDCAD +6.4 %, "
        "USDJPY +8.2 %, USDCHF +5.5 %, gold -12 %; expressed as each currency's move against USD so "
        "every cross follows.",
        currency_shocks={"EUR": -0.066, "GBP": -0.112, "AUD": -0.123, "NZD": -0.114,
                         "CAD": -0.060, "JPY": -0.076, "CHF": -0.052, "XAU": -0.12},
        source="builtin", period="2020-03-09/2020-03-19",
    ),
)}


@dataclass(frozen=True, slots=True)
class StressResult:
    scenario: Scenario
    returns: F64  # (P,) pair return applied to each position
    shock_source: list[str]  # per position: "pair", "currency" or "none"
    pnl: F64  # (P,)
    total: float


def pair_returns(pairs: Sequence[tuple[str, str, str]], scenario: Scenario) -> tuple[F64, list[str]]:
    """Return of each (symbol, base, quote) under the scenario and where it came from."""
    out = np.zeros(len(pairs))
    source: list[str] = []
    cs = scenario.currency_shocks
    for i, (symbol, base, quote) in enumerate(pairs):
        if symbol in scenario.pair_shocks:
            out[i] = scenario.pair_shocks[symbol]
            source.append("pair")
        elif base in cs or quote in cs:
            out[i] = (1.0 + cs.get(base, 0.0)) / (1.0 + cs.get(quote, 0.0)) - 1.0
            source.append("currency")
        else:
            source.append("none")
    return out, source


def stress(pairs: Sequence[tuple[str, str, str]], exposures: F64, scenario: Scenario) -> StressResult:
    r, source = pair_returns(pairs, scenario)
    pnl = exposures * r
    return StressResult(scenario, r, source, pnl, float(pnl.sum()))


@dataclass(frozen=True, slots=True)
class WorstWindow:
    pnl: float
    start_index: int
    end_index: int
    by_position: F64


def worst_windows(position_pnl: F64, window: int) -> WorstWindow:
    """The worst sum of `window` consecutive daily P&Ls (overlapping windows) of today's exposures;
    window 1 is the worst day. position_pnl: (T, P)."""
    total = position_pnl.sum(axis=1)
    csum = np.concatenate(([0.0], np.cumsum(total)))
    sums = csum[window:] - csum[:-window]
    i = int(np.argmin(sums))
    # Recomputed from the window itself: the cumulative-sum difference carries the rounding of the sum so far.
    block = position_pnl[i:i + window]
    return WorstWindow(float(block.sum(axis=1).sum()), i, i + window - 1, block.sum(axis=0))
