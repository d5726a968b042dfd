"""Stress tests: P&L of today's positions under shocks per pair or per currency, revalued exactly,
built-in historical scenarios, and the worst realised days of a returns history.

Exact revaluation (calc-conventions.md): each position's P&L at the shocked price, in its quote
currency, converted at the shocked rates. With exposure E = units x P0 x X0 (X = quote -> account):
    P&L = units x (P1 - P0) x X1 = E x r x (X1 / X0),   r = P1 / P0 - 1,
where X1 / X0 is the product of the shock factors of the legs on the conversion path (a leg used
inverted contributes 1 / its factor). The linear (delta) figure E x r, which leaves out the move of the
conversion rate, is reported alongside as `linearPnl`. Long 4 lots USDCHF at 1.02 in a USD account,
CHF +17 %: r = 1/1.17 - 1, X1/X0 = 1.17, P&L = 400,000 x (1/1.17 - 1) x 1.17 = -68,000 (linear -58,120).

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
    pnl: F64  # (P,) exact revaluation
    total: float
    linear_pnl: F64  # (P,) exposure x return
    conversion_factor: F64  # (P,) X1 / X0 of each position's quote -> account conversion


# One leg of a conversion path: (base, quote) of the table pair and whether it was used inverted.
Leg = tuple[str, str, bool]


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


def leg_factor(base: str, quote: str, scenario: Scenario) -> float:
    """Shocked / current rate of the table pair base/quote under the scenario."""
    sym = base + quote
    if sym in scenario.pair_shocks:
        return 1.0 + scenario.pair_shocks[sym]
    cs = scenario.currency_shocks
    return (1.0 + cs.get(base, 0.0)) / (1.0 + cs.get(quote, 0.0))


def conversion_factor(legs: Sequence[Leg] | None, quote: str, account: str, scenario: Scenario) -> float:
    """X1 / X0 for quote -> account: along the path when known, else from the currency shocks."""
    if legs is None:
        cs = scenario.currency_shocks
        return (1.0 + cs.get(quote, 0.0)) / (1.0 + cs.get(account, 0.0))
    k = 1.0
    for base, q, inverted in legs:
        f = leg_factor(base, q, scenario)
        k = k / f if inverted else k * f
    return k


def stress(pairs: Sequence[tuple[str, str, str]], exposures: F64, scenario: Scenario,
           account: str = "", paths: Sequence[Sequence[Leg] | None] | None = None) -> StressResult:
    r, source = pair_returns(pairs, scenario)
    legs = paths if paths is not None else [None] * len(pairs)
    k = np.array([conversion_factor(lg, q, account, scenario) for lg, (_, _, q) in zip(legs, pairs, strict=True)],
                 dtype=np.float64)
    linear = exposures * r + 0.0  # + 0.0: no negative zero
    pnl = exposures * r * k + 0.0
    return StressResult(scenario, r + 0.0, source, pnl, float(pnl.sum()) + 0.0, linear, k)


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
