"""Market history providers and store: the OANDA adapter against a loopback server speaking OANDA v20's
documented format (errors, 429, 5xx, slow answers), the Postgres store with on-demand refresh of only the
missing range, one upstream call for concurrent misses, the idempotent refresh job, the provider chain
(development history never in production)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import date
from typing import Any, TypeVar

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.config import Settings
from app.db.bootstrap import DatabaseUrls
from app.db.engine import Database
from app.integrations.market_data.history.bars import (
    ProviderAuthError,
    ProviderMalformed,
    ProviderRateLimited,
    ProviderUnavailable,
    SymbolNotCovered,
)
from app.integrations.market_data.history.ecb import EcbDevelopmentHistory, load
from app.integrations.market_data.history.oanda import OandaHistory, trading_day
from app.integrations.market_data.history.repository import HistoryRepository
from app.integrations.market_data.history.service import (
    HistoryNotFound,
    HistoryProvidersDown,
    HistoryService,
    build_history,
    missing_ranges,
)
from app.integrations.market_data.history.tasks import refresh_history
from tests.helpers_auth import sql
from tests.oanda_server import TOKEN, OandaServer, make_bars

T = TypeVar("T")
TODAY = date(2026, 11, 20)


@pytest.fixture
def server() -> Iterator[OandaServer]:
    s = OandaServer(bars={"EUR_USD": make_bars(date(2026, 6, 1), date(2026, 11, 19)),
                          "GBP_USD": make_bars(date(2026, 6, 1), date(2026, 11, 19), base=1.27)}).start()
    yield s
    s.stop()


def run(factory: Callable[[httpx.AsyncClient], Awaitable[T]], timeout: float = 5.0) -> T:
    async def go() -> T:
        async with httpx.AsyncClient(timeout=timeout) as http:
            return await factory(http)
    return asyncio.run(go())


def oanda(http: httpx.AsyncClient, server: OandaServer, token: str = TOKEN, retries: int = 2) -> OandaHistory:
    return OandaHistory(http, server.base_url, token, retries=retries, backoff=0.0)


def test_candles_are_read_as_documented(server: OandaServer) -> None:
    bars = run(lambda h: oanda(h, server).fetch_daily("EURUSD", date(2026, 11, 2), date(2026, 11, 13)))
    days = [b.day for b in bars]
    assert days == [date(2026, 11, d) for d in (2, 3, 4, 5, 6, 9, 10, 11, 12, 13)]
    want = {b["day"]: b for b in server.bars["EUR_USD"]}
    for b in bars:
        w = want[b.day]
        assert (b.open, b.high, b.low, b.close) == (w["o"], w["h"], w["l"], w["c"]) and b.source == "oanda"
    req = server.requests[0]
    assert req["instrument"] == "EUR_USD" and req["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert req["query"]["granularity"] == ["D"] and req["query"]["price"] == ["M"]
    assert req["headers"]["accept-datetime-format"] == "RFC3339"
    # A trading day's candle opens at 17:00 New York the evening before (21:00Z summer, 22:00Z winter).
    assert trading_day("2026-07-13T21:00:00.000000000Z") == date(2026, 7, 14)
    assert trading_day("2026-11-16T22:00:00.000000000Z") == date(2026, 11, 17)


def test_incomplete_candle_is_left_out(server: OandaServer) -> None:
    server.incomplete_last = True
    bars = run(lambda h: oanda(h, server).fetch_daily("EURUSD", date(2026, 11, 2), date(2026, 11, 13)))
    assert bars[-1].day == date(2026, 11, 12)


def test_vendor_refusals_map_to_clear_errors(server: OandaServer) -> None:
    with pytest.raises(ProviderAuthError, match="Insufficient authorization"):
        run(lambda h: oanda(h, server, token="wrong").fetch_daily("EURUSD", date(2026, 11, 2), date(2026, 11, 6)))
    assert server.candle_calls() == 1  # a refused token is not retried
    with pytest.raises(SymbolNotCovered, match="Invalid value specified for 'instrument'"):
        run(lambda h: oanda(h, server).fetch_daily("USDTRY", date(2026, 11, 2), date(2026, 11, 6)))
    server.script = ["junk"]
    with pytest.raises(ProviderMalformed, match="candle 0"):
        run(lambda h: oanda(h, server).fetch_daily("EURUSD", date(2026, 11, 2), date(2026, 11, 6)))


def test_rate_limits_and_server_errors_are_retried_then_reported(server: OandaServer) -> None:
    server.script = ["429", "500"]
    bars = run(lambda h: oanda(h, server, retries=2).fetch_daily("EURUSD", date(2026, 11, 2), date(2026, 11, 6)))
    assert len(bars) == 5 and server.candle_calls() == 3
    server.requests.clear()
    server.script = ["429", "429", "429"]
    with pytest.raises(ProviderRateLimited, match="429"):
        run(lambda h: oanda(h, server, retries=2).fetch_daily("EURUSD", date(2026, 11, 2), date(2026, 11, 6)))
    assert server.candle_calls() == 3
    server.script = ["500", "500"]
    with pytest.raises(ProviderUnavailable, match="server error 500"):
        run(lambda h: oanda(h, server, retries=1).fetch_daily("EURUSD", date(2026, 11, 2), date(2026, 11, 6)))


def test_an_answer_that_never_comes_times_out(server: OandaServer) -> None:
    # The server holds the request until the test ends: the client's timeout fires whatever the machine's speed.
    server.script = ["slow"]
    with pytest.raises(ProviderUnavailable, match="timed out"):
        run(lambda h: oanda(h, server, retries=0).fetch_daily("EURUSD", date(2026, 11, 2), date(2026, 11, 6)),
            timeout=0.3)


def test_missing_ranges_touch_what_is_stored() -> None:
    d = date
    assert missing_ranges(None, d(2026, 1, 1), d(2026, 2, 1)) == [(d(2026, 1, 1), d(2026, 2, 1))]
    stored = (d(2026, 1, 10), d(2026, 1, 20))
    assert missing_ranges(stored, d(2026, 1, 12), d(2026, 1, 18)) == []
    assert missing_ranges(stored, d(2026, 1, 1), d(2026, 1, 25)) == [(d(2026, 1, 1), d(2026, 1, 9)),
                                                                     (d(2026, 1, 21), d(2026, 1, 25))]
    # Far after the stored range: the days between are fetched too, so coverage stays one range.
    assert missing_ranges(stored, d(2026, 3, 1), d(2026, 3, 5)) == [(d(2026, 1, 21), d(2026, 3, 5))]


# ---- store, on-demand refresh, single flight, job (real Postgres of the session app) ----

@pytest.fixture
def store(client: TestClient) -> Iterator[TestClient]:
    sql(client, "delete from market_daily_bars")
    sql(client, "delete from market_history_coverage")
    yield client


def on_app(client: TestClient, fn: Callable[[HistoryRepository], Awaitable[T]]) -> T:
    repo = HistoryRepository(client.app.state.services.db)  # type: ignore[attr-defined]

    async def go() -> T:
        return await fn(repo)
    return client.portal.call(go)  # type: ignore[arg-type]


def service(repo: HistoryRepository, http: httpx.AsyncClient, server: OandaServer, today: date = TODAY,
            *extra: Any) -> HistoryService:
    return HistoryService(repo, [oanda(http, server), *extra], today=lambda: today)


def test_history_is_stored_and_only_the_missing_days_are_fetched(store: TestClient, server: OandaServer) -> None:
    async def scenario(repo: HistoryRepository) -> tuple[Any, Any, Any]:
        async with httpx.AsyncClient(timeout=5) as http:
            first = await service(repo, http, server).daily("EURUSD", count=20)
            again = await service(repo, http, server).daily("EURUSD", count=20)
            later = await service(repo, http, server, date(2026, 11, 25)).daily("EURUSD", count=20)
            return first, again, later

    first, again, later = on_app(store, scenario)
    assert len(first.bars) == 20 and first.bars[-1].day == date(2026, 11, 19) and first.source == "oanda"
    assert first.development is False and first.close_only is False
    assert again.bars == first.bars
    # Three calls: the first fetch, none for the repeat, then only the days after what was stored.
    assert server.candle_calls() == 2
    # Days from 2026-11-20 on: the candle of the 20th opens the evening before.
    assert server.requests[1]["query"]["from"] == ["2026-11-19T12:00:00Z"]
    assert later.bars[-1].day == date(2026, 11, 19)  # the server has nothing newer
    rows = sql(store, "select count(*), min(day), max(day), bool_and(high >= low) from market_daily_bars "
                      "where symbol = 'EURUSD' and source = 'oanda'")
    assert rows[0][0] >= 20 and rows[0][2] == date(2026, 11, 19) and rows[0][3] is True
    cov = sql(store, "select first_day, last_day from market_history_coverage where symbol = 'EURUSD'")
    assert cov[0][1] == date(2026, 11, 24)


def test_fifty_concurrent_misses_make_one_upstream_call(store: TestClient, server: OandaServer) -> None:
    async def scenario(repo: HistoryRepository) -> list[Any]:
        async with httpx.AsyncClient(timeout=5) as http:
            svc = service(repo, http, server)
            return list(await asyncio.gather(*(svc.daily("GBPUSD", count=30) for _ in range(50))))

    results = on_app(store, scenario)
    assert server.candle_calls("GBP_USD") == 1
    assert all(r.bars == results[0].bars for r in results) and len(results[0].bars) == 30


def test_refresh_job_is_idempotent(store: TestClient, server: OandaServer) -> None:
    async def scenario(repo: HistoryRepository) -> tuple[dict[str, Any], dict[str, Any]]:
        async with httpx.AsyncClient(timeout=5) as http:
            svc = HistoryService(repo, [oanda(http, server), EcbDevelopmentHistory()], default_days=60,
                                 today=lambda: TODAY)
            one = await refresh_history({"history": svc}, ["EURUSD", "gbp/usd", "USDJPY"])
            two = await refresh_history({"history": svc}, ["EURUSD", "gbp/usd", "USDJPY"])
            return one, two

    count = "select count(*) from market_daily_bars"
    one, two = on_app(store, scenario)
    assert one["refreshed"]["EURUSD"]["source"] == "oanda" and one["refreshed"]["EURUSD"]["fetchedRanges"] == 1
    assert one["refreshed"]["GBPUSD"]["lastDay"] == "2026-11-19"
    # USDJPY: the vendor refuses it; the development history serves it (test environment).
    assert one["refreshed"]["USDJPY"]["source"] == "ecb-development"
    assert {s: r["fetchedRanges"] for s, r in two["refreshed"].items()} == {"EURUSD": 0, "GBPUSD": 0, "USDJPY": 0}
    # Three calls in the first run; in the second only USDJPY asks the vendor again (it refused, nothing stored).
    assert [r["instrument"] for r in server.requests] == ["EUR_USD", "GBP_USD", "USD_JPY", "USD_JPY"]
    assert {s: r["bars"] for s, r in two["refreshed"].items()} == {s: r["bars"] for s, r in one["refreshed"].items()}
    before = sql(store, count)[0][0]
    on_app(store, lambda repo: refresh_history({"history": HistoryService(
        repo, [EcbDevelopmentHistory()], default_days=60, today=lambda: TODAY)}, ["USDJPY"]))
    assert sql(store, count)[0][0] == before


def test_chain_falls_back_and_names_every_provider_tried(store: TestClient, server: OandaServer) -> None:
    server.script = ["500"] * 10

    async def scenario(repo: HistoryRepository) -> Any:
        async with httpx.AsyncClient(timeout=5) as http:
            svc = HistoryService(repo, [oanda(http, server, retries=1), EcbDevelopmentHistory()], today=lambda: TODAY)
            return await svc.daily("EURUSD", count=10)

    got = on_app(store, scenario)
    assert got.source == "ecb-development" and got.development and got.close_only
    assert got.providers_tried == ["oanda: server error 500"]
    assert all(b.open is None and b.high is None and b.low is None for b in got.bars)

    async def down(repo: HistoryRepository) -> Any:
        async with httpx.AsyncClient(timeout=5) as http:
            server.script = ["500"] * 10
            return await HistoryService(repo, [oanda(http, server, retries=0)], today=lambda: TODAY).daily("GBPUSD")

    with pytest.raises(HistoryProvidersDown) as exc:
        on_app(store, down)
    assert exc.value.status == 503 and "GBPUSD" in exc.value.detail and "oanda: server error 500" in exc.value.detail


def test_development_history_is_real_ecb_data_labelled_as_such() -> None:
    fixes = load()
    assert fixes.days == sorted(fixes.days) and len(fixes.days) > 700
    ecb = EcbDevelopmentHistory()
    assert "DEVELOPMENT HISTORY" in ecb.label and "ECB" in ecb.label and ecb.development and ecb.close_only
    bars = asyncio.run(ecb.fetch_daily("USDJPY", fixes.days[-1], fixes.days[-1]))
    i = len(fixes.days) - 1
    assert bars[0].close == fixes.per_eur["JPY"][i] / fixes.per_eur["USD"][i]  # derived from the day's two fixes
    assert bars[0].high is None and bars[0].open is None
    eur = asyncio.run(ecb.fetch_daily("EURUSD", fixes.days[-1], fixes.days[-1]))
    assert eur[0].close == fixes.per_eur["USD"][i]
    assert not ecb.covers("USDTRY") and not ecb.covers("XAUUSD")


def test_production_never_uses_the_development_history() -> None:
    secrets = {"secret_pepper": "p" * 32, "encryption_key": "k" * 44, "jwt_private_key_pem": "x",
               "session_secret": "s" * 32}
    prod = Settings(environment="production", **secrets)  # type: ignore[arg-type]
    svc = build_history(prod, None)
    assert svc.providers == [] and svc.unavailable[0].startswith("oanda: not configured")
    with pytest.raises(HistoryNotFound) as exc:
        asyncio.run(svc.daily("EURUSD", count=10))
    assert "oanda: not configured" in exc.value.detail and exc.value.status == 422
    asyncio.run(svc.close())
    with pytest.raises(ValidationError, match="development history"):
        Settings(environment="production", history_development_data=True, **secrets)  # type: ignore[arg-type]
    configured = build_history(Settings(environment="production", history_oanda_base_url="https://api.example",
                                        history_oanda_token="t", **secrets), None)  # type: ignore[arg-type]
    assert [p.name for p in configured.providers] == ["oanda"]
    asyncio.run(configured.close())
    dev = build_history(Settings(environment="development"), None)
    assert [p.name for p in dev.providers] == ["ecb-development"]
    asyncio.run(dev.close())


def test_an_unreachable_store_degrades_to_serving_the_fetch(server: OandaServer) -> None:
    # Nothing listens on this port: every store call fails to connect, as when Postgres is down.
    dead = "postgresql+asyncpg://nobody:x@127.0.0.1:9/none"
    db = Database.connect(DatabaseUrls(owner=dead, app=dead, platform=dead), pool_size=1)

    async def scenario(http: httpx.AsyncClient) -> Any:
        try:
            return await HistoryService(HistoryRepository(db), [oanda(http, server)],
                                        today=lambda: TODAY).daily("EURUSD", count=5)
        finally:
            await db.dispose()

    got = run(scenario)
    assert [b.day for b in got.bars][-1] == date(2026, 11, 19) and len(got.bars) == 5 and got.source == "oanda"
