"""Issue 13, points 1, 2 and 6 (conversion): the rate graph, margin that never blocks a size, the
own-pair consistency check, sided quotes with a mid, spread units, direction, jurisdictions."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.calc.conversion import RateTable
from app.calc.errors import MissingRate


def post(client: TestClient, path: str, body: dict[str, Any], expect: int = 200) -> dict[str, Any]:
    r = client.post(f"/api/v1/calculate/{path}", json=body)
    assert r.status_code == expect, r.text
    out: dict[str, Any] = r.json()
    return out


def codes(r: dict[str, Any]) -> list[str]:
    return [f["code"] for f in r["flags"]]


JPY_EURGBP = {"accountBalance": 1_000_000, "accountCurrency": "JPY", "currencyPair": "EURGBP",
              "entryPrice": 0.85, "stopLoss": 0.845, "riskPercentage": 1}


# ------------------------------------------------------------------ the graph
def test_two_hops_through_a_third_currency() -> None:
    # USD -> EUR -> JPY: 162 / 1.08 = 150 (the case; one bridge could not do it).
    t = RateTable.from_mapping({"EURUSD": 1.08, "EURJPY": 162})
    c = t.cross("USD", "JPY")
    assert c.mid == pytest.approx(150.0, rel=1e-12)
    assert c.currencies == ("USD", "EUR", "JPY") and c.path == ("EURUSD", "EURJPY")


def test_fewest_hops_then_usd_then_eur() -> None:
    # GBP -> JPY: through USD or through EUR, both two hops: USD wins (the documented preference).
    t = RateTable.from_mapping({"EURGBP": 0.85, "EURJPY": 162, "GBPUSD": 1.27, "USDJPY": 150, "GBPJPY": 191})
    assert t.cross("GBP", "JPY").currencies == ("GBP", "JPY")  # direct beats any bridge
    t = RateTable.from_mapping({"EURGBP": 0.85, "EURJPY": 162, "GBPUSD": 1.27, "USDJPY": 150})
    assert t.cross("GBP", "JPY").currencies == ("GBP", "USD", "JPY")
    t = RateTable.from_mapping({"EURGBP": 0.85, "EURJPY": 162, "GBPCHF": 1.1, "CHFJPY": 170})
    assert t.cross("GBP", "JPY").currencies == ("GBP", "EUR", "JPY")


def test_three_hops_and_crypto_and_metal_nodes() -> None:
    t = RateTable.from_mapping({"BTCUSD": 60_000, "EURUSD": 1.2, "EURCHF": 0.95, "XAUUSD": 2400})
    assert t.cross("BTC", "CHF").mid == pytest.approx(60_000 / 1.2 * 0.95, rel=1e-12)
    assert t.cross("XAU", "BTC").mid == pytest.approx(2400 / 60_000, rel=1e-12)
    assert t.cross("BTC", "CHF").currencies == ("BTC", "USD", "EUR", "CHF")


def test_bid_ask_along_a_path() -> None:
    t = RateTable.from_mapping({"EURUSD": {"bid": 1.0799, "ask": 1.0801}, "EURJPY": {"bid": 161.9, "ask": 162.1}})
    c = t.cross("USD", "JPY")
    # USD -> EUR is EURUSD inverted: bid 1/ask, ask 1/bid.
    assert c.bid == pytest.approx(161.9 / 1.0801, rel=1e-14)
    assert c.ask == pytest.approx(162.1 / 1.0799, rel=1e-14)


def test_missing_rate_names_the_cheapest_pair_never_the_instrument() -> None:
    t = RateTable.from_mapping({"GBPUSD": 1.27})
    with pytest.raises(MissingRate) as exc:
        t.cross("EUR", "JPY", instrument="EURJPY")
    assert exc.value.needed != "EURJPY"
    with pytest.raises(MissingRate) as exc:
        t.cross("GBP", "JPY", instrument="EURGBP")
    assert exc.value.needed == "GBPJPY" and "USDJPY" in exc.value.detail


def test_margin_failure_never_blocks_the_size(client: TestClient) -> None:
    # GBP -> JPY is all the size needs (GBPUSD x USDJPY = 190.5); EUR -> JPY for the margin goes through the
    # instrument's own price: EUR -> GBP (0.85) -> USD (1.27) -> JPY (150) = 161.925.
    r = post(client, "position-size", {**JPY_EURGBP, "conversionRates": {"GBPUSD": 1.27, "USDJPY": 150}})
    assert r["pipValuePerLot"] == 1905.0  # 0.0001 x 100,000 x 190.5, as /pip-value answers
    assert r["marginPerLot"] == pytest.approx(100_000 * 161.925 / 30, rel=1e-12)
    paths = {(p["from"], p["to"]): p for p in r["conversionPaths"]}
    assert paths[("EUR", "JPY")]["path"] == ["EUR", "GBP", "USD", "JPY"]
    assert paths[("EUR", "JPY")]["legs"][0] == {"pair": "EURGBP", "rate": 0.85, "source": "entryPrice"}
    assert r["ratesUsed"] == {"GBPUSD": 1.27, "USDJPY": 150.0, "EURGBP": 0.85}
    # A table with the size's rate only: margin null and flagged with the rate it needs, never a 422.
    r = post(client, "position-size", {**JPY_EURGBP, "currencyPair": "EURGBP", "instrument": {"marginMode": "fx"},
                                       "conversionRates": {"GBPJPY": 190.5, "EURGBP": 0.85}})
    assert r["requiredMargin"] is not None  # EUR -> GBP -> JPY
    r = post(client, "position-size", {**JPY_EURGBP, "currencyPair": "XAUGBP",
                                       "instrument": {"marginCurrency": "XAU"}, "entryPrice": 2000,
                                       "stopLoss": 1990, "conversionRates": {"GBPJPY": 190.5}})
    assert r["lotSize"] > 0


def test_margin_unavailable_flag(client: TestClient) -> None:
    body = {"accountBalance": 10_000, "accountCurrency": "JPY", "currencyPair": "XAUGBP", "entryPrice": 2000,
            "stopLoss": 1990, "riskPercentage": 1,
            "instrument": {"marginMode": "fx", "marginCurrency": "CHF", "quoteCurrency": "GBP"},
            "conversionRates": {"GBPJPY": 190.5}}
    r = post(client, "position-size", body)
    assert r["requiredMargin"] is None and r["marginPercentage"] is None
    f = next(f for f in r["flags"] if f["code"] == "MARGIN_UNAVAILABLE")
    assert f["data"]["neededRate"] in ("CHFJPY", "GBPCHF")
    assert r["lotSize"] == pytest.approx(0.0, abs=1) and r["maxLoss"] > 0
    out = post(client, "batch", {"items": [body]})
    assert out["results"][0]["ok"] and out["results"][0]["result"]["requiredMargin"] is None


def test_batch_uses_the_graph_too(client: TestClient) -> None:
    out = post(client, "batch", {"items": [{**JPY_EURGBP}], "conversionRates": {"GBPUSD": 1.27, "USDJPY": 150}})
    res = out["results"][0]
    assert res["ok"], res
    single = post(client, "position-size", {**JPY_EURGBP, "conversionRates": {"GBPUSD": 1.27, "USDJPY": 150}})
    assert res["result"]["requiredMargin"] == single["requiredMargin"]
    assert res["result"]["ratesUsed"] == single["ratesUsed"]
    assert res["result"]["conventions"]["version"] == single["conventions"]["version"]


def test_pip_value_and_pnl_name_their_path(client: TestClient) -> None:
    r = post(client, "pip-value", {"accountCurrency": "JPY", "currencyPair": "USDCHF", "price": 0.9,
                                   "conversionRates": {"EURUSD": 1.08, "EURJPY": 162}})
    # CHF -> USD (own price 1/0.9) -> EUR -> JPY: 2 hops beyond the own price.
    assert r["pipValuePerLot"] == pytest.approx(10.0 / 0.9 * 150, rel=1e-10)
    assert r["conversionPaths"][0]["path"] == ["CHF", "USD", "EUR", "JPY"]


# ------------------------------------------------------------------ point 6, conversion side
def test_own_pair_rate_far_from_entry_is_refused(client: TestClient) -> None:
    body = {"accountBalance": 10_000, "accountCurrency": "USD", "currencyPair": "USDJPY", "entryPrice": 150,
            "stopLoss": 149, "riskPercentage": 1}
    r = client.post("/api/v1/calculate/position-size", json={**body, "conversionRates": {"USDJPY": 100}})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["errors"][0]["field"] == "conversionRates.USDJPY"
    r2 = post(client, "position-size", {**body, "conversionRates": {"USDJPY": 152}})
    assert "OWN_RATE_DIFFERS_FROM_PRICE" in codes(r2)
    r3 = post(client, "position-size", {**body, "conversionRates": {"USDJPY": 150.1}})
    assert "OWN_RATE_DIFFERS_FROM_PRICE" not in codes(r3)
    out = post(client, "batch", {"items": [body], "conversionRates": {"USDJPY": 100}})
    assert not out["results"][0]["ok"]
    pnl = client.post("/api/v1/calculate/pnl", json={
        "accountCurrency": "USD", "currencyPair": "USDJPY", "side": "long", "openPrice": 150, "closePrice": 151,
        "lots": 1, "conversionRates": {"USDJPY": 100}})
    assert pnl.status_code == 422


def test_direction_from_nothing_is_flagged(client: TestClient) -> None:
    body = {"accountBalance": 10_000, "accountCurrency": "USD", "currencyPair": "EURUSD", "entryPrice": 1.1,
            "stopLossPips": 20, "riskPercentage": 1}
    r = post(client, "position-size", body)
    assert r["direction"] == "long" and "DIRECTION_ASSUMED" in codes(r)
    assert "DIRECTION_ASSUMED" not in codes(post(client, "position-size", {**body, "direction": "short"}))
    out = post(client, "batch", {"items": [body, {**body, "direction": "long"}]})
    assert [f["code"] for f in out["results"][0]["result"]["flags"]] == ["DIRECTION_ASSUMED"]
    assert out["results"][1]["result"]["flags"] == []


def test_margin_above_balance_is_flagged_without_free_margin(client: TestClient) -> None:
    # 15 lots of EURUSD at 30:1 need 55,000 USD of margin on a 3,667 balance (1,500 %).
    body = {"accountBalance": 3666.67, "accountCurrency": "USD", "currencyPair": "EURUSD", "entryPrice": 1.1,
            "stopLoss": 1.0999, "riskPercentage": 5, "leverage": 30}
    r = post(client, "position-size", body)
    assert r["requiredMargin"] > r["marginPercentage"] / 100 * 3666 and "MARGIN_EXCEEDS_BALANCE" in codes(r)
    out = post(client, "batch", {"items": [body]})
    assert "MARGIN_EXCEEDS_BALANCE" in [f["code"] for f in out["results"][0]["result"]["flags"]]
    m = post(client, "margin", {"accountCurrency": "USD", "currencyPair": "EURUSD", "lots": 15, "price": 1.1,
                                "leverage": 30, "accountBalance": 3666.67})
    assert "MARGIN_EXCEEDS_BALANCE" in codes(m)


def test_one_free_margin_figure_per_meaning(client: TestClient) -> None:
    m = post(client, "margin", {"accountCurrency": "USD", "currencyPair": "EURUSD", "lots": 1, "price": 1.1,
                                "leverage": 30, "accountBalance": 10_000, "freeMargin": 6000})
    need = 110_000 / 30
    assert m["freeMarginBefore"] == 6000 and m["freeMarginSource"] == "freeMargin"
    assert m["freeMarginAfter"] == m["freeMargin"] == pytest.approx(6000 - need, abs=1e-9)
    m = post(client, "margin", {"accountCurrency": "USD", "currencyPair": "EURUSD", "lots": 1, "price": 1.1,
                                "leverage": 30, "accountBalance": 10_000})
    assert m["freeMarginAfter"] == m["freeMargin"] == pytest.approx(10_000 - need, abs=1e-9)


def test_sided_quote_with_mid(client: TestClient) -> None:
    r = post(client, "convert", {"amount": 100, "from": "GBP", "to": "USD",
                                 "conversionRates": {"GBPUSD": {"bid": 1.2690, "mid": 1.2701, "ask": 1.2710}}})
    assert r["mid"] == pytest.approx(127.01) and r["loss"] == pytest.approx(127.10)
    bad = client.post("/api/v1/calculate/convert", json={
        "amount": 100, "from": "GBP", "to": "USD",
        "conversionRates": {"GBPUSD": {"bid": 1.2690, "mid": 1.3, "ask": 1.2710}}})
    assert bad.status_code == 422 and "GBPUSD" in bad.json()["errors"][0]["field"]


def test_spread_has_a_unit(client: TestClient) -> None:
    body = {"accountBalance": 10_000, "accountCurrency": "USD", "currencyPair": "EURUSD", "entryPrice": 1.1,
            "atr": 0.0030, "atrMultiplier": 2, "spreadAdjustStop": True, "riskPercentage": 1, "direction": "long"}
    pips = post(client, "position-size", {**body, "spreadPips": 0.8})
    assert pips["stopDistancePips"] == pytest.approx(60.8)
    price = post(client, "position-size", {**body, "spread": 0.00008})
    assert price["stopDistancePips"] == pytest.approx(60.8)
    r = client.post("/api/v1/calculate/position-size", json={**body, "spread": 0.8})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "spread"
    assert "spreadPips" in r.json()["errors"][0]["detail"]


def test_nfa_does_not_invent_a_cap_for_cfds(client: TestClient) -> None:
    body = {"accountBalance": 10_000, "accountCurrency": "USD", "currencyPair": "US500", "entryPrice": 5000,
            "stopLoss": 4950, "riskPercentage": 1, "jurisdiction": "nfa"}
    r = post(client, "position-size", body)
    assert "NOT_OFFERED_TO_US_RETAIL" in codes(r)
    assert r["leverage"] != 20 or r["leverageCap"] != "nfa"
    out = post(client, "batch", {"items": [body]})
    assert "NOT_OFFERED_TO_US_RETAIL" in [f["code"] for f in out["results"][0]["result"]["flags"]]
    fx = post(client, "position-size", {**body, "currencyPair": "EURUSD", "entryPrice": 1.1, "stopLoss": 1.09})
    assert fx["leverage"] == 50 and fx["leverageCap"] == "nfa"


def test_asic_major_pairs_include_the_australian_dollar(client: TestClient) -> None:
    # ASIC Instrument 2020/986: majors are any two of AUD, CAD, USD, GBP, EUR, JPY, CHF (ESMA has no AUD).
    body = {"accountBalance": 10_000, "accountCurrency": "USD", "currencyPair": "AUDUSD", "entryPrice": 0.66,
            "stopLoss": 0.65, "riskPercentage": 1}
    assert post(client, "position-size", {**body, "jurisdiction": "asic"})["leverage"] == 30
    assert post(client, "position-size", {**body, "jurisdiction": "esma"})["leverage"] == 20
    nzd = {**body, "currencyPair": "NZDUSD", "entryPrice": 0.6, "stopLoss": 0.59, "jurisdiction": "asic"}
    assert post(client, "position-size", nzd)["leverage"] == 20
    out = post(client, "batch", {"items": [{**body, "jurisdiction": "asic"}]})
    assert out["results"][0]["result"]["leverage"] == 30


def test_portfolio_risk_is_not_blocked_by_a_margin_rate(client: TestClient) -> None:
    # The risk at the stop needs GBP -> JPY only; the margin of an XAU-margined position cannot be converted.
    body = {"accountCurrency": "JPY", "accountBalance": 1_000_000, "conversionRates": {"GBPJPY": 190.5},
            "positions": [{"currencyPair": "XAUGBP", "side": "long", "lots": 1, "entryPrice": 2000,
                           "stopLoss": 1990, "instrument": {"marginMode": "fx", "marginCurrency": "CHF",
                                                            "quoteCurrency": "GBP"}}]}
    r = post(client, "portfolio", body)
    assert r["totalRisk"] == pytest.approx(10 * 100_000 * 190.5) and r["totalMargin"] is None  # FX rule spec
    assert r["totalMarginComplete"] is False and "MARGIN_UNAVAILABLE" in codes(r)
