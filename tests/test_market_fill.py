"""Calculations take the rates they are not given from the broker's quote chain (issue 14, point 3) and
the quotes API (point 4). Quotes are pushed as the broker's own feed, so every figure is known exactly."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import BrokerFixture, make_broker
from tests.helpers_auth import assert_problem

CALC = "/api/v1/calculate"


def now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def push(client: TestClient, broker: BrokerFixture, quotes: list[dict[str, Any]]) -> None:
    r = client.put(f"/api/v1/brokers/{broker.id}/quotes", json={"quotes": [{"time": now(), **q} for q in quotes]},
                   headers=broker.auth)
    assert r.status_code == 200, r.text
    assert not r.json().get("errors"), r.text


def feed_only(client: TestClient) -> BrokerFixture:
    """A broker whose chain is its own feed only: nothing but what the test pushes can price."""
    return make_broker(client, tier="enterprise",
                       config={"allowedOrigins": ["https://www.example.com"], "marketData": {"providers": ["broker"]}})


def post(client: TestClient, broker: BrokerFixture, path: str, body: dict[str, Any]) -> Any:
    return client.post(f"{CALC}/{path}", json=body, headers=broker.auth)


def without_market(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in ("calculationId", "rateSources", "marketData")}


EURGBP = {"symbol": "EURGBP", "bid": 0.85310, "ask": 0.85330}
GBPJPY = {"symbol": "GBPJPY", "bid": 195.100, "ask": 195.140}


def test_jpy_account_on_eurgbp_with_no_rates_and_no_entry(client: TestClient) -> None:
    broker = feed_only(client)
    push(client, broker, [EURGBP, GBPJPY])
    body = {"accountBalance": 1_000_000, "accountCurrency": "JPY", "currencyPair": "EURGBP", "direction": "long",
            "stopLossPips": 20, "riskPercentage": 1}
    r = post(client, broker, "position-size", body)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["entryPrice"] == EURGBP["ask"]  # a long buys at the ask
    md = got["marketData"]
    assert md["providers"] == ["broker"]
    assert md["entryPrice"]["side"] == "ask" and md["entryPrice"]["source"] == "broker"
    assert md["fetched"]["GBPJPY"]["source"] == "broker" and md["fetched"]["GBPJPY"]["given"] is False
    assert got["rateSources"]["GBPJPY"]["source"] == "broker"
    # The instrument's own rate is the filled entry: fetched from the broker, never "given by the request".
    filled = {k: v for k, v in md["entryPrice"].items() if k not in ("value", "symbol")}
    assert got["rateSources"]["EURGBP"] == {**filled, "field": "entryPrice"}
    assert got["rateSources"]["EURGBP"]["given"] is False and got["rateSources"]["EURGBP"]["side"] == "ask"
    # The same request with those rates typed in gives the same answer, figure for figure.
    typed = {**body, "entryPrice": EURGBP["ask"], "marketRates": False,
             "conversionRates": {"GBPJPY": {"bid": GBPJPY["bid"], "ask": GBPJPY["ask"]}}}
    r2 = post(client, broker, "position-size", typed)
    assert r2.status_code == 200, r2.text
    assert without_market(r2.json()) == without_market(got)
    assert "marketData" not in r2.json()
    # 10 GBP a pip per lot (EURGBP), in JPY at the GBPJPY mid.
    assert abs(got["pipValuePerLot"] - 10 * (GBPJPY["bid"] + GBPJPY["ask"]) / 2) < 1e-6


def test_short_takes_the_bid(client: TestClient) -> None:
    broker = feed_only(client)
    push(client, broker, [EURGBP, GBPJPY])
    r = post(client, broker, "position-size", {"accountBalance": 1_000_000, "accountCurrency": "JPY",
                                               "currencyPair": "EURGBP", "direction": "short", "stopLossPips": 20,
                                               "riskPercentage": 1})
    assert r.status_code == 200, r.text
    assert r.json()["entryPrice"] == EURGBP["bid"]


def test_given_rates_win(client: TestClient) -> None:
    broker = feed_only(client)
    push(client, broker, [EURGBP, GBPJPY])
    body = {"accountBalance": 1_000_000, "accountCurrency": "JPY", "currencyPair": "EURGBP", "entryPrice": 0.86,
            "stopLossPips": 20, "riskPercentage": 1, "conversionRates": {"GBPJPY": 190.0}}
    r = post(client, broker, "position-size", body)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["entryPrice"] == 0.86 and got["ratesUsed"]["GBPJPY"] == 190.0
    assert "marketData" not in got  # nothing was missing: nothing fetched


def test_conversion_through_usd_when_no_direct_pair(client: TestClient) -> None:
    broker = feed_only(client)
    push(client, broker, [{"symbol": "USDJPY", "bid": 150.00, "ask": 150.02},
                          {"symbol": "AUDUSD", "bid": 0.6600, "ask": 0.6602}])
    r = post(client, broker, "pip-value", {"accountCurrency": "AUD", "currencyPair": "USDJPY", "lots": 1})
    assert r.status_code == 200, r.text
    got = r.json()
    assert set(got["marketData"]["fetched"]) >= {"AUDUSD"}
    assert all(v["given"] is False for k, v in got["rateSources"].items() if k in got["marketData"]["fetched"])


def test_missing_quote_names_symbol_and_providers(client: TestClient) -> None:
    broker = feed_only(client)
    r = post(client, broker, "position-size", {"accountBalance": 10_000, "accountCurrency": "USD",
                                               "currencyPair": "NZDCAD", "direction": "long", "stopLossPips": 20,
                                               "riskPercentage": 1})
    body = assert_problem(r, 422, "quote-unavailable")
    err = body["errors"][0]
    assert err["field"] == "entryPrice" and err["symbol"] == "NZDCAD"
    assert [p["provider"] for p in err["providersTried"]] == ["broker"]
    assert "NZDCAD" in body["detail"] and "broker" in body["detail"]


def test_opt_out_uses_only_given_rates(client: TestClient) -> None:
    broker = feed_only(client)
    push(client, broker, [EURGBP, GBPJPY])
    base = {"accountBalance": 1_000_000, "accountCurrency": "JPY", "currencyPair": "EURGBP", "stopLossPips": 20,
            "riskPercentage": 1, "marketRates": False}
    r = post(client, broker, "position-size", {**base, "direction": "long"})
    assert_problem(r, 422)
    assert r.json()["errors"][0]["field"] == "entryPrice"
    r = post(client, broker, "position-size", {**base, "entryPrice": 0.8532})
    assert r.status_code == 422 and "GBPJPY" in r.text  # the conversion is the client's to give


def test_entry_without_direction_is_required(client: TestClient) -> None:
    broker = feed_only(client)
    push(client, broker, [EURGBP, GBPJPY])
    r = post(client, broker, "position-size", {"accountBalance": 1_000_000, "accountCurrency": "JPY",
                                               "currencyPair": "EURGBP", "stopLossPips": 20, "riskPercentage": 1})
    assert_problem(r, 422)
    assert r.json()["errors"][0]["field"] == "entryPrice"


def test_cached_answer_never_outlives_its_prices(client: TestClient) -> None:
    """A cacheable calculation (a VaR with returns) filled from quotes: new quotes, new answer."""
    broker = feed_only(client)
    returns = [0.001 * ((i * 37) % 11 - 5) for i in range(300)]
    body = {"accountCurrency": "JPY", "positions": [{"currencyPair": "EURUSD", "lots": 1, "side": "long"}],
            "returns": {"series": {"EURUSD": returns}}, "method": "historical"}
    push(client, broker, [{"symbol": "EURUSD", "bid": 1.05, "ask": 1.05}, {"symbol": "USDJPY", "bid": 150, "ask": 150}])
    first = post(client, broker, "var", body)
    assert first.status_code == 200, first.text
    assert first.headers["x-cache"] == "MISS"
    again = post(client, broker, "var", body)
    assert again.headers["x-cache"] == "HIT"  # same prices: the cached answer
    assert without_market(again.json()) == without_market(first.json())
    push(client, broker, [{"symbol": "USDJPY", "bid": 160, "ask": 160}])
    # A push replaces the broker's cached quotes at once (the quote cache keeps others 10 s).
    second = post(client, broker, "var", body)
    assert second.status_code == 200, second.text
    assert second.headers["x-cache"] == "MISS"
    assert second.json()["marketData"]["fetched"]["USDJPY"]["bid"] == 160
    assert second.json() != first.json()


def test_a_reused_lookup_ends_when_prices_change_or_age(client: TestClient) -> None:
    """Requests of one shape reuse their lookup only while it holds: a push or a quote going stale ends it."""
    from datetime import timedelta

    from app.services import services

    broker = feed_only(client)
    push(client, broker, [EURGBP, GBPJPY])
    body = {"accountBalance": 1_000_000, "accountCurrency": "JPY", "currencyPair": "EURGBP", "direction": "long",
            "stopLossPips": 20, "riskPercentage": 1}
    for _ in range(3):
        r = post(client, broker, "position-size", body)
        assert r.status_code == 200 and r.json()["entryPrice"] == EURGBP["ask"], r.text
    push(client, broker, [{**EURGBP, "bid": 0.8540, "ask": 0.8542}])
    r = post(client, broker, "position-size", body)
    assert r.status_code == 200 and r.json()["entryPrice"] == 0.8542, r.text
    market = services(client.app).market_data
    real = market.now
    market.now = lambda: real() + timedelta(seconds=61)  # the feed's quotes are fresh for 60 s
    try:
        body_stale = assert_problem(post(client, broker, "position-size", body), 422, "quote-unavailable")
        assert "stale" in body_stale["detail"]
    finally:
        market.now = real
    assert post(client, broker, "position-size", body).status_code == 200


def test_tenant_feeds_stay_with_their_broker(client: TestClient) -> None:
    a, b = feed_only(client), feed_only(client)
    push(client, a, [EURGBP, GBPJPY])
    body = {"accountBalance": 1_000_000, "accountCurrency": "JPY", "currencyPair": "EURGBP", "direction": "long",
            "stopLossPips": 20, "riskPercentage": 1}
    assert post(client, a, "position-size", body).status_code == 200
    assert_problem(post(client, b, "position-size", body), 422, "quote-unavailable")
    r = client.get("/api/v1/quotes", params={"symbols": "EURGBP"}, headers=b.auth)
    assert r.status_code == 200 and r.json()["quotes"][0]["stale"] is True


def test_quotes_api(client: TestClient) -> None:
    broker = feed_only(client)
    push(client, broker, [EURGBP])
    r = client.get("/api/v1/quotes", params={"symbols": "eurgbp,NZDCAD"}, headers=broker.auth)
    assert r.status_code == 200, r.text
    got = {q["symbol"]: q for q in r.json()["quotes"]}
    assert got["EURGBP"]["bid"] == EURGBP["bid"] and got["EURGBP"]["source"] == "broker"
    assert got["EURGBP"]["stale"] is False
    assert got["NZDCAD"]["stale"] is True and got["NZDCAD"]["bid"] is None and got["NZDCAD"]["providersTried"]
    bad = client.get("/api/v1/quotes", params={"symbols": "EURGBP,NOPE!"}, headers=broker.auth)
    assert_problem(bad, 422)
    assert bad.json()["errors"][0]["field"] == "symbols"
    assert_problem(client.get("/api/v1/quotes", params={"symbols": ""}, headers=broker.auth), 422)
    assert client.get("/api/v1/quotes", params={"symbols": "EURGBP"},
                      headers={"Authorization": ""}).status_code == 401


def test_missing_conversion_is_the_engines_problem_plus_what_the_chain_was_asked(client: TestClient) -> None:
    """No provider has GBPJPY fresh: the same problem as without market data (conversionRates, the rate that
    closes the gap), with the symbols the chain was asked and each provider's outcome."""
    broker = feed_only(client)
    body = {"accountBalance": 1_000_000, "accountCurrency": "JPY", "currencyPair": "EURGBP", "entryPrice": 0.8532,
            "stopLossPips": 20, "riskPercentage": 1}
    problem = assert_problem(post(client, broker, "position-size", body), 422, "missing-conversion-rate")
    err = problem["errors"][0]
    assert err["field"] == "conversionRates" and err["code"] == "MISSING_CONVERSION_RATE"
    assert err["neededRate"] == "GBPJPY"
    assert {"symbol": "GBPJPY", "provider": "broker", "outcome": "missing"} in err["providersTried"]
    assert "GBPJPY" in problem["detail"] and "quote chain (broker)" in problem["detail"]
    assert problem["title"] == "Missing conversion rate"


def test_a_failing_vendor_is_a_503_naming_the_symbol_and_the_outcome(client: TestClient) -> None:
    """The chain's vendor answers HTTP 503: the calculation is a 503 (retrying may help) naming the rate, the
    provider and its outcome, with Retry-After; the broker's own feed is still tried first."""
    from app.integrations.market_data.oanda import OandaProvider
    from tests.market_vendors import ServedVendors, Vendors

    broker = make_broker(client, tier="enterprise", config={"allowedOrigins": ["https://www.example.com"],
                                                            "marketData": {"providers": ["broker", "oanda"]}})
    market = client.app.state.services.market_data  # type: ignore[attr-defined]
    with ServedVendors(Vendors()) as vendors:
        vendors.plan["oanda"] = ["503"] * 10
        market.providers["oanda"] = OandaProvider(market.http, vendors.base_url, vendors.account, vendors.token,
                                                  freshness_seconds=30, timeout_seconds=2)
        try:
            body = {"accountBalance": 1_000_000, "accountCurrency": "JPY", "currencyPair": "EURGBP",
                    "entryPrice": 0.8532, "stopLossPips": 20, "riskPercentage": 1}
            r = post(client, broker, "position-size", body)
        finally:
            del market.providers["oanda"]
        assert vendors.count("oanda") >= 1
    problem = assert_problem(r, 503, "quote-providers-unavailable")
    assert r.headers["retry-after"]
    err = problem["errors"][0]
    assert err["field"] == "conversionRates" and err["symbol"] == "GBPJPY" and err["neededRate"] == "GBPJPY"
    assert err["providersTried"] == [{"provider": "broker", "outcome": "missing"},
                                     {"provider": "oanda", "outcome": "error"}]
    assert "HTTP 503" in problem["detail"]
