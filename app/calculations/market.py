"""Market rates for a calculation: what the request does not give comes from the broker's quote chain.

The pipeline calls `fill` as the route's `prepare` step (app.calculations.pipeline), on the event loop and
before the request is priced. It works out which rates the request leaves out — the conversion of each
instrument's quote currency to the account currency, the instrument's own price when no price field is
given, the entry price when a direction is given without one — asks the broker's provider chain
(app.integrations.market_data) for them in one lookup, and returns the request with them filled in:

- rates the request gives always win: a conversion the given rates already make is never fetched;
- the fetched rates become part of `conversionRates`, so of the canonical request and of the result
  cache key: a cached answer never outlives its prices;
- every fetched rate is described (provider, time, live or dated snapshot) in the answer's
  `rateSources` and `marketData` (added by `WithSources`, around the engine);
- a rate no provider has fresh is a problem naming the symbol and each provider tried: 503 when a
  provider failed (retrying may help), 422 when none has it fresh (send it in conversionRates).

`"marketRates": false` turns all of it off for a request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from app.auth.admission import Caller
from app.calc.conversion import Quote, RateTable, market_symbol
from app.calc.errors import CalcError, MissingRate
from app.calc.instruments import RATE_NODES, normalise_symbol, split_pair
from app.calculations import schemas as s
from app.calculations.common import rate_table
from app.calculations.service import instrument
from app.errors import AppError, calc_error_item
from app.integrations.market_data.quotes import Lookup
from app.schemas import ApiModel, SidedRate
from app.services import Services

# Bridges tried, in order, when no direct pair converts C to A (the conversion graph's preference).
BRIDGES = ("USD", "EUR")
# Outcomes of a provider attempt that say a provider failed rather than lacked the quote.
FAILED = frozenset({"error", "timeout", "circuit_open", "rate_limited"})


class QuoteUnavailable(AppError):
    """No provider of the broker's chain has a fresh quote the calculation needs."""

    status = 422
    slug = "quote-unavailable"


class QuoteProvidersFailing(QuoteUnavailable):
    status = 503
    slug = "quote-providers-unavailable"


class RateNotQuoted(AppError):
    """The engine's missing conversion rate, after the broker's quote chain was asked and had none fresh: the
    same problem as without market data (the field, the rate that closes the gap) plus what was tried."""

    status = 422
    slug = "missing-conversion-rate"

    @classmethod
    def of(cls, exc: MissingRate, misses: dict[str, Any]) -> RateNotQuoted:
        symbols: dict[str, list[dict[str, str]]] = misses["symbols"]
        tried = "; ".join(f"{sym}: " + (", ".join(f"{a['provider']} {a['outcome']}" for a in attempts) or "no provider")
                          for sym, attempts in symbols.items())
        chain = ", ".join(misses["providers"]) or "none configured"
        detail = f"{exc.detail} The broker's quote chain ({chain}) had no fresh quote: {tried}."
        item = {**calc_error_item(exc), "providersTried": [{"symbol": sym, **a} for sym, attempts in symbols.items()
                                                          for a in attempts]}
        return cls(detail, errors=[item])


@dataclass(slots=True)
class Item:
    """One instrument of a request: its pair, the field that names it, and what it lacks."""

    symbol: str  # the instrument's own pair as the rate table holds it (e.g. EURJPY)
    base: str
    quote: str
    field: str  # where the instrument is named (currencyPair, positions.0.currencyPair)
    has_price: bool  # a price field of the request gives the instrument's own rate
    entry_side: str | None = None  # "ask"/"bid": fill entryPrice from this side of the own quote
    needs_price: bool = False  # the calculation needs the instrument's price and the request gives none


@dataclass(slots=True)
class Needs:
    items: list[Item] = field(default_factory=list)
    conversions: list[tuple[str, str, str]] = field(default_factory=list)  # (from, to, field)


def _pair(symbol: str, override: Any) -> tuple[str, str, str] | None:
    """(table symbol, base, quote) of an instrument, or None when it cannot be resolved (the engine
    reports that itself, with the field)."""
    try:
        spec = instrument(symbol, override)
    except (CalcError, AppError):
        return None
    base = getattr(spec, "base", None) or (split_pair(spec.symbol) or (None, None))[0]
    if not isinstance(base, str) or len(base) != 3 or len(spec.quote) != 3:
        return None
    return spec.symbol, base, spec.quote


_FIELDS: dict[type, frozenset[str]] = {}


def _fields(cls: type) -> frozenset[str]:
    found = _FIELDS.get(cls)
    if found is None:
        found = _FIELDS[cls] = frozenset(getattr(cls, "model_fields", ()))
    return found


def _has(req: Any, *names: str) -> bool:
    # Only the request's own fields: getattr of a name a pydantic model lacks goes through its slow __getattr__.
    own = _fields(type(req))
    return any(n in own and getattr(req, n) is not None for n in names)


# What a single-instrument request's plan depends on: these values, whether these fields are given, and the
# pairs (not the values) of its conversionRates. Requests of one shape share one plan (it costs ~25 us).
SHAPE_VALUES = ("currency_pair", "account_currency", "direction", "target", "from_currency", "to_currency")
SHAPE_GIVEN = ("entry_price", "price", "open_price", "entries")
_PLANS: dict[tuple[Any, ...], tuple[Plan, list[str], RateTable]] = {}
MAX_PLANS = 4096


def _shape(req: Any) -> tuple[Any, ...] | None:
    own = _fields(type(req))
    if "positions" in own or ("instrument" in own and req.instrument is not None):
        return None  # books and custom instruments are planned every time
    rates = req.conversion_rates if "conversion_rates" in own else None
    return (type(req), *(getattr(req, n) if n in own else None for n in SHAPE_VALUES),
            *(n in own and bool(getattr(req, n)) for n in SHAPE_GIVEN), tuple(rates) if rates else ())


def _planned(req: Any, key: tuple[Any, ...] | None) -> tuple[Plan, list[str], RateTable] | None:
    """The request's plan, the symbols to ask for, and the rate graph known before fetching (shared: copy it
    before changing it); key is the request's _shape.
    None when there is nothing to fetch or the given rates are malformed (the engine names them)."""
    found = _PLANS.get(key) if key is not None else None
    if found is None:
        need = needs(req)
        if not need.items and not need.conversions:
            return None
        try:
            given = rate_table(getattr(req, "conversion_rates", None))
        except CalcError:
            return None
        todo = plan(need, given)
        found = todo, todo.symbols(), known_links(need, given)
        if key is not None:
            if len(_PLANS) >= MAX_PLANS:
                _PLANS.clear()
            _PLANS[key] = found
    todo, symbols, table = found
    if not symbols:
        return None
    return todo, symbols, table


def _convertible(src: str, dst: str) -> bool:
    """Both ends are nodes of the conversion graph (an unknown code is the engine's to name, with its field)."""
    return src in RATE_NODES and dst in RATE_NODES


def needs(req: Any) -> Needs:
    """What a request converts and prices, read from its fields (every calculation request names its
    instruments the same way: currencyPair, accountCurrency, positions[])."""
    out = Needs()
    account = getattr(req, "account_currency", None)
    account = account.upper() if isinstance(account, str) else None
    positions = getattr(req, "positions", None)
    if isinstance(positions, list):
        for i, pos in enumerate(positions):
            found = _pair(pos.currency_pair, getattr(pos, "instrument", None))
            if found is None:
                continue
            sym, base, quote = found
            # A position sized in lots needs its price (exposure = lots x contract x price); one given as an
            # account-currency exposure does not.
            priced = _has(pos, "price", "entry_price")
            in_account = getattr(pos, "exposure", None) is not None
            out.items.append(Item(sym, base, quote, f"positions.{i}.currencyPair", priced,
                                  needs_price=not priced and not in_account))
            # An exposure is already in the account currency: nothing to convert.
            if account and not in_account:
                out.conversions.append((quote, account, f"positions.{i}.currencyPair"))
        return out
    pair = getattr(req, "currency_pair", None)
    if isinstance(pair, str):
        found = _pair(pair, getattr(req, "instrument", None))
        if found is None:
            return out
        sym, base, quote = found
        # A single instrument's own price is fetched only as the entry to fill, for a CFD's margin, or as a
        # conversion leg (below) when the conversion needs it: FX margin in the account's own currency needs
        # no price at all.
        has_price = _has(req, "entry_price", "price", "open_price") or bool(getattr(req, "entries", None))
        converts = quote
        needs_price = False
        if isinstance(req, s.MarginRequest):
            spec = instrument(pair, req.instrument)
            if spec.margin_mode == "fx":
                converts = spec.margin_currency
            else:
                needs_price = not has_price
        side = None
        if "entry_price" in type(req).model_fields and getattr(req, "entry_price", None) is None:
            direction = getattr(req, "direction", None)
            side = {"long": "ask", "short": "bid"}.get(direction or "")
        out.items.append(Item(sym, base, quote, "currencyPair", has_price, side, needs_price))
        if account:
            out.conversions.append((converts, account, "currencyPair"))
        return out
    target = getattr(req, "target", None)
    if isinstance(target, str):
        split = split_pair(normalise_symbol(target))
        if split is not None:
            out.conversions.append((split[0], split[1], "target"))
    src, dst = getattr(req, "from_currency", None), getattr(req, "to_currency", None)
    if isinstance(src, str) and isinstance(dst, str):
        out.conversions.append((src.upper(), dst.upper(), "to"))
    return out


@dataclass(slots=True)
class Plan:
    """The symbols to ask the chain for: own pairs, then each unmade conversion's candidates."""

    own: dict[str, Item] = field(default_factory=dict)
    conversions: list[tuple[str, str, str, list[list[str]]]] = field(default_factory=list)

    def symbols(self) -> list[str]:
        seen: dict[str, None] = dict.fromkeys(self.own)
        for *_, options in self.conversions:
            for option in options:
                seen.update(dict.fromkeys(option))
        return list(seen)


def _link(table: RateTable, item: Item) -> None:
    table.set(item.base, item.quote, Quote(1.0, 1.0))  # only the graph's shape matters for planning


def known_links(need: Needs, given: RateTable) -> RateTable:
    """The rate graph the engine will have before anything is fetched: the given rates plus each
    instrument whose price the request gives (or whose entry price is to be filled)."""
    table = given.copy()
    for item in need.items:
        if item.has_price or item.entry_side is not None:
            _link(table, item)
    return table


def plan(need: Needs, given: RateTable) -> Plan:
    out = Plan()
    table = known_links(need, given)
    for item in need.items:
        # An entry to fill is always fetched; an instrument whose price the calculation needs (and the request
        # lacks) is fetched when a provider has it (the engines read it from conversionRates), never refused
        # here: the engine names the field itself.
        if item.entry_side is not None or (item.needs_price and not (given.has(item.base, item.quote)
                                                                    or given.has(item.quote, item.base))):
            out.own[item.symbol] = item
    for src, dst, fname in need.conversions:
        if src == dst or not _convertible(src, dst) or table.route(src, dst) is not None:
            continue
        options = [[market_symbol(src, dst)]]
        for bridge in BRIDGES:
            if bridge in (src, dst):
                continue
            options.append([market_symbol(a, b) for a, b in ((src, bridge), (bridge, dst))
                            if table.route(a, b) is None])
        out.conversions.append((src, dst, fname, options))
    return out


# Per quote object (the quote cache hands the same object to every request for its TTL): its rate as a
# request gives it and its description. Building them costs ~10 us a request; identity keeps them exact.
_VIEWS: dict[int, tuple[Any, float | SidedRate, dict[str, Any]]] = {}
MAX_VIEWS = 8192


def _view(q: Any) -> tuple[float | SidedRate, dict[str, Any]]:
    found = _VIEWS.get(id(q))
    if found is not None and found[0] is q:
        return found[1], found[2]
    value: float | SidedRate = (float(q.bid) if q.bid == q.ask
                                # a MarketQuote's bid <= ask, both positive finite: no validation needed
                                else SidedRate.model_construct(bid=q.bid, ask=q.ask))
    described: dict[str, Any] = {"source": q.source, "given": False,
                                 "time": q.time.isoformat().replace("+00:00", "Z"), "live": q.live, "bid": q.bid,
                                 "ask": q.ask}
    if q.label:
        described["label"] = q.label
    if len(_VIEWS) >= MAX_VIEWS:
        _VIEWS.clear()
    _VIEWS[id(q)] = (q, value, described)  # holding q keeps its id from being reused while cached
    return value, described


def _rate_value(q: Any) -> float | SidedRate:
    return _view(q)[0]


def describe_quote(q: Any) -> dict[str, Any]:
    """A fetched quote as answers name it (RateOrigin: source, time, live, bid, ask, a snapshot's label)."""
    return dict(_view(q)[1])  # a copy: the answer's dict may be extended


def _tried(symbol: str, lookup: Any, providers: list[str]) -> str:
    attempts = lookup.missing.get(symbol) or []
    if not attempts:
        return f"{symbol}: no provider in the chain ({', '.join(providers) or 'none configured'})"
    return f"{symbol}: " + "; ".join(f"{a.provider} {a.outcome}" + (f" ({a.detail})" if a.detail else "")
                                     for a in attempts)


def _refuse(field_name: str, symbols: Iterable[str], lookup: Any, providers: list[str], what: str,
            conversion: bool = False) -> AppError:
    syms = list(symbols)
    failed = any(a.outcome in FAILED for s in syms for a in (lookup.missing.get(s) or []))
    cls = QuoteProvidersFailing if failed else QuoteUnavailable
    detail = (f"No fresh quote for {what}: " + " | ".join(_tried(s, lookup, providers) for s in syms)
              + ". Send the rate in conversionRates, or retry." if failed else
              f"No fresh quote for {what}: " + " | ".join(_tried(s, lookup, providers) for s in syms)
              + ". Send the rate in conversionRates.")
    return cls(detail, errors=[{"field": field_name, "pointer": "#/" + field_name.replace(".", "/"),
                                "code": "quote_unavailable", "detail": _tried(s, lookup, providers),
                                "symbol": s,
                                "providersTried": [{"provider": a.provider, "outcome": a.outcome}
                                                   for a in (lookup.missing.get(s) or [])],
                                # As MISSING_CONVERSION_RATE names it: a client may ask its user for the rate.
                                **({"neededRate": s} if conversion else {})}
                               for s in syms])


@dataclass(frozen=True, slots=True)
class Resolved:
    """What a plan makes of one set of quotes: the rates to add, the fields to fill, the misses, the
    description. The same for every request of one shape while its lookup holds."""

    rates: dict[str, float | SidedRate]  # fetched symbol -> its rate as a request gives it
    update: dict[str, Any]  # fields to set (entry_price)
    misses: dict[str, list[dict[str, str]]]  # symbols no provider had fresh -> what was tried
    meta: dict[str, Any] | None  # the answer's marketData (never mutated after it is built)


# Per (request shape, broker, provider chain): the lookup it made and what the plan made of it. Working it out
# costs ~12 us a request; while the lookup still holds (nothing in the quote cache changed or expired, no quote
# went stale: MarketData.still_valid) every request of that shape reuses it. Misses and refusals are not kept.
_FILLED: dict[tuple[Any, ...], tuple[Lookup, Resolved]] = {}
MAX_FILLED = 8192


async def fill(req: Any, caller: Caller, svc: Services) -> Any:
    """The request with the rates it leaves out fetched from the broker's chain (the route's prepare)."""
    if not isinstance(req, ApiModel) or not getattr(req, "market_rates", False):
        return req
    market = svc.market_data
    providers = market.chain_for(caller.broker.config)
    key = _shape(req)
    memo_key = (key, caller.principal.broker_id, *providers) if key is not None else None
    found = _FILLED.get(memo_key) if memo_key is not None else None
    if found is not None and market.still_valid(found[0]):
        done = found[1]
    else:
        planned = _planned(req, key)
        if planned is None:
            return req
        todo, symbols, table = planned
        lookup = await market.lookup(caller.principal.broker_id, providers, symbols, canonical=True)
        done = resolve(todo, table.copy(), lookup, providers)
        if memo_key is not None and lookup.valid is not None and not done.misses:
            if len(_FILLED) >= MAX_FILLED:
                _FILLED.clear()
            _FILLED[memo_key] = (lookup, done)
    if not done.rates and not done.update and not done.misses:
        return req
    update = dict(done.update)
    if "conversion_rates" in _fields(type(req)):
        given: dict[str, Any] = getattr(req, "conversion_rates", None) or {}
        if given:  # rates the request gives always win
            named = {normalise_symbol(k) for k in given}
            update["conversion_rates"] = {**given, **{k: v for k, v in done.rates.items() if k not in named}}
        else:
            update["conversion_rates"] = dict(done.rates)
    out = req.model_copy(update=update)  # private attributes (the broker's leverage cap) come along
    if done.misses:
        out._quote_misses = {"providers": providers, "symbols": done.misses}
    if done.meta is not None:
        out._market = done.meta
    return out


def resolve(todo: Plan, table: RateTable, lookup: Lookup, providers: list[str]) -> Resolved:
    """Which fetched quotes the plan uses (own prices, entry, conversion legs) and how they are described;
    raises the quote problem when an entry has no quote or a provider failed on a needed conversion."""
    quotes = lookup.quotes
    fetched: dict[str, Any] = {}
    update: dict[str, Any] = {}
    entry: Item | None = None
    for sym, item in todo.own.items():
        q = quotes.get(sym)
        if item.entry_side is not None:
            if q is None:
                raise _refuse("entryPrice", [sym], lookup, providers, f"the entry price of {sym}")
            update["entry_price"] = q.ask if item.entry_side == "ask" else q.bid
            entry = item
        elif q is not None:
            fetched[sym] = q
            _link(table, item)
    misses: dict[str, list[dict[str, str]]] = {}
    for src, dst, _fname, options in todo.conversions:
        if table.route(src, dst) is not None:  # an instrument fetched above made it
            continue
        chosen = next((o for o in options if all(s in quotes for s in o)), None)
        if chosen is None:
            asked = [sym for option in options for sym in option if sym not in quotes]
            if any(a.outcome in FAILED for sym in asked for a in (lookup.missing.get(sym) or [])):
                # A provider failed: retrying may help, so say so now (503) rather than as a missing rate.
                raise _refuse("conversionRates", options[0], lookup, providers, f"converting {src} to {dst}",
                              conversion=True)
            # Nobody has it fresh: the engine names the rate that closes the gap (the cheapest pair, never the
            # instrument itself) as it does without market data; WithSources adds what the chain was asked.
            for sym in asked:
                misses[sym] = [{"provider": a.provider, "outcome": a.outcome} for a in (lookup.missing.get(sym) or [])]
            continue
        for sym in chosen:
            fetched.setdefault(sym, quotes[sym])
            pair = split_pair(sym)
            if pair is not None:
                table.set(pair[0], pair[1], Quote(1.0, 1.0))
    rates = {sym: _rate_value(q) for sym, q in fetched.items()}
    if not fetched and not update:
        return Resolved(rates, update, misses, None)
    meta: dict[str, Any] = {"providers": providers, "fetched": {s: describe_quote(q) for s, q in fetched.items()}}
    used = list(fetched.values())
    if entry is not None:
        q = quotes[entry.symbol]
        used.append(q)
        meta["entryPrice"] = {"value": update["entry_price"], "side": entry.entry_side, "symbol": entry.symbol,
                              **describe_quote(q)}
    snapshot = sorted({q.label for q in used if not q.live and q.label})
    if snapshot:
        meta["snapshot"] = snapshot
    return Resolved(rates, update, misses, meta)


def rate_sources(out: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """For every rate the answer used: where it came from, when it was priced, given or fetched."""
    fetched = meta["fetched"]
    entry = meta.get("entryPrice")
    sources: dict[str, Any] = {}
    used = out.get("ratesUsed")
    for sym in used if isinstance(used, dict) else ():
        found = fetched.get(sym)
        if found is None and entry is not None and entry["symbol"] == sym:
            # The instrument's own rate is the entry price the chain filled, not one the request gave.
            found = {k: v for k, v in entry.items() if k not in ("value", "symbol")} | {"field": "entryPrice"}
        sources[sym] = found or {"source": "request", "given": True}
    return sources


@dataclass(frozen=True, slots=True)
class WithSources:
    """An engine whose answer says where its market rates came from (module-level, so it pickles to the
    process pool by reference like the engine it wraps)."""

    engine: Callable[[Any, bool], dict[str, Any]]

    @property
    def __name__(self) -> str:  # the operation id of the route (app.openapi) is the engine's name
        return self.engine.__name__

    def __call__(self, req: Any, explain: bool) -> dict[str, Any]:
        try:
            out = self.engine(req, explain)
        except MissingRate as exc:
            misses = getattr(req, "_quote_misses", None)
            if not misses:
                raise
            raise RateNotQuoted.of(exc, misses) from None
        # The private-attribute dict directly: getattr goes through pydantic's slow __getattr__.
        private = getattr(req, "__pydantic_private__", None) or {}
        meta = private.get("_market")
        if meta:
            out["rateSources"] = _sources(out, meta)
            out["marketData"] = meta
        return out


# Per (marketData object, symbols of ratesUsed): the answer's rateSources. Every request that reuses a lookup
# (fill's memo) shares its marketData, so this is built once per lookup, not per request (~2.5 us). Never mutated.
_SOURCES: dict[tuple[int, tuple[str, ...]], tuple[dict[str, Any], dict[str, Any]]] = {}


def _sources(out: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    used = out.get("ratesUsed")
    key = (id(meta), tuple(used) if isinstance(used, dict) else ())
    found = _SOURCES.get(key)
    if found is not None and found[0] is meta:
        return found[1]
    sources = rate_sources(out, meta)
    if len(_SOURCES) >= MAX_FILLED:
        _SOURCES.clear()
    _SOURCES[key] = (meta, sources)  # holding meta keeps its id from being reused
    return sources


@dataclass(frozen=True, slots=True)
class Then:
    """Two prepare steps in order (history first: the rates then cover the book it completed)."""

    first: Callable[[Any, Caller, Services], Awaitable[Any]]
    second: Callable[[Any, Caller, Services], Awaitable[Any]]

    async def __call__(self, req: Any, caller: Caller, svc: Services) -> Any:
        return await self.second(await self.first(req, caller, svc), caller, svc)
