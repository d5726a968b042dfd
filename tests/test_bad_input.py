"""Bad input gets a clear 4xx problem+json naming the field; never a 500."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

PS = "/api/v1/calculate/position-size"
GOOD: dict[str, Any] = {"accountBalance": 10000, "accountCurrency": "USD", "currencyPair": "EURUSD",
                        "entryPrice": 1.1850, "stopLoss": 1.1820, "riskPercentage": 2, "leverage": 30}


def assert_problem(r: Any, status: int, field: str | None = None, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    assert body["type"].startswith("/problems/") and body["title"] and body["detail"]
    assert body["request_id"] == r.headers["x-request-id"]
    if field is not None:
        fields = [e["field"] for e in body["errors"]]
        assert field in fields, (field, body)
    if code is not None:
        assert code in [e["code"] for e in body["errors"]], body
    return body


def raw(client: TestClient, body: bytes, path: str = PS) -> Any:
    return client.post(path, content=body, headers={"content-type": "application/json"})


@pytest.mark.parametrize("field,value", [
    ("accountBalance", 0), ("accountBalance", -5), ("entryPrice", 0), ("entryPrice", -1.1),
    ("stopLoss", -1), ("riskPercentage", 150), ("riskPercentage", 0), ("leverage", 0),
    ("accountBalance", "10000"), ("accountBalance", True), ("riskPercentage", [2]), ("currencyPair", 5),
    ("accountCurrency", "US"), ("minLotPolicy", "sometimes"), ("accountBalance", 1e300),
])
def test_field_values(client: TestClient, field: str, value: Any) -> None:
    assert_problem(client.post(PS, json={**GOOD, field: value}), 422, field)


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_non_finite_numbers(client: TestClient, literal: bytes) -> None:
    body = b'{"accountBalance": ' + literal + b', "accountCurrency": "USD", "currencyPair": "EURUSD", ' \
           b'"entryPrice": 1.185, "stopLoss": 1.182, "riskPercentage": 2}'
    # Documented (README, Errors): a non-finite number is a 422 naming its field, whichever way it is written.
    assert_problem(raw(client, body), 422, "accountBalance", "finite_number")


def test_missing_required_field(client: TestClient) -> None:
    body = {k: v for k, v in GOOD.items() if k != "entryPrice"}
    # entryPrice may be left out when a direction is given (the quote chain fills it): a missing entry is the
    # engine's MISSING_FIELD, as every conditionally required field is.
    assert_problem(client.post(PS, json=body), 422, "entryPrice", "MISSING_FIELD")


def test_unknown_field_is_an_error(client: TestClient) -> None:
    assert_problem(client.post(PS, json={**GOOD, "stoploss": 1.18}), 422, "stoploss", "extra_forbidden")


def test_stop_equal_to_entry(client: TestClient) -> None:
    assert_problem(client.post(PS, json={**GOOD, "stopLoss": 1.1850}), 422, "stopLoss", "STOP_EQUALS_ENTRY")


def test_stop_on_wrong_side_of_given_direction(client: TestClient) -> None:
    assert_problem(client.post(PS, json={**GOOD, "direction": "short"}), 422, "stopLoss", "STOP_LOSS_WRONG_SIDE")


def test_take_profit_on_wrong_side(client: TestClient) -> None:
    assert_problem(client.post(PS, json={**GOOD, "takeProfit": 1.18}), 422, "takeProfit", "TAKE_PROFIT_WRONG_SIDE")
    levels = [{"price": 1.19, "share": 0.5}, {"price": 1.17, "share": 0.5}]
    assert_problem(client.post(PS, json={**GOOD, "takeProfit": levels}), 422, "takeProfit[1].price",
                   "TAKE_PROFIT_WRONG_SIDE")


def test_take_profit_shares_must_add_up(client: TestClient) -> None:
    levels = [{"price": 1.19, "share": 0.5}, {"price": 1.2, "share": 0.4}]
    assert_problem(client.post(PS, json={**GOOD, "takeProfit": levels}), 422, "takeProfit", "SHARES_NOT_ONE")


def test_stop_and_risk_choices(client: TestClient) -> None:
    no_stop = {k: v for k, v in GOOD.items() if k != "stopLoss"}
    assert_problem(client.post(PS, json=no_stop), 422, "stopLoss", "MISSING_FIELD")
    assert_problem(client.post(PS, json={**GOOD, "stopLossPips": 30}), 422, "stopLossPips", "CONFLICTING_FIELDS")
    assert_problem(client.post(PS, json={**GOOD, "riskAmount": 100}), 422, "riskAmount", "CONFLICTING_FIELDS")
    risky = {**{k: v for k, v in GOOD.items() if k != "riskPercentage"}, "riskAmount": 20000}
    assert_problem(client.post(PS, json=risky), 422, "riskAmount", "RISK_ABOVE_BALANCE")
    assert_problem(client.post(PS, json={**GOOD, "stopLoss": None, "stopLossPips": 20000}), 422, "stopLossPips")


def test_unknown_symbol_and_currency(client: TestClient) -> None:
    body = assert_problem(client.post(PS, json={**GOOD, "currencyPair": "FOOBAR"}), 422, "currencyPair",
                          "UNKNOWN_INSTRUMENT")
    assert body["type"] == "/problems/unknown-instrument"
    assert_problem(client.post(PS, json={**GOOD, "accountCurrency": "XYZ"}), 422, "accountCurrency",
                   "UNKNOWN_CURRENCY")


def test_missing_conversion_rate_names_the_pair(client: TestClient) -> None:
    body = {**GOOD, "currencyPair": "GBPJPY", "entryPrice": 190.0, "stopLoss": 189.0}
    problem = assert_problem(client.post(PS, json=body), 422, "conversionRates", "MISSING_CONVERSION_RATE")
    assert problem["errors"][0]["neededRate"] == "USDJPY"
    assert "USDJPY" in problem["detail"]
    ok = client.post(PS, json={**body, "conversionRates": {"USDJPY": 150.0}})
    assert ok.status_code == 200


def test_bad_conversion_rates(client: TestClient) -> None:
    assert_problem(client.post(PS, json={**GOOD, "conversionRates": {"EURUSD": -1}}), 422, "conversionRates.EURUSD")
    assert_problem(client.post(PS, json={**GOOD, "conversionRates": {"EURUSD": {"bid": 1.2, "ask": 1.1}}}), 422,
                   "conversionRates.EURUSD")
    assert_problem(client.post(PS, json={**GOOD, "conversionRates": {"US500": 5000}}), 422, "conversionRates.US500")


def test_malformed_json_and_wrong_shapes(client: TestClient) -> None:
    assert_problem(raw(client, b'{"accountBalance": 10000,'), 400, "body")
    assert_problem(raw(client, b""), 400, "body")
    assert_problem(raw(client, b"[1, 2]"), 422)
    assert_problem(raw(client, b'"text"'), 422)


def test_wrong_media_type(client: TestClient) -> None:
    r = client.post(PS, content=b"accountBalance=1", headers={"content-type": "application/x-www-form-urlencoded"})
    assert_problem(r, 415, "content-type")


def test_not_found_and_method(client: TestClient) -> None:
    assert_problem(client.get("/api/v1/nope"), 404)
    assert_problem(client.get(PS), 405)
    assert_problem(client.get("/api/v1/instruments/NOPE"), 422, "symbol", "UNKNOWN_INSTRUMENT")


def test_body_too_large(client: TestClient) -> None:
    big = b'{"items": [' + b",".join([b'{"accountBalance": 1000000000000}'] * 300_000) + b"]}"
    assert_problem(raw(client, big, "/api/v1/calculate/batch"), 413)


def test_batch_over_the_limit(client: TestClient) -> None:
    r = client.post("/api/v1/calculate/batch", json={"items": [GOOD] * 10_001})
    assert_problem(r, 413, "items", "too_long")


@pytest.mark.parametrize("body,field", [
    ({"items": []}, "items"), ({"items": GOOD}, "items"), ({}, "items"), ({"items": [GOOD], "extra": 1}, "extra"),
    ({"items": [GOOD], "format": "xml"}, "format"), ({"items": [GOOD], "fields": ["nope"]}, "fields"),
    ({"items": [GOOD], "fields": [["lotSize"]]}, "fields"),
    ({"items": [GOOD], "conversionRates": {"EURUSD": "x"}}, "conversionRates.EURUSD"),
    ({"columns": {"accountBalance": [1, 2], "entryPrice": [1.1]}}, "columns.entryPrice"),
    ({"columns": {"takeProfit": [1.2]}}, "columns.takeProfit"), ({"columns": []}, "columns"),
    ({"items": [GOOD], "columns": {"accountBalance": [1]}}, "items"),
])
def test_batch_shape_errors(client: TestClient, body: dict[str, Any], field: str) -> None:
    assert_problem(client.post("/api/v1/calculate/batch", json=body), 422, field)


@pytest.mark.parametrize("path,body,field", [
    ("pip-value", {"accountCurrency": "USD", "currencyPair": "EURUSD", "lots": 1, "units": 5}, "units"),
    ("margin", {"accountCurrency": "USD", "currencyPair": "US500", "lots": 1}, "price"),
    ("margin", {"accountCurrency": "USD", "currencyPair": "EURUSD", "lots": 1, "openPrice": 1.1}, "side"),
    ("pnl", {"accountCurrency": "USD", "currencyPair": "EURUSD", "side": "up", "openPrice": 1, "closePrice": 1,
             "lots": 1}, "side"),
    ("risk-reward", {"entryPrice": 1.1, "stopLoss": 1.1, "takeProfit": 1.2}, "stopLoss"),
    ("risk-reward", {"rewardAmount": 100}, "riskAmount"),
    ("risk-reward", {}, "entryPrice"),
    ("kelly", {"winRate": 1.5, "payoffRatio": 1}, "winRate"),
    ("kelly", {"winRate": 0.5}, "payoffRatio"),
    ("kelly", {"trades": [10, 20, 30]}, "trades"),
    ("risk-of-ruin", {"winRate": 0.5}, "capitalUnits"),
    ("risk-of-ruin", {"winRate": 0.5, "riskFraction": 0.01, "monteCarloPaths": 100000,
                      "monteCarloTrades": 10000}, "monteCarloPaths"),
    ("lots", {"currencyPair": "EURUSD"}, "lots"),
    ("portfolio", {"accountCurrency": "USD", "positions": []}, "positions"),
    ("portfolio", {"accountCurrency": "USD", "positions": [{"currencyPair": "EURUSD", "side": "long", "lots": 1,
                                                            "stopLoss": 1.09}]}, "positions[0].entryPrice"),
    ("portfolio", {"accountCurrency": "USD", "positions": [{"currencyPair": "EURUSD", "side": "long", "lots": 1,
                                                            "entryPrice": 1.1, "stopLoss": 1.2}]},
     "positions[0].stopLoss"),
    ("multi-leg", {"accountCurrency": "USD", "currencyPair": "EURUSD", "entries": [{"price": 1.1}, {"price": 1.2}],
                   "stopLoss": 1.15, "riskAmount": 100}, "entries[1].price"),
    ("atr", {"high": [1.1, 1.2], "low": [1.0], "close": [1.05, 1.1], "period": 1}, "low"),
    ("atr", {"high": [1.1], "low": [1.2], "close": [1.05], "period": 1}, "low[0]"),
    ("cross-rate", {"target": "EURJPY", "conversionRates": {"EURUSD": 1.1}}, "conversionRates"),
    ("convert", {"amount": 1, "from": "USD", "to": "QQQ", "conversionRates": {"EURUSD": 1.1}}, "to"),
    ("projection", {"startBalance": 1, "riskPercentage": 1, "rewardToRisk": 1, "outcomes": ["X"]}, "outcomes[0]"),
])
def test_other_endpoints(client: TestClient, path: str, body: dict[str, Any], field: str) -> None:
    assert_problem(client.post(f"/api/v1/calculate/{path}", json=body), 422, field)


def test_request_id_echoed_or_replaced(client: TestClient) -> None:
    r = client.post(PS, json=GOOD, headers={"x-request-id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = client.post(PS, json={**GOOD, "accountBalance": -1}, headers={"x-request-id": "bad id with spaces"})
    assert r.headers["x-request-id"] != "bad id with spaces" and len(r.headers["x-request-id"]) == 32
    assert r.json()["request_id"] == r.headers["x-request-id"]
