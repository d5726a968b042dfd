"""Issue 13 point 5, large horizons: VaR/ES by exact revaluation (revaluedVar/revaluedEs) next to the linear
(delta, sqrt-time) figures, which stay as they were. Each expected value is derived here independently of
app/calc (math and statistics only)."""

from __future__ import annotations

import math
import statistics
from typing import Any

import pytest
from fastapi.testclient import TestClient

# 99 returns of +-0.5 % (50 up, 49 down) and one -20 % day.
CRASH = [0.005 if i % 2 == 0 else -0.005 for i in range(99)] + [-0.20]


def var(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    r = client.post("/api/v1/calculate/var", json=body)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def body(pair: str, exposure: float, returns: list[float], method: str, horizon: float,
         **extra: Any) -> dict[str, Any]:
    return {"accountCurrency": "USD", "positions": [{"currencyPair": pair, "exposure": exposure}],
            "returns": {"series": {pair: returns}}, "method": method, "horizonDays": horizon,
            "confidence": [0.95, 0.99], **extra}


def test_historical_one_year_revalued_never_loses_more_than_the_exposure(client: TestClient) -> None:
    r = var(client, body("EURUSD", 1_000_000, CRASH, "historical", 260))
    v95, v99 = r["results"]
    root = math.sqrt(260)
    # Linear: the 1-day quantile x sqrt(260). At 99 % (k = 1) the -20 % day: 200,000 x 16.12 = 3,224,903,
    # more than the 1,000,000 held, which a long position cannot lose.
    assert v99["var"] == pytest.approx(200_000 * root, rel=1e-12)
    # Revalued: the -20 % day compounded over sqrt(260) days, 1,000,000 x (1 - 0.8^16.12) = 972,624.
    crash = 1_000_000 * (1 - 0.8**root)
    assert v99["revaluedVar"] == pytest.approx(crash, rel=1e-12)
    assert v99["revaluedVar"] < 1_000_000 < v99["var"]
    # 95 %: k = ceil(0.05 x 100) = 5, the 5th worst day is a -0.5 % day: 1,000,000 x (1 - 0.995^16.12);
    # Rockafellar-Uryasev ES: the crash and four -0.5 % days, each 1/5.
    small = 1_000_000 * (1 - 0.995**root)
    assert v95["revaluedVar"] == pytest.approx(small, rel=1e-12)  # 77,644.73 (linear 80,622.58)
    assert v95["var"] == pytest.approx(5_000 * root, rel=1e-12)
    assert v95["revaluedEs"] == pytest.approx((crash + 4 * small) / 5, rel=1e-12)  # 256,640.55
    assert r["revaluation"] == {"basis": "scenarios", "heldConversionPairs": [],
                                "materialDifferenceThreshold": 0.01, "differsMaterially": True}
    assert "HORIZON_REVALUATION_DIFFERS" in [f["code"] for f in r["flags"]]


def test_one_day_in_the_account_currency_revalues_to_the_linear_figure(client: TestClient) -> None:
    for method in ("historical", "parametric", "ewma", "cornish-fisher", "monte-carlo"):
        r = var(client, body("EURUSD", 1_000_000, CRASH, method, 1, seed=3, paths=20_000))
        for row in r["results"]:
            assert row["revaluedVar"] == pytest.approx(row["var"], rel=1e-9), method
            assert row["revaluedEs"] == pytest.approx(row["es"], rel=1e-9), method
        assert r["revaluation"]["differsMaterially"] is False, method
        assert "HORIZON_REVALUATION_DIFFERS" not in [f["code"] for f in r["flags"]], method


def test_parametric_revalues_at_the_quantile_move(client: TestClient) -> None:
    returns = [0.004, -0.006, 0.011, -0.009, 0.002, -0.013, 0.007, 0.001, -0.004, 0.012] * 5
    r = var(client, body("EURUSD", -2_000_000, returns, "parametric", 10))
    v95 = r["results"][0]
    sigma = statistics.stdev(returns)  # sample, ddof 1, zero mean (the parametric defaults)
    z = statistics.NormalDist().inv_cdf(0.95)
    assert v95["var"] == pytest.approx(2_000_000 * z * sigma * math.sqrt(10), rel=1e-12)
    # A short loses when EURUSD rises: the 1-day quantile move is +z sigma, compounded over sqrt(10) days;
    # the short loses 2,000,000 x ((1 + z sigma)^sqrt(10) - 1), more than the linear figure.
    assert v95["revaluedVar"] == pytest.approx(2_000_000 * ((1 + z * sigma) ** math.sqrt(10) - 1), rel=1e-12)
    assert v95["revaluedVar"] > v95["var"]
    assert r["revaluation"]["basis"] == "quantile-scenario"


def test_a_position_revalues_through_its_conversion(client: TestClient) -> None:
    # Long USDCHF, exposure 400,000 USD: P&L is in CHF, converted at the moved USDCHF (the pair itself, used
    # divided). A day of -14.55 %: linear 400,000 x -0.1455 = -58,200; revalued
    # 400,000 x (0.8545 - 1) / 0.8545 = -68,110.01, at one day already (the stress test's exact revaluation).
    returns = [-0.1455, 0.01, -0.01] * 34
    r = var(client, body("USDCHF", 400_000, returns, "historical", 1))
    v99 = r["results"][1]
    assert v99["var"] == pytest.approx(58_200, rel=1e-12)
    assert v99["revaluedVar"] == pytest.approx(400_000 * 0.1455 / 0.8545, rel=1e-12)
    assert r["revaluation"]["heldConversionPairs"] == []


def test_a_conversion_pair_without_a_series_is_held_and_named(client: TestClient) -> None:
    # EURJPY in a USD account converts JPY -> USD through USDJPY (divided). Without a USDJPY series that rate
    # is held (named). With it (a USDJPY position of exposure 0), take a day of EURJPY -2 % and USDJPY -2 %:
    # the yen up 1/0.98 against both, the euro flat in dollars. The JPY P&L, 1,000,000 x -0.02 in dollars at
    # today's rate, converts at X1/X0 = 1/0.98: -20,408.16 (the short yen leg: 1,000,000 x (1/0.98 - 1)).
    eurjpy = [-0.02] + [0.001, -0.001] * 49 + [0.001]  # 100 days: the 99 % VaR is the worst day
    usdjpy = [-0.02] + [0.0] * 99
    held: dict[str, Any] = {"accountCurrency": "USD", "conversionRates": {"USDJPY": 150},
                            "positions": [{"currencyPair": "EURJPY", "exposure": 1_000_000}],
                            "returns": {"series": {"EURJPY": eurjpy}}, "method": "historical", "confidence": 0.99}
    r = var(client, held)
    assert r["revaluation"]["heldConversionPairs"] == ["USDJPY"]
    assert r["results"][0]["revaluedVar"] == pytest.approx(20_000, rel=1e-12)
    moved = {**held, "positions": held["positions"] + [{"currencyPair": "USDJPY", "exposure": 0}],
             "returns": {"series": {"EURJPY": eurjpy, "USDJPY": usdjpy}}}
    r = var(client, moved)
    assert r["revaluation"]["heldConversionPairs"] == []
    assert r["results"][0]["var"] == pytest.approx(20_000, rel=1e-12)  # linear: unchanged
    assert r["results"][0]["revaluedVar"] == pytest.approx(0.02 / 0.98 * 1_000_000, rel=1e-12)


def test_revalue_matches_a_position_by_position_loop() -> None:
    import numpy as np

    from app.calc.risk.horizon import log_relative, revalue

    rng = np.random.default_rng(5)
    moves = rng.normal(0, 0.03, (40, 3))
    factor_of = np.array([0, 1, 2, 0])
    exposures = np.array([1e6, -5e5, 2e5, 3e5])
    legs = [[], [(2, -1)], [(2, -1), (0, 1)], [(1, 1)]]
    h = 25.0
    got = revalue(log_relative(moves, h), factor_of, exposures, legs)
    for t in range(moves.shape[0]):
        want = 0.0
        for i, e in enumerate(exposures):
            price = (1 + moves[t, factor_of[i]]) ** math.sqrt(h) - 1
            conv = math.prod((1 + moves[t, f]) ** (s * math.sqrt(h)) for f, s in legs[i])
            want += float(e) * price * conv
        assert got[t] == pytest.approx(want, rel=1e-12, abs=1e-6)
