"""MarketData: the one object the app asks for quotes (built in the lifespan, `services.market_data`).

`lookup(broker_id, chain, symbols)` walks the broker's fallback chain: each provider is asked (through the
cache) for the symbols still without a fresh quote; a quote older than its provider's freshness limit is
stale and is not used: the attempt is recorded and the next provider is asked. What no provider could
give fresh is `missing`, with every attempt, so the caller can answer a problem naming the symbol and the
providers tried.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from app.broker_config import MARKET_DATA_PROVIDERS, BrokerConfig
from app.calc.instruments import normalise_symbol
from app.config import Settings
from app.db.engine import Database
from app.integrations.market_data.broker_feed import BrokerFeedProvider, BrokerQuotes, PushedQuote, to_quote
from app.integrations.market_data.cache import QuoteCache
from app.integrations.market_data.oanda import OandaProvider
from app.integrations.market_data.quotes import Attempt, Lookup, ProviderError, QuoteProvider
from app.integrations.market_data.resilience import VendorHttp
from app.integrations.market_data.snapshot import SnapshotProvider
from app.integrations.market_data.tradermade import TraderMadeProvider
from app.observability.metrics import MARKET_DATA_QUOTE_AGE, MARKET_DATA_STALE
from app.redisdb.hub import RedisHub

VENDORS = ("oanda", "tradermade")


def build_http_client() -> httpx.AsyncClient:
    """The one outbound client for vendors. Per-call read timeouts come from each provider's setting; these
    bound the rest (a vendor that accepts the connection and never answers must not hold a request)."""
    return httpx.AsyncClient(timeout=httpx.Timeout(5.0, connect=2.0),
                             limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
                             headers={"User-Agent": "ForexRisk market data"}, follow_redirects=False)

# "No quote for this symbol" from each provider: immutable, so one object each (built per miss it cost ~1 us).
MISSING: dict[str, Attempt] = {}


def _missing(name: str) -> Attempt:
    found = MISSING[name] = Attempt(name, "missing", "no quote for this symbol")
    return found


class MarketData:
    def __init__(self, providers: Mapping[str, QuoteProvider], cache: QuoteCache, *, production: bool,
                 default_chain: Sequence[str], http: VendorHttp | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.providers = dict(providers)
        self.cache = cache
        self.production = production
        self.default_chain = list(default_chain)
        self.http = http
        self.now = now
        self._ages: dict[str, Any] = {}  # provider -> its bound quote-age histogram
        self._chains: dict[int, tuple[Any, list[str], tuple[str, ...]]] = {}

    @classmethod
    def build(cls, settings: Settings, db: Database, hub: RedisHub | None, client: httpx.AsyncClient) -> MarketData:
        http = VendorHttp(client, attempts=settings.market_data_retry_attempts,
                          max_retry_after=settings.market_data_max_retry_after_seconds,
                          breaker_failures=settings.market_data_breaker_failures,
                          breaker_reset_seconds=settings.market_data_breaker_reset_seconds)
        providers: dict[str, QuoteProvider] = {
            "broker": BrokerFeedProvider(BrokerQuotes(db), settings.market_data_broker_freshness_seconds),
        }
        if settings.market_data_oanda_token is not None and settings.market_data_oanda_account_id:
            providers["oanda"] = OandaProvider(
                http, settings.market_data_oanda_base_url, settings.market_data_oanda_account_id,
                settings.market_data_oanda_token.get_secret_value(), settings.market_data_oanda_freshness_seconds,
                settings.market_data_oanda_timeout_seconds)
        if settings.market_data_tradermade_api_key is not None:
            providers["tradermade"] = TraderMadeProvider(
                http, settings.market_data_tradermade_base_url,
                settings.market_data_tradermade_api_key.get_secret_value(),
                settings.market_data_tradermade_freshness_seconds, settings.market_data_tradermade_timeout_seconds)
        production = settings.environment == "production"
        if not production:
            providers["snapshot"] = SnapshotProvider()  # never even loaded in production
        chain: list[str] | None = list(settings.market_data_providers or []) or None
        if chain is None:
            chain = ["broker", *(v for v in VENDORS if v in providers), *([] if production else ["snapshot"])]
        cache = QuoteCache(hub, ttl_seconds=settings.market_data_cache_ttl_seconds)
        return cls(providers, cache, production=production, default_chain=chain, http=http)

    def chain_for(self, broker_config: BrokerConfig | Mapping[str, Any] | None) -> list[str]:
        """The broker's fallback chain: its `marketData.providers`, else the deployment's default. The snapshot
        is dropped in production whatever the config says. Remembered per config object (the broker record
        cache hands every request the same one until the config changes)."""
        found = self._chains.get(id(broker_config))
        if found is not None and found[0] is broker_config and found[1] is self.default_chain:
            return list(found[2])
        chain = self._chain_for(broker_config)
        if len(self._chains) >= 4096:
            self._chains.clear()
        # Holding the config keeps its id unique; a new default chain (settings reloaded, a test) misses.
        self._chains[id(broker_config)] = (broker_config, self.default_chain, tuple(chain))
        return chain

    def _chain_for(self, broker_config: BrokerConfig | Mapping[str, Any] | None) -> list[str]:
        chain: Sequence[str] = self.default_chain
        if isinstance(broker_config, BrokerConfig):
            if broker_config.market_data is not None:
                chain = broker_config.market_data.providers
        elif broker_config is not None:
            section = broker_config.get("marketData")
            if isinstance(section, Mapping) and isinstance(section.get("providers"), list):
                chain = [p for p in section["providers"] if p in MARKET_DATA_PROVIDERS]
        return [p for p in dict.fromkeys(chain) if not (self.production and p == "snapshot")]

    async def lookup(self, broker_id: uuid.UUID, providers: Sequence[str], symbols: Sequence[str],
                     canonical: bool = False) -> Lookup:
        """The fresh quotes of `symbols` along the chain, and per missing symbol every provider tried.
        canonical: the symbols are already normalised (a calculation's plan), skip normalising them again."""
        result = Lookup()
        remaining = list(dict.fromkeys(symbols if canonical else (normalise_symbol(s) for s in symbols)))
        tried: dict[str, list[Attempt]] = {s: [] for s in remaining}
        cached_until = math.inf  # every answer from the in-process cache: until when it holds them
        margin = math.inf  # seconds until the first quote used goes stale
        now = self.now()
        for name in dict.fromkeys(providers):
            if not remaining:
                break
            provider = self.providers.get(name)
            if provider is None:
                why = ("the snapshot is for development only, never used in production"
                       if name == "snapshot" and self.production else "not configured on this deployment")
                for symbol in remaining:
                    tried[symbol].append(Attempt(name, "error", why))
                continue
            peeked = self.cache.peek(provider, broker_id, remaining)
            if peeked is None:
                answers = await self.cache.get_many(provider, broker_id, remaining)
                cached_until = -math.inf  # awaited: not reusable
                now = self.now()
            else:
                answers, until = peeked
                cached_until = until if until < cached_until else cached_until
            ages = self._ages.get(name)
            if ages is None:  # bound once per provider: labels() costs more than the observation
                ages = self._ages[name] = MARKET_DATA_QUOTE_AGE.labels(name)
            oldest = -math.inf
            for symbol in remaining:
                answer = answers.get(symbol)
                if isinstance(answer, ProviderError):
                    tried[symbol].append(Attempt(name, answer.outcome, str(answer) or type(answer).__name__))
                elif answer is None:
                    tried[symbol].append(MISSING[name] if name in MISSING else _missing(name))
                elif (age := (now - answer.time).total_seconds()) > provider.freshness_seconds:
                    MARKET_DATA_STALE.labels(name).inc()
                    tried[symbol].append(Attempt(
                        name, "stale", f"quote of {answer.time.isoformat()} is {age:.0f} s old; "
                                       f"limit {provider.freshness_seconds:g} s"))
                else:
                    oldest = age if age > oldest else oldest
                    left = provider.freshness_seconds - age
                    margin = left if left < margin else margin
                    result.quotes[symbol] = answer
            if oldest > -math.inf:  # one observation per lookup: a histogram observation costs ~3 us
                ages.observe(oldest if oldest > 0.0 else 0.0)
            remaining = [s for s in remaining if s not in result.quotes]
        for symbol in remaining:
            result.missing[symbol] = tried[symbol] or [Attempt("-", "missing", "no provider in the chain")]
        for symbol in result.quotes:
            if tried.get(symbol):
                result.attempts[symbol] = tried[symbol]
        if cached_until > -math.inf:
            stale_at = now + timedelta(seconds=min(margin, 86_400.0))
            result.valid = (self.cache.version, cached_until, stale_at)
        return result

    def still_valid(self, lookup: Lookup) -> bool:
        """The same lookup would give this result now: nothing in the in-process cache changed or expired and
        no quote it used has gone stale (calculations reuse their lookup while it holds)."""
        valid = lookup.valid
        return (valid is not None and valid[0] == self.cache.version and self.cache.clock() < valid[1]
                and self.now() < valid[2])

    async def feed_pushed(self, broker_id: uuid.UUID, quotes: Sequence[PushedQuote]) -> None:
        """After a push is stored: the broker's new prices replace its cached ones."""
        provider = self.providers.get("broker")
        if provider is not None:
            await self.cache.put(provider, broker_id, [to_quote(q) for q in quotes])

    @property
    def feed(self) -> BrokerQuotes:
        provider = self.providers["broker"]
        assert isinstance(provider, BrokerFeedProvider)
        return provider.repository
