"""Redis is never a hard dependency: the real embedded Redis is killed during a load run and restarted.
Also: key revocation and tier changes reach other workers through Redis pub/sub, not after the TTL."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from app.admin.brokers.service import set_tier
from app.config import Settings
from app.redisdb import embedded
from tests.conftest import make_broker
from tests.platform_apps import app_on
from tests.test_rate_limits import BODY, CALC
from tests.test_result_cache import MC, VAR


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_redis_killed_during_a_load_run_fails_no_calculation(client: TestClient, settings: Settings) -> None:
    app: Any = client.app
    broker = make_broker(client, tier="professional")
    expected = client.post(CALC, json=BODY, headers=broker.auth).json()
    fail_open_before = metric("ratelimit_fail_open_total", policy="professional")
    results: list[tuple[int, Any]] = []

    async def load() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as ac:
            sent = 0

            async def one() -> None:
                r = await ac.post(CALC, json=BODY, headers=broker.auth)
                results.append((r.status_code, r.json()))

            async def worker() -> None:
                nonlocal sent
                while sent < 300:
                    sent += 1
                    if sent == 100:
                        embedded.kill(settings.data_dir)  # Redis dies mid-run
                    await one()

            await asyncio.gather(*(worker() for _ in range(16)))

    with embedded.held_down(settings.data_dir):  # the keeper leaves Redis dead until the block ends
        client.portal.call(load)
        assert len(results) == 300
        statuses = {s for s, _ in results}
        assert statuses == {200}, statuses  # professional: 300 requests stay within the 400 burst
        for _, body in results:  # identical numbers (each response is its own calculation)
            assert {k: v for k, v in body.items() if k != "calculationId"} == \
                {k: v for k, v in expected.items() if k != "calculationId"}
        assert metric("ratelimit_fail_open_total", policy="professional") > fail_open_before
        ready = client.get("/readyz").json()
        assert ready["status"] == "degraded" and ready["checks"]["redis"] == "down"
        # Costly calculations bypass the shared cache and still answer.
        r = client.post(VAR, json={**MC, "seed": 99}, headers=broker.auth)
        assert r.status_code == 200
        # Headers keep coming from the local bucket.
        assert client.post(CALC, json=BODY, headers=broker.auth).headers["RateLimit-Policy"].startswith(
            '"professional"')
    # Nobody brings Redis back by hand: the keeper restarts it, and the app goes back to it by itself.
    deadline = time.monotonic() + 30
    leases = metric("ratelimit_redis_calls_total")
    while time.monotonic() < deadline:
        client.post(CALC, json=BODY, headers=broker.auth)
        if metric("ratelimit_redis_calls_total") > leases and client.get("/readyz").json()["status"] == "ok":
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the limiter did not go back to Redis")
    keys = client.portal.call(app.state.services.redis.client.keys, f"rl:b:{broker.id}")
    assert keys


def test_revocation_and_tier_changes_reach_other_workers_at_once(client: TestClient, settings: Settings) -> None:
    assert client.get("/readyz").json()["checks"]["redis"] == "ok"  # this worker publishes
    broker = make_broker(client, tier="free")
    created = client.post(f"/api/v1/brokers/{broker.id}/api-keys", json={"kind": "secret", "name": "w2"},
                          headers=broker.auth)
    key = created.json()["key"]
    auth = {"Authorization": f"Bearer {key}"}
    with app_on(settings) as other:  # a second worker of the same deployment
        other_app: Any = other.app
        other.portal.call(asyncio.wait_for, other_app.state.services.invalidation.subscribed.wait(), 5)
        assert other.post(CALC, json=BODY, headers=auth).status_code == 200  # now cached there (TTL 10 s)
        assert other.post(CALC, json=BODY, headers=auth).headers["RateLimit-Policy"].startswith('"free"')
        revoked = client.delete(f"/api/v1/brokers/{broker.id}/api-keys/{created.json()['id']}", headers=broker.auth)
        assert revoked.status_code == 200
        deadline = time.monotonic() + 2  # far inside the 10 s cache TTL
        while other.post(CALC, json=BODY, headers=auth).status_code != 401:
            assert time.monotonic() < deadline, "revocation did not reach the other worker"
            time.sleep(0.05)
        app: Any = client.app
        client.portal.call(set_tier, app.state.services.db, app.state.services.auth, broker.id, "standard")
        deadline = time.monotonic() + 2
        while not other.post(CALC, json=BODY, headers=broker.auth).headers["RateLimit-Policy"].startswith(
                '"standard"'):
            assert time.monotonic() < deadline, "the tier change did not reach the other worker"
            time.sleep(0.05)


def test_a_dead_embedded_redis_is_restarted_without_anyone_acting(client: TestClient, settings: Settings) -> None:
    app: Any = client.app
    hub = app.state.services.redis
    before = embedded.pid(settings.data_dir)
    assert before and client.get("/readyz").json()["checks"]["redis"] == "ok"
    embedded.kill(settings.data_dir)
    deadline = time.monotonic() + 30  # a bound for a slow machine, not a measurement
    while not (embedded.pid(settings.data_dir) not in (None, before)
               and client.get("/readyz").json()["status"] == "ok"):
        assert time.monotonic() < deadline, "the embedded Redis was not restarted"
        time.sleep(0.05)
    client.portal.call(hub.set, "restarted", b"yes", 60)
    assert client.portal.call(hub.get, "restarted") == b"yes"
