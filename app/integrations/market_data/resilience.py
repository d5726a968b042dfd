"""Resilient vendor HTTP: retries with jitter (tenacity), Retry-After honoured, a circuit breaker per provider.

Retries: tenacity, not httpx's transport retries — those retry failed connections only, never a 5xx, a
timeout on read or a 429, which are the failures vendors actually give. Waits are "full jitter"
exponential (AWS architecture blog: clients retrying in lock-step hammer a recovering vendor), except
after a 429 whose Retry-After is short enough to wait out: then exactly that. A longer Retry-After is
not slept on (a calculation is waiting): the breaker holds the provider off until then and the chain moves
on to the next provider.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
import orjson
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential

from app.integrations.market_data.quotes import (
    CircuitOpen,
    ProviderAuthError,
    ProviderBadResponse,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from app.observability.metrics import MARKET_DATA_BREAKER, MARKET_DATA_UPSTREAM

log = structlog.get_logger("market_data")
State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Closed → `failure_threshold` consecutive failures → open (calls refused at once for `reset_seconds`)
    → half-open (one trial call; success closes, failure opens again).

    Hand-written: the maintained async breakers on PyPI (purgatory, aiobreaker, circuitbreaker) read the
    time themselves (no injectable clock, so opening and closing cannot be tested without sleeping), wrap
    the call as a decorator or context manager we would have to bend around tenacity, and have no "hold
    until" for a vendor's Retry-After. This is ~40 lines with a clock parameter.
    """

    def __init__(self, name: str, failure_threshold: int = 5, reset_seconds: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_seconds = reset_seconds
        self.clock = clock
        self.failures = 0
        self.open_until = 0.0
        self._state: State = "closed"
        self._trial_running = False
        MARKET_DATA_BREAKER.labels(name).set(0)

    @property
    def state(self) -> State:
        if self._state == "open" and self.clock() >= self.open_until:
            return "half_open"
        return self._state

    def before(self) -> None:
        """Raise CircuitOpen unless a call may go out now."""
        state = self.state
        if state == "closed":
            return
        if state == "open":
            wait = self.open_until - self.clock()
            raise CircuitOpen(f"circuit open after repeated failures; next try in {wait:.0f} s")
        if self._trial_running:  # half-open: one trial at a time, the others go to the next provider
            raise CircuitOpen("circuit half-open; a trial call is in flight")
        self._trial_running = True

    def success(self) -> None:
        self._trial_running = False
        self.failures = 0
        if self._state != "closed":
            log.info("market_data_circuit_closed", provider=self.name)
        self._state = "closed"
        MARKET_DATA_BREAKER.labels(self.name).set(0)

    def failure(self) -> None:
        was_trial = self._trial_running
        self._trial_running = False
        self.failures += 1
        if was_trial or self.failures >= self.failure_threshold:
            self._open(self.reset_seconds)

    def release(self) -> None:
        """A call ended without a verdict on the vendor (cancelled): let the next caller make the trial."""
        self._trial_running = False

    def hold(self, seconds: float) -> None:
        """Refuse calls for `seconds` (a vendor's Retry-After), whatever the failure count."""
        self._trial_running = False
        self._open(max(seconds, 0.0))

    def _open(self, seconds: float) -> None:
        self.open_until = max(self.open_until, self.clock() + seconds)
        if self._state != "open":
            log.warning("market_data_circuit_open", provider=self.name, seconds=seconds)
        self._state = "open"
        MARKET_DATA_BREAKER.labels(self.name).set(1)


def retry_after_seconds(value: str | None, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> float | None:
    """Retry-After as delay-seconds or an HTTP-date (RFC 9110 §10.2.3); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now()).total_seconds(), 0.0)


ErrorDetail = Callable[[httpx.Response, Any], str | None]


class VendorHttp:
    """The one shared httpx.AsyncClient (built in the lifespan) with the retry policy, plus a breaker per
    provider. `sleep` is injectable so tests never wait on the wall clock."""

    def __init__(self, client: httpx.AsyncClient, *, attempts: int = 3, max_backoff: float = 1.0,
                 max_retry_after: float = 2.0, breaker_failures: int = 5, breaker_reset_seconds: float = 30.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.client = client
        self.attempts = attempts
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        self.breaker_failures = breaker_failures
        self.breaker_reset_seconds = breaker_reset_seconds
        self.clock = clock
        self.sleep = sleep
        self.breakers: dict[str, CircuitBreaker] = {}

    def breaker(self, provider: str) -> CircuitBreaker:
        if provider not in self.breakers:
            self.breakers[provider] = CircuitBreaker(provider, self.breaker_failures, self.breaker_reset_seconds,
                                                     self.clock)
        return self.breakers[provider]

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, ProviderRateLimited) and exc.retry_after is not None:
            return exc.retry_after
        jitter = wait_random_exponential(multiplier=0.1, max=self.max_backoff)
        return float(jitter(state))

    def _retryable(self, exc: BaseException) -> bool:
        if isinstance(exc, ProviderRateLimited):
            # A long Retry-After is not waited on here: the breaker holds the provider off instead.
            return exc.retry_after is None or exc.retry_after <= self.max_retry_after
        return isinstance(exc, ProviderError) and exc.transient

    async def get_json(self, provider: str, url: str, *, params: Mapping[str, str], headers: Mapping[str, str],
                       timeout: float, error_detail: ErrorDetail) -> Any:
        """GET a JSON document through the provider's breaker, with retries. Raises a ProviderError subclass."""
        breaker = self.breaker(provider)
        breaker.before()
        retrying = AsyncRetrying(stop=stop_after_attempt(self.attempts), wait=self._wait,
                                 retry=retry_if_exception(self._retryable), sleep=self.sleep, reraise=True)
        try:
            async for attempt in retrying:
                with attempt:
                    doc = await self._once(provider, url, params, headers, timeout, error_detail)
        except ProviderRateLimited as exc:
            breaker.hold(exc.retry_after if exc.retry_after is not None else self.breaker_reset_seconds)
            raise
        except ProviderError:
            breaker.failure()
            raise
        except BaseException:
            breaker.release()  # cancelled or a bug, not the vendor's failure: free a half-open trial slot
            raise
        breaker.success()
        return doc

    async def _once(self, provider: str, url: str, params: Mapping[str, str], headers: Mapping[str, str],
                    timeout: float, error_detail: ErrorDetail) -> Any:
        try:
            response = await self.client.get(url, params=params, headers=headers, timeout=timeout)
        except httpx.TimeoutException as exc:
            MARKET_DATA_UPSTREAM.labels(provider, "timeout").inc()
            raise ProviderTimeout(f"no answer within {timeout:g} s") from exc
        except httpx.TransportError as exc:
            MARKET_DATA_UPSTREAM.labels(provider, "unreachable").inc()
            raise ProviderUnavailable(f"unreachable: {type(exc).__name__}") from exc
        MARKET_DATA_UPSTREAM.labels(provider, str(response.status_code)).inc()
        try:
            doc: Any = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            doc = None
            if response.is_success:
                raise ProviderBadResponse(f"HTTP {response.status_code} with a body that is not JSON") from None
        status = response.status_code
        if response.is_success:
            vendor = error_detail(response, doc)  # some vendors answer 200 with an error body
            if vendor is not None:
                raise ProviderBadResponse(vendor)
            return doc
        detail = error_detail(response, doc) or response.reason_phrase
        message = f"HTTP {status}: {detail}"
        if status in (401, 403):
            raise ProviderAuthError(message)
        if status == 429:
            raise ProviderRateLimited(message, retry_after_seconds(response.headers.get("retry-after")))
        if status in (408, 425) or status >= 500:
            raise ProviderUnavailable(message)
        raise ProviderBadResponse(message)
