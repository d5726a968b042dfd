"""Alert rules (issue 17, point 3) and the whole path: platform events -> the evaluate_alerts job -> an alert
-> a signed alert.triggered delivered by the deliver_webhook job to a loopback receiver."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from standardwebhooks import Webhook

from app.alerts.service import evaluate
from tests.conftest import BrokerFixture
from tests.helpers_auth import assert_problem
from tests.helpers_platform import account, inbound_secret, later, position, post_events
from tests.helpers_receiver import receiver

pytestmark = pytest.mark.usefixtures("no_server_errors")


def rule(client: TestClient, broker: BrokerFixture, **body: Any) -> dict[str, Any]:
    resp = client.post(f"/api/v1/brokers/{broker.id}/alert-rules", json=body, headers=broker.auth)
    assert resp.status_code == 201, resp.text
    out: dict[str, Any] = resp.json()
    return out


def alerts(client: TestClient, broker: BrokerFixture, **query: str) -> list[dict[str, Any]]:
    resp = client.get(f"/api/v1/brokers/{broker.id}/alerts", params=query, headers=broker.auth)
    assert resp.status_code == 200, resp.text
    out: list[dict[str, Any]] = resp.json()
    return out


def evaluated(client: TestClient, broker: BrokerFixture, trader: str) -> dict[str, Any]:
    """Runs the job's function directly (the app's worker runs it too, after each message: either order ends in
    the same alerts)."""
    out: dict[str, Any] = client.portal.call(evaluate, client.app.state.services, broker.id, [trader])  # type: ignore[arg-type,attr-defined]
    return out


def test_events_to_a_signed_alert_triggered_end_to_end(client: TestClient, broker_a: BrokerFixture) -> None:
    with receiver() as rx:
        endpoint = client.post(f"/api/v1/brokers/{broker_a.id}/webhook-endpoints", headers=broker_a.auth,
                               json={"url": rx.url, "eventTypes": ["alert.triggered", "alert.cleared"]}).json()
        rule(client, broker_a, kind="risk-per-trade", threshold=5)
        secret = inbound_secret(client, broker_a)
        # 1 lot EURUSD with its stop 100 pips away on 10,000 of equity: 10 % at risk in one trade.
        resp = post_events(client, broker_a, secret, [account("t-1"), position("opened", "t-1", "p1")])
        assert resp.status_code == 200, resp.text
        got = rx.wait_for(1)[0]
    message = Webhook(endpoint["secret"]).verify(got.body.decode(), got.headers)
    assert message["type"] == "alert.triggered"
    data = message["data"]
    assert data["kind"] == "risk-per-trade" and data["traderId"] == "t-1" and data["subject"] == "p1"
    assert data["value"] == pytest.approx(10.0) and data["threshold"] == 5
    assert data["evidence"]["position"]["riskAtStop"] == pytest.approx(1_000)
    [stored] = alerts(client, broker_a)
    assert stored["status"] == "active" and stored["id"] == data["alertId"]
    assert stored["evidence"]["position"]["positionId"] == "p1"
    assert data["evidence"]["account"]["asOf"].endswith("Z"), data["evidence"]["account"]  # like every payload time


def test_an_alert_fires_once_per_breach(client: TestClient, broker_a: BrokerFixture) -> None:
    rule(client, broker_a, kind="risk-per-trade", threshold=5)
    secret = inbound_secret(client, broker_a)
    post_events(client, broker_a, secret, [account("t-2"), position("opened", "t-2", "p1")])
    evaluated(client, broker_a, "t-2")
    # Still breached after more events and evaluations: still the one alert.
    post_events(client, broker_a, secret, [account("t-2", equity=9_999, at=later(1))])
    assert evaluated(client, broker_a, "t-2") == {"fired": [], "cleared": []}
    assert len(alerts(client, broker_a, traderId="t-2")) == 1
    # The stop moved closer: 2 % at risk, the alert clears.
    post_events(client, broker_a, secret, [position("opened", "t-2", "p1", at=later(2), stop=1.098)])
    evaluated(client, broker_a, "t-2")
    assert [a["status"] for a in alerts(client, broker_a, traderId="t-2")] == ["cleared"]
    # Breached again: a second alert, and only one.
    post_events(client, broker_a, secret, [position("opened", "t-2", "p1", at=later(3), stop=1.09)])
    evaluated(client, broker_a, "t-2")
    evaluated(client, broker_a, "t-2")
    assert sorted(a["status"] for a in alerts(client, broker_a, traderId="t-2")) == ["active", "cleared"]


def test_hysteresis_band(client: TestClient, broker_a: BrokerFixture) -> None:
    rule(client, broker_a, kind="total-risk", threshold=10, clearThreshold=5)
    secret = inbound_secret(client, broker_a)
    post_events(client, broker_a, secret, [account("t-3"), position("opened", "t-3", "p1", lots=1.2)])  # 12 %
    evaluated(client, broker_a, "t-3")
    assert [a["status"] for a in alerts(client, broker_a, traderId="t-3")] == ["active"]
    post_events(client, broker_a, secret, [position("opened", "t-3", "p1", lots=0.8, at=later(1))])  # 8 %
    evaluated(client, broker_a, "t-3")
    assert [a["status"] for a in alerts(client, broker_a, traderId="t-3")] == ["active"]
    post_events(client, broker_a, secret, [position("opened", "t-3", "p1", lots=0.4, at=later(2))])  # 4 %
    evaluated(client, broker_a, "t-3")
    [done] = alerts(client, broker_a, traderId="t-3")
    assert done["status"] == "cleared" and done["clearedEvidence"]["totalRiskAtStops"] == pytest.approx(400)


def test_margin_level_exposure_and_var_rules(client: TestClient, broker_a: BrokerFixture) -> None:
    rule(client, broker_a, kind="margin-level", threshold=500)
    rule(client, broker_a, kind="currency-exposure", threshold=500)
    var_rule = rule(client, broker_a, kind="portfolio-var", threshold=1, confidence=0.95)
    assert var_rule["confidence"] == 0.95 and var_rule["direction"] == "above"
    secret = inbound_secret(client, broker_a)
    # Equity 10,000 on 2,500 of margin: 400 %; EUR held 110,000 USD worth: 1,100 % of equity.
    post_events(client, broker_a, secret, [account("t-4", free_margin=7_500), position("opened", "t-4", "p1")])
    out = evaluated(client, broker_a, "t-4")
    found = {a["kind"]: a for a in alerts(client, broker_a, traderId="t-4")}
    assert set(found) == {"margin-level", "currency-exposure", "portfolio-var"}, out
    assert found["margin-level"]["value"] == pytest.approx(400)
    assert found["currency-exposure"]["subject"] == "EUR"
    assert found["portfolio-var"]["evidence"]["var"]["confidence"] == 0.95


def test_rule_validation(client: TestClient, broker_a: BrokerFixture) -> None:
    url = f"/api/v1/brokers/{broker_a.id}/alert-rules"
    for body, field in (({"kind": "total-risk", "threshold": 5, "clearThreshold": 6}, "clearThreshold"),
                        ({"kind": "margin-level", "threshold": 100, "clearThreshold": 50}, "clearThreshold"),
                        ({"kind": "total-risk", "threshold": 5, "confidence": 0.99}, "confidence"),
                        ({"kind": "portfolio-var", "threshold": 5, "confidence": 0.9}, "confidence"),
                        ({"kind": "everything", "threshold": 5}, "kind")):
        body_ = assert_problem(client.post(url, json=body, headers=broker_a.auth), 422)
        assert body_["errors"][0]["field"] == field, body_
    made = rule(client, broker_a, kind="total-risk", threshold=5)
    patched = client.patch(f"{url}/{made['id']}", json={"threshold": 7, "enabled": False}, headers=broker_a.auth)
    assert patched.json()["threshold"] == 7 and patched.json()["enabled"] is False
    assert client.delete(f"{url}/{made['id']}", headers=broker_a.auth).status_code == 204
    assert_problem(client.get(f"{url}/{made['id']}", headers=broker_a.auth), 404)


def test_rules_and_alerts_are_per_tenant(client: TestClient, broker_a: BrokerFixture,
                                         broker_b: BrokerFixture) -> None:
    made = rule(client, broker_a, kind="risk-per-trade", threshold=5)
    secret = inbound_secret(client, broker_a)
    post_events(client, broker_a, secret, [account("t-5"), position("opened", "t-5", "p1")])
    evaluated(client, broker_a, "t-5")
    [alert] = alerts(client, broker_a)
    assert client.get(f"/api/v1/brokers/{broker_b.id}/alert-rules", headers=broker_b.auth).json() == []
    assert alerts(client, broker_b) == []
    for path in (f"/api/v1/brokers/{broker_a.id}/alert-rules", f"/api/v1/brokers/{broker_a.id}/alerts",
                 f"/api/v1/brokers/{broker_a.id}/alert-rules/{made['id']}",
                 f"/api/v1/brokers/{broker_a.id}/alerts/{alert['id']}"):
        assert_problem(client.get(path, headers=broker_b.auth), 404, "not-found")
    assert_problem(client.get(f"/api/v1/brokers/{broker_b.id}/alerts/{alert['id']}", headers=broker_b.auth), 404)
    assert_problem(client.get(f"/api/v1/brokers/{broker_b.id}/alert-rules/{made['id']}", headers=broker_b.auth), 404)
    # B's evaluation of the same trader id sees neither A's account nor A's rules.
    assert evaluated(client, broker_b, "t-5") == {"fired": [], "cleared": []}


def _var_at_one_lot(client: TestClient, broker: BrokerFixture, trader: str) -> float:
    book = client.get(f"/api/v1/brokers/{broker.id}/accounts/{trader}/risk", headers=broker.auth).json()
    return float(book["var"]["results"][1]["var"])  # 99 %


# Per kind: the rule, the events that breach it, then those that bring it back (each with a later time).
KIND_CASES: dict[str, tuple[dict[str, Any], Any, Any]] = {
    "risk-per-trade": ({"threshold": 5}, lambda t, at: [position("opened", t, "p1", at=at, lots=1.0)],
                       lambda t, at: [position("opened", t, "p1", at=at, lots=0.2)]),
    "total-risk": ({"threshold": 8}, lambda t, at: [position("opened", t, "p1", at=at, lots=1.0)],
                   lambda t, at: [position("opened", t, "p1", at=at, lots=0.5)]),
    "margin-level": ({"threshold": 500}, lambda t, at: [account(t, free_margin=7_500, at=at)],  # 400 %
                     lambda t, at: [account(t, free_margin=9_000, at=at)]),  # 1,000 %
    "currency-exposure": ({"threshold": 500}, lambda t, at: [position("opened", t, "p1", at=at, lots=1.0)],
                          lambda t, at: [position("opened", t, "p1", at=at, lots=0.2)]),  # 1,100 % -> 220 %
    "portfolio-var": ({}, lambda t, at: [position("opened", t, "p1", at=at, lots=1.0)],
                      lambda t, at: [position("opened", t, "p1", at=at, lots=0.1)]),
}


@pytest.mark.parametrize("kind", list(KIND_CASES))
def test_every_kind_fires_once_per_breach_and_again_only_after_clearing(client: TestClient, broker_a: BrokerFixture,
                                                                        kind: str) -> None:
    body, breach, calm = KIND_CASES[kind]
    trader = f"k-{kind}"
    secret = inbound_secret(client, broker_a)
    # Start calm: 10,000 equity, 1,000 margin, 0.2 lots (0.1 for VaR).
    post_events(client, broker_a, secret, [account(trader, free_margin=9_000), *calm(trader, later(0))])
    if kind == "portfolio-var":  # half the 1-lot VaR: 1 lot breaches, 0.1 lot is far below
        post_events(client, broker_a, secret, breach(trader, later(0.5)))
        body = {"threshold": _var_at_one_lot(client, broker_a, trader) / 2, "confidence": 0.99}
        post_events(client, broker_a, secret, calm(trader, later(0.7)))
    made = rule(client, broker_a, kind=kind, **body)

    def statuses() -> list[str]:
        """After an evaluation (ours; the app's worker runs one per message too, either ends the same)."""
        evaluated(client, broker_a, trader)
        return [a["status"] for a in alerts(client, broker_a, traderId=trader)]  # newest first

    assert statuses() == []
    for round_, step in ((1, 1.0), (2, 2.0)):
        post_events(client, broker_a, secret, breach(trader, later(step)))
        assert statuses() == ["active"] + ["cleared"] * (round_ - 1)
        post_events(client, broker_a, secret, breach(trader, later(step + 0.5)))  # still breached: nothing new
        assert statuses() == ["active"] + ["cleared"] * (round_ - 1)
        post_events(client, broker_a, secret, calm(trader, later(step + 0.7)))
        assert statuses() == ["cleared"] * round_
    found = alerts(client, broker_a, traderId=trader)
    assert {a["ruleId"] for a in found} == {made["id"]} and all(a["clearedEvidence"] for a in found)
