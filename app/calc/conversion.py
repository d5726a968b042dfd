"""Currency conversion X(C->A): the value of one unit of C in account currency A.

Rates come as a table of quoted pairs (symbol XXXYYY = YYY per 1 XXX), each a mid or a bid/ask quote.
A conversion uses the direct pair, its inverse, or a cross through one bridge currency: USD first,
then EUR, then any other (in alphabetical order), as in calc-conventions.md. The table records which
quotes a calculation used so the response can echo them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from app.calc.errors import CalcError, MissingRate
from app.calc.instruments import CATALOGUE, normalise_symbol, split_pair

Side = Literal["mid", "bid", "ask"]


@dataclass(frozen=True, slots=True)
class Quote:
    bid: float
    ask: float

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2.0 if self.bid != self.ask else self.bid

    def side(self, side: Side) -> float:
        return self.mid if side == "mid" else (self.bid if side == "bid" else self.ask)


@dataclass(frozen=True, slots=True)
class Cross:
    """A synthetic quote of base/quote built from one or two table quotes."""

    bid: float
    ask: float
    mid: float
    path: tuple[str, ...]  # the table symbols used, in order

    def side(self, side: Side) -> float:
        return self.mid if side == "mid" else (self.bid if side == "bid" else self.ask)


def parse_quote(value: Any, field_name: str) -> Quote:
    if isinstance(value, Quote):
        return value
    if isinstance(value, Mapping):
        try:
            bid, ask = float(value["bid"]), float(value["ask"])
        except (KeyError, TypeError, ValueError):
            raise CalcError(field_name, "A sided rate needs numeric 'bid' and 'ask'.") from None
        if not (_ok(bid) and _ok(ask)):
            raise CalcError(field_name, "Rates must be finite and positive.")
        if bid > ask:
            raise CalcError(field_name, f"bid {bid} is above ask {ask}.")
        return Quote(bid, ask)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CalcError(field_name, "A rate is a number or {bid, ask}.")
    v = float(value)
    if not _ok(v):
        raise CalcError(field_name, "Rates must be finite and positive.")
    return Quote(v, v)


def _ok(x: float) -> bool:
    return math.isfinite(x) and x > 0


@dataclass(slots=True)
class RateTable:
    quotes: dict[tuple[str, str], Quote] = field(default_factory=dict)
    used: dict[str, Quote] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, rates: Mapping[str, Any] | None, field_name: str = "conversionRates") -> RateTable:
        table = cls()
        for raw_symbol, value in (rates or {}).items():
            fname = f"{field_name}.{raw_symbol}"
            symbol = normalise_symbol(raw_symbol)
            pair = split_pair(symbol)
            if pair is None:
                raise CalcError(fname, f"'{raw_symbol}' is not a currency pair (expected e.g. EURUSD).")
            if pair[0] == pair[1]:
                raise CalcError(fname, "A pair needs two different currencies.")
            table.quotes[pair] = parse_quote(value, fname)
        return table

    def copy(self) -> RateTable:
        return RateTable(dict(self.quotes), {})

    def has(self, base: str, quote: str) -> bool:
        return (base, quote) in self.quotes

    def set(self, base: str, quote: str, q: Quote) -> None:
        self.quotes[(base, quote)] = q

    def cross(self, base: str, quote: str, field_name: str = "conversionRates") -> Cross:
        """Bid/ask/mid of base/quote: direct, inverse, or through one bridge currency."""
        if base == quote:
            return Cross(1.0, 1.0, 1.0, ())
        leg = self._leg(base, quote)
        if leg is not None:
            return self._record(leg)
        for bridge in self._bridges(base, quote):
            a = self._leg(base, bridge)
            b = self._leg(bridge, quote)
            if a is not None and b is not None:
                return self._record(Cross(a.bid * b.bid, a.ask * b.ask, a.mid * b.mid, a.path + b.path))
        needed = market_symbol(base, quote)
        hint = f"add {needed} to conversionRates"
        if "USD" not in (base, quote):
            hint += f", or {market_symbol(base, 'USD')} and {market_symbol('USD', quote)}"
        raise MissingRate(field_name, f"No rate to convert {base} to {quote}: {hint}.", needed=needed)

    def _leg(self, base: str, quote: str) -> Cross | None:
        q = self.quotes.get((base, quote))
        if q is not None:
            return Cross(q.bid, q.ask, q.mid, (base + quote,))
        q = self.quotes.get((quote, base))
        if q is not None:
            # Inverse quote: buying `quote` with `base` at the pair's ask, selling at its bid.
            return Cross(1.0 / q.ask, 1.0 / q.bid, 1.0 / q.mid, (quote + base,))
        return None

    def _bridges(self, base: str, quote: str) -> list[str]:
        seen = {c for pair in self.quotes for c in pair} - {base, quote}
        order: list[str] = [c for c in ("USD", "EUR") if c in seen]
        order += sorted(seen - {"USD", "EUR"})
        return order

    def _record(self, cross: Cross) -> Cross:
        for sym in cross.path:
            pair = (sym[:3], sym[3:])
            self.used[sym] = self.quotes[pair]
        return cross

    def convert_factor(self, currency: str, account: str, side: Side = "mid",
                       field_name: str = "conversionRates") -> float:
        """X(C->A) for the given side of the synthetic C/A quote."""
        return self.cross(currency, account, field_name).side(side)

    def used_public(self) -> dict[str, Any]:
        return {sym: (q.bid if q.bid == q.ask else {"bid": q.bid, "ask": q.ask}) for sym, q in self.used.items()}


def market_symbol(a: str, b: str) -> str:
    """The pair as the market quotes it (USDJPY, not JPYUSD), by the catalogue or by currency rank."""
    if f"{a}{b}" in CATALOGUE:
        return f"{a}{b}"
    if f"{b}{a}" in CATALOGUE:
        return f"{b}{a}"
    rank = {c: i for i, c in enumerate(("XAU", "XAG", "EUR", "GBP", "AUD", "NZD", "USD", "CAD", "CHF", "JPY"))}
    return f"{a}{b}" if rank.get(a, 99) <= rank.get(b, 99) else f"{b}{a}"
