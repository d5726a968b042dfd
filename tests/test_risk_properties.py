"""Properties of the risk engine on random books (pure calc layer, plus one over HTTP)."""

from __future__ import annotations

import numpy as np
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.calc.risk.drawdown import drawdown
from app.calc.risk.var import VarInput, portfolio_var

METHODS = ["historical", "parametric", "ewma", "cornish-fisher", "monte-carlo"]


def book(seed: int, n_pairs: int, n_obs: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(n_pairs, n_pairs)) * 0.004
    returns = rng.standard_t(6, size=(n_obs, n_pairs)) @ mix / 1.2
    exposures = rng.uniform(-1e6, 1e6, size=n_pairs)
    return returns, exposures


def run(returns: np.ndarray, exposures: np.ndarray, method: str, confs: list[float], **kw: object) -> object:
    k = returns.shape[1]
    return portfolio_var(VarInput(returns, [f"P{i}" for i in range(k)], np.arange(k), exposures, method,  # type: ignore[arg-type]
                                  confs, paths=4000, seed=5, **kw))  # type: ignore[arg-type]


common = settings(max_examples=25, deadline=None)


@common
@given(seed=st.integers(0, 10_000), k=st.integers(1, 6), method=st.sampled_from(METHODS),
       horizon=st.sampled_from([1.0, 10.0]))
def test_components_sum_to_total(seed: int, k: int, method: str, horizon: float) -> None:
    r, w = book(seed, k, 300)
    res = run(r, w, method, [0.95], horizon=horizon)
    total = res.var[0]  # type: ignore[attr-defined]
    assert abs(res.component.sum() - total) <= 1e-9 * max(abs(total), 1.0)  # type: ignore[attr-defined]


@common
@given(seed=st.integers(0, 10_000), k=st.integers(1, 6), method=st.sampled_from(METHODS))
def test_var_monotone_in_confidence_and_es_above_var(seed: int, k: int, method: str) -> None:
    r, w = book(seed, k, 500)
    res = run(r, w, method, [0.9, 0.95, 0.975, 0.99])
    var, es = res.var, res.es  # type: ignore[attr-defined]
    assert np.all(np.diff(var) >= -1e-9 * np.abs(var[:-1])), var
    assert np.all(es >= var - 1e-9 * np.abs(var)), (var, es)


@common
@given(seed=st.integers(0, 10_000), method=st.sampled_from(METHODS), conf=st.sampled_from([0.95, 0.99]))
def test_single_position_portfolio_var_is_its_own_var(seed: int, method: str, conf: float) -> None:
    r, w = book(seed, 1, 400)
    res = run(r, w, method, [conf])
    assert abs(res.var[0] - res.standalone[0]) <= 1e-9 * abs(res.var[0])  # type: ignore[attr-defined]
    assert abs(res.incremental[0] - res.var[0]) <= 1e-9 * abs(res.var[0])  # type: ignore[attr-defined]
    assert abs(res.diversification_benefit) <= 1e-9 * abs(res.var[0])  # type: ignore[attr-defined]


@common
@given(st.lists(st.floats(1.0, 1e6), min_size=1, max_size=60), st.floats(1.0, 1e6))
def test_drawdown_bounds(equity: list[float], initial: float) -> None:
    d = drawdown(np.array(equity), initial)
    assert -1.0 < d.max_drawdown <= 0.0
    assert d.max_drawdown <= d.current_drawdown
    if d.trough_index is not None:
        assert d.peak_index is not None and d.peak_index < d.trough_index


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), method=st.sampled_from(METHODS))
def test_http_components_sum_to_total(client: TestClient, seed: int, method: str) -> None:
    r, w = book(seed, 3, 250)
    names = ["EURUSD", "GBPUSD", "USDJPY"]
    body = {"accountCurrency": "USD", "method": method, "paths": 2000, "seed": 1,
            "positions": [{"currencyPair": n, "exposure": float(x)} for n, x in zip(names, w, strict=True)],
            "returns": {"series": {n: r[:, i].tolist() for i, n in enumerate(names)}}}
    out = client.post("/api/v1/calculate/var", json=body).json()
    total = out["results"][0]["var"]
    assert abs(sum(c["componentVar"] for c in out["components"]) - total) <= 1e-9 * abs(total)
