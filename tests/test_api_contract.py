"""The HTTP contract of the calculation API: the worked example, field names, options and docs."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

PS = "/api/v1/calculate/position-size"
WORKED: dict[str, Any] = {"accountBalance": 10000, "accountCurrency": "USD", "currencyPair": "EURUSD",
                          "entryPrice": 1.1850, "stopLoss": 1.1820, "riskPercentage": 2, "leverage": 30}


def post(client: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = client.post(f"/api/v1/calculate/{path}", json=body)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def codes(r: dict[str, Any]) -> list[str]:
    return [f["code"] for f in r["flags"]]


def test_worked_example_comes_back_exactly(client: TestClient) -> None:
    r = post(client, "position-size", WORKED)
    assert r["direction"] == "long"
    assert r["stopDistancePips"] == 30
    assert round(r["exactPositionSize"], 2) == 66666.67
    assert round(r["exactLotSize"], 6) == 0.666667
    assert r["lotSize"] == 0.66 and r["positionSize"] == 66000
    assert r["targetRiskAmount"] == 200 and r["maxLoss"] == 198.00 and r["riskPercentage"] == 1.98
    assert r["pipValue"] == 6.60 and r["pipValuePerLot"] == 10
    assert r["requiredMargin"] == 2607.00 and r["marginPercentage"] == 26.07
    assert r["leverage"] == 30 and r["leverageCap"] == "requested"
    assert r["flags"] == [] and r["ratesUsed"] == {"EURUSD": 1.185}
    assert r["conventions"]["conversionAt"] == "entry" and len(r["calculationId"]) == 36


def test_explain_lists_the_steps(client: TestClient) -> None:
    assert "explain" not in post(client, "position-size", WORKED)
    r = client.post(PS + "?explain=true", json=WORKED).json()
    steps = {s["step"]: s for s in r["explain"]}
    assert list(steps)[:2] == ["direction", "quoteToAccount"]
    assert steps["lossPerLot"]["value"] == 300 and "contractSize" in steps["lossPerLot"]["formula"]
    assert steps["tradeableLots"]["value"] == 0.66
    for path, body in [("pip-value", {"accountCurrency": "USD", "currencyPair": "EURUSD"}),
                       ("kelly", {"winRate": 0.6, "payoffRatio": 1})]:
        out = client.post(f"/api/v1/calculate/{path}?explain=1", json=body).json()
        assert out["explain"] and all({"step", "formula", "inputs", "value"} <= s.keys() for s in out["explain"])


def test_jurisdiction_and_broker_caps(client: TestClient) -> None:
    r = post(client, "position-size", {**WORKED, "leverage": 100, "jurisdiction": "esma"})
    assert r["leverage"] == 30 and r["leverageCap"] == "esma" and "LEVERAGE_CAPPED" in codes(r)
    r = post(client, "position-size", {**WORKED, "leverage": 100, "jurisdiction": "nfa"})
    assert r["leverage"] == 50 and r["leverageCap"] == "nfa"
    r = post(client, "position-size", {**WORKED, "currencyPair": "BTCUSD", "entryPrice": 60000, "stopLoss": 59000,
                                       "jurisdiction": "fca"})
    assert r["leverage"] == 2 and r["leverageCap"] == "fca"
    no_leverage = {k: v for k, v in WORKED.items() if k != "leverage"}
    r = post(client, "position-size", {**no_leverage, "currencyPair": "AUDUSD", "entryPrice": 0.66, "stopLoss": 0.65})
    assert r["leverage"] == 20 and r["leverageCap"] == "esma-default"


def test_min_max_lot_and_margin_flags(client: TestClient) -> None:
    small = {**WORKED, "accountBalance": 100, "riskPercentage": 1}
    r = post(client, "position-size", small)
    assert r["lotSize"] == 0.01 and "RAISED_TO_MIN_LOT_RISK_EXCEEDS_TARGET" in codes(r)
    assert r["maxLoss"] > r["targetRiskAmount"]
    r = post(client, "position-size", {**small, "minLotPolicy": "refuse"})
    assert r["lotSize"] == 0 and r["maxLoss"] == 0 and codes(r) == ["BELOW_MIN_LOT_NO_TRADE"]
    r = post(client, "position-size", {**WORKED, "accountBalance": 1e9, "riskPercentage": 1})
    assert r["lotSize"] == 100 and "CAPPED_AT_MAX_LOT" in codes(r)
    r = post(client, "position-size", {**WORKED, "freeMargin": 1000})
    assert "EXCEEDS_MAX_SIZE_BY_MARGIN" in codes(r) and r["marginLimitedLotSize"] == 0.25
    assert r["maxLotsByMargin"] == 0.25  # 1000 x 30 / (100,000 x 1.185) = 0.253 -> 0.25


def test_atr_spread_commission_and_reverse_mode(client: TestClient) -> None:
    base = {k: v for k, v in WORKED.items() if k != "stopLoss"}
    r = post(client, "position-size", {**base, "atr": 0.0020, "atrMultiplier": 1.5})
    assert r["stopDistancePips"] == 30 and r["stopLoss"] == 1.182
    r2 = post(client, "position-size", {**base, "atr": 0.0020, "atrMultiplier": 1.5, "spread": 0.0001,
                                        "spreadAdjustStop": True, "direction": "short"})
    assert r2["stopLoss"] == 1.1881 and r2["direction"] == "short"
    r = post(client, "position-size", {**WORKED, "commissionPerLot": 3.5})
    assert r["lossPerLot"] == 307 and r["lotSize"] == 0.65 and r["commission"] == 4.55
    rev = post(client, "position-size", {**{k: v for k, v in WORKED.items() if k != "riskPercentage"},
                                         "lots": 0.5})
    assert rev["maxLoss"] == 150 and rev["riskPercentage"] == 1.5 and rev["lotSize"] == 0.5


def test_take_profits_and_conversion_options(client: TestClient) -> None:
    r = post(client, "position-size", {**WORKED, "takeProfit": [{"price": 1.1880, "share": 0.5},
                                                                {"price": 1.1910, "share": 0.5}]})
    assert [t["lots"] for t in r["takeProfits"]] == [0.33, 0.33]
    assert r["potentialProfit"] == 297 and r["riskRewardRatio"] == 1.5
    jpy = {**WORKED, "currencyPair": "USDJPY", "entryPrice": 150.0, "stopLoss": 149.5}
    at_entry = post(client, "position-size", jpy)
    at_stop = post(client, "position-size", {**jpy, "conversionAt": "stop"})
    assert at_stop["lossPerLot"] > at_entry["lossPerLot"] and at_stop["conventions"]["conversionAt"] == "stop"
    sided = {**WORKED, "currencyPair": "EURGBP", "entryPrice": 0.85, "stopLoss": 0.848,
             "conversionRates": {"GBPUSD": {"bid": 1.2698, "ask": 1.2702}}}
    mid = post(client, "position-size", sided)
    worse = post(client, "position-size", {**sided, "rateSide": "conservative"})
    assert worse["lossPerLot"] > mid["lossPerLot"] and mid["ratesUsed"]["GBPUSD"] == {"bid": 1.2698, "ask": 1.2702}


def test_symbol_spellings_and_overrides(client: TestClient) -> None:
    for spelling in ("EUR/USD", "eur_usd", " eur-usd "):
        assert post(client, "position-size", {**WORKED, "currencyPair": spelling})["lotSize"] == 0.66
    r = post(client, "position-size", {**WORKED, "instrument": {"lotStep": 0.001, "minLot": 0.001}})
    assert r["lotSize"] == 0.666
    custom = {**WORKED, "currencyPair": "COPPER", "entryPrice": 4.5, "stopLoss": 4.4,
              "instrument": {"quoteCurrency": "USD", "contractSize": 25000, "pipSize": 0.0005, "lotStep": 1,
                             "minLot": 1}}
    r = post(client, "position-size", custom)
    # 200 / (0.1 x 25,000) = 0.08 contracts: below the 1-contract minimum, raised and flagged.
    assert r["lossPerLot"] == 2500 and r["lotSize"] == 1 and codes(r) == ["RAISED_TO_MIN_LOT_RISK_EXCEEDS_TARGET",
                                                                             "RISK_ABOVE_10_PERCENT"]


def test_instrument_catalogue(client: TestClient) -> None:
    items = client.get("/api/v1/instruments").json()["items"]
    fx = [i for i in items if i["assetClass"].startswith("fx")]
    assert len(fx) >= 40
    symbols = {i["symbol"] for i in items}
    assert {"XAUUSD", "XAGUSD", "US500", "US30", "NAS100", "GER40", "UK100", "JP225", "BTCUSD", "ETHUSD"} <= symbols
    assert all(i["leverageClass"] and i["leverageCaps"]["esma"] for i in items)
    one = client.get("/api/v1/instruments/eur_usd").json()
    assert one["symbol"] == "EURUSD" and one["leverageCaps"] == {"esma": 30, "fca": 30, "asic": 30, "nfa": 50}
    assert client.get("/api/v1/instruments/spx500").json()["symbol"] == "US500"
    assert client.get("/api/v1/instruments?assetClass=metal").json()["count"] >= 2


def test_health_docs_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ok"
    assert "swagger" in client.get("/docs").text.lower()
    spec = client.get("/openapi.json").json()
    for name in ("position-size", "pip-value", "margin", "pnl", "risk-reward", "kelly", "risk-of-ruin", "batch"):
        op = spec["paths"][f"/api/v1/calculate/{name}"]["post"]
        assert op["requestBody"]["content"]["application/json"]["example"], name
    props = spec["components"]["schemas"]["PositionSizeRequest"]["properties"]
    assert {"accountBalance", "stopLossPips", "conversionRates", "minLotPolicy", "conversionAt"} <= props.keys()
    assert client.get("/problems/validation-error").json()["title"] == "Request validation failed"


def test_other_calculations(client: TestClient) -> None:
    k = post(client, "kelly", {"trades": [2.0] * 55 + [-1.0] * 45})
    assert abs(k["logOptimalFraction"] - 0.325) < 1e-6 and abs(k["kellyFraction"] - 0.325) < 1e-9
    ruin = post(client, "risk-of-ruin", {"winRate": 0.5, "payoffRatio": 2, "riskFraction": 0.02, "ruinLevel": 0.5,
                                         "monteCarloPaths": 4000, "monteCarloTrades": 500, "seed": 7})
    mc = ruin["monteCarlo"]
    # Lundberg: the bound holds from above; the simulation is a check, not a source of the number.
    assert ruin["fixedFractionalRuinBound"] >= mc["ruinProbability"] - 4 * mc["standardError"]
    root = post(client, "risk-of-ruin", {"winRate": 0.4, "payoffRatio": 2, "capitalUnits": 5})
    x = root["ruinRoot"]
    assert abs(0.4 * x**3 - x + 0.6) < 1e-9 and abs(root["riskOfRuin"] - x**5) < 1e-9
    rr = post(client, "risk-reward", {"entryPrice": 1.1, "stopLoss": 1.095, "takeProfit": 1.11,
                                      "currencyPair": "EURUSD", "lots": 1, "accountCurrency": "USD",
                                      "commissionPerLot": 5, "winRate": 0.5})
    assert rr["riskAmount"] == 500 and rr["rewardAmount"] == 1000
    assert rr["riskRewardRatio"] == round((1000 - 10) / (500 + 10), 10)  # commission 2 x 5 x 1 lot on both sides
    series = post(client, "atr", {"high": [10, 11, 12, 11.5], "low": [9, 10, 10.5, 10.8],
                                  "close": [9.5, 10.8, 11, 11], "period": 2})
    assert series["trueRange"] == [1, 1.5, 1.5, 0.7] and series["atr"] == [None, 1.25, 1.375, 1.0375]
    pv = post(client, "pip-value", {"accountCurrency": "EUR", "currencyPair": "GBPJPY", "lots": 2,
                                    "conversionRates": {"EURJPY": 162.5}})
    assert pv["pipValue"] == round(2 * 1000 / 162.5, 10)


def test_batch_results_in_order_with_item_errors(client: TestClient) -> None:
    items = [WORKED, {**WORKED, "accountBalance": -1}, {**WORKED, "currencyPair": "USDJPY", "entryPrice": 150.0,
                                                         "stopLoss": 149.5}, {**WORKED, "takeProfit": 1.19}]
    r = client.post("/api/v1/calculate/batch", json={"items": items})
    assert r.status_code == 200
    body = r.json()
    assert body["count"] == 4 and body["succeeded"] == 3 and body["failed"] == 1
    assert [x["index"] for x in body["results"]] == [0, 1, 2, 3]
    assert body["results"][1]["error"]["errors"][0]["field"] == "items[1].accountBalance"
    singles = [client.post(PS, json=i).json() for i in (items[0], items[2], items[3])]
    for res, single in zip((body["results"][0], body["results"][2], body["results"][3]), singles, strict=True):
        assert all(res["result"][k] == single[k] for k in res["result"] if k != "conventions"), (res, single)
        # An item echoes its own convention choices; the prose is given once for the batch.
        conv = res["result"]["conventions"]
        assert conv and conv == {k: single["conventions"][k] for k in conv}
    cols = client.post("/api/v1/calculate/batch", json={"items": items, "format": "columns",
                                                       "fields": ["lotSize", "maxLoss"]}).json()
    assert cols["columns"] == {"lotSize": [0.66, None, 0.6, 0.66], "maxLoss": [198.0, None, 200.0, 198.0]}
    assert [e["index"] for e in cols["errors"]] == [1]
    colin = client.post("/api/v1/calculate/batch", json={
        "columns": {"accountBalance": [10000, 20000, -5], "accountCurrency": "USD", "currencyPair": "EURUSD",
                    "entryPrice": 1.185, "stopLoss": 1.182, "riskPercentage": 2, "leverage": 30},
        "format": "columns", "fields": ["lotSize"]}).json()
    assert colin["columns"]["lotSize"] == [0.66, 1.33, None]
    assert colin["errors"][0]["errors"][0]["field"] == "items[2].accountBalance"


def test_explain_on_every_calculation(client: TestClient) -> None:
    bodies = {
        "margin": {"accountCurrency": "USD", "currencyPair": "EURUSD", "lots": 1, "price": 1.1},
        "pnl": {"accountCurrency": "USD", "currencyPair": "EURUSD", "side": "long", "lots": 1, "openPrice": 1.1,
                "closePrice": 1.11},
        "risk-reward": {"rewardToRisk": 2, "winRate": 0.4},
        "risk-of-ruin": {"winRate": 0.55, "capitalUnits": 10},
        "lots": {"currencyPair": "EURUSD", "units": 12345},
        "portfolio": {"accountCurrency": "USD", "positions": [{"currencyPair": "EURUSD", "side": "long", "lots": 1,
                                                               "entryPrice": 1.1, "stopLossPips": 20}]},
        "multi-leg": {"accountCurrency": "USD", "currencyPair": "EURUSD", "entries": [{"price": 1.1}],
                      "stopLoss": 1.09, "riskAmount": 100},
        "projection": {"startBalance": 1000, "riskPercentage": 1, "rewardToRisk": 2, "outcomes": ["W"]},
        "atr": {"previousAtr": 0.01, "trueRange": 0.02, "period": 14},
        "cross-rate": {"target": "EURJPY", "conversionRates": {"EURUSD": 1.1, "USDJPY": 150}},
        "convert": {"amount": 100, "from": "EUR", "to": "USD", "conversionRates": {"EURUSD": 1.1}},
    }
    for path, body in bodies.items():
        r = client.post(f"/api/v1/calculate/{path}?explain=true", json=body)
        assert r.status_code == 200, (path, r.text)
        steps = r.json()["explain"]
        assert steps and all(s["formula"] for s in steps), path
        assert "explain" not in client.post(f"/api/v1/calculate/{path}", json=body).json()
    b = client.post("/api/v1/calculate/batch?explain=true", json={"items": [WORKED, WORKED]}).json()
    assert all(r["result"]["explain"] for r in b["results"])
    assert b["results"][0]["result"]["lotSize"] == 0.66


def test_portfolio_positions_on_one_pair_keep_their_own_prices(client: TestClient) -> None:
    body = {"accountCurrency": "USD", "positions": [
        {"currencyPair": "EURUSD", "side": "long", "lots": 1, "entryPrice": 1.10, "leverage": 10},
        {"currencyPair": "EURUSD", "side": "long", "lots": 1, "entryPrice": 1.20, "leverage": 10}]}
    r = post(client, "portfolio", body)
    assert r["marginByPosition"] == [11000.0, 12000.0]  # 100,000 EUR at each entry / 10


def test_batch_rates_used_lists_the_rates_in_the_order_the_single_request_does(client: TestClient) -> None:
    """The fast batch path gathered each conversion's rates in a set, so their order in `ratesUsed` followed
    the process's string hashing (a different answer per worker and restart); it is the order of use."""
    rates = {"USDJPY": 150, "GBPUSD": 1.27, "EURUSD": 1.08}
    item = {"accountBalance": 1_000_000, "accountCurrency": "JPY", "currencyPair": "EURGBP", "entryPrice": 0.85,
            "stopLoss": 0.845, "riskPercentage": 1}
    single = post(client, "position-size", {**item, "conversionRates": rates})
    batch = client.post("/api/v1/calculate/batch", json={"items": [item, item], "conversionRates": rates}).json()
    assert len(single["ratesUsed"]) >= 2
    for row in batch["results"]:
        assert row["ok"] and list(row["result"]["ratesUsed"]) == list(single["ratesUsed"])
