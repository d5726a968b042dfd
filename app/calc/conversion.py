"""Currency conversion X(C->A): the value of one unit of C in account currency A.

Rates come as a table of quoted pairs (symbol XXXYYY = YYY per 1 XXX), each a mid or a bid/ask quote.
The table is a graph: every currency (metals and crypto included) is a node, every quote an edge usable
in both orientations. A conversion follows the shortest path (fewest hops); among equally short paths
the one whose intermediate currencies rank first in PREFERENCE (USD, EUR, then the others in
alphabetical order) wins, compared hop by hop from the source. A bid/ask path multiplies the legs' bids
and the legs' asks (a leg used inverted contributes 1/ask to the bid and 1/bid to the ask). When no path
exists, the error names the one pair that would close the gap with the fewest hops, never the traded
instrument. The table records which quotes, and which paths, a calculation used so the response can
echo them (calc-conventions.md).
"""

from __future__ import annotations

import builtins
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from app.calc.errors import CalcError, MissingRate
from app.calc.flags import Explain
from app.calc.instruments import CATALOGUE, normalise_symbol, split_pair
from app.calc.numbers import half_up, r10

Side = Literal["mid", "bid", "ask"]

# Tie-break between equally short conversion paths: intermediate currencies in this order, then any
# other in alphabetical order (calc-conventions.md "a documented currency preference such as USD, EUR").
PREFERENCE: tuple[str, ...] = ("USD", "EUR")


def _rank(c: str) -> tuple[int, str]:
    return (PREFERENCE.index(c), "") if c in PREFERENCE else (len(PREFERENCE), c)


@dataclass(frozen=True, slots=True)
class Quote:
    bid: float
    ask: float
    given_mid: float | None = None  # a quote's own mid ({bid, mid, ask}); else (bid + ask) / 2

    @property
    def mid(self) -> float:
        if self.given_mid is not None:
            return self.given_mid
        return (self.bid + self.ask) / 2.0 if self.bid != self.ask else self.bid

    def side(self, side: Side) -> float:
        return self.mid if side == "mid" else (self.bid if side == "bid" else self.ask)

    def public(self) -> float | dict[str, float]:
        if self.bid == self.ask and (self.given_mid is None or self.given_mid == self.bid):
            return self.bid
        out = {"bid": self.bid, "ask": self.ask}
        if self.given_mid is not None:
            out["mid"] = self.given_mid
        return out


@dataclass(frozen=True, slots=True)
class Cross:
    """A synthetic quote of base/quote built from table quotes along one path."""

    bid: float
    ask: float
    mid: float
    path: tuple[str, ...]  # the table symbols used, in order
    currencies: tuple[str, ...] = ()  # the nodes visited, base first, quote last

    def side(self, side: Side) -> float:
        return self.mid if side == "mid" else (self.bid if side == "bid" else self.ask)


def parse_quote(value: Any, field_name: str) -> Quote:
    if isinstance(value, Quote):
        return value
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"bid", "ask", "mid"})
        if unknown:
            raise CalcError(f"{field_name}.{unknown[0]}", "A sided rate has bid, ask and optionally mid.")
        try:
            bid, ask = float(value["bid"]), float(value["ask"])
            mid = float(value["mid"]) if value.get("mid") is not None else None
        except (KeyError, TypeError, ValueError):
            raise CalcError(field_name, "A sided rate needs numeric 'bid' and 'ask'.") from None
        if not (_ok(bid) and _ok(ask) and (mid is None or _ok(mid))):
            raise CalcError(field_name, "Rates must be finite and positive.")
        if bid > ask:
            raise CalcError(field_name, f"bid {bid} is above ask {ask}.")
        if mid is not None and not bid <= mid <= ask:
            raise CalcError(f"{field_name}.mid", f"mid {mid} is outside bid {bid} .. ask {ask}.")
        return Quote(bid, ask, mid)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CalcError(field_name, "A rate is a number or {bid, ask} (optionally with mid).")
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
    # Where a quote came from when not from conversionRates (e.g. "entryPrice" for the instrument's own
    # pair); echoed in conversionPaths.
    sources: dict[tuple[str, str], str] = field(default_factory=dict)
    paths: dict[tuple[str, str], Cross] = field(default_factory=dict)

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
        return RateTable(dict(self.quotes), {}, dict(self.sources), {})

    def has(self, base: str, quote: str) -> bool:
        return (base, quote) in self.quotes

    def set(self, base: str, quote: str, q: Quote, source: str | None = None) -> None:
        self.quotes[(base, quote)] = q
        if source is None:
            self.sources.pop((base, quote), None)
        else:
            self.sources[(base, quote)] = source

    def _adjacency(self) -> dict[str, builtins.set[str]]:
        adj: dict[str, builtins.set[str]] = {}
        for a, b in self.quotes:
            adj.setdefault(a, set()).add(b)
            adj.setdefault(b, set()).add(a)
        return adj

    @staticmethod
    def _distances(adj: dict[str, builtins.set[str]], start: str) -> dict[str, int]:
        dist = {start: 0}
        todo = deque([start])
        while todo:
            u = todo.popleft()
            for v in adj.get(u, ()):
                if v not in dist:
                    dist[v] = dist[u] + 1
                    todo.append(v)
        return dist

    def route(self, base: str, quote: str) -> list[str] | None:
        """The currencies of the chosen path from base to quote (both included), or None."""
        adj = self._adjacency()
        to_quote = self._distances(adj, quote)
        if base not in to_quote:
            return None
        path = [base]
        node = base
        while node != quote:
            d = to_quote[node] - 1
            node = min((v for v in adj[node] if to_quote.get(v) == d), key=_rank)
            path.append(node)
        return path

    def cross(self, base: str, quote: str, field_name: str = "conversionRates",
              instrument: str | None = None) -> Cross:
        """Bid/ask/mid of base/quote along the shortest path of the rate graph."""
        if base == quote:
            return Cross(1.0, 1.0, 1.0, (), (base,))
        nodes = self.route(base, quote)
        if nodes is None:
            raise self._missing(base, quote, field_name, instrument)
        bid = ask = mid = 1.0
        syms: list[str] = []
        for u, v in zip(nodes, nodes[1:], strict=False):
            leg = self._leg(u, v)
            assert leg is not None
            bid, ask, mid = bid * leg.bid, ask * leg.ask, mid * leg.mid
            syms += leg.path
        return self._record(Cross(bid, ask, mid, tuple(syms), tuple(nodes)))

    def _missing(self, base: str, quote: str, field_name: str, instrument: str | None) -> MissingRate:
        """The pair that closes the gap with the shortest resulting path (then by preference); never the
        instrument being traded (its price is already in the graph when it can help)."""
        adj = self._adjacency()
        from_base = self._distances(adj, base)
        to_quote = self._distances(adj, quote)
        candidates: list[tuple[int, tuple[int, str], tuple[int, str], str, bool]] = []
        for a, da in from_base.items():
            for b, db in to_quote.items():
                sym = market_symbol(a, b)
                if sym == instrument or a == b:
                    continue
                candidates.append((da + 1 + db, _rank(a), _rank(b), sym, da + db > 0))
        candidates.sort()
        if not candidates:  # the only single link is the instrument itself: ask for two through USD
            bridge = "USD" if "USD" not in (base, quote) else "EUR"
            needed = market_symbol(base, bridge)
            return MissingRate(field_name, f"No rate to convert {base} to {quote}: add {needed} and "
                               f"{market_symbol(bridge, quote)} to conversionRates.", needed=needed)
        needed = candidates[0][3]
        hint = f"add {needed} to conversionRates"
        # A second way in that reuses the rates already given, if there is one.
        other = next((c[3] for c in candidates if c[4] and c[3] != needed), None)
        if other is not None:
            hint += f" (or {other}, which links through the rates given)"
        elif "USD" not in (base, quote):
            hint += f", or {market_symbol(base, 'USD')} and {market_symbol('USD', quote)}"
        if instrument is not None and market_symbol(base, quote) == instrument:
            hint += f"; or send the price of {instrument}"
        return MissingRate(field_name, f"No rate to convert {base} to {quote}: {hint}.", needed=needed)

    def _leg(self, base: str, quote: str) -> Cross | None:
        q = self.quotes.get((base, quote))
        if q is not None:
            return Cross(q.bid, q.ask, q.mid, (base + quote,))
        q = self.quotes.get((quote, base))
        if q is not None:
            # Inverse quote: buying `quote` with `base` at the pair's ask, selling at its bid.
            return Cross(1.0 / q.ask, 1.0 / q.bid, 1.0 / q.mid, (quote + base,))
        return None

    def _record(self, cross: Cross) -> Cross:
        for sym in cross.path:
            self.used[sym] = self.quotes[_split(sym)]
        if len(cross.currencies) > 1:
            self.paths[(cross.currencies[0], cross.currencies[-1])] = cross
        return cross

    def convert_factor(self, currency: str, account: str, side: Side = "mid",
                       field_name: str = "conversionRates", instrument: str | None = None) -> float:
        """X(C->A) for the given side of the synthetic C/A quote."""
        return self.cross(currency, account, field_name, instrument).side(side)

    def used_public(self) -> dict[str, Any]:
        return {sym: q.public() for sym, q in self.used.items()}

    def paths_public(self) -> list[dict[str, Any]]:
        """Each conversion made: its path of currencies, the pairs used and where each came from."""
        out: list[dict[str, Any]] = []
        for (src, dst), c in self.paths.items():
            legs = []
            for sym in c.path:
                pair = _split(sym)
                legs.append({"pair": sym, "rate": self.quotes[pair].public(),
                             "source": self.sources.get(pair, "conversionRates")})
            out.append({"from": src, "to": dst, "path": list(c.currencies), "hops": len(c.path),
                        "rate": c.mid, "legs": legs})
        return out


def _split(sym: str) -> tuple[str, str]:
    """(base, quote) of a table symbol: every node is 3 letters (crypto and metals included)."""
    return sym[:3], sym[3:]


def merge_used(*tables: RateTable) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """ratesUsed and conversionPaths of several tables (a calculation may use copies)."""
    used: dict[str, Any] = {}
    paths: list[dict[str, Any]] = []
    seen: set[tuple[str, str, tuple[str, ...]]] = set()
    for t in tables:
        used.update(t.used_public())
        for p in t.paths_public():
            key = (p["from"], p["to"], tuple(leg["pair"] for leg in p["legs"]))
            if key not in seen:
                seen.add(key)
                paths.append(p)
    return used, paths


def market_symbol(a: str, b: str) -> str:
    """The pair as the market quotes it (USDJPY, not JPYUSD), by the catalogue or by currency rank."""
    if f"{a}{b}" in CATALOGUE:
        return f"{a}{b}"
    if f"{b}{a}" in CATALOGUE:
        return f"{b}{a}"
    rank = {c: i for i, c in enumerate(("XAU", "XAG", "BTC", "ETH", "EUR", "GBP", "AUD", "NZD", "USD", "CAD",
                                        "CHF", "JPY"))}
    return f"{a}{b}" if rank.get(a, 99) <= rank.get(b, 99) else f"{b}{a}"


def cross_rate(rates: RateTable, target: str, base: str, quote: str, decimals: int | None,
               ex: Explain | None = None) -> dict[str, Any]:
    """The bid/ask of base/quote through the shortest path of quoted legs; with `decimals`, also
    rounded half-up (the unrounded values kept)."""
    c = rates.cross(base, quote, "conversionRates")
    out: dict[str, Any] = {"target": target, "bid": r10(c.bid), "ask": r10(c.ask), "mid": r10(c.mid),
                           "spread": r10(c.ask - c.bid), "path": list(c.path), "currencyPath": list(c.currencies),
                           "ratesUsed": rates.used_public()}
    if decimals is not None:
        out["bidUnrounded"], out["askUnrounded"] = out["bid"], out["ask"]
        out["bid"], out["ask"] = half_up(c.bid, decimals), half_up(c.ask, decimals)
        out["rounding"] = {"decimals": decimals, "mode": "half-up"}
    if ex:
        ex.add("cross", "product of legs; a leg quoted the other way is 1/ask for the bid and 1/bid for the ask",
               {"path": list(c.path)}, {"bid": out["bid"], "ask": out["ask"]})
    return out


# A loss (an amount owed in `from`) is bought at the ask of from/to; a profit is sold at the bid.
CONVERT_SIDES: dict[str, Side] = {"mid": "mid", "loss": "ask", "profit": "bid"}


def convert(rates: RateTable, src: str, dst: str, amount: float, ex: Explain | None = None) -> dict[str, Any]:
    """An amount of src in dst at the mid, the loss side and the profit side."""
    c = rates.cross(src, dst, "conversionRates")
    out: dict[str, Any] = {"from": src, "to": dst, "amount": amount, "path": list(c.path),
                           "currencyPath": list(c.currencies),
                           "rate": {"bid": r10(c.bid), "ask": r10(c.ask), "mid": r10(c.mid)}}
    for name, side in CONVERT_SIDES.items():
        out[name] = r10(amount * c.side(side))
    out["ratesUsed"] = rates.used_public()
    if ex:
        ex.add("convert", "amount x rate; a loss at the ask of from/to, a profit at the bid",
               {"amount": amount, "path": list(c.path)}, {k: out[k] for k in CONVERT_SIDES})
    return out
