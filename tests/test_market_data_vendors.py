"""Vendor adapters over real loopback HTTP: documented request and response formats, errors, 429 and
Retry-After, timeouts, retries and the circuit breaker (an injected clock and sleep: nothing here waits on
or measures the wall clock, except the client timeout against a vendor that never answers)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from app.integrations.market_data.oanda import OandaProvider
from app.integrations.market_data.quotes import (
    CircuitOpen,
    ProviderAuthError,
    ProviderBadResponse,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from app.integrations.market_data.resilience import CircuitBreaker, VendorHttp, retry_after_seconds
from app.integrations.market_data.tradermade import TraderMadeProvider
from tests.market_vendors import ServedVendors, Vendors

BROKER = uuid.uuid4()
NOW = datetime.now(UTC).replace(microsecond=250000)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def served() -> Iterator[Vendors]:
    with ServedVendors(Vendors()) as vendors:
        yield vendors


@pytest.fixture
def vendors(served: Vendors) -> Vendors:
    served.plan.clear()
    served.seen.clear()
    served.prices.clear()
    served.prices["oanda"].update({"EURUSD": (1.08012, 1.08025, NOW), "USDJPY": (151.201, 151.215, NOW)})
    served.prices["tradermade"].update({"EURUSD": (1.0801, 1.0803, NOW), "GBPUSD": (1.2699, 1.2701, NOW)})
    return served


class Rig:
    """A VendorHttp on a real httpx client, its sleeps recorded instead of slept, its clock in the test's hand."""

    def __init__(self, vendors: Vendors, **kw: Any) -> None:
        self.clock = Clock()
        self.slept: list[float] = []
        self.vendors = vendors
        self.kw = kw

    async def _sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    async def run(self, scenario: Any) -> Any:
        async with httpx.AsyncClient() as client:
            http = VendorHttp(client, clock=self.clock, sleep=self._sleep, **self.kw)
            oanda = OandaProvider(http, self.vendors.base_url, self.vendors.account, self.vendors.token,
                                  timeout_seconds=0.3)
            tm = TraderMadeProvider(http, self.vendors.base_url, self.vendors.api_key, timeout_seconds=0.3)
            return await scenario(http, oanda, tm)


def test_oanda_request_and_response_in_the_documented_format(vendors: Vendors) -> None:
    async def scenario(http: VendorHttp, oanda: OandaProvider, tm: TraderMadeProvider) -> Any:
        return await oanda.fetch(["EURUSD", "USDJPY", "GBPUSD", "US500"], BROKER)

    quotes = asyncio.run(Rig(vendors).run(scenario))
    assert set(quotes) == {"EURUSD", "USDJPY"}  # GBPUSD: not in the answer; US500: not a pair, never asked
    eur = quotes["EURUSD"]
    assert (eur.bid, eur.ask, eur.source, eur.live, eur.label) == (1.08012, 1.08025, "oanda", True, None)
    assert eur.time == NOW  # nanoseconds cut to microseconds, UTC
    assert eur.mid == pytest.approx((1.08012 + 1.08025) / 2)
    [seen] = vendors.seen
    assert seen.path == f"/v3/accounts/{vendors.account}/pricing"
    assert seen.query == {"instruments": "EUR_USD,USD_JPY,GBP_USD"}
    assert seen.headers["authorization"] == f"Bearer {vendors.token}"
    assert seen.headers["accept-datetime-format"] == "RFC3339"


def test_oanda_instrument_without_liquidity_is_absent(vendors: Vendors) -> None:
    vendors.prices["oanda"]["EURUSD"] = (0.0, 0.0, NOW)  # the fake answers empty bids/asks for a zero price

    async def scenario(http: VendorHttp, oanda: OandaProvider, tm: TraderMadeProvider) -> Any:
        return await oanda.fetch(["EURUSD", "USDJPY"], BROKER)

    assert set(asyncio.run(Rig(vendors).run(scenario))) == {"USDJPY"}


def test_tradermade_request_and_response_in_the_documented_format(vendors: Vendors) -> None:
    async def scenario(http: VendorHttp, oanda: OandaProvider, tm: TraderMadeProvider) -> Any:
        return await tm.fetch(["EURUSD", "GBPUSD", "NZDCAD"], BROKER)

    quotes = asyncio.run(Rig(vendors).run(scenario))
    assert set(quotes) == {"EURUSD", "GBPUSD"}  # NZDCAD came back as an error entry: absent
    gbp = quotes["GBPUSD"]
    assert (gbp.bid, gbp.ask, gbp.mid, gbp.source) == (1.2699, 1.2701, 1.27, "tradermade")
    assert gbp.time == NOW.replace(microsecond=0)  # the answer's Unix `timestamp`
    [seen] = vendors.seen
    assert seen.path == "/api/v1/live"
    assert seen.query == {"currency": "EURUSD,GBPUSD,NZDCAD", "api_key": vendors.api_key}


@pytest.mark.parametrize("vendor", ["oanda", "tradermade"])
def test_a_refused_credential_is_an_auth_error_with_the_vendors_message_and_no_retry(vendors: Vendors,
                                                                                      vendor: str) -> None:
    vendors.plan[vendor] = ["401"]

    async def scenario(http: VendorHttp, oanda: OandaProvider, tm: TraderMadeProvider) -> Any:
        provider = oanda if vendor == "oanda" else tm
        with pytest.raises(ProviderAuthError) as caught:
            await provider.fetch(["EURUSD"], BROKER)
        return str(caught.value)

    detail = asyncio.run(Rig(vendors).run(scenario))
    assert detail.startswith("HTTP 401: ")
    assert ("Insufficient authorization" in detail) if vendor == "oanda" else ("api_key is invalid" in detail)
    assert vendors.count(vendor) == 1


def test_server_errors_are_retried_with_jittered_backoff(vendors: Vendors) -> None:
    vendors.plan["oanda"] = ["500", "503"]

    async def scenario(http: VendorHttp, oanda: OandaProvider, tm: TraderMadeProvider) -> Any:
        return await oanda.fetch(["EURUSD"], BROKER)

    rig = Rig(vendors, attempts=3, max_backoff=1.0)
    assert set(asyncio.run(rig.run(scenario))) == {"EURUSD"}
    assert vendors.count("oanda") == 3
    assert len(rig.slept) == 2 and all(0 <= s <= 1.0 for s in rig.slept)


def test_server_errors_beyond_the_attempts_are_unavailable(vendors: Vendors) -> None:
    vendors.plan["tradermade"] = ["500", "500", "500"]

    async def scenario(http: VendorHttp, oanda: OandaProvider, tm: TraderMadeProvider) -> Any:
        with pytest.raises(ProviderUnavailable, match="HTTP 500"):
            await tm.fetch(["EURUSD"], BROKER)

    asyncio.run(Rig(vendors, attempts=3).run(scenario))
    assert vendors.count("tradermade") == 3


def test_a_short_retry_after_is_waited_exactly(vendors: Vendors) -> None:
    vendors.plan["tradermade"] = ["429:1"]

    async def scenario(http: VendorHttp, oanda: OandaProvider, tm: TraderMadeProvider) -> Any:
        return await tm.fetch(["EURUSD"], BROKER)

    rig = Rig(vendors, max_retry_after=2.0)
    assert set(asyncio.run(rig.run(scenario))) == {"EURUSD"}
    assert rig.slept == [1.0]
    assert vendors.count("tradermade") == 2


def test_a_long_retry_after_holds_the_provider_off_until_then(vendors: Vendors) -> None:
    vendors.plan["oanda"] = ["429:120"]
    rig = Rig(vendors, max_retry_after=2.0)

    async def scenario(http: VendorHttp, oanda: OandaProvider, tm: TraderMadeProvider) -> Any:
        with pytest.raises(ProviderRateLimited) as caught:
            await oanda.fetch(["EURUSD"], BROKER)
        assert caught.value.retry_after == 120 and caught.value.outcome == "rate_limited"
        rig.clock.t += 119
        with pytest.raises(CircuitOpen):  # no request goes out while the vendor asked us to wait
            await oanda.fetch(["EURUSD"], BROKER)
        assert vendors.count("oanda") == 1
        rig.clock.t += 2
        return await oanda.fetch(["EURUSD"], BROKER)

    assert set(asyncio.run(rig.run(scenario))) == {"EURUSD"}
    assert rig.slept == [] and vendors.count("oanda") == 2


def test_malformed_json_is_a_bad_response_not_retried(vendors: Vendors) -> None:
    vendors.plan["oanda"] = ["garbage"]

    async def scenario(http: VendorHttp, oanda: OandaProvider, tm: TraderMadeProvider) -> Any:
        with pytest.raises(ProviderBadResponse, match="not JSON"):
            await oanda.fetch(["EURUSD"], BROKER)

    asyncio.run(Rig(vendors).run(scenario))
    assert vendors.count("oanda") == 1


def test_a_vendor_that_never_answers_times_out_on_every_attempt(vendors: Vendors) -> None:
    vendors.plan["tradermade"] = ["hold", "hold"]

    async def scenario(http: VendorHttp, oanda: OandaProvider, tm: TraderMadeProvider) -> Any:
        with pytest.raises(ProviderTimeout) as caught:
            await tm.fetch(["EURUSD"], BROKER)
        return caught.value

    exc = asyncio.run(Rig(vendors, attempts=2).run(scenario))
    assert exc.outcome == "timeout" and vendors.count("tradermade") == 2


def test_the_breaker_opens_after_repeated_failures_and_closes_after_a_good_trial(vendors: Vendors) -> None:
    vendors.plan["oanda"] = ["500"] * 3 + ["500"]  # three failed calls, then the first half-open trial fails
    rig = Rig(vendors, attempts=1, breaker_failures=3, breaker_reset_seconds=30)

    async def scenario(http: VendorHttp, oanda: OandaProvider, tm: TraderMadeProvider) -> Any:
        breaker = http.breaker("oanda")
        for _ in range(3):
            with pytest.raises(ProviderUnavailable):
                await oanda.fetch(["EURUSD"], BROKER)
        states = [breaker.state]
        with pytest.raises(CircuitOpen):
            await oanda.fetch(["EURUSD"], BROKER)
        assert vendors.count("oanda") == 3  # refused without a request
        rig.clock.t += 30
        states.append(breaker.state)
        assert states == ["open", "half_open"]
        with pytest.raises(ProviderUnavailable):  # the trial fails: open again for another 30 s
            await oanda.fetch(["EURUSD"], BROKER)
        assert breaker.state == "open"
        rig.clock.t += 29
        with pytest.raises(CircuitOpen):
            await oanda.fetch(["EURUSD"], BROKER)
        rig.clock.t += 1
        quotes = await oanda.fetch(["EURUSD"], BROKER)  # the next trial succeeds: closed
        assert breaker.state == "closed" and breaker.failures == 0
        # the other vendor has its own breaker, untouched
        assert http.breaker("tradermade").state == "closed"
        return quotes

    assert set(asyncio.run(rig.run(scenario))) == {"EURUSD"}
    assert vendors.count("oanda") == 5


def test_half_open_lets_one_trial_through_at_a_time() -> None:
    clock = Clock()
    breaker = CircuitBreaker("x", failure_threshold=1, reset_seconds=10, clock=clock)
    breaker.failure()
    clock.t += 10
    breaker.before()  # the trial
    with pytest.raises(CircuitOpen, match="trial"):
        breaker.before()
    breaker.release()  # the trial was cancelled, not failed: the next caller makes it
    breaker.before()
    breaker.success()
    breaker.before()
    assert breaker.state == "closed"


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 12, 2, 10, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 02 Dec 2026 10:00:30 GMT", now=lambda: now) == 30.0
    assert retry_after_seconds("Wed, 02 Dec 2026 09:00:00 GMT", now=lambda: now) == 0.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
