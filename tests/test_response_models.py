"""Every variant of every calculation's response is what its published response model says.

The conformance plugin (tests/openapi_conformance.py) validates each body these tests receive against
/openapi.json; the tests here reach the variants the other suites do not (optional blocks, null
fields, the less common methods) and check that the document itself is closed: every object a 2xx
response can contain forbids undeclared properties.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

CALC = "/api/v1/calculate/"
RETURNS = {"dates": ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05", "2024-01-08", "2024-01-09"],
           "series": {"EURUSD": [0.001, -0.004, 0.002, -0.001, 0.003, -0.002],
                      "USDJPY": [-0.002, 0.003, 0.001, 0.0, -0.001, 0.002]}}


def post(client: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = client.post(CALC + path, json=body)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def test_published_objects_are_closed(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    open_objects: list[str] = []
    reached: set[str] = set()

    def visit(node: Any, where: str) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                name = ref.rsplit("/", 1)[-1]
                if name not in reached:
                    reached.add(name)
                    visit(schemas[name], name)
                return
            if node.get("type") == "object" and "properties" in node and node.get("additionalProperties") is not False:
                open_objects.append(where)
            for key, value in node.items():
                visit(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                visit(value, f"{where}[{i}]")

    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            for status, response in op.get("responses", {}).items():
                if status.startswith("2"):
                    for media in response.get("content", {}).values():
                        visit(media.get("schema", {}), f"{method.upper()} {path} {status}")
    assert not open_objects, open_objects
    dangling = sorted({ref for ref in re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(doc))
                       if ref not in schemas})
    assert dangling == []  # ReDoc refuses a document with one


def test_drawdown_with_dates_and_series(client: TestClient) -> None:
    r = post(client, "drawdown", {"equity": [90, 95, 100, 98, 97, 103], "initialEquity": 100,
                                  "dates": ["d1", "d2", "d3", "d4", "d5", "d6"], "includeSeries": True})
    assert r["peakDate"] == "initial" and r["troughDate"] == "d1" and r["recoveryDate"] == "d3"
    assert len(r["drawdownSeries"]) == 6 and r["longestUnderwater"]["bars"] == 2
    flat = post(client, "drawdown", {"equity": [1, 2, 3], "dates": ["a", "b", "c"]})
    assert flat["peakIndex"] is None and flat["peakDate"] is None and flat["longestUnderwater"] is None
    assert flat["initialEquity"] is None and flat["recovered"] is True
    pnl = post(client, "drawdown", {"pnl": [10, -30, 5], "initialEquity": 100})
    assert pnl["input"] == "pnl" and "peakDate" not in pnl


def test_stress_every_block(client: TestClient) -> None:
    positions = [{"currencyPair": "EURUSD", "exposure": 100000}, {"currencyPair": "USDJPY", "exposure": -50000}]
    r = post(client, "stress", {
        "accountCurrency": "USD", "positions": positions, "shocks": {"EUR": -0.05, "USDJPY": 0.02},
        "scenarios": [{"name": "mine", "description": "a test", "shocks": {"JPY": 0.1}}],
        "builtinScenarios": "all", "returns": RETURNS, "windows": [1, 2]})
    sources = {s["source"] for s in r["scenarios"]}
    assert sources == {"request", "builtin"} and r["worstScenario"]["name"]
    assert [w["days"] for w in r["historical"]["worstWindows"]] == [1, 2]
    assert r["historical"]["worstWindows"][0]["startDate"] in RETURNS["dates"]
    only_history = post(client, "stress", {"accountCurrency": "USD", "positions": positions,
                                           "returns": {"series": RETURNS["series"]}})
    assert only_history["scenarios"] == [] and "worstScenario" not in only_history
    assert only_history["historical"]["worstWindows"][0]["startDate"] is None
    zero = post(client, "stress", {"accountCurrency": "USD", "positions": [{"currencyPair": "EURUSD",
                                                                            "exposure": 0}]})
    assert zero["scenarios"][0]["totalPnlFraction"] is None


def test_var_every_method(client: TestClient) -> None:
    positions = [{"currencyPair": "EURUSD", "exposure": 100000}, {"currencyPair": "USDJPY", "exposure": -50000}]
    for method in ("historical", "parametric", "ewma", "cornish-fisher", "monte-carlo"):
        body: dict[str, Any] = {"accountCurrency": "USD", "positions": positions, "returns": RETURNS,
                                "method": method, "confidence": [0.6, 0.8]}
        if method == "monte-carlo":
            body.update(paths=1000, seed=7)
        r = post(client, "var", body)
        assert r["method"] == method and r["conventions"]["method"] == method and len(r["results"]) == 2
    historical = post(client, "var", {"accountCurrency": "USD", "positions": positions,
                                      "returns": {"series": RETURNS["series"]}, "confidence": 0.8})
    assert historical["varScenarios"][0]["date"] is None


def test_multi_leg_with_a_risk_percentage(client: TestClient) -> None:
    r = post(client, "multi-leg", {"accountCurrency": "USD", "currencyPair": "EURUSD", "accountBalance": 10000,
                                   "riskPercentage": 1, "entries": [{"price": 1.1}, {"price": 1.101, "weight": 2}],
                                   "stopLoss": 1.095})
    assert r["riskPercentage"] <= 1 and len(r["legs"]) == 2


def test_null_fields_where_the_code_sends_null(client: TestClient) -> None:
    # A trade list without a losing trade: infinite ratios are sent as null.
    p = post(client, "projection", {"startBalance": 10000, "riskPercentage": 1, "trades": [1.0, 2.0, 0.5],
                                    "numberOfTrades": 10, "paths": 100, "seed": 1})
    assert p["tradeStatistics"]["payoffRatio"] is None and p["tradeStatistics"]["profitFactor"] is None
    # The Monte Carlo ruin check without a seed reports none.
    ror = post(client, "risk-of-ruin", {"winRate": 0.5, "payoffRatio": 1, "riskFraction": 0.1,
                                        "monteCarloPaths": 100, "monteCarloTrades": 10})
    assert ror["monteCarlo"]["seed"] is None and ror["lundbergExponent"] is None
    # FX margin needs no price when the margin currency is the account's.
    m = post(client, "margin", {"accountCurrency": "EUR", "currencyPair": "EURUSD", "lots": 1, "leverage": 30})
    assert m["price"] is None and m["marginCurrency"] == "EUR"
    # A position without a stop, a currency no rate converts.
    pf = post(client, "portfolio", {"accountCurrency": "USD", "positions": [
        {"currencyPair": "EURGBP", "side": "long", "lots": 1, "entryPrice": 0.85}],
        "conversionRates": {"GBPUSD": 1.27}})
    assert pf["positions"][0]["riskAtStop"] is None and pf["riskByPosition"] == [None]
    assert pf["netExposureByCurrency"]["EUR"]["accountValue"] is None


def test_batch_columns_with_explain_and_item_errors(client: TestClient) -> None:
    item = {"accountBalance": 10000, "accountCurrency": "USD", "currencyPair": "EURUSD", "entryPrice": 1.1,
            "stopLoss": 1.09, "riskPercentage": 1}
    missing_rate = {**item, "accountCurrency": "JPY", "currencyPair": "GBPCHF", "entryPrice": 1.1}
    r = client.post(CALC + "batch?explain=true", json={"items": [item, missing_rate], "format": "columns"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["columns"]["explain"][0] and body["columns"]["explain"][1] is None
    assert body["errors"][0]["index"] == 1 and body["errors"][0]["errors"][0]["neededRate"]
    rows = post(client, "batch", {"items": [item, missing_rate], "fields": ["lotSize", "flags"]})
    assert rows["results"][0]["result"].keys() == {"lotSize", "flags"}
    assert rows["results"][1]["ok"] is False


def test_readiness_down_is_its_own_documented_body(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    import app.health.router as health

    monkeypatch.setattr(health, "CATALOGUE", {})
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json()["status"] == "down" and r.json()["checks"]["catalogue"] == "down"
