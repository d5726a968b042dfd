"""Idempotency-Key: same key + same request replays the first response with one side effect; another
request or credential is 422, a concurrent duplicate 409, a bad key 400; 5xx are never stored; keys
expire after 24 h; brokers never share keys; routes outside the list ignore the header.

The main app (session `client`) covers real admin and batch routes. A small probe app, wrapped in the
real middleware stack (RequestContextMiddleware outside IdempotencyMiddleware, as in app.main) and
sharing the session's database and auth service, adds what a real route cannot do on demand: hold a
request open, fail with a 5xx, run with a controllable clock, or lose its database.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import make_url
from starlette.responses import JSONResponse, Response

from app.db.bootstrap import DatabaseUrls
from app.db.engine import Database
from app.errors import install_error_handlers
from app.idempotency.cipher import ResponseCipher
from app.idempotency.middleware import IdempotencyMiddleware
from app.idempotency.routes import applies
from app.idempotency.service import Claim, IdempotencyService, StoredResponse
from app.middleware import RequestContextMiddleware
from tests.conftest import BrokerFixture
from tests.helpers_auth import (
    NO_AUTH,
    POSITION_SIZE,
    assert_problem,
    audit_rows,
    bearer,
    sql,
)

pytestmark = pytest.mark.usefixtures("no_server_errors")

KEY = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
BATCH = "/api/v1/calculate/batch"


def idem(broker: BrokerFixture, key: str) -> dict[str, str]:
    return {**broker.auth, KEY: key}


def fresh_key() -> str:
    return str(uuid.uuid4())


def keys_url(broker: BrokerFixture) -> str:
    return f"/api/v1/brokers/{broker.id}/api-keys"


def key_count(client: TestClient, broker: BrokerFixture) -> int:
    resp = client.get(keys_url(broker), headers=broker.auth)
    assert resp.status_code == 200, resp.text
    return len(resp.json())


def rows(client: TestClient, broker: BrokerFixture) -> list[Any]:
    return sql(client, "select key, status, response_status from idempotency_keys where broker_id = :b order by key",
               {"b": broker.id})


def assert_key_problem(resp: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    body = assert_problem(resp, status, slug)
    assert body["errors"][0]["field"] == KEY, body
    assert resp.headers.get("x-request-id"), "problems from the middleware still carry the request id"
    return body


# --- the path list ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "path", "expected"), [
    ("POST", "/api/v1/brokers", True),
    ("DELETE", "/api/v1/brokers/1b4e28ba-2fa1-11d2-883f-0016d3cca427", True),
    ("PUT", "/api/v1/brokers/x/config", True),
    ("PUT", "/api/v1/brokers/x/sso", True),
    ("POST", "/api/v1/brokers/x/api-keys/y/rotate", True),
    ("POST", "/api/v1/brokers/x/users", True),
    ("PATCH", "/api/v1/users/x", True),
    ("POST", "/api/v1/billing/checkout", True),
    ("POST", BATCH, True),
    ("GET", "/api/v1/brokers", False),
    ("GET", "/api/v1/brokers/x/api-keys", False),
    ("POST", "/api/v1/brokersx", False),
    ("POST", "/api/v1/calculate/position-size", False),
    ("POST", "/api/v1/calculate/batch/x", False),
    ("POST", "/api/v1/auth/token", False),
    ("POST", "/api/v1/auth/refresh", False),
    ("POST", "/api/v1/auth/exchange", False),
])
def test_which_routes_honour_the_header(method: str, path: str, expected: bool) -> None:
    assert applies(method, path) is expected


@pytest.mark.parametrize("slug", ["idempotency-key-invalid", "idempotency-key-reused", "idempotency-key-in-flight"])
def test_problem_types_resolve(client: TestClient, slug: str) -> None:
    resp = client.get(f"/problems/{slug}")
    assert resp.status_code == 200 and resp.json()["type"] == f"/problems/{slug}"


# --- real routes of the main app ----------------------------------------------------------------------
def test_same_key_same_body_replays_the_first_response_with_one_side_effect(
        client: TestClient, broker_a: BrokerFixture) -> None:
    before = key_count(client, broker_a)
    audits = len(audit_rows(client, broker_a.id, "api_key.created"))
    key = fresh_key()
    spec = {"kind": "secret", "name": "idempotent"}

    first = client.post(keys_url(broker_a), json=spec, headers=idem(broker_a, key))
    assert first.status_code == 201, first.text
    assert REPLAYED not in first.headers
    second = client.post(keys_url(broker_a), json=spec, headers=idem(broker_a, key))

    assert second.status_code == 201
    assert second.headers[REPLAYED] == "true"
    assert second.content == first.content  # same key id and the same full secret, byte for byte
    assert second.json()["id"] == first.json()["id"]
    assert second.headers["content-type"] == first.headers["content-type"]
    # The replay is its own request: RequestContextMiddleware (outside) gives it its own id.
    assert second.headers["x-request-id"] != first.headers["x-request-id"]
    assert key_count(client, broker_a) == before + 1
    assert len(audit_rows(client, broker_a.id, "api_key.created")) == audits + 1
    assert rows(client, broker_a) == [(key, "done", 201)]


def test_the_stored_response_is_encrypted_at_rest(client: TestClient, broker_a: BrokerFixture) -> None:
    key = fresh_key()
    created = client.post(keys_url(broker_a), json={"kind": "secret"}, headers=idem(broker_a, key))
    assert created.status_code == 201
    secret = created.json()["key"].encode()
    stored = sql(client, "select response_body, fingerprint from idempotency_keys where broker_id = :b and key = :k",
                 {"b": broker_a.id, "k": key})[0]
    assert secret not in bytes(stored[0]) and b"fxr_live" not in bytes(stored[0])
    assert len(bytes(stored[1])) == 32


def test_same_key_with_another_request_is_422(client: TestClient, broker_a: BrokerFixture) -> None:
    key = fresh_key()
    assert client.post(keys_url(broker_a), json={"name": "one"}, headers=idem(broker_a, key)).status_code == 201
    count = key_count(client, broker_a)

    other_body = client.post(keys_url(broker_a), json={"name": "two"}, headers=idem(broker_a, key))
    assert_key_problem(other_body, 422, "idempotency-key-reused")
    # Same body bytes on another route, or with a query string, are other requests too.
    other_path = client.post(f"/api/v1/brokers/{broker_a.id}/users", json={"name": "one"},
                             headers=idem(broker_a, key))
    assert_key_problem(other_path, 422, "idempotency-key-reused")
    other_query = client.post(keys_url(broker_a) + "?x=1", json={"name": "one"}, headers=idem(broker_a, key))
    assert_key_problem(other_query, 422, "idempotency-key-reused")
    assert key_count(client, broker_a) == count


def test_another_credential_of_the_same_broker_never_gets_the_stored_response(
        client: TestClient, broker_a: BrokerFixture) -> None:
    second = client.post(keys_url(broker_a), json={"kind": "secret"}, headers=broker_a.auth)
    assert second.status_code == 201
    other_cred = bearer(second.json()["key"])
    key = fresh_key()
    first = client.post(keys_url(broker_a), json={"kind": "secret"}, headers=idem(broker_a, key))
    assert first.status_code == 201

    reuse = client.post(keys_url(broker_a), json={"kind": "secret"}, headers={**other_cred, KEY: key})
    assert_key_problem(reuse, 422, "idempotency-key-reused")
    assert first.json()["key"] not in reuse.text  # the secret shown once stays with its creator


@pytest.mark.parametrize("value", [b"", b"a" * 256, b"has space", b"tab\there", "caf\u00e9".encode()])
def test_an_invalid_key_is_400_and_nothing_runs(client: TestClient, broker_a: BrokerFixture, value: bytes) -> None:
    count = key_count(client, broker_a)
    auth = (b"authorization", f"Bearer {broker_a.secret_key}".encode())
    resp = client.post(keys_url(broker_a), json={"name": "x"}, headers=[auth, (b"idempotency-key", value)])
    assert_key_problem(resp, 400, "idempotency-key-invalid")
    assert key_count(client, broker_a) == count
    assert rows(client, broker_a) == []


def test_longest_valid_key_and_two_headers(client: TestClient, broker_a: BrokerFixture) -> None:
    longest = "~" + "k" * 253 + "!"
    assert client.post(keys_url(broker_a), json={}, headers=idem(broker_a, longest)).status_code == 201
    assert rows(client, broker_a) == [(longest, "done", 201)]
    two = client.post(keys_url(broker_a), json={}, headers=[
        (b"authorization", f"Bearer {broker_a.secret_key}".encode()),
        (b"idempotency-key", b"one"), (b"idempotency-key", b"two")])
    assert_key_problem(two, 400, "idempotency-key-invalid")


def test_credential_errors_come_first(client: TestClient, broker_a: BrokerFixture) -> None:
    # No or a bad credential: the route's own 401, whatever the key looks like; nothing is stored.
    for value in ("fine-key", "bad key"):
        resp = client.post(keys_url(broker_a), json={}, headers={**NO_AUTH, KEY: value})
        assert_problem(resp, 401, "unauthorized")
        resp = client.post(keys_url(broker_a), json={}, headers={**bearer("nope"), KEY: value})
        assert_problem(resp, 401, "unauthorized")
    assert rows(client, broker_a) == []


def test_a_pending_key_is_409_then_replays_once_done(client: TestClient, broker_a: BrokerFixture) -> None:
    """A concurrent duplicate on the real app: the first run's pending row is made through the service
    itself (the same claim the middleware makes), then the real route is called with the same key."""
    app: Any = client.app
    auth = app.state.services.auth
    service = IdempotencyService(db=app.state.services.db, cipher=ResponseCipher(auth.secrets.encryption_key),
                                 pepper=auth.secrets.pepper)
    principal = client.portal.call(auth.authenticate, Request({"type": "http", "headers": [
        (b"authorization", f"Bearer {broker_a.secret_key}".encode())]}))
    key = fresh_key()
    body = b'{"name":"racing"}'
    fingerprint = service.fingerprint("POST", keys_url(broker_a), b"", body)
    claim = client.portal.call(service.begin, principal, key, fingerprint)
    assert isinstance(claim, Claim)
    count = key_count(client, broker_a)

    headers = {**idem(broker_a, key), "content-type": "application/json"}
    busy = client.post(keys_url(broker_a), content=body, headers=headers)
    assert_key_problem(busy, 409, "idempotency-key-in-flight")
    assert busy.headers["retry-after"] == "1"
    assert key_count(client, broker_a) == count  # the duplicate did not run

    done = StoredResponse(201, [(b"content-type", b"application/json"), (b"set-cookie", b"s=1")], b'{"first":true}')
    client.portal.call(service.finish, claim, done)
    replay = client.post(keys_url(broker_a), content=body, headers=headers)
    assert replay.status_code == 201 and replay.content == b'{"first":true}'
    assert replay.headers[REPLAYED] == "true" and "set-cookie" not in replay.headers  # never replayed
    assert key_count(client, broker_a) == count


def test_delete_replays_too(client: TestClient, broker_a: BrokerFixture) -> None:
    created = client.post(keys_url(broker_a), json={}, headers=broker_a.auth).json()
    key = fresh_key()
    first = client.delete(f"{keys_url(broker_a)}/{created['id']}", headers=idem(broker_a, key))
    again = client.delete(f"{keys_url(broker_a)}/{created['id']}", headers=idem(broker_a, key))
    assert first.status_code == again.status_code == 200 and first.json()["status"] == "revoked"
    assert again.content == first.content and again.headers[REPLAYED] == "true"
    assert len([r for r in audit_rows(client, broker_a.id, "api_key.revoked") if r[4] == created["id"]]) == 1


def test_expired_key_runs_again(client: TestClient, broker_a: BrokerFixture) -> None:
    key = fresh_key()
    first = client.post(keys_url(broker_a), json={"name": "day one"}, headers=idem(broker_a, key))
    assert first.status_code == 201
    expires = sql(client, "select expires_at - created_at from idempotency_keys where broker_id = :b and key = :k",
                  {"b": broker_a.id, "k": key})[0][0]
    assert expires == timedelta(hours=24)
    sql(client, "update idempotency_keys set created_at = created_at - interval '25 hours', "
                "expires_at = expires_at - interval '25 hours' where broker_id = :b", {"b": broker_a.id})

    again = client.post(keys_url(broker_a), json={"name": "day one"}, headers=idem(broker_a, key))
    assert again.status_code == 201 and REPLAYED not in again.headers
    assert again.json()["id"] != first.json()["id"]
    replay = client.post(keys_url(broker_a), json={"name": "day one"}, headers=idem(broker_a, key))
    assert replay.headers[REPLAYED] == "true" and replay.json()["id"] == again.json()["id"]


def test_brokers_never_share_keys(client: TestClient, broker_a: BrokerFixture, broker_b: BrokerFixture) -> None:
    key = fresh_key()
    items = {"items": [POSITION_SIZE, {**POSITION_SIZE, "riskPercentage": 1}]}
    from_a = client.post(BATCH, json=items, headers=idem(broker_a, key))
    from_b = client.post(BATCH, json=items, headers=idem(broker_b, key))
    assert from_a.status_code == from_b.status_code == 200
    assert REPLAYED not in from_b.headers
    assert from_a.json()["calculationId"] != from_b.json()["calculationId"]
    # Admin routes too: B's own key creation under A's key string is B's own, fresh.
    a_key = client.post(keys_url(broker_a), json={}, headers=idem(broker_a, "shared-name"))
    b_key = client.post(keys_url(broker_b), json={}, headers=idem(broker_b, "shared-name"))
    assert a_key.status_code == b_key.status_code == 201 and REPLAYED not in b_key.headers
    assert rows(client, broker_a) == sorted([(key, "done", 200), ("shared-name", "done", 201)])
    assert rows(client, broker_b) == sorted([(key, "done", 200), ("shared-name", "done", 201)])

    # And RLS, not only the primary key, keeps them apart: broker B's session sees none of A's rows.
    db: Database = client.app.state.services.db  # type: ignore[attr-defined]

    async def visible_to_b() -> list[Any]:
        async with db.tenant(broker_b.id) as session:
            return list((await session.execute(text("select distinct broker_id from idempotency_keys"))).scalars())

    assert client.portal.call(visible_to_b) == [broker_b.id]


def test_batch_replays_identically_and_is_stored_once(client: TestClient, broker_a: BrokerFixture) -> None:
    key = fresh_key()
    items = {"items": [POSITION_SIZE, {**POSITION_SIZE, "stopLoss": 1.1850}], "format": "columns"}
    first = client.post(BATCH, json=items, headers=idem(broker_a, key))
    replay = client.post(BATCH, json=items, headers=idem(broker_a, key))
    assert first.status_code == replay.status_code == 200
    assert replay.headers[REPLAYED] == "true" and replay.content == first.content
    assert first.json()["failed"] == 1  # an item error is part of a 200: replayed as it was
    listed = client.get("/api/v1/calculations?limit=100", headers=broker_a.auth)
    assert listed.status_code == 200
    ids = [item["calculationId"] for item in listed.json()["items"]]
    assert ids.count(first.json()["calculationId"]) == 1


def test_routes_outside_the_list_ignore_the_header(client: TestClient, broker_a: BrokerFixture) -> None:
    key = fresh_key()
    one = client.post("/api/v1/calculate/position-size", json=POSITION_SIZE, headers=idem(broker_a, key))
    two = client.post("/api/v1/calculate/position-size", json=POSITION_SIZE, headers=idem(broker_a, key))
    assert one.status_code == two.status_code == 200
    assert one.json()["calculationId"] != two.json()["calculationId"] and REPLAYED not in two.headers
    # A publishable (browser) key may run batches but not store responses: the header is ignored.
    browser = {"Authorization": f"Bearer {broker_a.publishable_key}", "Origin": "https://www.example.com", KEY: key}
    p1 = client.post(BATCH, json={"items": [POSITION_SIZE]}, headers=browser)
    p2 = client.post(BATCH, json={"items": [POSITION_SIZE]}, headers=browser)
    assert p1.status_code == p2.status_code == 200, p1.text
    assert p1.json()["calculationId"] != p2.json()["calculationId"]
    assert rows(client, broker_a) == []


# --- the probe app: held requests, 5xx, a clock, a lost database --------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Probe:
    """Test-only billing routes (under /api/v1/billing, so the real path list applies to them)."""

    def __init__(self, main: Any, clock: FakeClock, db: Database | None = None, max_body_bytes: int = 1 << 20) -> None:
        self.calls: Counter[str] = Counter()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        app = FastAPI()
        install_error_handlers(app)
        base = main.state.services
        app.state.services = dataclasses.replace(base, db=db or base.db)  # the real auth; a lost db when asked
        app.add_api_route("/api/v1/billing/counter", self.counter, methods=["POST"], status_code=201)
        app.add_api_route("/api/v1/billing/slow", self.slow, methods=["POST"])
        app.add_api_route("/api/v1/billing/boom", self.boom, methods=["POST"])
        app.add_api_route("/api/v1/billing/busy", self.busy, methods=["POST"])
        app.add_api_route("/api/v1/billing/limited", self.limited, methods=["POST"])
        app.add_api_route("/api/v1/billing/empty", self.empty, methods=["DELETE"])
        app.add_middleware(IdempotencyMiddleware, clock=clock)  # same order as app.main
        app.add_middleware(RequestContextMiddleware, max_body_bytes=max_body_bytes)
        self.app = app

    def _count(self, name: str) -> int:
        self.calls[name] += 1
        return self.calls[name]

    async def counter(self) -> JSONResponse:
        return JSONResponse({"n": self._count("counter")}, status_code=201, headers={"x-per-request": "1"})

    async def slow(self) -> JSONResponse:
        n = self._count("slow")
        if n == 1:  # only the first run is held
            self.entered.set()
            await self.release.wait()
        return JSONResponse({"n": n}, status_code=201)

    async def boom(self) -> JSONResponse:
        n = self._count("boom")
        if n == 1:
            raise RuntimeError("the first run fails")
        return JSONResponse({"n": n}, status_code=201)

    async def busy(self) -> Response:
        n = self._count("busy")
        if n == 1:
            return Response(status_code=503, headers={"Retry-After": "1"})
        return JSONResponse({"n": n})

    async def limited(self) -> Response:
        n = self._count("limited")
        return Response(status_code=429) if n == 1 else JSONResponse({"n": n})

    async def empty(self) -> Response:
        self._count("empty")
        return Response(status_code=204)

    def client(self) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
        return httpx.AsyncClient(transport=transport, base_url="http://probe")


def run_probe(client: TestClient, scenario: Callable[[Probe, httpx.AsyncClient], Awaitable[None]], *,
              clock: FakeClock | None = None, db: Database | None = None, max_body_bytes: int = 1 << 20) -> Probe:
    main: Any = client.app

    async def run() -> Probe:
        probe = Probe(main, clock or FakeClock(), db, max_body_bytes)  # events bound to the portal's loop
        async with probe.client() as http:
            await scenario(probe, http)
        return probe

    return client.portal.call(run)


def test_concurrent_duplicate_is_409_while_the_first_runs(client: TestClient, broker_a: BrokerFixture) -> None:
    key = fresh_key()
    headers = idem(broker_a, key)
    seen: dict[str, httpx.Response] = {}

    async def scenario(probe: Probe, http: httpx.AsyncClient) -> None:
        first = asyncio.create_task(http.post("/api/v1/billing/slow", json={"a": 1}, headers=headers))
        await asyncio.wait_for(probe.entered.wait(), 10)  # the first run is inside the route now
        seen["duplicate"] = await http.post("/api/v1/billing/slow", json={"a": 1}, headers=headers)
        seen["different"] = await http.post("/api/v1/billing/slow", json={"a": 2}, headers=headers)
        probe.release.set()
        seen["first"] = await first
        seen["after"] = await http.post("/api/v1/billing/slow", json={"a": 1}, headers=headers)

    probe = run_probe(client, scenario)
    assert_key_problem(seen["duplicate"], 409, "idempotency-key-in-flight")
    assert seen["duplicate"].headers["retry-after"] == "1"
    assert_key_problem(seen["different"], 422, "idempotency-key-reused")
    assert seen["first"].status_code == 201 and seen["first"].json() == {"n": 1}
    assert seen["after"].json() == {"n": 1} and seen["after"].headers[REPLAYED] == "true"
    assert probe.calls["slow"] == 1


def test_a_5xx_is_never_stored_and_the_retry_runs(client: TestClient, broker_a: BrokerFixture) -> None:
    raised, returned, throttled = fresh_key(), fresh_key(), fresh_key()
    seen: dict[str, list[httpx.Response]] = {}

    async def scenario(probe: Probe, http: httpx.AsyncClient) -> None:
        for name, key in (("boom", raised), ("busy", returned), ("limited", throttled)):
            seen[name] = [await http.post(f"/api/v1/billing/{name}", json={}, headers=idem(broker_a, key))
                          for _ in range(3)]

    probe = run_probe(client, scenario)
    boom = seen["boom"]
    assert_problem(boom[0], 500, "internal-error")  # an exception: the key was released
    assert [r.status_code for r in boom[1:]] == [201, 201]
    assert boom[1].json() == boom[2].json() == {"n": 2} and boom[2].headers[REPLAYED] == "true"
    busy = seen["busy"]
    assert [r.status_code for r in busy] == [503, 200, 200]  # a returned 5xx: not stored either
    assert busy[2].json() == {"n": 2} and busy[2].headers[REPLAYED] == "true"
    limited = seen["limited"]
    assert [r.status_code for r in limited] == [429, 200, 200]  # a 429 is transient, like a 5xx
    assert limited[2].headers[REPLAYED] == "true"
    assert probe.calls == Counter({"boom": 2, "busy": 2, "limited": 2})


def test_a_204_replays_without_a_body_or_length(client: TestClient, broker_a: BrokerFixture) -> None:
    key = fresh_key()
    seen: list[httpx.Response] = []

    async def scenario(probe: Probe, http: httpx.AsyncClient) -> None:
        for _ in range(2):
            seen.append(await http.delete("/api/v1/billing/empty", headers=idem(broker_a, key)))

    probe = run_probe(client, scenario)
    assert [r.status_code for r in seen] == [204, 204] and seen[1].content == b""
    assert seen[1].headers[REPLAYED] == "true" and "content-length" not in seen[1].headers
    assert probe.calls["empty"] == 1


def test_keys_expire_after_24_hours_and_expired_rows_are_purged(client: TestClient, broker_a: BrokerFixture) -> None:
    clock = FakeClock()
    first_key, later_key = fresh_key(), fresh_key()
    seen: list[httpx.Response] = []
    counts: list[int] = []

    def stored() -> int:
        return int(sql(client, "select count(*) from idempotency_keys where broker_id = :b and key = :k",
                       {"b": broker_a.id, "k": first_key})[0][0])

    async def post(http: httpx.AsyncClient, key: str) -> None:
        seen.append(await http.post("/api/v1/billing/counter", json={}, headers=idem(broker_a, key)))

    async def scenario(probe: Probe, http: httpx.AsyncClient) -> None:
        await post(http, first_key)
        clock.advance(hours=23, minutes=59)
        await post(http, first_key)  # still inside 24 h: replayed
        clock.advance(minutes=2)
        await post(http, later_key)  # a new key purges the broker's expired rows
        counts.append(await asyncio.to_thread(stored))
        await post(http, first_key)  # expired (and purged): runs again

    probe = run_probe(client, scenario, clock=clock)
    assert [r.json()["n"] for r in seen] == [1, 1, 2, 3]
    assert [r.headers.get(REPLAYED) for r in seen] == [None, "true", None, None]
    assert "x-per-request" not in seen[1].headers  # only allow-listed headers are replayed
    assert counts == [0]
    assert probe.calls["counter"] == 3


def test_a_stale_pending_row_is_taken_over_and_its_late_run_writes_nothing(
        client: TestClient, broker_a: BrokerFixture) -> None:
    """A run that never finishes (a killed worker) must not block its key for 24 h: after the
    60 s lease the next request takes the key over; the old run, if it ever ends, stores nothing."""
    clock = FakeClock()
    key = fresh_key()
    headers = idem(broker_a, key)
    seen: dict[str, httpx.Response] = {}

    async def scenario(probe: Probe, http: httpx.AsyncClient) -> None:
        stuck = asyncio.create_task(http.post("/api/v1/billing/slow", json={}, headers=headers))
        await asyncio.wait_for(probe.entered.wait(), 10)
        clock.advance(seconds=30)
        seen["inside_lease"] = await http.post("/api/v1/billing/slow", json={}, headers=headers)
        clock.advance(seconds=31)
        seen["taken_over"] = await http.post("/api/v1/billing/slow", json={}, headers=headers)
        probe.release.set()
        seen["stuck"] = await stuck
        seen["replay"] = await http.post("/api/v1/billing/slow", json={}, headers=headers)

    run_probe(client, scenario, clock=clock)
    assert seen["inside_lease"].status_code == 409
    assert seen["taken_over"].status_code == 201 and seen["taken_over"].json() == {"n": 2}
    assert seen["stuck"].json() == {"n": 1}
    assert seen["replay"].json() == {"n": 2} and seen["replay"].headers[REPLAYED] == "true"


def test_body_limit_still_applies_to_chunked_bodies(client: TestClient, broker_a: BrokerFixture) -> None:
    seen: list[httpx.Response] = []

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"x" * 600

    async def scenario(probe: Probe, http: httpx.AsyncClient) -> None:
        seen.append(await http.post("/api/v1/billing/counter", content=chunks(), headers=idem(broker_a, fresh_key())))

    probe = run_probe(client, scenario, max_body_bytes=1024)
    assert_problem(seen[0], 413, "payload-too-large")
    assert probe.calls["counter"] == 0 and rows(client, broker_a) == []


def test_database_down_is_a_503_problem_not_a_500(client: TestClient, broker_a: BrokerFixture) -> None:
    urls = client.app.state.services.db.urls  # type: ignore[attr-defined]
    nowhere = make_url(urls.app).set(host="127.0.0.1", port=1).render_as_string(hide_password=False)
    dead = Database.connect(DatabaseUrls(owner=nowhere, app=nowhere, platform=nowhere), pool_size=1)
    seen: list[httpx.Response] = []

    async def scenario(probe: Probe, http: httpx.AsyncClient) -> None:
        # Authentication uses the session's auth service (its own, live database): only ours is gone.
        seen.append(await http.post("/api/v1/billing/counter", json={}, headers=idem(broker_a, fresh_key())))

    try:
        probe = run_probe(client, scenario, db=dead)
    finally:
        client.portal.call(dead.dispose)
    assert_problem(seen[0], 503, "service-unavailable")
    assert "retry-after" in seen[0].headers
    assert probe.calls["counter"] == 0

