"""Outbound webhooks (issue 17, points 4 and 5): endpoints, Standard Webhooks signatures verified with the
`standardwebhooks` library, the retry schedule, the delivery log, redelivery, auto-disable, SSRF refusals."""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from standardwebhooks import Webhook

from app.integrations.webhooks.schedule import MAX_ATTEMPTS, SCHEDULE, WINDOW_SECONDS, nominal_offsets, retry_delay
from app.integrations.webhooks.service import WebhookService, attempt_job_id
from app.integrations.webhooks.ssrf import PinnedTransport, TargetPolicy, TargetRefused
from tests.conftest import BrokerFixture
from tests.helpers_auth import assert_problem, sql
from tests.helpers_receiver import Received, receiver

pytestmark = pytest.mark.usefixtures("no_server_errors")
PRODUCTION = TargetPolicy(https_only=True, allow_loopback=False)
DEVELOPMENT = TargetPolicy(https_only=False, allow_loopback=True)
ALERT = {"alertId": "a1", "rule": "margin-level", "traderId": "t-1"}


def svc(client: TestClient) -> Any:
    return client.app.state.services  # type: ignore[attr-defined]


def register(client: TestClient, broker: BrokerFixture, url: str, types: list[str] | None = None) -> dict[str, Any]:
    resp = client.post(f"/api/v1/brokers/{broker.id}/webhook-endpoints", headers=broker.auth,
                       json={"url": url, "eventTypes": types or ["alert.triggered", "alert.cleared"]})
    assert resp.status_code == 201, resp.text
    out: dict[str, Any] = resp.json()
    return out


def verified(secret: str, request: Received) -> Any:
    return Webhook(secret).verify(request.body.decode(), request.headers)


def own_service(client: TestClient, policy: TargetPolicy = DEVELOPMENT,
                resolver: Callable[[str, int], Awaitable[list[str]]] | None = None, jobs: Any = None) -> WebhookService:
    """A service on the app's database and key whose attempts the test makes itself (no queue unless given)."""
    s = svc(client)
    kwargs = {"resolver": resolver} if resolver is not None else {}
    return WebhookService(s.db, s.auth.fernet, policy, jobs=jobs, **kwargs)


def run(client: TestClient, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    return client.portal.call(fn, *args)  # type: ignore[arg-type]


# --- the schedule ----------------------------------------------------------------------------------------
def test_retry_schedule_values() -> None:
    assert SCHEDULE[:8] == (5, 300, 1800, 7200, 18000, 36000, 50400, 72000)
    assert sum(SCHEDULE) == WINDOW_SECONDS == 259_200 and SCHEDULE[8] == 73_495
    assert nominal_offsets()[-1] == WINDOW_SECONDS and MAX_ATTEMPTS == 10
    assert [retry_delay(n, sum(SCHEDULE[:n - 1])) for n in range(1, 10)] == list(SCHEDULE)
    assert retry_delay(10, 0) is None and retry_delay(0, 0) is None
    # Jitter: +-10 % of the gap, never past three days after the first attempt.
    assert retry_delay(1, 0, 1.0) == pytest.approx(5.5) and retry_delay(1, 0, -1.0) == pytest.approx(4.5)
    assert retry_delay(2, 5, 5.0) == pytest.approx(330)  # the draw is clamped to [-1, 1]
    assert retry_delay(9, sum(SCHEDULE[:8]), 1.0) == SCHEDULE[8]  # +10 % would pass the window
    assert retry_delay(3, WINDOW_SECONDS - 10, 0.0) == 10
    assert retry_delay(3, WINDOW_SECONDS, 0.0) is None


# --- delivery and signatures -----------------------------------------------------------------------------
def test_delivery_is_signed_and_verifies_with_the_library(client: TestClient, broker_a: BrokerFixture) -> None:
    with receiver() as rx:
        endpoint = register(client, broker_a, rx.url)
        assert endpoint["secret"].startswith("whsec_") and endpoint["enabled"] is True
        assert "secret" not in client.get(f"/api/v1/brokers/{broker_a.id}/webhook-endpoints/{endpoint['id']}",
                                          headers=broker_a.auth).json()
        ids = run(client, svc(client).webhooks.emit, broker_a.id, "alert.triggered", ALERT)
        assert len(ids) == 1
        got = rx.wait_for(1)[0]  # the worker in the app process made the first attempt
    payload = verified(endpoint["secret"], got)
    assert payload["type"] == "alert.triggered" and payload["data"] == ALERT
    assert payload["timestamp"].endswith("Z")
    assert got.headers["webhook-id"].startswith("msg_") and got.path == "/hooks"
    log = client.get(f"/api/v1/brokers/{broker_a.id}/webhook-endpoints/{endpoint['id']}/deliveries",
                     headers=broker_a.auth).json()
    assert log[0]["messageId"] == got.headers["webhook-id"]


def test_unsubscribed_types_are_not_sent(client: TestClient, broker_a: BrokerFixture) -> None:
    register(client, broker_a, "http://127.0.0.1:9/never", ["alert.cleared"])
    assert run(client, svc(client).webhooks.emit, broker_a.id, "alert.triggered", ALERT) == []


def test_fails_twice_then_one_success_with_the_same_message_id(client: TestClient, broker_a: BrokerFixture) -> None:
    jobs = svc(client).jobs
    service = own_service(client, jobs=jobs)
    with receiver(500, 503) as rx:
        endpoint = register(client, broker_a, rx.url)
        async def emit() -> list[uuid.UUID]:
            async with service.db.tenant(broker_a.id) as session:
                ids = await service.emit_in(session, broker_a.id, "alert.triggered", ALERT)
                await session.commit()
            return ids
        [delivery_id] = run(client, emit)
        first = run(client, service.attempt, broker_a.id, delivery_id, 1)
        assert first["status"] == "pending" and first["responseCode"] == 500
        assert 4.5 <= first["deferSeconds"] <= 5.5  # the schedule's 5 s, jittered
        queued = run(client, jobs.status, attempt_job_id(broker_a.id, delivery_id, 2))
        assert queued.state in ("queued", "in_progress", "complete")
        run(client, service.attempt, broker_a.id, delivery_id, 2)
        run(client, service.attempt, broker_a.id, delivery_id, 3)
        # Attempts already made are no-ops (a job rerun, or the queued copy of attempt 2 running later).
        assert run(client, service.attempt, broker_a.id, delivery_id, 2)["skipped"] is True
        got = rx.wait_for(3)
    assert len(got) == 3 and len({r.headers["webhook-id"] for r in got}) == 1
    assert all(verified(endpoint["secret"], r)["data"] == ALERT for r in got)
    detail = client.get(f"/api/v1/brokers/{broker_a.id}/webhook-endpoints/{endpoint['id']}/deliveries/{delivery_id}",
                        headers=broker_a.auth).json()
    assert detail["status"] == "delivered" and detail["attempts"] == 3 and detail["nextAttemptAt"] is None
    assert [a["responseCode"] for a in detail["attemptLog"]] == [500, 503, 200]
    assert all(a["latencyMs"] >= 0 for a in detail["attemptLog"]) and detail["lastResponseCode"] == 200
    assert detail["messageId"] == got[0].headers["webhook-id"]


def test_rotation_signs_with_both_secrets(client: TestClient, broker_a: BrokerFixture) -> None:
    service = own_service(client)
    with receiver() as rx:
        endpoint = register(client, broker_a, rx.url)
        rotated = client.post(f"/api/v1/brokers/{broker_a.id}/webhook-endpoints/{endpoint['id']}/rotate-secret",
                              json={"overlapHours": 1}, headers=broker_a.auth).json()
        assert rotated["secret"] != endpoint["secret"] and rotated["previousSecretValidUntil"] is not None
        [d] = run(client, _emit_only, service, broker_a.id)
        run(client, service.attempt, broker_a.id, d, 1)
        got = rx.wait_for(1)[0]
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    assert verified(endpoint["secret"], got) and verified(rotated["secret"], got)


async def _emit_only(service: WebhookService, broker_id: uuid.UUID, type_: str = "alert.triggered") -> list[uuid.UUID]:
    async with service.db.tenant(broker_id) as session:
        ids = await service.emit_in(session, broker_id, type_, ALERT)
        await session.commit()
    return ids


@pytest.mark.parametrize(("answer", "status", "disabled"), [
    ((410, {}), "failed", True),
    ((500, {"webhook-delivery": "abort-message"}), "aborted", False),
    ((302, {"location": "http://127.0.0.1:1/elsewhere"}), "pending", False),
])
def test_receiver_answers(client: TestClient, broker_a: BrokerFixture, answer: tuple[int, dict[str, str]],
                          status: str, disabled: bool) -> None:
    service = own_service(client)
    with receiver(answer) as rx:
        endpoint = register(client, broker_a, rx.url)
        [d] = run(client, _emit_only, service, broker_a.id)
        assert run(client, service.attempt, broker_a.id, d, 1)["status"] == status
        assert len(rx.wait_for(1)) == 1  # a redirect is not followed
    now = client.get(f"/api/v1/brokers/{broker_a.id}/webhook-endpoints/{endpoint['id']}", headers=broker_a.auth).json()
    assert now["enabled"] is not disabled
    if disabled:
        assert "410" in now["disabledReason"]


def test_a_redirect_to_a_reachable_receiver_is_not_followed(client: TestClient, broker_a: BrokerFixture) -> None:
    """The 302 points at the same receiver, which would answer 200: a client following it would deliver."""
    service = own_service(client)
    with receiver() as rx:
        rx.script.append((302, {"location": rx.url + "/moved"}))
        register(client, broker_a, rx.url)
        [d] = run(client, _emit_only, service, broker_a.id)
        out = run(client, service.attempt, broker_a.id, d, 1)
        assert out["status"] == "pending" and out["responseCode"] == 302, out
        assert [r.path for r in rx.wait_for(1)] == ["/hooks"]


def test_exhausted_delivery_disables_the_endpoint_with_a_notice(client: TestClient, broker_a: BrokerFixture) -> None:
    clock = {"now": svc(client).webhooks.clock()}
    service = own_service(client)
    service.clock = lambda: clock["now"]
    with receiver(*[500] * MAX_ATTEMPTS) as rx:
        endpoint = register(client, broker_a, rx.url)
        [d] = run(client, _emit_only, service, broker_a.id)
        for n in range(1, MAX_ATTEMPTS + 1):
            out = run(client, service.attempt, broker_a.id, d, n)
            if n < MAX_ATTEMPTS:
                assert out["status"] == "pending"
                clock["now"] += timedelta(seconds=out["deferSeconds"])
        assert out["status"] == "exhausted"
        rx.wait_for(MAX_ATTEMPTS)
    path = f"/api/v1/brokers/{broker_a.id}/webhook-endpoints/{endpoint['id']}"
    state = client.get(path, headers=broker_a.auth).json()
    assert state["enabled"] is False and "3 days" in state["disabledReason"]
    # Disabled: nothing more is sent; re-enabled by the broker, the notice is cleared.
    assert run(client, _emit_only, service, broker_a.id) == []
    again = client.patch(f"/api/v1/brokers/{broker_a.id}/webhook-endpoints/{endpoint['id']}", json={"enabled": True},
                         headers=broker_a.auth).json()
    assert again["enabled"] is True and again["disabledReason"] is None


def test_redelivery_sends_the_same_message_again(client: TestClient, broker_a: BrokerFixture) -> None:
    service = own_service(client)
    with receiver(500, 500) as rx:
        endpoint = register(client, broker_a, rx.url)
        [d] = run(client, _emit_only, service, broker_a.id)
        run(client, service.attempt, broker_a.id, d, 1)
        base = f"/api/v1/brokers/{broker_a.id}/webhook-endpoints/{endpoint['id']}/deliveries"
        again = client.post(f"{base}/{d}/redeliver", headers=broker_a.auth)
        assert again.status_code == 202, again.text
        copy = again.json()
        assert copy["redeliveryOf"] == str(d) and copy["status"] == "pending"
        got = rx.wait_for(2)  # the worker sends the redelivery
    assert got[0].headers["webhook-id"] == got[1].headers["webhook-id"] == copy["messageId"]
    assert got[0].body == got[1].body


# --- SSRF --------------------------------------------------------------------------------------------------
def resolver_of(table: dict[str, list[str]]) -> Callable[[str, int], Awaitable[list[str]]]:
    async def resolve(host: str, port: int) -> list[str]:
        return table.get(host, [host])
    return resolve


@pytest.mark.parametrize("url", ["https://10.0.0.1/hook", "https://169.254.169.254/latest/meta-data",
                                 "https://[::1]/hook", "https://rebind.example.com/hook", "http://hooks.example.com/",
                                 "https://[fd00:ec2::254]/", "https://[::ffff:10.0.0.1]/", "https://0.0.0.0/",
                                 "https://user:pw@hooks.example.com/"])
def test_registration_refused_in_production(client: TestClient, broker_a: BrokerFixture, url: str) -> None:
    live = svc(client).webhooks
    saved = live.policy, live.resolver
    live.policy = PRODUCTION
    live.resolver = resolver_of({"rebind.example.com": ["127.0.0.1"], "hooks.example.com": ["93.184.216.34"]})
    try:
        resp = client.post(f"/api/v1/brokers/{broker_a.id}/webhook-endpoints", headers=broker_a.auth,
                           json={"url": url, "eventTypes": ["alert.triggered"]})
    finally:
        live.policy, live.resolver = saved
    body = assert_problem(resp, 422, "validation-error")
    assert body["errors"][0]["field"] == "url"


def test_a_real_name_resolving_to_loopback_is_refused(client: TestClient) -> None:
    service = own_service(client, PRODUCTION)
    from app.errors import InvalidField
    from app.integrations.webhooks.ssrf import check_registration

    with pytest.raises(InvalidField) as refused:
        run(client, check_registration, service.policy, "https://localhost/hook")
    assert refused.value.errors[0]["code"] == "target_refused"
    assert "is not a public address" in refused.value.errors[0]["detail"]


@pytest.mark.parametrize("address", ["10.0.0.1", "169.254.169.254", "::1", "127.0.0.1"])
def test_delivery_refused_at_connect_time(client: TestClient, broker_a: BrokerFixture, address: str) -> None:
    """Registered while the name pointed at a public address; at delivery it points inside (DNS rebinding)."""
    table = {"hooks.example.com": ["93.184.216.34"]}
    service = own_service(client, PRODUCTION, resolver_of(table))
    created = run(client, service.create, broker_a.id, "https://hooks.example.com/x", ["alert.triggered"], None)
    table["hooks.example.com"] = [address]
    [d] = run(client, _emit_only, service, broker_a.id)
    out = run(client, service.attempt, broker_a.id, d, 1)
    assert out["status"] == "pending" and out["responseCode"] is None
    assert out["error"].startswith("refused:") and "not a public address" in out["error"]
    run(client, service.delete, broker_a.id, created["id"])


def test_pinned_transport_never_connects_to_a_refused_address(client: TestClient) -> None:
    with receiver() as rx:
        port = int(rx.url.split(":")[2].split("/")[0])

        async def post() -> None:
            transport = PinnedTransport(TargetPolicy(https_only=False, allow_loopback=False),
                                        resolver_of({"inside.example": ["127.0.0.1"]}))
            async with httpx.AsyncClient(transport=transport) as c:
                await c.post(f"http://inside.example:{port}/hooks", content=b"{}")

        with pytest.raises(TargetRefused):
            run(client, post)
        assert rx.requests == []

        async def allowed() -> int:  # the same with loopback allowed reaches it, Host header kept
            transport = PinnedTransport(DEVELOPMENT, resolver_of({"inside.example": ["127.0.0.1"]}))
            async with httpx.AsyncClient(transport=transport) as c:
                return (await c.post(f"http://inside.example:{port}/hooks", content=b"{}")).status_code

        assert run(client, allowed) == 200
        assert rx.wait_for(1)[0].headers["host"] == f"inside.example:{port}"


# --- tenancy ---------------------------------------------------------------------------------------------
def test_endpoints_and_deliveries_are_per_tenant(client: TestClient, broker_a: BrokerFixture,
                                                broker_b: BrokerFixture) -> None:
    service = own_service(client)
    with receiver(500) as rx:
        endpoint = register(client, broker_a, rx.url)
        [d] = run(client, _emit_only, service, broker_a.id)
        run(client, service.attempt, broker_a.id, d, 1)
    base_a = f"/api/v1/brokers/{broker_a.id}/webhook-endpoints"
    for method, path in (("GET", base_a), ("GET", f"{base_a}/{endpoint['id']}"),
                         ("GET", f"{base_a}/{endpoint['id']}/deliveries"),
                         ("GET", f"{base_a}/{endpoint['id']}/deliveries/{d}"),
                         ("POST", f"{base_a}/{endpoint['id']}/deliveries/{d}/redeliver"),
                         ("DELETE", f"{base_a}/{endpoint['id']}")):
        assert_problem(client.request(method, path, headers=broker_b.auth), 404, "not-found")
    # B's own paths with A's ids: nothing there either.
    base_b = f"/api/v1/brokers/{broker_b.id}/webhook-endpoints"
    assert client.get(base_b, headers=broker_b.auth).json() == []
    assert_problem(client.get(f"{base_b}/{endpoint['id']}/deliveries/{d}", headers=broker_b.auth), 404)
    assert_problem(client.get(f"{base_b}/{endpoint['id']}/deliveries", headers=broker_b.auth), 404)
    # B's events never reach A's endpoint, and B's attempt on A's delivery id finds nothing.
    assert run(client, _emit_only, service, broker_b.id) == []
    assert run(client, service.attempt, broker_b.id, d, 2)["skipped"] is True
    assert orjson.loads(orjson.dumps(client.get(base_a, headers=broker_a.auth).json()))[0]["id"] == endpoint["id"]


# --- one attempt's limits: the timeout and the answer read -------------------------------------------------
@contextmanager
def raw_server(answer: bytes | None) -> Iterator[str]:
    """A TCP server on 127.0.0.1 that reads the request, then says nothing (`answer` None) or sends `answer`
    followed by an endless chunked body, until the client goes away or the test ends."""
    done = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        listener.settimeout(0.2)
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65_536)
                if answer is None:
                    done.wait()
                    continue
                try:
                    conn.sendall(answer)
                    while not done.is_set():
                        conn.sendall(b"4000\r\n" + b"x" * 0x4000 + b"\r\n")
                except OSError:  # the client closed: it read what it wanted
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hooks"
    finally:
        done.set()
        thread.join()
        listener.close()


async def bounded(attempt: Awaitable[Any]) -> Any:
    """The attempt, failed by a generous ceiling should it never end (rather than hanging the run)."""
    return await asyncio.wait_for(attempt, 60)


def test_an_attempt_that_gets_no_answer_times_out(client: TestClient, broker_a: BrokerFixture) -> None:
    s = svc(client)
    service = WebhookService(s.db, s.auth.fernet, DEVELOPMENT, timeout_seconds=0.5)
    with raw_server(None) as url:
        endpoint = run(client, service.create, broker_a.id, url, ["alert.triggered"], None)
        [d] = run(client, _emit_only, service, broker_a.id)
        out = run(client, bounded, service.attempt(broker_a.id, d, 1))
        run(client, service.delete, broker_a.id, endpoint["id"])
    assert out["status"] == "pending" and out["responseCode"] is None
    assert out["error"] == "timeout after 0.5 s"
    assert svc(client).webhooks.timeout == 5.0  # the app's setting: 5 s for the whole attempt


def test_an_endless_answer_is_read_only_up_to_the_limit(client: TestClient, broker_a: BrokerFixture) -> None:
    """A receiver that answers 200 and never stops sending: the attempt reads 1 KiB and is delivered (an
    attempt that read on would run into its timeout instead)."""
    s = svc(client)
    service = WebhookService(s.db, s.auth.fernet, DEVELOPMENT, timeout_seconds=3, response_max_bytes=1024)
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n"
    with raw_server(head) as url:
        endpoint = run(client, service.create, broker_a.id, url, ["alert.triggered"], None)
        [d] = run(client, _emit_only, service, broker_a.id)
        out = run(client, bounded, service.attempt(broker_a.id, d, 1))
        run(client, service.delete, broker_a.id, endpoint["id"])
    assert out["status"] == "delivered" and out["responseCode"] == 200 and out["error"] is None, out


def test_the_previous_secret_stops_signing_after_the_overlap(client: TestClient, broker_a: BrokerFixture) -> None:
    clock = {"now": svc(client).webhooks.clock()}
    service = own_service(client)
    service.clock = lambda: clock["now"]
    with receiver() as rx:
        endpoint = register(client, broker_a, rx.url)
        rotated = client.post(f"/api/v1/brokers/{broker_a.id}/webhook-endpoints/{endpoint['id']}/rotate-secret",
                              json={"overlapHours": 1}, headers=broker_a.auth).json()
        clock["now"] += timedelta(hours=1, seconds=1)
        [d] = run(client, _emit_only, service, broker_a.id)
        run(client, service.attempt, broker_a.id, d, 1)
        got = rx.wait_for(1)[0]
    # Signed an hour ahead of the real clock (the library's verify would call it too new): compared directly.
    at = datetime.fromtimestamp(int(got.headers["webhook-timestamp"]), UTC)
    def signature(secret: str) -> str:
        return Webhook(secret).sign(got.headers["webhook-id"], at, got.body.decode())
    assert got.headers["webhook-signature"] == signature(rotated["secret"])
    assert signature(endpoint["secret"]) not in got.headers["webhook-signature"]


# --- RLS: the database itself keeps the brokers apart -------------------------------------------------------
ISSUE_17_TABLES = ("platform_event_secrets", "platform_messages", "platform_events", "trading_accounts",
                   "account_positions", "alert_rules", "alerts", "webhook_endpoints", "webhook_deliveries",
                   "webhook_attempts")


def test_rls_shows_each_broker_only_its_own_rows_in_every_issue_17_table(
        client: TestClient, broker_a: BrokerFixture, broker_b: BrokerFixture) -> None:
    from app.alerts.service import evaluate
    from tests.helpers_platform import account, inbound_secret, position, post_events

    service = own_service(client)
    with receiver() as rx:
        for broker in (broker_a, broker_b):
            register(client, broker, rx.url)
            made = client.post(f"/api/v1/brokers/{broker.id}/alert-rules", headers=broker.auth,
                               json={"kind": "risk-per-trade", "threshold": 5})
            assert made.status_code == 201, made.text
            secret = inbound_secret(client, broker)
            assert post_events(client, broker, secret, [account("t-rls"), position("opened", "t-rls", "p1")]) \
                .status_code == 200
            run(client, evaluate, svc(client), broker.id, ["t-rls"])
            for d in run(client, _emit_only, service, broker.id):
                run(client, service.attempt, broker.id, d, 1)
    urls = svc(client).db.urls

    async def seen_by(broker_id: uuid.UUID) -> dict[str, set[uuid.UUID]]:
        engine = create_async_engine(urls.app, poolclass=NullPool)  # the API's role: RLS applies
        try:
            async with engine.begin() as conn:
                await conn.execute(text("select set_config('app.current_broker_id', :b, true)"), {"b": str(broker_id)})
                return {t: set((await conn.execute(text(f"select distinct broker_id from {t}"))).scalars())
                        for t in ISSUE_17_TABLES}
        finally:
            await engine.dispose()

    for broker, other in ((broker_a, broker_b), (broker_b, broker_a)):
        seen = run(client, seen_by, broker.id)
        assert seen == dict.fromkeys(ISSUE_17_TABLES, {broker.id}), (broker.id, other.id, seen)
    # Both brokers do have rows in each table (as the owner sees them): the sets above are not empty by luck.
    owner = {t: {r[0] for r in sql(client, f"select distinct broker_id from {t}")} for t in ISSUE_17_TABLES}
    assert all({broker_a.id, broker_b.id} <= ids for ids in owner.values()), owner
