"""The quote interface every provider speaks, and what a lookup answers.

A provider answers the symbols it has (an absent symbol: it does not have it) or raises a ProviderError
subclass for the whole call. Whether a quote is fresh enough is decided by the service (service.py) from
the provider's `freshness_seconds`, never silently: each provider tried for a symbol leaves an Attempt.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, Protocol

from app.calc.instruments import normalise_symbol

Outcome = Literal["missing", "stale", "error", "circuit_open", "timeout", "rate_limited"]


@dataclass(frozen=True, slots=True)
class MarketQuote:
    """One price of one symbol. `time` is when the price was made (aware UTC), not when we fetched it."""

    symbol: str
    bid: float
    ask: float
    time: datetime
    source: str
    live: bool = True
    # Shown with the price wherever it is used: e.g. "ECB euro reference rates of 2026-11-27 — dated
    # snapshot, not live". None for live quotes.
    label: str | None = None
    given_mid: float | None = None  # the provider's own mid, when it sends one

    def __post_init__(self) -> None:
        object.__setattr__(self, "symbol", normalise_symbol(self.symbol))
        if self.time.tzinfo is None:
            raise ValueError("MarketQuote.time must be timezone-aware")
        object.__setattr__(self, "time", self.time.astimezone(UTC))
        for name in ("bid", "ask"):
            value = getattr(self, name)
            if not (isinstance(value, float | int) and math.isfinite(value) and value > 0):
                raise ValueError(f"MarketQuote.{name} must be a positive finite number")
        if self.bid > self.ask:
            raise ValueError("MarketQuote: bid above ask")

    @property
    def mid(self) -> float:
        return self.given_mid if self.given_mid is not None else (self.bid + self.ask) / 2

    def age_seconds(self, now: datetime) -> float:
        return (now - self.time).total_seconds()

    def to_json(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "bid": self.bid, "ask": self.ask, "mid": self.given_mid,
                "time": self.time.isoformat(), "source": self.source, "live": self.live, "label": self.label}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> MarketQuote:
        return cls(symbol=doc["symbol"], bid=float(doc["bid"]), ask=float(doc["ask"]),
                   time=datetime.fromisoformat(doc["time"]), source=doc["source"], live=bool(doc["live"]),
                   label=doc.get("label"), given_mid=None if doc.get("mid") is None else float(doc["mid"]))


@dataclass(frozen=True, slots=True)
class Attempt:
    """One provider tried for one symbol, and why it gave no usable quote (or, for a found symbol, why the
    providers before the one that answered did not)."""

    provider: str
    outcome: Outcome
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"provider": self.provider, "outcome": self.outcome, "detail": self.detail}


@dataclass(slots=True)
class Lookup:
    """`quotes`: a fresh quote per symbol found. `missing`: every symbol without one, with each provider tried
    (for a 422/503 problem naming the symbol and the providers). `attempts`: for found symbols, the providers
    earlier in the chain that had nothing usable (empty when the first provider answered)."""

    quotes: dict[str, MarketQuote] = field(default_factory=dict)
    missing: dict[str, list[Attempt]] = field(default_factory=dict)
    attempts: dict[str, list[Attempt]] = field(default_factory=dict)
    # Set when every answer came from the in-process cache: (cache version, earliest cache expiry on the
    # cache's clock, earliest moment a quote used goes stale). Until then the same lookup gives this result.
    valid: tuple[int, float, datetime] | None = None

    @property
    def complete(self) -> bool:
        return not self.missing

    def missing_json(self) -> list[dict[str, Any]]:
        """The missing symbols with the providers tried, for a problem body:
        `[{"symbol": "EURJPY", "attempts": [{"provider": "broker", "outcome": "stale", "detail": ...}]}]`."""
        return [{"symbol": symbol, "attempts": [a.to_json() for a in attempts]}
                for symbol, attempts in self.missing.items()]

    @property
    def unavailable(self) -> bool:
        """True when some missing symbol failed for a provider fault (error, timeout, breaker, rate limit),
        not only because no provider has it or all were stale: a 503 rather than a 422 is then the honest answer."""
        return any(a.outcome not in ("missing", "stale") for attempts in self.missing.values() for a in attempts)


class ProviderError(Exception):
    """A provider call failed as a whole (every symbol of the call). `outcome` goes into the Attempt."""

    outcome: ClassVar[Outcome] = "error"
    # Worth another try after a short wait (timeouts, 5xx, dropped connections, a short 429).
    transient: ClassVar[bool] = False


class ProviderTimeout(ProviderError):
    outcome = "timeout"
    transient = True


class ProviderUnavailable(ProviderError):
    """5xx, refused or dropped connection."""

    transient = True


class ProviderAuthError(ProviderError):
    """401/403: the deployment's token is wrong, expired or lacks the plan; retrying will not help."""


class ProviderBadResponse(ProviderError):
    """The answer is not in the vendor's documented format (malformed JSON, missing fields, a 4xx other
    than auth and rate limits, a vendor-specific error body)."""


class ProviderRateLimited(ProviderError):
    outcome = "rate_limited"
    transient = True

    def __init__(self, detail: str, retry_after: float | None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class CircuitOpen(ProviderError):
    outcome = "circuit_open"


class QuoteProvider(Protocol):
    """What the service calls. `shared`: quotes are public market data that any broker may be served from the
    cache (vendors, the snapshot); False for a broker's own feed, cached per broker."""

    name: str
    freshness_seconds: float
    shared: bool

    async def fetch(self, symbols: Sequence[str], broker_id: uuid.UUID) -> dict[str, MarketQuote]: ...
