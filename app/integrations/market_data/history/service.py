"""HistoryService: daily bars per symbol, served from Postgres and fetched on demand from the provider chain.

The chain is the configured vendors in order, then (development and test only, never production) the
shipped development history. For a request [start, end] the first provider that covers the symbol and
answers wins: what the store lacks of that provider's range is fetched (only the missing days next to
what it already has), stored, and the stored bars are served. Concurrent requests for one symbol share
one fetch (a lock per provider and symbol: the second finds the range stored). When Postgres cannot be
reached the provider's bars are served straight from the fetch (nothing stored).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import structlog

from app.config import Settings
from app.db.engine import Database
from app.db.errors import database_unreachable
from app.errors import AppError, ServiceUnavailable
from app.integrations.market_data.history.bars import (
    DailyBar,
    HistoryError,
    HistoryProvider,
    ProviderRateLimited,
    ProviderUnavailable,
)
from app.integrations.market_data.history.ecb import EcbDevelopmentHistory
from app.integrations.market_data.history.oanda import OandaHistory
from app.integrations.market_data.history.repository import HistoryRepository

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class HistorySeries:
    """Bars of one symbol from one provider, oldest first, with what the answer must say about them."""

    symbol: str
    source: str
    label: str
    development: bool
    close_only: bool
    bars: list[DailyBar]
    providers_tried: list[str] = field(default_factory=list)  # earlier providers that could not serve it


class HistoryNotFound(AppError):
    """No provider in the chain has the symbol's history for the range (422)."""

    status = 422
    slug = "invalid-input"


class HistoryProvidersDown(ServiceUnavailable):
    """Providers that would have it are unreachable or rate-limited right now (503, retry later)."""


def history_error(cls: type[AppError], symbol: str, start: date, end: date, tried: list[str],
                  field_name: str) -> AppError:
    detail = (f"No daily history for {symbol} from {start} to {end}. Providers tried: "
              f"{'; '.join(tried) or 'none configured'}.")
    return cls(detail, errors=[{"field": field_name, "pointer": "#/" + field_name.replace(".", "/")
                                .replace("[", "/").replace("]", ""),
                                "code": "HISTORY_UNAVAILABLE", "detail": detail, "symbol": symbol,
                                "providersTried": tried}])


def calendar_span(count: int) -> int:
    """Calendar days that hold about `count` trading days (5 a week) plus room for holidays."""
    return count * 7 // 5 + count // 20 + 10


class HistoryService:
    def __init__(self, repo: HistoryRepository | None, providers: Sequence[HistoryProvider], *,
                 unavailable: Sequence[str] = (), default_days: int = 250,
                 today: Callable[[], date] | None = None, client: httpx.AsyncClient | None = None) -> None:
        self.repo = repo
        self.providers = list(providers)
        self.unavailable = list(unavailable)  # configured-but-unusable providers, named in errors
        self.default_days = default_days
        self.today = today or (lambda: datetime.now(UTC).date())
        self.client = client
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    @property
    def development_only(self) -> bool:
        return bool(self.providers) and all(p.development for p in self.providers)

    def last_complete_day(self) -> date:
        return self.today() - timedelta(days=1)  # today's bar is still trading

    async def daily(self, symbol: str, *, count: int | None = None, start: date | None = None,
                    end: date | None = None, minimum: int = 1, field_name: str = "symbol") -> HistorySeries:
        """The bars of `symbol` (canonical, e.g. EURUSD): the last `count` up to `end`, or all in
        [start, end]; `end` defaults to (and is capped at) the last complete day."""
        last = self.last_complete_day()
        end = min(end or last, last)
        if start is None and count is None:
            count = self.default_days
        if start is not None and start > end:
            raise HistoryNotFound(f"The history window starts after it ends ({start} > {end}).",
                                  errors=[{"field": field_name, "pointer": "#", "code": "INVALID_WINDOW",
                                           "detail": f"{start} > {end}"}])
        tried = list(self.unavailable)
        transient = False
        for p in self.providers:
            if not p.covers(symbol):
                tried.append(f"{p.name}: does not serve {symbol}")
                continue
            # A fixed data set (the development history) ends where it ends: the last N days are its last N.
            p_end = min(end, p.available_until) if count is not None and p.available_until is not None else end
            p_start = start if start is not None else p_end - timedelta(days=calendar_span(count or 1))
            try:
                bars, _ = await self._ensure(p, symbol, p_start, p_end)
                if count is not None and len(bars) < count:
                    # Holidays or a gap: look further back once for the bars still missing.
                    wider = p_start - timedelta(days=calendar_span(count - len(bars)))
                    bars, _ = await self._ensure(p, symbol, wider, p_end)
            except HistoryError as exc:
                tried.append(f"{exc.provider}: {exc.reason}")
                transient |= isinstance(exc, ProviderUnavailable | ProviderRateLimited)
                continue
            if count is not None:
                bars = bars[-count:]
            if len(bars) < minimum:
                tried.append(f"{p.name}: {len(bars)} daily bars in the window, {minimum} needed")
                continue
            return HistorySeries(symbol, p.name, p.label, p.development, p.close_only, bars, tried)
        if start is None:
            start = end - timedelta(days=calendar_span(count or 1))
        cls = HistoryProvidersDown if transient else HistoryNotFound
        raise history_error(cls, symbol, start, end, tried, field_name)

    async def _ensure(self, p: HistoryProvider, symbol: str, start: date, end: date) -> tuple[list[DailyBar], int]:
        """The provider's bars for [start, end], fetching what the store lacks; also how many ranges were fetched."""
        lock = self._locks.setdefault((p.name, symbol), asyncio.Lock())
        async with lock:
            if self.repo is None:
                return await p.fetch_daily(symbol, start, end), 1
            try:
                covered = await self.repo.coverage(symbol, p.name)
                gaps = missing_ranges(covered, start, end)
                for a, b in gaps:
                    bars = await p.fetch_daily(symbol, a, b)
                    await self.repo.save(symbol, p.name, a, b, bars)
                    log.info("history_fetched", symbol=symbol, provider=p.name, start=str(a), end=str(b),
                             bars=len(bars))
                return await self.repo.bars(symbol, p.name, start, end), len(gaps)
            except Exception as exc:
                if not database_unreachable(exc):
                    raise
            # Postgres is down: serve the provider's answer unstored (a failing store degrades, never fails).
            log.warning("history_store_unreachable", symbol=symbol, provider=p.name)
            return await p.fetch_daily(symbol, start, end), 1

    async def refresh(self, symbols: Sequence[str], days: int) -> dict[str, Any]:
        """Bring every symbol's stored history up to the last complete day (the first provider that serves it).
        Idempotent: a second run finds everything stored and fetches nothing."""
        end = self.last_complete_day()
        start = end - timedelta(days=calendar_span(days))
        out: dict[str, Any] = {"refreshed": {}, "failed": {}, "through": str(end)}
        for symbol in symbols:
            tried = list(self.unavailable)
            for p in self.providers:
                if not p.covers(symbol):
                    continue
                try:
                    bars, fetched = await self._ensure(p, symbol, start, end)
                except HistoryError as exc:
                    tried.append(f"{exc.provider}: {exc.reason}")
                    continue
                out["refreshed"][symbol] = {"source": p.name, "bars": len(bars), "fetchedRanges": fetched,
                                            "lastDay": str(bars[-1].day) if bars else None}
                break
            else:
                out["failed"][symbol] = tried or ["no provider serves it"]
        return out

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()


def missing_ranges(covered: tuple[date, date] | None, start: date, end: date) -> list[tuple[date, date]]:
    """What of [start, end] lies outside the stored range. Each part is stretched to touch the stored range
    (a request far before or after it also fetches the days between), so coverage stays one range."""
    if covered is None:
        return [(start, end)]
    first, last = covered
    gaps: list[tuple[date, date]] = []
    if start < first:
        gaps.append((start, first - timedelta(days=1)))
    if end > last:
        gaps.append((last + timedelta(days=1), end))
    return gaps


def build_history(settings: Settings, db: Database | None) -> HistoryService:
    """The provider chain from Settings: configured vendors in `history_providers` order, then the shipped
    development history unless this is production."""
    client = httpx.AsyncClient(timeout=httpx.Timeout(settings.history_timeout_seconds,
                                                     connect=min(5.0, settings.history_timeout_seconds)),
                               headers={"User-Agent": "forexrisk-history/1"})
    providers: list[HistoryProvider] = []
    unavailable: list[str] = []
    for name in settings.history_providers:
        if name == "oanda":
            if settings.history_oanda_base_url and settings.history_oanda_token is not None:
                providers.append(OandaHistory(client, settings.history_oanda_base_url,
                                              settings.history_oanda_token.get_secret_value(),
                                              retries=settings.history_retries,
                                              backoff=settings.history_retry_backoff_seconds))
            else:
                unavailable.append("oanda: not configured (FOREXRISK_HISTORY_OANDA_BASE_URL and "
                                   "FOREXRISK_HISTORY_OANDA_TOKEN)")
    if settings.history_development_enabled:
        providers.append(EcbDevelopmentHistory())
    return HistoryService(HistoryRepository(db) if db is not None else None, providers, unavailable=unavailable,
                          default_days=settings.history_default_days, client=client)
