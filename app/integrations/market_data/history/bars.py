"""What every history provider speaks: daily bars, the provider interface and its errors."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Protocol


@dataclass(frozen=True, slots=True)
class DailyBar:
    """One trading day of one symbol. open/high/low are None where the source does not know them (a
    reference-rate fix is one price a day): they are never filled in."""

    symbol: str  # canonical, e.g. EURUSD
    day: date
    open: float | None
    high: float | None
    low: float | None
    close: float
    source: str  # the provider's name


class HistoryProvider(Protocol):
    """A source of daily bars. `fetch_daily` returns the complete bars with start <= day <= end, oldest
    first (an empty list when the source has none in the range)."""

    name: str
    label: str  # what the answer says about the data (vendor and price basis; "development history" if so)
    development: bool  # shipped development data: never used in production
    close_only: bool  # the source gives one price a day (open/high/low unknown)
    available_until: date | None  # a fixed data set's last day (windows end there); None: a live source

    def covers(self, symbol: str) -> bool: ...

    async def fetch_daily(self, symbol: str, start: date, end: date) -> list[DailyBar]: ...


class HistoryError(Exception):
    """A provider could not give the bars; `reason` is short and safe to show to the caller."""

    def __init__(self, provider: str, reason: str) -> None:
        super().__init__(f"{provider}: {reason}")
        self.provider = provider
        self.reason = reason


class ProviderAuthError(HistoryError):
    """The vendor refused our credentials (401/403): a deployment problem, not a transient one."""


class ProviderRateLimited(HistoryError):
    """The vendor answered 429 on every attempt."""


class ProviderUnavailable(HistoryError):
    """Timeouts, connection errors or 5xx on every attempt."""


class ProviderMalformed(HistoryError):
    """The vendor answered 200 with a body that is not its documented format."""


class SymbolNotCovered(HistoryError):
    """The vendor does not know the symbol (its 400/404), or the provider does not serve it."""
