"""Issue 13 follow-ups from review: the Cornish-Fisher floor per position, one definition of the
CORNISH_FISHER_OUT_OF_DOMAIN flag, the direction of each stress conversion hop, typed leverageCap."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.calc.flags import FLAG_CODES
from app.calc.instruments import resolve
from app.calc.leverage import regulatory_cap


def post(client: TestClient, path: str, body: dict[str, Any], expect: int = 200) -> dict[str, Any]:
    r = client.post(f"/api/v1/calculate/{path}", json=body)
    assert r.status_code == expect, r.text
    out: dict[str, Any] = r.json()
    return out


# 98 gains of 1 % and two small losses: the Gaussian figure (mean included) and the 95 % historical figure
# are both gains, the expansion is out of its domain, and the position has lost money in its history.
GAINS = [0.01] * 98 + [-0.001, -0.002]


def test_cornish_fisher_fallback_floors_the_single_position_at_zero(client: TestClient) -> None:
    body = {"accountCurrency": "USD", "method": "cornish-fisher", "confidence": [0.95, 0.99],
            "positions": [{"currencyPair": "EURUSD", "exposure": 1_000_000}],
            "returns": {"series": {"EURUSD": GAINS}}}
    r = post(client, "var", body)
    assert "CORNISH_FISHER_OUT_OF_DOMAIN" in [f["code"] for f in r["flags"]]
    v95 = r["results"][0]
    comp = r["components"][0]
    # The book is one position: its standalone VaR is the book's VaR, floored at 0 like the book's
    # (before: the book said 0 and the same position alone said -7,119, the Gaussian gain).
    assert v95["var"] == 0.0
    assert comp["standaloneVar"] == v95["var"]
    assert r["sumOfStandaloneVar"] >= 0 and r["diversificationBenefit"] == 0.0


def test_cornish_fisher_flag_uses_the_one_definition(client: TestClient) -> None:
    body = {"accountCurrency": "USD", "method": "cornish-fisher",
            "positions": [{"currencyPair": "EURUSD", "exposure": 1_000_000}],
            "returns": {"series": {"EURUSD": GAINS}}}
    flag = next(f for f in post(client, "var", body)["flags"] if f["code"] == "CORNISH_FISHER_OUT_OF_DOMAIN")
    assert flag["message"] == FLAG_CODES["CORNISH_FISHER_OUT_OF_DOMAIN"]
    assert set(flag["data"]) == {"skewness", "excessKurtosis", "safeRule"}


def test_stress_conversion_legs_name_their_direction(client: TestClient) -> None:
    # EURJPY in a USD account through USDJPY: the JPY P&L is divided by USDJPY (the pair used inverted).
    # GBPUSD in a EUR account through EURUSD: USD -> EUR divides by EURUSD as well; EURGBP in a USD account:
    # GBP -> USD multiplies by GBPUSD.
    body = {"accountCurrency": "USD", "conversionRates": {"USDJPY": 150, "GBPUSD": 1.27},
            "positions": [{"currencyPair": "EURJPY", "lots": 1, "side": "long", "price": 162},
                          {"currencyPair": "EURGBP", "lots": 1, "side": "short", "price": 0.85},
                          {"currencyPair": "EURUSD", "exposure": 100_000}],
            "shocks": {"JPY": -0.10, "GBP": 0.05}}
    jpy, gbp, usd = post(client, "stress", body)["scenarios"][0]["positions"]
    assert jpy["conversionPath"] == ["USDJPY"]
    assert jpy["conversionLegs"] == [{"pair": "USDJPY", "direction": "divide"}]
    assert jpy["conversionFactor"] == pytest.approx(1 / (1 / 0.9), rel=1e-12)  # USDJPY x 1/0.9, divided
    assert gbp["conversionLegs"] == [{"pair": "GBPUSD", "direction": "multiply"}]
    assert gbp["conversionFactor"] == pytest.approx(1.05, rel=1e-12)
    assert usd["conversionPath"] == [] and usd["conversionLegs"] == []


def test_leverage_cap_is_a_published_enum(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    for name in ("PositionSizeResponse", "MarginResponse"):
        cap = schema[name]["properties"]["leverageCap"]
        ref = cap.get("$ref", "").rsplit("/", 1)[-1]
        enum = (schema[ref] if ref else cap).get("enum")
        assert enum is not None and set(enum) == {"requested", "esma", "fca", "asic", "nfa", "broker",
                                                  "esma-default"}, (name, cap)
    assert "BatchResponse" not in schema


def test_projection_above_the_float_range_is_null_and_flagged(client: TestClient) -> None:
    # The schemathesis find (a start balance of 8.4e12 compounding a trade list). Here: +0.5R or +1.5R, 7.02 %
    # risked per trade, 10,000 trades. The mean path stays finite: 8.4e12 x 1.0702^10,000 = 3.7e307 (so the
    # closed form answers), but the luckiest of 200 paths passes 1.8e308: its equity, and with it the mean
    # final equity, cannot be written as a JSON number (before: an infinite mean sent as null where the
    # schema promises a number).
    body = {"startBalance": 8.4e12, "riskPercentage": 7.02, "trades": [0.5, 1.5], "numberOfTrades": 10_000,
            "paths": 200, "seed": 7}
    r = post(client, "projection", body)
    assert [f["code"] for f in r["flags"]] == ["EQUITY_ABOVE_FLOAT_RANGE"]
    assert r["meanFinalEquity"] is None
    assert r["analytic"]["fixedFractionMeanEquity"] == pytest.approx(8.4e12 * 1.0702**10_000, rel=1e-9)
    # Every path only gains (both results are wins): no drawdown at all, no ruin, the figures that are
    # ratios stay exact.
    assert r["medianMaxDrawdown"] == 0.0 and r["ruinProbability"] == 0.0
    assert all(d["probability"] == 0.0 for d in r["drawdownProbabilities"])
    assert r["fan"]["p95"][-1] is not None and r["fan"]["p95"][-1] < 1.8e308


def test_projection_in_range_has_no_flag(client: TestClient) -> None:
    body = {"startBalance": 10_000, "riskPercentage": 1, "trades": [1, -1, 2, -1], "numberOfTrades": 50,
            "paths": 500, "seed": 1}
    r = post(client, "projection", body)
    assert r["flags"] == [] and isinstance(r["meanFinalEquity"], float)


@pytest.mark.parametrize(("symbol", "asic", "esma"), [
    ("AUDUSD", 30, 20), ("EURAUD", 30, 20), ("AUDJPY", 30, 20), ("EURUSD", 30, 30), ("USDCAD", 30, 30),
    ("NZDUSD", 20, 20), ("USDSGD", 20, 20), ("XAUUSD", 20, 20), ("XAGUSD", 10, 10), ("XTIUSD", 10, 10),
    ("US500", 20, 20), ("AUS200", 20, 20), ("HK50", 10, 10), ("BTCUSD", 2, 2),
])
def test_asic_caps_follow_instrument_2020_986(symbol: str, asic: float, esma: float) -> None:
    # Instrument 2020/986: 30:1 major pairs (two of AUD, CAD, USD, GBP, EUR, JPY, CHF), 20:1 minor pairs, gold
    # and major indices, 10:1 other commodities and minor indices, 2:1 crypto-assets. ESMA's majors lack AUD.
    spec = resolve(symbol)
    assert regulatory_cap(spec, "asic") == asic
    assert regulatory_cap(spec, "esma") == esma


def test_projection_closed_form_past_the_float_range_is_refused(client: TestClient) -> None:
    # The schemathesis find itself: (1 + 1 x 2)^629 = 3^629 = 1.3e300 fits in a double, the start balance times
    # it, 8.4e12 x 1.3e300 = 1.1e313, does not: it became inf silently and went out as null in
    # analytic.fixedFractionMeanEquity (a number in the schema). Refused like any other overflow of the
    # compounded closed form, naming numberOfTrades.
    body = {"startBalance": 8.4e12, "riskPercentage": 100, "trades": [1, 3], "numberOfTrades": 629, "paths": 100,
            "seed": 1}
    r = post(client, "projection", body, expect=422)
    assert [e["field"] for e in r["errors"]] == ["numberOfTrades"] and r["errors"][0]["code"] == "OUT_OF_RANGE"
