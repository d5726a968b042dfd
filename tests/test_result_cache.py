"""Result cache: costly calculations only, HIT/MISS, fresh calculation ids, per-tenant keys, config
versions, the Redis second level."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import BrokerFixture, make_broker
from tests.test_rate_limits import BODY as POSITION
from tests.test_risk_bad_input import GOOD

VAR = "/api/v1/calculate/var"
MC: dict[str, Any] = {**GOOD, "method": "monte-carlo", "paths": 20_000, "seed": 7}


def without_id(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "calculationId"}


def post(c: TestClient, broker: BrokerFixture, body: dict[str, Any], path: str = VAR) -> Any:
    r = c.post(path, json=body, headers=broker.auth)
    assert r.status_code == 200, r.text
    return r


def costly_broker(c: TestClient, body: dict[str, Any] = MC, path: str = VAR) -> BrokerFixture:
    """A broker, after the route has been measured as costly: a route is cached from its third
    measurement on (unless one call alone costs 10x the threshold, which depends on the machine)."""
    broker = make_broker(c, tier="enterprise")
    for seed in (1, 2, 3):
        post(c, broker, {**body, "seed": seed} if path == VAR else {**body, "items": body["items"][:-seed]}, path)
    return broker


def test_a_costly_calculation_is_served_from_the_cache_with_its_own_id(client: TestClient) -> None:
    broker = costly_broker(client)
    first = post(client, broker, MC)
    second = post(client, broker, MC)
    assert first.headers["X-Cache"] == "MISS" and second.headers["X-Cache"] == "HIT"
    assert without_id(second.json()) == without_id(first.json())
    assert second.json()["calculationId"] != first.json()["calculationId"]
    # Key order and whitespace do not matter: the key is the canonical (validated) request.
    reordered = client.post(VAR, content=" " + __import__("json").dumps(dict(reversed(list(MC.items())))),
                            headers={**broker.auth, "Content-Type": "application/json"})
    assert reordered.headers["X-Cache"] == "HIT"
    # Each response is a calculation of its own in the broker's history.
    client.portal.call(client.app.state.services.recorder.flush)  # type: ignore[union-attr,attr-defined]
    for r in (first, second):
        stored = client.get(f"/api/v1/calculations/{r.json()['calculationId']}", headers=broker.auth)
        assert stored.status_code == 200, stored.text


def test_cheap_calculations_are_never_cached(client: TestClient) -> None:
    broker = make_broker(client, tier="enterprise")
    for _ in range(5):
        r = post(client, broker, POSITION, "/api/v1/calculate/position-size")
        assert "X-Cache" not in r.headers


def test_never_shared_between_tenants(client: TestClient) -> None:
    a, b = costly_broker(client), make_broker(client, tier="enterprise")
    post(client, a, MC)
    assert post(client, a, MC).headers["X-Cache"] == "HIT"
    assert post(client, b, MC).headers["X-Cache"] == "MISS"


def test_a_config_change_bumps_the_version_and_misses(client: TestClient) -> None:
    broker = costly_broker(client)
    post(client, broker, MC)
    assert post(client, broker, MC).headers["X-Cache"] == "HIT"
    r = client.put(f"/api/v1/brokers/{broker.id}/config", json={"allowedOrigins": ["https://new.example.com"]},
                   headers=broker.auth)
    assert r.status_code == 200, r.text
    assert post(client, broker, MC).headers["X-Cache"] == "MISS"
    assert post(client, broker, MC).headers["X-Cache"] == "HIT"


def test_the_key_covers_route_explain_config_version_and_tenant() -> None:
    import uuid

    from app.calculations.cache import ResultCache

    a, b = uuid.uuid4(), uuid.uuid4()
    base = ResultCache.key(a, 1, "var", b"{}", False)
    assert base.startswith(f"calc:{a}:")
    others = {ResultCache.key(a, 1, "var", b"{}", True), ResultCache.key(a, 2, "var", b"{}", False),
              ResultCache.key(a, 1, "stress", b"{}", False), ResultCache.key(b, 1, "var", b"{}", False),
              ResultCache.key(a, 1, "var", b"{ }", False)}
    assert base not in others and len(others) == 5


def test_the_second_level_lives_in_redis_under_the_broker(client: TestClient) -> None:
    app: Any = client.app
    broker = costly_broker(client)
    client.portal.call(app.state.services.result_cache.drain)
    before = set(client.portal.call(app.state.services.redis.client.keys, f"calc:{broker.id}:*"))
    first = post(client, broker, MC)
    client.portal.call(app.state.services.result_cache.drain)
    keys = set(client.portal.call(app.state.services.redis.client.keys, f"calc:{broker.id}:*")) - before
    assert len(keys) == 1
    ttl = client.portal.call(app.state.services.redis.client.ttl, keys.pop())
    assert 0 < ttl <= 300
    app.state.services.result_cache.l1.clear()  # another worker: nothing in its first level
    second = post(client, broker, MC)
    assert second.headers["X-Cache"] == "HIT"
    assert without_id(second.json()) == without_id(first.json())


def test_identical_batches_hit(client: TestClient) -> None:
    body = {"items": [POSITION] * 3000}
    broker = costly_broker(client, body, "/api/v1/calculate/batch")
    first = post(client, broker, body, "/api/v1/calculate/batch")
    second = post(client, broker, body, "/api/v1/calculate/batch")
    assert first.headers["X-Cache"] == "MISS" and second.headers["X-Cache"] == "HIT"
    assert without_id(second.json()) == without_id(first.json())
    assert second.json()["calculationId"] != first.json()["calculationId"]
    # The shared entry remembers what the batch costs, so a hit is charged like a computed batch.
    app: Any = client.app
    client.portal.call(app.state.services.result_cache.drain)
    values = [client.portal.call(app.state.services.redis.client.get, k)
              for k in client.portal.call(app.state.services.redis.client.keys, f"calc:{broker.id}:*")]
    heads = {v[:48].strip() for v in values}
    assert f"{first.json()['calculationId']}|30".encode() in heads
