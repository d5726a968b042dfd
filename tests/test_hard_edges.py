"""Issue 12, point 4: hard edges of the input. A control character in any string (NUL first) is a 422
naming the field, on every route, before anything reaches Postgres; a duplicate JSON key is a 400; no
numeric input makes a calculation divide by zero or answer null where the schema says number."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import BrokerFixture, make_broker
from tests.helpers_auth import NO_AUTH, POSITION_SIZE, assert_problem, problem_fields

pytestmark = pytest.mark.usefixtures("no_server_errors")


@pytest.fixture(scope="module")
def broker(client: TestClient) -> BrokerFixture:
    return make_broker(client)


def post_raw(client: TestClient, path: str, raw: str, headers: dict[str, str] | None = None) -> Any:
    return client.post(path, content=raw.encode(), headers={"Content-Type": "application/json", **(headers or {})})


# --- control characters --------------------------------------------------------------------------
CONTROL = ["\u0000", "\u0007", "\n", "\u001f", "\u007f", "\u0085", "\u009f"]


@pytest.mark.parametrize("char", CONTROL)
def test_login_with_a_control_character_is_422_naming_the_field(client: TestClient, char: str) -> None:
    body = {"broker": "demo", "email": f"a{char}@example.com", "password": "x"}
    resp = client.post("/api/v1/auth/token", json=body, headers=NO_AUTH)
    assert_problem(resp, 422, "validation-error")
    assert problem_fields(resp) == ["email"]


def test_nul_is_refused_on_user_key_broker_and_calculation_routes(client: TestClient, broker: BrokerFixture) -> None:
    cases: list[tuple[str, str, dict[str, Any], str]] = [
        ("POST", "/api/v1/auth/token", {"broker": "x\u0000", "email": "a@b.co", "password": "p"}, "broker"),
        ("POST", "/api/v1/auth/refresh", {"refreshToken": "fxr_rt_\u0000"}, "refreshToken"),
        ("POST", f"/api/v1/brokers/{broker.id}/users",
         {"email": "u@example.com", "name": "Eve\u0000", "password": "long enough password"}, "name"),
        ("POST", f"/api/v1/brokers/{broker.id}/api-keys", {"kind": "secret", "name": "k\u0000"}, "name"),
        ("PUT", f"/api/v1/brokers/{broker.id}/config", {"allowedOrigins": ["https://a.example.com\u0000"]},
         "allowedOrigins[0]"),
        ("PATCH", f"/api/v1/brokers/{broker.id}/config", {"instrumentOverrides": {"EUR\u0000USD": {}}},
         "instrumentOverrides.EUR\\u0000USD"),
        ("POST", "/api/v1/calculate/position-size", {**POSITION_SIZE, "currencyPair": "EURUSD\u0000"},
         "currencyPair"),
        ("POST", "/api/v1/calculate/batch",
         {"items": [POSITION_SIZE, {**POSITION_SIZE, "accountCurrency": "U\u0000D"}]}, "items[1].accountCurrency"),
    ]
    for method, path, body, field in cases:
        headers = NO_AUTH if path.startswith("/api/v1/auth") else broker.auth
        resp = client.request(method, path, content=json.dumps(body), headers={**headers,
                                                                               "Content-Type": "application/json"})
        assert_problem(resp, 422, "validation-error")
        assert problem_fields(resp) == [field], (path, resp.text)


def test_control_characters_in_query_and_path_parameters(client: TestClient, broker: BrokerFixture) -> None:
    listed = client.get("/api/v1/calculations?kind=position%00size", headers=broker.auth)
    assert_problem(listed, 422, "validation-error")
    assert problem_fields(listed) == ["kind"]
    widget = client.get("/api/v1/widget/config?broker=a%00b&key=x", headers=NO_AUTH)
    assert_problem(widget, 422, "validation-error")
    symbol = client.get("/api/v1/instruments/EUR%00USD", headers=broker.auth)
    assert_problem(symbol, 422, "validation-error")


def test_ordinary_text_still_passes(client: TestClient, broker: BrokerFixture) -> None:
    resp = client.post(f"/api/v1/brokers/{broker.id}/users", headers=broker.auth,
                       json={"email": "zoë@example.com", "name": "Zoë «Ω» 東京 \\ \"q\"", "role": "BROKER_USER"})
    assert resp.status_code == 201, resp.text
    assert resp.json()["name"] == "Zoë «Ω» 東京 \\ \"q\""


# --- duplicate keys -----------------------------------------------------------------------------
def test_duplicate_json_keys_are_400_naming_the_key(client: TestClient, broker: BrokerFixture) -> None:
    body = json.dumps(POSITION_SIZE)[:-1] + ', "stopLoss": 1.17}'
    calc = post_raw(client, "/api/v1/calculate/position-size", body, broker.auth)
    assert_problem(calc, 400, "malformed-json")
    assert problem_fields(calc) == ["stopLoss"]
    nested = post_raw(client, "/api/v1/calculate/batch",
                      '{"items": [' + json.dumps(POSITION_SIZE) + ", " + body + "]}", broker.auth)
    assert_problem(nested, 400, "malformed-json")
    assert problem_fields(nested) == ["items[1].stopLoss"]
    login = post_raw(client, "/api/v1/auth/token",
                     '{"broker": "x", "email": "a@b.co", "password": "p", "password": "q"}', NO_AUTH)
    assert_problem(login, 400, "malformed-json")
    assert problem_fields(login) == ["password"]
    config = client.put(f"/api/v1/brokers/{broker.id}/config",
                        headers={**broker.auth, "Content-Type": "application/json"},
                        content=b'{"branding": {"primaryColor": "#000000", "primaryColor": "#ffffff"}}')
    assert_problem(config, 400, "malformed-json")
    assert problem_fields(config) == ["branding.primaryColor"]


# --- numeric domains ----------------------------------------------------------------------------
def finite_numbers(value: Any, path: str = "") -> list[str]:
    """Paths of any null-for-a-number or non-finite number in a response."""
    bad: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            bad += finite_numbers(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            bad += finite_numbers(v, f"{path}[{i}]")
    elif isinstance(value, float) and not math.isfinite(value):
        bad.append(path)
    return bad


def test_tiny_prices_do_not_divide_by_zero(client: TestClient) -> None:
    resp = client.post("/api/v1/calculate/position-size",
                       json={**POSITION_SIZE, "entryPrice": 1e-20, "stopLoss": 5e-21})
    assert_problem(resp, 422)
    assert problem_fields(resp)[0] in ("entryPrice", "stopLoss")


@pytest.mark.parametrize("payoff", [5e-324, 1e-310, 2.2250738585072014e-308, 1e-300])
def test_kelly_with_a_denormal_payoff_is_422_not_null(client: TestClient, payoff: float) -> None:
    resp = client.post("/api/v1/calculate/kelly", json={"winRate": 0.5, "payoffRatio": payoff})
    assert_problem(resp, 422)
    assert problem_fields(resp) == ["payoffRatio"]


def test_kelly_from_trades_with_a_denormal_loss_is_a_number_or_422(client: TestClient) -> None:
    resp = client.post("/api/v1/calculate/kelly", json={"trades": [1.0, -5e-324, 2.0]})
    if resp.status_code == 200:
        assert finite_numbers(resp.json()) == [] and None not in resp.json().values()
    else:
        assert_problem(resp, 422)


@pytest.mark.parametrize(("path", "field", "value"), [
    ("/api/v1/calculate/pip-value", "price", 5e-324),
    ("/api/v1/calculate/pnl", "openPrice", 1e-310),
    ("/api/v1/calculate/position-size", "accountBalance", 5e-324),
    ("/api/v1/calculate/portfolio", "accountBalance", 1e-310),
])
def test_denormal_amounts_and_prices_are_422_not_null(client: TestClient, path: str, field: str,
                                                      value: float) -> None:
    from app.calculations.routes import ROUTES_BY_PATH

    example = ROUTES_BY_PATH[path].example
    assert example is not None and field in example
    resp = client.post(path, json={**example, field: value})
    assert_problem(resp, 422, "validation-error")
    assert problem_fields(resp) == [field]
    ok = client.post(path, json=example)
    assert ok.status_code == 200 and finite_numbers(ok.json()) == []
