"""Issue 13, points 3-6 (risk side): the Cornish-Fisher domain, Kelly units, exact stress revaluation,
ruin bounds, NO_EDGE with a tolerance, the historical-VaR rule, no negative zero."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.calc.risk import estimators as est

NEG_ZERO = re.compile(r"[:\[,]\s*-0(\.0+)?\s*[,\]}]")  # a JSON number -0.0 or -0 (not -0.002, not in a string)


def post(client: TestClient, path: str, body: dict[str, Any], expect: int = 200) -> dict[str, Any]:
    r = client.post(f"/api/v1/calculate/{path}", json=body)
    assert r.status_code == expect, r.text
    out: dict[str, Any] = r.json()
    return out


def codes(r: dict[str, Any]) -> list[str]:
    return [f["code"] for f in r["flags"]]


# 99 returns of +-0.5 % and one -20 % day (the case).
CRASH = [0.005 if i % 2 == 0 else -0.005 for i in range(99)] + [-0.20]


def cf_body(returns: list[float], confidence: list[float] | None = None) -> dict[str, Any]:
    return {"accountCurrency": "USD", "positions": [{"currencyPair": "EURUSD", "exposure": 1_000_000}],
            "returns": {"series": {"EURUSD": returns}}, "method": "cornish-fisher",
            "confidence": confidence or [0.95, 0.99]}


# ------------------------------------------------------------------ Cornish-Fisher
def test_cornish_fisher_out_of_domain_reports_the_safe_value(client: TestClient) -> None:
    r = post(client, "var", cf_body(CRASH))
    assert "CORNISH_FISHER_OUT_OF_DOMAIN" in codes(r)
    v95, v99 = r["results"]
    # The raw expansion says a 99 % "gain" (about -35,000); the answer is the larger of the Gaussian
    # (population sd x z - mean) and the historical figure (the worst day at 99 %: 200,000).
    assert v99["cornishFisherVar"] < 0
    assert v99["var"] == pytest.approx(200_000.0, rel=1e-12)
    assert v99["es"] >= v99["var"] and v95["es"] >= v95["var"] > 0
    assert v95["var"] == pytest.approx(max(v95["gaussianVar"], 5000.0), rel=1e-12)
    assert sum(c["componentVar"] for c in r["components"]) == pytest.approx(v95["var"], rel=1e-9)


def test_cornish_fisher_in_domain_is_unchanged(client: TestClient) -> None:
    rng = np.random.default_rng(3)
    returns = [float(x) for x in rng.standard_t(6, 500) * 0.005]
    r = post(client, "var", cf_body(returns))
    assert "CORNISH_FISHER_OUT_OF_DOMAIN" not in codes(r)
    for row in r["results"]:
        assert row["var"] == row["cornishFisherVar"] and row["es"] >= row["var"]


def test_maillard_domain_matches_monotonicity() -> None:
    """The closed-form domain agrees with a direct check that z_cf(z) increases on a fine grid."""
    z = np.linspace(-8, 8, 4001)
    for s in np.linspace(-2, 2, 21):
        for k in np.linspace(-1, 12, 27):
            zc = est.cf_z(0.0, np.array([s]), np.array([k]))  # shape check only
            assert zc.shape == (1,)
            vals = z + (z * z - 1) * s / 6 + (z**3 - 3 * z) * k / 24 - (2 * z**3 - 5 * z) * s * s / 36
            monotone = bool(np.all(np.diff(vals) > -1e-12))
            in_dom = bool(est.cf_in_domain(np.array([s]), np.array([k]))[0])
            if in_dom:
                assert monotone, (s, k)
            # Outside the domain the derivative is negative somewhere, possibly beyond +-8: no converse here.


# ------------------------------------------------------------------ Kelly
def test_log_optimal_risk_fraction_is_per_r(client: TestClient) -> None:
    trades = [1, -1, 2, -1, 3, -1, -2.5, 0.5, 1.5, -1]
    k = post(client, "kelly", {"trades": trades})
    f = k["logOptimalRiskFraction"]
    assert f == pytest.approx(0.0575452318, abs=1e-9)
    assert abs(float(np.mean(np.array(trades) / (1 + f * np.array(trades))))) < 1e-8
    # Vince's optimal f is the same optimum per worst loss (2.5 R): 0.1439, under its own name.
    assert k["vinceOptimalF"] == pytest.approx(f * 2.5, rel=1e-9)
    assert "worst" in k["units"]["vinceOptimalF"]
    # Risking Vince's f per R has negative expected log growth; the per-R optimum has positive growth.
    assert np.mean(np.log1p(k["vinceOptimalF"] * np.array(trades))) < 0 < k["logOptimalGrowthPerTrade"]


def test_no_edge_with_a_tolerance(client: TestClient) -> None:
    # 0.4 x 1.5 - 0.6 is 1.1e-16 in binary floating point: zero edge, flagged, and no -0.0 anywhere.
    k = post(client, "kelly", {"winRate": 0.4, "payoffRatio": 1.5})
    assert "NO_EDGE" in codes(k) and k["kellyFraction"] == 0 and k["recommendedFraction"] == 0
    ruin = post(client, "risk-of-ruin", {"winRate": 0.4, "payoffRatio": 1.5, "capitalUnits": 10})
    assert "NO_EDGE" in codes(ruin) and ruin["riskOfRuin"] == 1.0
    assert not NEG_ZERO.search(json.dumps(k) + json.dumps(ruin))


# ------------------------------------------------------------------ risk of ruin
def test_ruin_root_for_a_fractional_payoff_is_a_bound(client: TestClient) -> None:
    body = {"winRate": 0.45, "payoffRatio": 1.5, "capitalUnits": 10, "monteCarloPaths": 4000,
            "monteCarloTrades": 2000, "seed": 1}
    r = post(client, "risk-of-ruin", body)
    assert r["riskOfRuinKind"] == "bound" and r["method"] == "root-bound" and "RUIN_BOUND" in codes(r)
    mc = r["monteCarlo"]
    assert mc["ruinProbability"] <= r["riskOfRuin"] + 4 * mc["standardError"]
    whole = post(client, "risk-of-ruin", {"winRate": 0.45, "payoffRatio": 2, "capitalUnits": 10})
    assert whole["riskOfRuinKind"] == "exact" and "RUIN_BOUND" not in codes(whole)


# ------------------------------------------------------------------ stress
def test_stress_revalues_exactly(client: TestClient) -> None:
    body = {"accountCurrency": "USD", "positions": [{"currencyPair": "USDCHF", "lots": 4, "side": "long",
                                                     "price": 1.02}],
            "shocks": {"CHF": 0.17}, "builtinScenarios": ["chf-depeg-2015-intraday"]}
    r = post(client, "stress", body)
    custom, intraday = r["scenarios"]
    # 400,000 USD bought at 1.02 CHF: CHF +17 % -> USDCHF 1.02 / 1.17; P&L in CHF converted at the new
    # rate: 400,000 x (1.02/1.17 - 1.02) / (1.02/1.17) = 400,000 x (1 - 1.17) = -68,000.
    assert custom["totalPnl"] == pytest.approx(-68_000.0, rel=1e-12)
    assert custom["totalLinearPnl"] == pytest.approx(400_000 * (1 / 1.17 - 1), rel=1e-12)  # -58,119.66
    assert intraday["totalPnl"] == pytest.approx(-164_000.0, rel=1e-12)
    pos = custom["positions"][0]
    assert pos["conversionPath"] == ["USDCHF"] and pos["conversionFactor"] == pytest.approx(1.17)
    # The same position given as an exposure revalues the same way.
    r2 = post(client, "stress", {"accountCurrency": "USD", "shocks": {"CHF": 0.17},
                                 "positions": [{"currencyPair": "USDCHF", "exposure": 400_000}]})
    assert r2["scenarios"][0]["totalPnl"] == pytest.approx(-68_000.0, rel=1e-12)


def test_stress_converts_at_the_shocked_rate_of_a_third_pair(client: TestClient) -> None:
    # GBPJPY long 1 lot at 190 in a USD account, JPY -> USD through USDJPY 150. A GBP shock of -9 % moves
    # GBPJPY by -9 % and converts at USDJPY unchanged; a JPY shock moves both the pair and the conversion.
    body = {"accountCurrency": "USD", "conversionRates": {"USDJPY": 150},
            "positions": [{"currencyPair": "GBPJPY", "lots": 1, "side": "long", "price": 190}],
            "scenarios": [{"name": "gbp", "shocks": {"GBP": -0.09}},
                          {"name": "jpy", "shocks": {"JPY": -0.10}}]}
    gbp, jpy = post(client, "stress", body)["scenarios"]
    assert gbp["totalPnl"] == pytest.approx(100_000 * 190 * -0.09 / 150, rel=1e-12)
    # JPY -10 %: GBPJPY rises to 190/0.9; the JPY gain converts at USDJPY 150/0.9.
    exact = 100_000 * (190 / 0.9 - 190) / (150 / 0.9)
    assert jpy["totalPnl"] == pytest.approx(exact, rel=1e-12)


def test_no_negative_zero_in_stress(client: TestClient) -> None:
    body = {"accountCurrency": "USD", "positions": [{"currencyPair": "EURUSD", "exposure": -400_000}],
            "shocks": {"CHF": 0.17}}
    text = client.post("/api/v1/calculate/stress", json=body).text
    assert not NEG_ZERO.search(text) and '"pnl":0.0' in text.replace(" ", "")


# ------------------------------------------------------------------ conventions
def test_historical_var_names_its_own_rule(client: TestClient) -> None:
    body = {"accountCurrency": "USD", "positions": [{"currencyPair": "EURUSD", "exposure": 1_000_000}],
            "returns": {"series": {"EURUSD": CRASH}}, "method": "historical"}
    rule = post(client, "var", body)["conventions"]["quantile"]
    assert "riskfolio" not in rule and "ceil(alpha n - 1e-9)" in rule
    assert math.isfinite(post(client, "var", body)["results"][0]["var"])


def test_cornish_fisher_never_negative_for_a_book_with_losses(client: TestClient) -> None:
    # 99 gains of 1 % and one loss of 0.1 %: the Gaussian and the 95 % historical figures are both gains, but the
    # book has lost money in its history, so the reported VaR is not below zero.
    r = post(client, "var", cf_body([0.01] * 99 + [-0.001]))
    assert "CORNISH_FISHER_OUT_OF_DOMAIN" in codes(r)
    for row in r["results"]:
        assert row["var"] >= 0 and row["es"] >= row["var"]


@pytest.mark.parametrize("method", ["historical", "parametric", "cornish-fisher", "ewma"])
def test_no_negative_zero_in_var(client: TestClient, method: str) -> None:
    body = {"accountCurrency": "USD", "method": method, "covarianceFallback": "eigen-clip",
            "positions": [{"currencyPair": "EURUSD", "exposure": 0}, {"currencyPair": "GBPUSD", "exposure": 0}],
            "returns": {"series": {"EURUSD": [0.01, -0.01, 0.002, 0.0, 0.003] * 30,
                                   "GBPUSD": [0.0, 0.01, -0.01, 0.002, 0.001] * 30}}}
    r = client.post("/api/v1/calculate/var", json=body)
    assert r.status_code == 200 and not NEG_ZERO.search(r.text)
