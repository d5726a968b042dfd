"""Bad input to the risk endpoints: 422 problem+json naming the field, never a 500."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_bad_input import assert_problem

VAR = "/api/v1/calculate/var"
RET = {"EURUSD": [0.001 * ((i * 7) % 11 - 5) for i in range(120)],
       "USDJPY": [0.001 * ((i * 5) % 13 - 6) for i in range(120)]}
GOOD: dict[str, Any] = {"accountCurrency": "USD", "positions": [{"currencyPair": "EURUSD", "exposure": 1e5},
                                                               {"currencyPair": "USDJPY", "exposure": -5e4}],
                        "returns": {"series": RET}}


def test_good_request_answers(client: TestClient) -> None:
    r = client.post(VAR, json=GOOD)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["calculationId"] and body["conventions"]["method"] == "historical"
    assert abs(sum(c["componentVar"] for c in body["components"]) - body["results"][0]["var"]) < 1e-6


@pytest.mark.parametrize("body,field,code", [
    ({**GOOD, "returns": {"series": {"EURUSD": RET["EURUSD"], "USDJPY": RET["USDJPY"][:-1]}}},
     "returns.series.USDJPY", "LENGTH_MISMATCH"),
    ({**GOOD, "confidence": 0.999}, "returns.series", "TOO_FEW_OBSERVATIONS"),
    ({**GOOD, "returns": {"series": {"EURUSD": RET["EURUSD"]}}}, "positions[1].currencyPair", "MISSING_SERIES"),
    ({**GOOD, "returns": {"series": RET, "dates": ["2024-01-01"]}}, "returns.dates", "LENGTH_MISMATCH"),
    ({**GOOD, "method": "parametric", "returns": {"series": {"EURUSD": RET["EURUSD"], "USDJPY": [0.0] * 120}}},
     "returns.series", "SINGULAR_COVARIANCE"),
    ({**GOOD, "method": "monte-carlo", "paths": 600_000}, "paths", "TOO_MANY_PATHS"),
    ({**GOOD, "positions": [{"currencyPair": "EURUSD", "lots": 1}]}, "positions[0].side", "MISSING_FIELD"),
    ({**GOOD, "positions": [{"currencyPair": "EURUSD"}]}, "positions[0].exposure", "MISSING_FIELD"),
    ({**GOOD, "positions": [{"currencyPair": "EURUSD", "exposure": 1}] * 51}, "positions", "too_long"),
    ({**GOOD, "returns": {"series": {"EURUSD": [0.0] * 20_001}}}, "returns.series.EURUSD", "too_long"),
    ({**GOOD, "confidence": 0.4}, "confidence", None),
    ({**GOOD, "returns": {"series": {"EURUSD": [0.01, None] * 60, "USDJPY": RET["USDJPY"]}}},
     "returns.series.EURUSD[1]", None),
])
def test_var_bad_input(client: TestClient, body: dict[str, Any], field: str, code: str | None) -> None:
    assert_problem(client.post(VAR, json=body), 422, field, code)


def test_nan_in_returns(client: TestClient) -> None:
    raw = b'{"accountCurrency":"USD","positions":[{"currencyPair":"EURUSD","exposure":1}],' \
          b'"returns":{"series":{"EURUSD":[0.01, NaN, 0.02]}}}'
    r = client.post(VAR, content=raw, headers={"content-type": "application/json"})
    assert_problem(r, 422, "returns.series.EURUSD[1]")  # documented: non-finite numbers are 422 naming the field


def test_singular_covariance_falls_back_only_when_asked(client: TestClient) -> None:
    body = {**GOOD, "method": "parametric", "covarianceFallback": "eigen-clip",
            "returns": {"series": {"EURUSD": RET["EURUSD"], "USDJPY": [0.0] * 120}}}
    r = client.post(VAR, json=body)
    assert r.status_code == 200, r.text
    assert [f["code"] for f in r.json()["flags"]] == ["SINGULAR_COVARIANCE_FALLBACK"]


@pytest.mark.parametrize("path,body,field", [
    ("drawdown", {"pnl": [1.0, -2.0]}, "initialEquity"),
    ("drawdown", {"pnl": [-50.0, -60.0], "initialEquity": 100}, "pnl[1]"),
    ("drawdown", {"equity": [1.0, 0.0]}, "equity[1]"),
    ("drawdown", {"equity": [1.0, 2.0], "dates": ["a"]}, "dates"),
    ("stress", {"accountCurrency": "USD", "positions": [{"currencyPair": "EURUSD", "exposure": 1}],
                "builtinScenarios": ["nope"]}, "builtinScenarios[0]"),
    ("stress", {"accountCurrency": "USD", "positions": [{"currencyPair": "EURUSD", "exposure": 1}],
                "shocks": {"XYZ": 0.1}}, "shocks.XYZ"),
    ("stress", {"accountCurrency": "USD", "positions": [{"currencyPair": "EURUSD", "exposure": 1}],
                "shocks": {"EUR": -1.5}}, "shocks.EUR"),
    ("projection", {"startBalance": 1000, "riskPercentage": 1, "winRate": 0.5}, "rewardToRisk"),
    ("projection", {"startBalance": 1000, "riskPercentage": 1, "trades": [1, -1], "paths": 100_000,
                    "numberOfTrades": 10_000}, "paths"),
    # Compounding beyond the largest JSON number: refused naming the driver, never a 500 (OverflowError).
    ("projection", {"startBalance": 10_000, "riskPercentage": 100, "rewardToRisk": 10_000, "winRate": 1,
                    "numberOfTrades": 200}, "numberOfTrades"),
    ("projection", {"startBalance": 10_000, "riskPercentage": 100, "rewardToRisk": 10_000, "winRate": 1,
                    "numberOfTrades": 200, "paths": 1000, "seed": 1}, "numberOfTrades"),
])
def test_other_bad_input(client: TestClient, path: str, body: dict[str, Any], field: str) -> None:
    assert_problem(client.post(f"/api/v1/calculate/{path}", json=body), 422, field)


finite = st.floats(-0.5, 0.5, allow_nan=False)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(["historical", "parametric", "ewma", "cornish-fisher", "monte-carlo"]),
       n=st.integers(0, 30), values=st.lists(finite, min_size=0, max_size=30),
       conf=st.one_of(st.floats(0.0, 1.0), st.lists(st.floats(0.5, 1.0), max_size=3)),
       exposure=st.floats(-1e14, 1e14), horizon=st.floats(0, 300))
def test_var_fuzz_never_500(client: TestClient, method: str, n: int, values: list[float], conf: Any,
                            exposure: float, horizon: float) -> None:
    body = {"accountCurrency": "USD", "positions": [{"currencyPair": "GBPUSD", "exposure": exposure}],
            "returns": {"series": {"GBPUSD": values[:n] or values}}, "method": method, "confidence": conf,
            "horizonDays": horizon, "paths": 1000, "seed": 1}
    r = client.post(VAR, json=body)
    assert r.status_code in (200, 422), r.text
    if r.status_code == 422:
        assert r.json()["errors"][0]["field"]
