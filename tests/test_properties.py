"""Hypothesis properties of position sizing, and of the batch against the single-request path."""

from __future__ import annotations

import json
from typing import Any

import orjson
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.calculations import batch, service
from app.calculations.schemas import PositionSizeRequest

# (symbol, plausible entry, rates a USD/EUR/JPY account needs)
MARKETS = [("EURUSD", 1.0850), ("USDJPY", 150.0), ("GBPJPY", 190.0), ("EURGBP", 0.85), ("XAUUSD", 2300.0),
           ("US500", 5000.0), ("AUDCAD", 0.91), ("BTCUSD", 60000.0)]
RATES = {"USDJPY": 150.0, "GBPUSD": 1.27, "EURUSD": 1.0850, "USDCAD": 1.36, "AUDUSD": 0.66}

market = st.sampled_from(MARKETS)
account = st.sampled_from(["USD", "EUR", "JPY", "GBP"])
balance = st.floats(min_value=100, max_value=5_000_000)
risk_pct = st.floats(min_value=0.05, max_value=10)
stop_frac = st.floats(min_value=0.0005, max_value=0.05)  # stop distance as a fraction of the price
side = st.sampled_from(["long", "short"])
policy = st.sampled_from(["raise", "refuse"])

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def body(mkt: tuple[str, float], acc: str, bal: float, pct: float, frac: float, sd: str, pol: str) -> dict[str, Any]:
    symbol, entry = mkt
    stop = entry * (1 - frac) if sd == "long" else entry * (1 + frac)
    return {"accountBalance": bal, "accountCurrency": acc, "currencyPair": symbol, "entryPrice": entry,
            "stopLoss": round(stop, 5), "riskPercentage": pct, "minLotPolicy": pol, "conversionRates": RATES}


def size(b: dict[str, Any]) -> dict[str, Any]:
    return service.position_size(PositionSizeRequest.model_validate(b, strict=True))


@FAST
@given(market, account, balance, risk_pct, stop_frac, side, policy)
def test_rounding_down_never_exceeds_the_target_unless_flagged(mkt: tuple[str, float], acc: str, bal: float,
                                                               pct: float, frac: float, sd: str, pol: str) -> None:
    r = size(body(mkt, acc, bal, pct, frac, sd, pol))
    codes = {f["code"] for f in r["flags"]}
    if r["maxLoss"] > r["targetRiskAmount"] * (1 + 1e-9):
        assert codes & {"RAISED_TO_MIN_LOT_RISK_EXCEEDS_TARGET", "RISK_EXCEEDS_TARGET"}, r
    assert r["lotSize"] <= r["exactLotSize"] * (1 + 1e-9) or "RAISED_TO_MIN_LOT_RISK_EXCEEDS_TARGET" in codes
    # The tradeable size is a whole number of lot steps.
    steps = r["lotSize"] / r["instrument"]["lotStep"]
    assert abs(steps - round(steps)) < 1e-6


@FAST
@given(market, account, balance, risk_pct, stop_frac, side,
       st.sampled_from([("/", "_", "-"), ("", "", ""), (" ", " ", " ")]), st.booleans())
def test_symbol_spelling_does_not_change_results(mkt: tuple[str, float], acc: str, bal: float, pct: float,
                                                 frac: float, sd: str, seps: tuple[str, ...], lower: bool) -> None:
    symbol = mkt[0]
    if len(symbol) != 6:
        return
    spelled = symbol[:3] + seps[0] + symbol[3:]
    spelled = spelled.lower() if lower else spelled
    a = size(body(mkt, acc, bal, pct, frac, sd, "raise"))
    b = size({**body(mkt, acc, bal, pct, frac, sd, "raise"), "currencyPair": f" {spelled} "})
    a.pop("calculationId"), b.pop("calculationId")
    assert a == b


@FAST
@given(market, account, st.floats(min_value=0.01, max_value=50), st.lists(stop_frac, min_size=2, max_size=6),
       side)
def test_risk_is_monotone_in_stop_distance(mkt: tuple[str, float], acc: str, lots: float, fracs: list[float],
                                           sd: str) -> None:
    symbol, entry = mkt
    risks = []
    for frac in sorted(set(round(f, 4) for f in fracs)):
        stop = entry * (1 - frac) if sd == "long" else entry * (1 + frac)
        b = {"accountBalance": 1e9, "accountCurrency": acc, "currencyPair": symbol, "entryPrice": entry,
             "stopLoss": stop, "lots": round(lots, 2) or 0.01, "conversionRates": RATES}
        risks.append(size(b)["maxLoss"])
    assert risks == sorted(risks)
    # And for a fixed risk, a wider stop never buys a larger exact size.
    exact = []
    for frac in sorted(set(round(f, 4) for f in fracs)):
        exact.append(size(body(mkt, acc, 100_000, 1.0, frac, sd, "raise"))["exactLotSize"])
    assert exact == sorted(exact, reverse=True)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(market, account, balance, risk_pct, stop_frac, side, policy,
                          st.sampled_from([None, 10, 30, 100]), st.sampled_from([None, "esma", "nfa"]),
                          st.sampled_from([None, 0.0, 3.5]), st.booleans()), min_size=1, max_size=40))
def test_batch_matches_single_requests(rows: list[tuple[Any, ...]]) -> None:
    items = []
    for mkt, acc, bal, pct, frac, sd, pol, lev, jur, comm, use_pips in rows:
        b = body(mkt, acc, bal, pct, frac, sd, pol)
        b.pop("conversionRates")
        if use_pips:
            b.pop("stopLoss")
            b["stopLossPips"] = round(frac * 1000, 1) or 0.1
            b["direction"] = sd
        for key, value in (("leverage", lev), ("jurisdiction", jur), ("commissionPerLot", comm)):
            if value is not None:
                b[key] = value
        items.append(b)
    out = orjson.loads(batch.run(orjson.dumps({"items": items, "conversionRates": RATES}), 10_000))
    cols = orjson.loads(batch.run(orjson.dumps({"items": items, "conversionRates": RATES, "format": "columns"}),
                                  10_000))
    for i, (item, res) in enumerate(zip(items, out["results"], strict=True)):
        try:
            single = size({**item, "conversionRates": RATES})
        except Exception as exc:  # the batch must report the same failure for this item
            assert not res["ok"], (item, exc)
            continue
        assert res["ok"], (item, res)
        for key, value in res["result"].items():
            assert cols["columns"][key][i] == value
            if isinstance(value, float):
                assert abs(value - single[key]) <= 1e-9 * max(1.0, abs(single[key])), (key, value, single[key])
            elif key == "conventions":  # an item echoes its own choices; the prose is once per batch
                assert value and value == {k: single[key][k] for k in value}, (value, single[key])
            else:
                assert value == single[key], (key, value, single[key])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6)
FIELDS = ["accountBalance", "accountCurrency", "currencyPair", "entryPrice", "stopLoss", "stopLossPips", "atr",
          "riskPercentage", "riskAmount", "takeProfit", "leverage", "conversionRates", "instrument", "lots",
          "minLotPolicy", "direction", "freeMargin"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=8), st.sampled_from(
    ["position-size", "pip-value", "margin", "pnl", "risk-reward", "kelly", "risk-of-ruin", "lots", "batch"]))
def test_arbitrary_json_never_gives_a_500(client: TestClient, doc: dict[str, Any], path: str) -> None:
    base = {"accountBalance": 10000, "accountCurrency": "USD", "currencyPair": "EURUSD", "entryPrice": 1.1,
            "stopLoss": 1.09, "riskPercentage": 1}
    payload: Any = {"items": [{**base, **doc}, doc]} if path == "batch" else {**base, **doc}
    # stdlib json: it writes integers beyond 64 bits and Infinity, both worth sending.
    r = client.post(f"/api/v1/calculate/{path}", content=json.dumps(payload).encode(),
                    headers={"content-type": "application/json"})
    assert r.status_code in (200, 400, 413, 422), r.text
    if r.status_code != 200:
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["errors"][0]["field"]
