"""The live book of a trader (issue 17, point 2): GET /api/v1/brokers/{brokerId}/accounts/{traderId}/risk."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from tests.conftest import BrokerFixture
from tests.helpers_auth import assert_problem
from tests.helpers_platform import account, inbound_secret, later, position, post_events

pytestmark = pytest.mark.usefixtures("no_server_errors")


def risk(client: TestClient, broker: BrokerFixture, trader: str) -> dict[str, object]:
    resp = client.get(f"/api/v1/brokers/{broker.id}/accounts/{trader}/risk", headers=broker.auth)
    assert resp.status_code == 200, resp.text
    out: dict[str, object] = resp.json()
    return out


def test_live_book_risk_margin_exposure_and_var(client: TestClient, broker_a: BrokerFixture) -> None:
    secret = inbound_secret(client, broker_a)
    now = datetime.now(UTC).isoformat()
    pushed = client.put(f"/api/v1/brokers/{broker_a.id}/quotes", headers=broker_a.auth, json={"quotes": [
        {"symbol": "EURUSD", "bid": 1.0999, "ask": 1.1001, "time": now},
        {"symbol": "USDJPY", "bid": 149.99, "ask": 150.01, "time": now}]})
    assert pushed.status_code == 200, pushed.text
    post_events(client, broker_a, secret, [
        account("t-1", balance=10_000, equity=10_000, free_margin=9_050),
        position("opened", "t-1", "p1", lots=1, open_price=1.10, stop=1.09),
        position("opened", "t-1", "p2", symbol="USDJPY", side="sell", lots=0.5, open_price=150.0, stop=151.0),
    ])
    book = risk(client, broker_a, "t-1")
    by_id = {p["positionId"]: p for p in book["positions"]}  # type: ignore[attr-defined]
    # Long 1 lot EURUSD, 100 pips to the stop: 100,000 x 0.01 = 1,000 USD, 10 % of equity.
    assert by_id["p1"]["riskAtStop"] == pytest.approx(1_000)
    assert by_id["p1"]["riskPercentOfEquity"] == pytest.approx(10.0)
    # Short 0.5 lots USDJPY, 1 yen to the stop: 50,000 JPY at 150 = 333.33 USD.
    assert by_id["p2"]["riskAtStop"] == pytest.approx(50_000 / 150)
    assert book["totalRiskAtStops"] == pytest.approx(1_000 + 50_000 / 150)
    assert book["totalRiskPercentOfEquity"] == pytest.approx((1_000 + 50_000 / 150) / 100)
    # The platform's margin (equity - free margin) and the level it gives.
    assert book["margin"] == pytest.approx(950) and book["marginSource"] == "platform"
    assert book["marginLevel"] == pytest.approx(10_000 / 950 * 100)
    exposure = book["netExposureByCurrency"]
    assert exposure["EUR"]["amount"] == pytest.approx(100_000)  # type: ignore[index]
    assert exposure["USD"]["amount"] == pytest.approx(-110_000 - 50_000)  # type: ignore[index]
    assert exposure["JPY"]["amount"] == pytest.approx(7_500_000)  # type: ignore[index]
    assert exposure["EUR"]["percentOfEquity"] == pytest.approx(1_100)  # type: ignore[index]
    var = book["var"]
    assert var is not None and [r["confidence"] for r in var["results"]] == [0.95, 0.99]  # type: ignore[index]
    assert 0 < var["results"][0]["var"] <= var["results"][1]["var"]  # type: ignore[index]
    assert book["unavailable"] == [] and book["pricedAtOpen"] == []


def test_closing_a_position_takes_it_out_of_the_book(client: TestClient, broker_a: BrokerFixture) -> None:
    secret = inbound_secret(client, broker_a)
    post_events(client, broker_a, secret, [account("t-2"), position("opened", "t-2", "p1")])
    assert risk(client, broker_a, "t-2")["totalRiskAtStops"] == pytest.approx(1_000)
    assert risk(client, broker_a, "t-2")["pricedAtOpen"] == ["EURUSD"]  # no quote pushed for this broker
    post_events(client, broker_a, secret, [position("closed", "t-2", "p1", at=later(1))])
    book = risk(client, broker_a, "t-2")
    assert book["positions"] == [] and book["totalRiskAtStops"] == 0 and book["var"] is None


def test_without_an_account_update_the_book_says_why(client: TestClient, broker_a: BrokerFixture) -> None:
    secret = inbound_secret(client, broker_a)
    post_events(client, broker_a, secret, [position("opened", "t-3", "p1")])
    book = risk(client, broker_a, "t-3")
    assert book["accountCurrency"] is None
    assert [u["code"] for u in book["unavailable"]] == ["NO_ACCOUNT_UPDATE"]  # type: ignore[attr-defined]


def test_another_tenants_account_is_not_found(client: TestClient, broker_a: BrokerFixture,
                                             broker_b: BrokerFixture) -> None:
    secret = inbound_secret(client, broker_a)
    post_events(client, broker_a, secret, [account("t-4")])
    resp = client.get(f"/api/v1/brokers/{broker_a.id}/accounts/t-4/risk", headers=broker_b.auth)
    assert_problem(resp, 404, "not-found")
    resp = client.get(f"/api/v1/brokers/{broker_b.id}/accounts/t-4/risk", headers=broker_b.auth)
    assert_problem(resp, 404, "not-found")


def test_var_values_the_book_at_the_current_price(client: TestClient, broker_a: BrokerFixture) -> None:
    """Opened at 1.10; the VaR of the same history scales with the price the position is worth now (1.21 is
    1.1 x 1.10), as the exposure does: not with the open price."""
    secret = inbound_secret(client, broker_a)
    post_events(client, broker_a, secret, [account("t-5"), position("opened", "t-5", "p1", open_price=1.10)])
    figures = []
    for mid in (1.10, 1.21):
        now = datetime.now(UTC).isoformat()
        pushed = client.put(f"/api/v1/brokers/{broker_a.id}/quotes", headers=broker_a.auth, json={"quotes": [
            {"symbol": "EURUSD", "bid": mid - 0.0001, "ask": mid + 0.0001, "time": now}]})
        assert pushed.status_code == 200, pushed.text
        book = risk(client, broker_a, "t-5")
        assert book["pricedAtOpen"] == [] and book["var"] is not None, book["unavailable"]
        figures.append(book)
    at_open, now_worth_more = (b["var"]["results"] for b in figures)  # type: ignore[index]
    for before, after in zip(at_open, now_worth_more, strict=True):
        assert after["var"] == pytest.approx(before["var"] * 1.1, rel=1e-9)
    assert figures[1]["netExposureByCurrency"]["EUR"]["accountValue"] == pytest.approx(121_000)  # type: ignore[index]
    # The risk at the stop is the distance from the open price: unchanged by the market.
    assert [b["totalRiskAtStops"] for b in figures] == [pytest.approx(1_000)] * 2


def test_the_book_names_its_conventions(client: TestClient, broker_a: BrokerFixture) -> None:
    secret = inbound_secret(client, broker_a)
    post_events(client, broker_a, secret, [account("t-6")])
    conventions = risk(client, broker_a, "t-6")["conventions"]
    assert set(conventions) == {"valuation", "riskAtStop", "percentOfEquity", "margin", "marginLevel",  # type: ignore[arg-type]
                                "netExposure", "var"}
    assert "equity / margin x 100" in conventions["marginLevel"]  # type: ignore[index]


def test_a_book_valued_at_a_dated_snapshot_is_flagged(client: TestClient) -> None:
    """A chain that ends in the dated snapshot (development, or a fallback) values the book at an old price: the
    answer names each price's source and time and flags PRICES_NOT_LIVE; a pushed live quote does not."""
    from tests.conftest import make_broker

    broker = make_broker(client, config={"allowedOrigins": ["https://www.example.com"],
                                         "marketData": {"providers": ["broker", "snapshot"]}})
    secret = inbound_secret(client, broker)
    post_events(client, broker, secret, [account("t-6"), position("opened", "t-6", "p1")])
    book = risk(client, broker, "t-6")
    price = book["prices"]["EURUSD"]  # type: ignore[index]
    assert price["live"] is False and price["source"] == "snapshot" and "snapshot" in price["label"], price
    assert "PRICES_NOT_LIVE" in book["flags"] and book["pricedAtOpen"] == []  # type: ignore[operator]
    now = datetime.now(UTC).isoformat()
    pushed = client.put(f"/api/v1/brokers/{broker.id}/quotes", headers=broker.auth, json={"quotes": [
        {"symbol": "EURUSD", "bid": 1.0999, "ask": 1.1001, "time": now}]})
    assert pushed.status_code == 200, pushed.text
    book = risk(client, broker, "t-6")
    assert book["prices"]["EURUSD"]["live"] is True and book["prices"]["EURUSD"]["source"] == "broker"  # type: ignore[index]
    assert "PRICES_NOT_LIVE" not in book["flags"]  # type: ignore[operator]
