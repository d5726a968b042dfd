"""The broker's pushed feed: PUT /api/v1/brokers/{brokerId}/quotes over the API, read back through the
market-data service (cache and staleness), isolated per tenant in the API, the cache and the database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from app.integrations.market_data.quotes import Lookup
from app.integrations.market_data.service import MarketData
from tests.conftest import BrokerFixture
from tests.helpers_auth import NO_AUTH, admin_token, assert_problem, bearer, sql, user_token

pytestmark = pytest.mark.usefixtures("no_server_errors")


def iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def push(client: TestClient, broker: BrokerFixture, quotes: list[Any], headers: dict[str, str] | None = None,
         target: uuid.UUID | None = None) -> Any:
    return client.put(f"/api/v1/brokers/{target or broker.id}/quotes", json={"quotes": quotes},
                      headers=headers if headers is not None else broker.auth)


def market(client: TestClient) -> MarketData:
    return client.app.state.services.market_data  # type: ignore[attr-defined,no-any-return]


def lookup(client: TestClient, broker_id: uuid.UUID, chain: list[str], symbols: list[str]) -> Lookup:
    return client.portal.call(market(client).lookup, broker_id, chain, symbols)  # type: ignore[union-attr]


def test_pushed_quotes_are_served_as_the_brokers_feed(client: TestClient, broker_a: BrokerFixture) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    resp = push(client, broker_a, [{"symbol": "GBPUSD", "bid": 1.2699, "ask": 1.2701, "time": iso(now)},
                                   {"symbol": "eur/jpy", "bid": 162.10, "ask": 162.14, "mid": 162.11,
                                    "time": iso(now)}])
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["accepted"], body["rejected"], body["errors"]) == (2, 0, [])
    result = lookup(client, broker_a.id, ["broker"], ["GBPUSD", "EURJPY"])
    gbp, jpy = result.quotes["GBPUSD"], result.quotes["EURJPY"]
    assert (gbp.bid, gbp.ask, gbp.source, gbp.live, gbp.time) == (1.2699, 1.2701, "broker", True, now)
    assert jpy.mid == 162.11  # the broker's own mid is kept
    # a later push replaces it at once (write-through, no waiting for the cache TTL)
    later = now + timedelta(seconds=1)
    assert push(client, broker_a, [{"symbol": "GBPUSD", "bid": 1.2710, "ask": 1.2712, "time": iso(later)}]
                ).status_code == 200
    assert lookup(client, broker_a.id, ["broker"], ["GBPUSD"]).quotes["GBPUSD"].bid == 1.2710
    # an older price arriving late never replaces a newer one
    assert push(client, broker_a, [{"symbol": "GBPUSD", "bid": 1.2600, "ask": 1.2602, "time": iso(now)}]
                ).json()["accepted"] == 1
    rows = sql(client, "select bid from broker_quotes where broker_id = :b and symbol = 'GBPUSD'",
               {"b": broker_a.id})
    assert [r.bid for r in rows] == [1.2710]


def test_bad_quotes_are_refused_by_index_and_good_ones_stored(client: TestClient, broker_a: BrokerFixture) -> None:
    now = datetime.now(UTC)
    good = {"symbol": "USDJPY", "bid": 151.2, "ask": 151.22, "time": iso(now)}
    quotes: list[Any] = [
        good,
        {**good, "symbol": "EURUSD", "bid": 1.09, "ask": 1.08},                # 1 bid above ask
        {**good, "symbol": "NOTAPAIR"},                                        # 2 unknown symbol
        {**good, "symbol": "EURCHF", "time": iso(now + timedelta(hours=1))},   # 3 in the future
        {**good, "symbol": "AUDUSD", "bid": -0.65},                            # 4 not positive
        {**good, "symbol": "NZDUSD", "bid": "0.59"},                           # 5 a string, not a number
        {**good, "symbol": "USDCAD", "mid": 151.3},                            # 6 mid outside bid..ask
        {**good, "symbol": "USDCHF", "time": "2026-12-02T10:00:00"},           # 7 no UTC offset
        {**good, "symbol": "EURGBP", "extra": 1},                              # 8 unknown field
        "EURUSD 1.08",                                                         # 9 not an object
        {"symbol": "XAUUSD", "bid": 2650.1, "ask": 2650.5, "time": iso(now)},  # 10 good (a metal)
        {**good, "symbol": "EURNOK", "time": "0001-01-01T00:00:00+01:00"},     # 11 no UTC equivalent
    ]
    resp = push(client, broker_a, quotes)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["accepted"], body["rejected"]) == (2, 10)
    by_index = {e["index"]: e for e in body["errors"]}
    assert sorted(by_index) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 11]
    fields = {i: [f["field"] for f in e["errors"]] for i, e in by_index.items()}
    assert fields[2] == ["quotes[2].symbol"] and fields[3] == ["quotes[3].time"]
    assert fields[4] == ["quotes[4].bid"] and fields[5] == ["quotes[5].bid"] and fields[7] == ["quotes[7].time"]
    assert fields[8] == ["quotes[8].extra"] and fields[11] == ["quotes[11].time"]
    assert all(e["status"] == 422 and e["type"] == "/problems/validation-error" for e in body["errors"])
    assert "bid must not be above ask" in by_index[1]["errors"][0]["detail"]
    stored = sql(client, "select symbol from broker_quotes where broker_id = :b order by symbol", {"b": broker_a.id})
    assert [r.symbol for r in stored] == ["USDJPY", "XAUUSD"]


def test_more_than_1000_quotes_is_a_422_naming_the_field(client: TestClient, broker_a: BrokerFixture) -> None:
    one = {"symbol": "EURUSD", "bid": 1.08, "ask": 1.0802, "time": iso(datetime.now(UTC))}
    body = assert_problem(push(client, broker_a, [one] * 1001), 422, "validation-error")
    assert [e["field"] for e in body["errors"]] == ["quotes"]
    assert_problem(push(client, broker_a, []), 422, "validation-error")
    ok = push(client, broker_a, [one] * 1000)  # the limit itself is fine (one symbol: stored once)
    assert ok.status_code == 200 and ok.json()["accepted"] == 1000


def test_a_thousand_symbols_are_stored_in_one_push(client: TestClient, broker_a: BrokerFixture) -> None:
    now = datetime.now(UTC)
    codes = sorted({a + b for a in ("EUR", "USD", "GBP", "JPY", "CHF", "CAD", "AUD", "NZD", "SEK", "NOK", "DKK",
                                    "PLN", "HUF", "CZK", "SGD", "HKD", "ZAR", "MXN", "TRY", "CNH", "THB", "ILS",
                                    "INR", "KRW", "BRL", "RUB", "AED", "SAR", "RON", "BGN", "ISK", "KWD", "QAR")
                         for b in ("EUR", "USD", "GBP", "JPY", "CHF", "CAD", "AUD", "NZD", "SEK", "NOK", "DKK",
                                   "PLN", "HUF", "CZK", "SGD", "HKD", "ZAR", "MXN", "TRY", "CNH", "THB", "ILS",
                                   "INR", "KRW", "BRL", "RUB", "AED", "SAR", "RON", "BGN", "ISK", "KWD", "QAR")
                         if a != b})[:1000]
    assert len(codes) == 1000
    quotes = [{"symbol": c, "bid": 1.0, "ask": 1.001, "time": iso(now)} for c in codes]
    assert push(client, broker_a, quotes).json()["accepted"] == 1000
    count = sql(client, "select count(*) from broker_quotes where broker_id = :b", {"b": broker_a.id})[0][0]
    assert count == 1000


def test_who_may_push(client: TestClient, broker_a: BrokerFixture, broker_b: BrokerFixture) -> None:
    q = [{"symbol": "EURUSD", "bid": 1.08, "ask": 1.0802, "time": iso(datetime.now(UTC))}]
    # another broker's id: 404, exactly like an id that does not exist
    other = assert_problem(push(client, broker_a, q, target=broker_b.id), 404, "not-found")
    missing = assert_problem(push(client, broker_a, q, target=uuid.uuid4()), 404, "not-found")
    assert other["detail"] == missing["detail"]
    # a publishable (browser) key and a widget session: 403
    assert_problem(push(client, broker_a, q, headers={**bearer(broker_a.publishable_key),
                                                      "Origin": "https://www.example.com"}), 403)
    session = client.get("/api/v1/widget/config", params={"broker": broker_a.slug, "key": broker_a.publishable_key},
                         headers={**NO_AUTH, "Origin": "https://www.example.com"})
    assert session.status_code == 200, session.text
    assert_problem(push(client, broker_a, q, headers=bearer(session.json()["session"]["token"])), 403)
    # a BROKER_USER: 403; the BROKER_ADMIN (with MFA): allowed
    _, user = user_token(client, broker_a, "BROKER_USER")
    assert_problem(push(client, broker_a, q, headers=bearer(user)), 403, "forbidden")
    assert push(client, broker_a, q, headers=bearer(admin_token(client, broker_a))).status_code == 200
    assert sql(client, "select count(*) from broker_quotes where broker_id = :b", {"b": broker_b.id})[0][0] == 0


def test_pushed_quotes_never_reach_another_broker(client: TestClient, broker_a: BrokerFixture,
                                                  broker_b: BrokerFixture) -> None:
    now = datetime.now(UTC)
    assert push(client, broker_a, [{"symbol": "USDSEK", "bid": 10.51, "ask": 10.53, "time": iso(now)}]
                ).status_code == 200
    assert lookup(client, broker_a.id, ["broker"], ["USDSEK"]).quotes["USDSEK"].bid == 10.51
    theirs = lookup(client, broker_b.id, ["broker"], ["USDSEK"])
    assert theirs.quotes == {} and [a.outcome for a in theirs.missing["USDSEK"]] == ["missing"]

    # In the database: as the app role, with B's tenant set, A's row does not exist; with A's, it does; and
    # B cannot write a row into A's feed (WITH CHECK).
    urls = client.app.state.services.db.urls  # type: ignore[attr-defined]

    async def as_tenant(tenant: uuid.UUID, statement: str) -> Any:
        engine = create_async_engine(urls.app, poolclass=NullPool)
        try:
            async with engine.begin() as conn:
                await conn.execute(text("select set_config('app.current_broker_id', :t, true)"), {"t": str(tenant)})
                result = await conn.execute(text(statement), {"a": broker_a.id})
                return result.scalar() if result.returns_rows else None
        finally:
            await engine.dispose()

    count = "select count(*) from broker_quotes where broker_id = :a"
    assert client.portal.call(as_tenant, broker_b.id, count) == 0
    assert client.portal.call(as_tenant, broker_a.id, count) == 1
    role = sql(client, "select rolsuper, rolbypassrls from pg_roles where rolname = current_user", url=urls.app)[0]
    assert (role.rolsuper, role.rolbypassrls) == (False, False)
    with pytest.raises(DBAPIError, match="row-level security"):
        client.portal.call(as_tenant, broker_b.id, "insert into broker_quotes (broker_id, symbol, bid, ask, quote_time)"
                                                   " values (:a, 'EURUSD', 1, 1, now())")


def test_a_stale_pushed_quote_falls_through_to_the_next_provider(client: TestClient, broker_a: BrokerFixture) -> None:
    old = datetime.now(UTC) - timedelta(minutes=5)  # beyond the 60 s broker freshness
    assert push(client, broker_a, [{"symbol": "EURUSD", "bid": 1.01, "ask": 1.0102, "time": iso(old)}]
                ).status_code == 200
    result = lookup(client, broker_a.id, ["broker", "snapshot"], ["EURUSD"])
    assert result.quotes["EURUSD"].source == "snapshot"
    [attempt] = result.attempts["EURUSD"]
    assert attempt.provider == "broker" and attempt.outcome == "stale" and "limit 60 s" in attempt.detail
    only_broker = lookup(client, broker_a.id, ["broker"], ["EURUSD"])
    assert [a.outcome for a in only_broker.missing["EURUSD"]] == ["stale"]


def test_the_chain_is_configurable_per_broker_and_strict(client: TestClient, broker_a: BrokerFixture) -> None:
    url = f"/api/v1/brokers/{broker_a.id}/config"
    resp = client.patch(url, json={"marketData": {"providers": ["broker", "tradermade", "snapshot"]}},
                        headers=broker_a.auth)
    assert resp.status_code == 200, resp.text
    assert resp.json()["config"]["marketData"] == {"providers": ["broker", "tradermade", "snapshot"]}
    record = client.portal.call(client.app.state.services.auth.broker, broker_a.id)  # type: ignore[attr-defined]
    assert market(client).chain_for(record.config) == ["broker", "tradermade", "snapshot"]
    bad = assert_problem(client.patch(url, json={"marketData": {"providers": ["broker", "bloomberg"]}},
                                      headers=broker_a.auth), 422, "validation-error")
    assert [e["field"] for e in bad["errors"]] == ["marketData.providers[1]"]
    twice = assert_problem(client.patch(url, json={"marketData": {"providers": ["broker", "broker"]}},
                                        headers=broker_a.auth), 422, "validation-error")
    assert twice["errors"][0]["field"] == "marketData.providers"
