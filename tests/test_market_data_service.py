"""MarketData: the fallback chain, staleness, the quote cache (single flight, Redis second, Redis down),
the development snapshot and the production rule. Vendors are the local loopback servers of
tests/market_vendors.py; Redis is the session's embedded one."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import uuid
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from app.broker_config import BrokerConfig
from app.config import Settings
from app.integrations.market_data import snapshot_build
from app.integrations.market_data.cache import QuoteCache
from app.integrations.market_data.oanda import OandaProvider
from app.integrations.market_data.quotes import Attempt
from app.integrations.market_data.resilience import VendorHttp
from app.integrations.market_data.service import MarketData
from app.integrations.market_data.snapshot import SNAPSHOT_FILE, SnapshotProvider
from app.integrations.market_data.tradermade import TraderMadeProvider
from app.redisdb.hub import RedisHub
from tests.market_vendors import ServedVendors, Vendors

BROKER = uuid.uuid4()
NOW = datetime(2026, 12, 2, 10, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def served() -> Iterator[Vendors]:
    with ServedVendors(Vendors()) as vendors:
        yield vendors


@pytest.fixture
def vendors(served: Vendors) -> Vendors:
    served.plan.clear()
    served.seen.clear()
    served.prices.clear()
    served.gate = None
    return served


async def _no_sleep(seconds: float) -> None:
    return None


def market(client: httpx.AsyncClient, vendors: Vendors, *, hub: RedisHub | None = None, production: bool = False,
           attempts: int = 1) -> MarketData:
    http = VendorHttp(client, attempts=attempts, sleep=_no_sleep)
    providers: dict[str, Any] = {
        "oanda": OandaProvider(http, vendors.base_url, vendors.account, vendors.token, freshness_seconds=30,
                               timeout_seconds=0.3),
        "tradermade": TraderMadeProvider(http, vendors.base_url, vendors.api_key, freshness_seconds=60,
                                         timeout_seconds=0.3),
    }
    if not production:
        providers["snapshot"] = SnapshotProvider()
    return MarketData(providers, QuoteCache(hub, ttl_seconds=10), production=production,
                      default_chain=["broker", "oanda", "tradermade", "snapshot"], http=http, now=lambda: NOW)


def run(vendors: Vendors, scenario: Any, **kw: Any) -> Any:
    async def go() -> Any:
        async with httpx.AsyncClient() as client:
            return await scenario(market(client, vendors, **kw))
    return asyncio.run(go())


def test_the_chain_falls_back_in_order_and_records_every_attempt(vendors: Vendors) -> None:
    vendors.prices["oanda"].update({"EURUSD": (1.0801, 1.0802, NOW - timedelta(seconds=5)),
                                    "USDJPY": (151.2, 151.22, NOW - timedelta(seconds=45))})  # stale (> 30 s)
    vendors.prices["tradermade"].update({"USDJPY": (151.3, 151.32, NOW - timedelta(seconds=10))})

    async def scenario(md: MarketData) -> Any:
        return await md.lookup(BROKER, ["oanda", "tradermade", "snapshot"], ["eur/usd", "USDJPY", "GBPUSD", "US500"])

    result = run(vendors, scenario)
    assert result.quotes["EURUSD"].source == "oanda" and "EURUSD" not in result.attempts
    jpy = result.quotes["USDJPY"]
    assert (jpy.source, jpy.bid) == ("tradermade", 151.3)
    [stale] = result.attempts["USDJPY"]
    assert (stale.provider, stale.outcome) == ("oanda", "stale") and "45 s old; limit 30 s" in stale.detail
    gbp = result.quotes["GBPUSD"]  # neither vendor has it: the snapshot, labelled
    assert gbp.source == "snapshot" and not gbp.live and gbp.label is not None
    assert [(a.provider, a.outcome) for a in result.attempts["GBPUSD"]] == [("oanda", "missing"),
                                                                            ("tradermade", "missing")]
    assert [(a.provider, a.outcome) for a in result.missing["US500"]] == [
        ("oanda", "missing"), ("tradermade", "missing"), ("snapshot", "missing")]
    assert not result.complete
    # one call per provider for all its symbols (batched), and the second vendor only for what was left
    assert [s.query.get("instruments") or s.query.get("currency") for s in vendors.seen] == [
        "EUR_USD,USD_JPY,GBP_USD", "USDJPY,GBPUSD"]


def test_a_stale_quote_is_never_used_silently(vendors: Vendors) -> None:
    vendors.prices["tradermade"]["EURUSD"] = (1.08, 1.0802, NOW - timedelta(minutes=5))

    async def scenario(md: MarketData) -> Any:
        return await md.lookup(BROKER, ["tradermade"], ["EURUSD"])

    result = run(vendors, scenario)
    assert result.quotes == {}
    [attempt] = result.missing["EURUSD"]
    assert attempt.outcome == "stale" and attempt.provider == "tradermade"
    assert not result.unavailable  # every provider answered: a 422 (stale), not a 503


def test_provider_failures_are_named_per_symbol_and_the_chain_moves_on(vendors: Vendors) -> None:
    vendors.plan["oanda"] = ["503"]
    vendors.plan["tradermade"] = ["hold"]

    async def scenario(md: MarketData) -> Any:
        return await md.lookup(BROKER, ["broker", "oanda", "tradermade", "snapshot"], ["EURUSD", "XAUUSD"])

    result = run(vendors, scenario)
    assert result.quotes["EURUSD"].source == "snapshot"
    outcomes = [(a.provider, a.outcome) for a in result.attempts["EURUSD"]]
    assert outcomes == [("broker", "error"), ("oanda", "error"), ("tradermade", "timeout")]
    assert "not configured" in result.attempts["EURUSD"][0].detail  # this MarketData has no broker feed
    assert "HTTP 503" in result.attempts["EURUSD"][1].detail
    assert [a.outcome for a in result.missing["XAUUSD"]] == ["error", "error", "timeout", "missing"]
    assert result.unavailable
    assert result.missing_json() == [{"symbol": "XAUUSD", "attempts": [
        a.to_json() for a in result.missing["XAUUSD"]]}]


def test_fifty_concurrent_misses_for_one_symbol_make_one_upstream_call(vendors: Vendors) -> None:
    vendors.prices["oanda"]["EURUSD"] = (1.0801, 1.0802, NOW)
    vendors.gate = threading.Event()  # the vendor answers only once every lookup has asked

    async def scenario(md: MarketData) -> Any:
        lookups = [asyncio.ensure_future(md.lookup(BROKER, ["oanda"], ["EURUSD"])) for _ in range(50)]
        while vendors.count("oanda") == 0:
            await asyncio.sleep(0.005)
        assert vendors.gate is not None
        vendors.gate.set()
        return await asyncio.gather(*lookups)

    results = run(vendors, scenario)
    assert all(r.quotes["EURUSD"].bid == 1.0801 for r in results)
    assert vendors.count("oanda") == 1


def test_hits_within_the_ttl_make_no_upstream_call(vendors: Vendors) -> None:
    vendors.prices["tradermade"]["GBPUSD"] = (1.27, 1.2702, NOW)

    async def scenario(md: MarketData) -> Any:
        first = await md.lookup(BROKER, ["tradermade"], ["GBPUSD"])
        second = await md.lookup(uuid.uuid4(), ["tradermade"], ["GBPUSD"])  # vendor quotes are shared
        return first, second

    first, second = run(vendors, scenario)
    assert first.quotes["GBPUSD"] == second.quotes["GBPUSD"]
    assert vendors.count("tradermade") == 1


def test_redis_is_the_second_level_shared_by_workers(vendors: Vendors, app_client: TestClient) -> None:
    url = app_client.app.state.services.redis.url  # type: ignore[attr-defined]
    vendors.prices["oanda"]["USDCHF"] = (0.8801, 0.8803, NOW)

    async def go() -> Any:
        hub = RedisHub(url, timeout=1.0)
        try:
            await hub.client.delete("md:q:oanda:USDCHF")
            async with httpx.AsyncClient() as client:
                one, two = market(client, vendors, hub=hub), market(client, vendors, hub=hub)  # two workers
                a = await one.lookup(BROKER, ["oanda"], ["USDCHF"])
                b = await two.lookup(BROKER, ["oanda"], ["USDCHF"])
            ttl = await hub.client.pttl("md:q:oanda:USDCHF")
            return a, b, ttl
        finally:
            await hub.client.delete("md:q:oanda:USDCHF")
            await hub.close()

    a, b, ttl = asyncio.run(go())
    assert a.quotes["USDCHF"] == b.quotes["USDCHF"]
    assert vendors.count("oanda") == 1  # the second worker read it from Redis
    assert 0 < ttl <= 10_000


def test_redis_down_degrades_to_in_process_and_upstream(vendors: Vendors) -> None:
    vendors.prices["tradermade"]["EURUSD"] = (1.08, 1.0802, NOW)

    async def go() -> Any:
        hub = RedisHub("redis://127.0.0.1:1/0", timeout=0.2)  # nothing listens on port 1
        try:
            async with httpx.AsyncClient() as client:
                md = market(client, vendors, hub=hub)
                first = await md.lookup(BROKER, ["tradermade"], ["EURUSD"])
                second = await md.lookup(BROKER, ["tradermade"], ["EURUSD"])
            return first, second, hub.available
        finally:
            await hub.close()

    first, second, available = asyncio.run(go())
    assert first.quotes["EURUSD"].bid == 1.08 and second.quotes["EURUSD"].bid == 1.08
    assert vendors.count("tradermade") == 1 and not available


def test_the_snapshot_is_labelled_dated_and_real() -> None:
    doc = json.loads(SNAPSHOT_FILE.read_text())
    provider = SnapshotProvider()
    quotes = asyncio.run(provider.fetch(["EURUSD", "USDJPY", "GBPUSD", "EURGBP", "EURJPY", "XAUUSD"], BROKER))
    assert "XAUUSD" not in quotes  # the ECB publishes no metal
    for q in quotes.values():
        assert not q.live and q.source == "snapshot" and q.bid == q.ask == q.mid
        assert q.label is not None and doc["date"] in q.label and "not live" in q.label and "snapshot" in q.label
        assert q.time == datetime.fromisoformat(doc["timeUtc"])
    assert quotes["EURUSD"].mid == doc["rates"]["EURUSD"]
    # derived crosses agree with the ECB's EUR rates they come from
    assert quotes["USDJPY"].mid == pytest.approx(doc["rates"]["EURJPY"] / doc["rates"]["EURUSD"], rel=1e-5)
    assert quotes["GBPUSD"].mid == pytest.approx(doc["rates"]["EURUSD"] / doc["rates"]["EURGBP"], rel=1e-5)
    assert "EURUSD" not in doc["derived"] and "GBPUSD" in doc["derived"]


def test_the_snapshot_builder_keeps_the_latest_day_and_derives_crosses() -> None:
    csv = ("Date,USD,JPY,GBP,CHF,CYP,\n"
           "2026-10-30,1.1000,165.00,0.8500,0.9300,N/A,\n"
           "2026-10-29,1.2000,160.00,0.9000,0.9400,N/A,\n")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("eurofxref-hist.csv", csv)
    doc = snapshot_build.build(buf.getvalue())
    rates = doc["rates"]
    assert doc["date"] == "2026-10-30" and doc["timeUtc"] == "2026-10-30T13:15:00+00:00"
    assert rates["EURUSD"] == 1.1 and rates["EURJPY"] == 165.0 and "EURCYP" not in rates
    assert rates["USDJPY"] == 150.0 and rates["GBPUSD"] == pytest.approx(1.1 / 0.85, rel=1e-5)
    assert rates["EURGBP"] == 0.85 and rates["GBPJPY"] == pytest.approx(165 / 0.85, rel=1e-5)
    assert "USDGBP" not in rates and "USDCHF" in rates


def _production_settings(**kw: Any) -> Settings:
    return Settings(environment="production", secret_pepper=SecretStr("p" * 32), encryption_key=SecretStr("k" * 44),
                    jwt_private_key_pem=SecretStr("pem"), session_secret=SecretStr("s" * 32), **kw)


def test_production_never_uses_the_snapshot(vendors: Vendors, app_client: TestClient) -> None:
    db = app_client.app.state.services.db  # type: ignore[attr-defined]

    async def go() -> Any:
        async with httpx.AsyncClient() as client:
            prod = MarketData.build(_production_settings(), db, None, client)
            explicit = MarketData.build(_production_settings(market_data_providers=["broker", "snapshot"]), db,
                                        None, client)
            configured = BrokerConfig.model_validate({"marketData": {"providers": ["snapshot", "broker"]}})
            looked = await prod.lookup(BROKER, ["snapshot"], ["EURUSD"])
            return prod, explicit, configured, looked

    prod, explicit, configured, looked = asyncio.run(go())
    assert "snapshot" not in prod.providers
    assert prod.default_chain == ["broker"]  # no vendor configured on this deployment
    assert explicit.chain_for(None) == ["broker"]
    assert prod.chain_for(configured) == ["broker"]
    assert prod.chain_for({"marketData": {"providers": ["snapshot", "broker"]}}) == ["broker"]
    assert looked.missing["EURUSD"] == [Attempt("snapshot", "error",
                                                "the snapshot is for development only, never used in production")]


def test_the_default_chain_follows_the_deployment(app_client: TestClient) -> None:
    db = app_client.app.state.services.db  # type: ignore[attr-defined]

    async def go() -> Any:
        async with httpx.AsyncClient() as client:
            dev = MarketData.build(Settings(environment="development"), db, None, client)
            vendors = MarketData.build(Settings(environment="development", market_data_oanda_account_id="1",
                                                market_data_oanda_token=SecretStr("t"),
                                                market_data_tradermade_api_key=SecretStr("k")), db, None, client)
            prod = MarketData.build(_production_settings(market_data_tradermade_api_key=SecretStr("k")), db, None,
                                    client)
            return dev, vendors, prod

    dev, vendors, prod = asyncio.run(go())
    assert dev.chain_for(None) == ["broker", "snapshot"]
    assert vendors.chain_for(None) == ["broker", "oanda", "tradermade", "snapshot"]
    assert prod.chain_for(None) == ["broker", "tradermade"]
    assert dev.chain_for(BrokerConfig.model_validate({"marketData": {"providers": ["oanda", "broker"]}})) == [
        "oanda", "broker"]
