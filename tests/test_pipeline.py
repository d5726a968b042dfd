"""The serving pipeline (app.calculations.pipeline): priced before it runs, charged before it runs,
refused up front when above the burst or the CPU budget, heavy work off the event loop.

No test here reads a clock: responsiveness is shown by ordering (a health check and a position size
answer while the heavy request is still in the pool), the CPU budget by a call that would never end.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from app.calculations import routes
from app.calculations.pool import CalcPool, CpuBudgetExceeded
from app.config import Settings
from app.errors import ServiceUnavailable
from app.services import services
from tests import pool_targets
from tests.conftest import BrokerFixture, make_broker
from tests.platform_apps import app_on

CALC = "/api/v1/calculate"
SIZE: dict[str, Any] = {"accountBalance": 10000, "accountCurrency": "USD", "riskPercentage": 2,
                        "currencyPair": "EURUSD", "entryPrice": 1.1850, "stopLoss": 1.1820, "leverage": 30}


def _returns(n: int, k: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    names = [f"P{i}" for i in range(k)]
    series = {p: [((i * 7919 + j * 104729) % 2001 - 1000) / 100_000 for i in range(n)] for j, p in enumerate(names)}
    positions = [{"currencyPair": p, "exposure": 100_000.0 * (1 if i % 2 else -1)} for i, p in enumerate(names)]
    return {"series": series}, positions


def heaviest() -> dict[str, tuple[str, dict[str, Any]]]:
    """The heaviest legal request of each kind that the issue measured blocking the loop."""
    ret, pos = _returns(20_000, 50)
    item = {**SIZE, "takeProfit": 1.19}
    return {
        "batch": ("/batch?explain=true", {"items": [item] * 10_000}),
        "var-mc": ("/var", {"accountCurrency": "USD", "positions": pos, "returns": ret, "method": "monte-carlo",
                            "paths": 20_000, "seed": 1}),
        "var-ewma": ("/var", {"accountCurrency": "USD", "positions": pos, "returns": ret, "method": "ewma"}),
        "risk-of-ruin": ("/risk-of-ruin", {"winRate": 0.55, "payoffRatio": 1.5, "capitalUnits": 20,
                                           "riskFraction": 0.02, "monteCarloPaths": 1000,
                                           "monteCarloTrades": 10_000, "seed": 1}),
        "projection": ("/projection", {"startBalance": 10_000, "riskPercentage": 1, "rewardToRisk": 2, "winRate": 0.5,
                                       "paths": 10_000, "numberOfTrades": 200, "seed": 1}),
    }


def price(path: str, body: dict[str, Any]) -> Any:
    route_path, _, query = path.partition("?")
    route = routes.ROUTES_BY_PATH[CALC + route_path]
    req = route.parse(orjson.dumps(body))
    return route.price(req, "explain" in query)


def remaining(r: Any) -> int:
    m = re.fullmatch(r'"[a-z-]+";r=(\d+);t=\d+', r.headers["RateLimit"])
    assert m, r.headers["RateLimit"]
    return int(m.group(1))


# --- priced before it runs --------------------------------------------------------------------------
def test_a_plain_position_size_costs_one_unit(client: TestClient) -> None:
    r = client.post(f"{CALC}/position-size", json=SIZE)
    assert r.status_code == 200 and r.headers["RateLimit-Cost"] == "1"


@pytest.mark.parametrize("kind", list(heaviest()))
def test_the_heaviest_legal_request_of_each_kind_is_priced_heavy(kind: str) -> None:
    path, body = heaviest()[kind]
    work = price(path, body)
    assert work.heavy and work.units > 1, (kind, work)


def test_the_price_grows_with_the_work() -> None:
    ret, pos = _returns(250, 6)
    small = price("/var", {"accountCurrency": "USD", "positions": pos, "returns": ret, "method": "monte-carlo",
                           "paths": 1000})
    large = price("/var", {"accountCurrency": "USD", "positions": pos, "returns": ret, "method": "monte-carlo",
                           "paths": 100_000})
    assert large.cpu_us > 10 * small.cpu_us and large.units >= small.units
    assert price("/batch", {"items": [SIZE] * 1000}).units == 10  # never below one unit per 100 items
    assert price("/batch?explain=true", {"items": [SIZE] * 1000}).units > 10


def test_the_priced_cost_is_charged_and_reported(limited_app: TestClient) -> None:
    broker = make_broker(limited_app, tier="standard")
    before = remaining(limited_app.post(f"{CALC}/position-size", json=SIZE, headers=broker.auth))
    body = {"startBalance": 10_000, "riskPercentage": 1, "rewardToRisk": 2, "winRate": 0.5,
            "paths": 10_000, "numberOfTrades": 200, "seed": 1}
    units = price("/projection", body).units
    assert 1 < units <= 120
    r = limited_app.post(f"{CALC}/projection", json=body, headers=broker.auth)
    assert r.status_code == 200, r.text
    assert r.headers["RateLimit-Cost"] == str(units)
    assert remaining(r) == before - units


def test_a_cost_above_the_burst_is_refused_before_it_runs(limited_app: TestClient) -> None:
    broker = make_broker(limited_app, tier="free")
    before = remaining(limited_app.post(f"{CALC}/position-size", json=SIZE, headers=broker.auth))
    pool = services(limited_app.app).pool
    path, body = heaviest()["batch"]
    units = price(path, body).units
    assert units > 40
    r = limited_app.post(CALC + path, json=body, headers=broker.auth)
    assert r.status_code == 429 and r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["errors"][0]["code"] == "cost_above_burst"
    assert problem["errors"][0]["cost"] == units and problem["errors"][0]["limit"] == 40
    assert f"{units} units" in problem["detail"] and "at most 40" in problem["detail"]
    assert "Retry-After" not in r.headers  # no wait would help
    assert r.headers["RateLimit-Cost"] == str(units)
    assert pool.in_flight == 0
    # Nothing was taken from the bucket: the next plain request sees one less than before, not 40 less.
    assert remaining(limited_app.post(f"{CALC}/position-size", json=SIZE, headers=broker.auth)) == before - 1


@pytest.fixture(scope="module")
def limited_app(settings: Settings) -> Iterator[TestClient]:
    """Real tier limits (the session app's brokers are enterprise)."""
    with app_on(settings, rate_limit_prefix="rl-pipeline:") as c:
        yield c


# --- never on the event loop ------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(heaviest()))
def test_health_and_a_position_size_answer_while_the_heavy_request_runs(client: TestClient,
                                                                        calc_broker: BrokerFixture,
                                                                        kind: str) -> None:
    path, body = heaviest()[kind]
    pool = services(client.app).pool
    order: list[str] = []

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=calc_broker.auth) as http:
            async def heavy() -> httpx.Response:
                r = await http.post(CALC + path, json=body, timeout=None)
                order.append("heavy")
                return r

            task = asyncio.create_task(heavy())
            while pool.in_flight == 0:  # the heavy request was priced, charged and handed to the pool
                assert not task.done(), task.result().text
                await asyncio.sleep(0.005)
            health = await http.get("/healthz")
            order.append("healthz")
            size = await http.post(f"{CALC}/position-size", json=SIZE)
            order.append("position-size")
            assert health.status_code == 200 and size.status_code == 200, size.text
            r = await task
            assert r.status_code == 200, r.text

    client.portal.call(scenario)
    assert order == ["healthz", "position-size", "heavy"]


# --- the pool: CPU budget and dead workers ---------------------------------------------------------
@pytest.fixture(scope="module")
def pool() -> Iterator[CalcPool]:
    p = CalcPool(workers=1, budget_s=0.2)
    yield p
    p.close()


def test_a_call_over_its_cpu_budget_is_stopped_and_the_worker_serves_the_next(pool: CalcPool) -> None:
    async def scenario() -> int:
        with pytest.raises(CpuBudgetExceeded) as info:
            await pool.run(pool_targets.spin)
        assert "CPU budget" in info.value.detail
        return int(await pool.run(pool_targets.square, 7))

    assert asyncio.run(scenario()) == 49
    assert pool.in_flight == 0


def test_a_dead_worker_is_a_503_and_the_pool_is_replaced(pool: CalcPool) -> None:
    async def scenario() -> int:
        with pytest.raises(ServiceUnavailable):
            await pool.run(pool_targets.die)
        return int(await pool.run(pool_targets.square, 9))

    assert asyncio.run(scenario()) == 81


def test_work_priced_above_the_cpu_budget_is_refused_naming_its_drivers(settings: Settings) -> None:
    body = {"startBalance": 10_000, "riskPercentage": 1, "rewardToRisk": 2, "winRate": 0.5,
            "paths": 10_000, "numberOfTrades": 200, "seed": 1}
    assert price("/projection", body).cpu_us > 0.1e6
    with app_on(settings, calc_cpu_budget_seconds=0.1) as c:
        broker = make_broker(c, tier="enterprise")
        r = c.post(f"{CALC}/projection", json=body, headers=broker.auth)
        assert r.status_code == 422 and r.json()["type"] == "/problems/cpu-budget-exceeded"
        assert r.json()["title"] == "CPU budget exceeded"
        assert {e["field"] for e in r.json()["errors"]} == {"paths", "numberOfTrades"}
        assert services(c.app).pool.in_flight == 0


def test_calculations_are_labelled_by_their_route_in_the_metrics(client: TestClient) -> None:
    """The pipeline bypasses Starlette's router; the request metrics must still name the route (they said
    "unmatched" for every calculation)."""
    body = {"accountBalance": 10_000, "accountCurrency": "USD", "currencyPair": "EURUSD", "entryPrice": 1.1,
            "stopLoss": 1.095, "riskPercentage": 1}
    assert client.post("/api/v1/calculate/position-size", json=body).status_code == 200
    text = client.get("/metrics").text
    assert 'http_requests_total{method="POST",route="/api/v1/calculate/position-size",status="200"}' in text
