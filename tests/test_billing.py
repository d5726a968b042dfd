"""Billing (issue 16) against the local Stripe server: localstripe plus the double (app/billing/localserver).

Two apps ("workers") share the embedded Postgres and Redis; a tier change applied through one reaches the
other's rate limiter through the invalidation channel. The billing clock is a test clock.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import pytest
from fastapi.testclient import TestClient

from app.billing import tasks
from app.billing.service import BillingService
from app.config import Settings
from app.main import create_app
from tests.billing_helpers import Clock, deliver, events_of, helper, stripe_client, thin_event
from tests.conftest import BrokerFixture, make_broker
from tests.helpers_auth import admin_token, assert_problem, audit_rows, bearer, calculate, sql, superadmin_token


@pytest.fixture(scope="module")
def local_stripe(settings: Settings) -> str:
    assert settings.stripe_api_base  # the session's local Stripe server (tests/conftest.py)
    return settings.stripe_api_base


def _app(settings: Settings, url: str) -> Iterator[TestClient]:
    # Two apps of their own (not the session's): their billing clocks are the tests' to move. Their key and
    # broker caches live 300 s, so within a test only an announcement can change what the other worker holds.
    app = create_app(settings.model_copy(update={"stripe_api_base": url, "key_cache_seconds": 300}))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def worker1(settings: Settings, local_stripe: str) -> Iterator[TestClient]:
    yield from _app(settings, local_stripe)


@pytest.fixture(scope="module")
def worker2(settings: Settings, local_stripe: str) -> Iterator[TestClient]:
    yield from _app(settings, local_stripe)


@pytest.fixture
def clock(worker1: TestClient, worker2: TestClient) -> Iterator[Clock]:
    c = Clock()
    services = [w.app.state.services.billing for w in (worker1, worker2)]  # type: ignore[attr-defined]
    for s in services:
        s.clock = c
    yield c


def billing_of(client: TestClient) -> BillingService:
    found: BillingService = client.app.state.services.billing  # type: ignore[attr-defined]
    return found


def run(client: TestClient, job: Any, *args: Any) -> dict[str, Any]:
    ctx = {"services": client.app.state.services}  # type: ignore[attr-defined]
    out: dict[str, Any] = client.portal.call(job, ctx, *args)  # type: ignore[arg-type]
    return out


def policy_quota(client: TestClient, broker: BrokerFixture) -> str:
    resp = calculate(client, broker.auth)
    assert resp.status_code == 200, resp.text
    return resp.headers["ratelimit-policy"]


def eventually_quota(client: TestClient, broker: BrokerFixture, expected: str) -> None:
    """The announcement is fire-and-forget over Redis pub/sub: wait for it (60 s against a hang, well inside the
    workers' 300 s broker cache, so a worker that never hears it fails here instead of expiring its cache)."""
    deadline = time.monotonic() + 60
    while expected not in (seen := policy_quota(client, broker)):
        assert time.monotonic() < deadline, f"still {seen}: the tier change did not reach this worker"
        time.sleep(0.05)


def subscribed(client: TestClient) -> None:
    app: Any = client.app
    client.portal.call(asyncio.wait_for, app.state.services.invalidation.subscribed.wait(), 10)


def subscribe(client: TestClient, url: str, broker: BrokerFixture, token: str, tier: str = "professional") -> str:
    """Checkout through the API, pay on the (local) hosted page, deliver Stripe's event: the subscription id."""
    resp = client.post("/api/v1/billing/checkout", json={"tier": tier}, headers=bearer(token))
    assert resp.status_code == 201, resp.text
    session_id = resp.json()["sessionId"]
    done = helper(url, f"/_double/checkout/sessions/{session_id}/complete")
    event = next(e for e in events_of(url, "checkout.session.completed") if e["data"]["object"]["id"] == session_id)
    assert deliver(client, event).status_code == 200
    sub: str = done["subscription"]
    return sub


def test_plans_are_public_and_come_from_the_tier_table(worker1: TestClient) -> None:
    resp = worker1.get("/api/v1/billing/plans", headers={"Authorization": ""})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["currency"] == "usd"
    by_tier = {p["tier"]: p for p in body["plans"]}
    assert by_tier["professional"]["monthlyPrice"] == 500_000
    assert by_tier["professional"]["limits"] == {"requestsPerMinute": 200, "burst": 400, "unlimited": False}
    assert by_tier["free"]["trialDays"] == 30 and by_tier["enterprise"]["monthlyPrice"] is None


def test_paid_checkout_moves_a_free_broker_to_professional_on_every_worker(
        worker1: TestClient, worker2: TestClient, local_stripe: str, clock: Clock) -> None:
    broker = make_broker(worker1, tier="free")
    token = admin_token(worker1, broker)
    subscribed(worker2)
    for worker in (worker1, worker2):  # both workers hold the broker's record (free) in their caches now
        assert '"free";q=40' in policy_quota(worker, broker)
    sub_id = subscribe(worker1, local_stripe, broker, token)
    assert '"professional";q=400' in policy_quota(worker1, broker)  # the worker that applied it: at once
    eventually_quota(worker2, broker, '"professional";q=400')  # the other one: on the announcement
    view = worker2.get("/api/v1/billing/subscription", headers=bearer(token)).json()
    assert view["tier"] == "professional" and view["status"] == "active" and view["subscriptionId"] == sub_id
    assert view["currentPeriodEnd"] is not None and view["invoices"]
    assert audit_rows(worker1, broker.id, "billing.subscription_applied")


ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def server_process(settings: Settings, stripe_url: str, log: Path) -> Iterator[str]:
    """`forexrisk run` in a process of its own on the session's data directory: the same embedded Postgres
    and Redis (the keeper's; this process joins and leaves), the same local Stripe server. Its broker cache
    lives 300 s, so within a test's few seconds only an announcement can change what it holds. It runs no
    jobs (the session's queue is the session's). Stopped, with everything it started, however the test ends."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FOREXRISK_", "STRIPE_"))
           and k not in ("DATABASE_URL", "REDIS_URL", "CLICKHOUSE_URL", "SMTP_URL")}
    env |= {"FOREXRISK_DATA_DIR": str(settings.data_dir), "FOREXRISK_ENVIRONMENT": "test",
            "FOREXRISK_DEMO_BROKER": "false", "FOREXRISK_JOBS_IN_PROCESS": "false",
            "FOREXRISK_ANALYTICS_ENABLED": "false", "FOREXRISK_MARKET_DATA_PROVIDERS": '["broker"]',
            "FOREXRISK_KEY_CACHE_SECONDS": "300", "STRIPE_API_BASE": stripe_url}
    base = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "run", "--port", str(port), "--log-level",
                                 "warning"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    family: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 120  # a hang guard for a loaded machine; the loop waits on /healthz
        while True:
            assert proc.poll() is None, f"the server exited ({proc.returncode}): {log.read_text()}"
            assert time.monotonic() < deadline, f"the server did not start: {log.read_text()}"
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield base
    finally:
        try:
            family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        except psutil.Error:
            pass
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        deadline = time.monotonic() + 30  # its process pool's workers exit with it

        def alive() -> list[int]:
            out = []
            for p in family:
                try:
                    if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                        out.append(p.pid)
                except psutil.Error:
                    pass
            return out

        while alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        left = alive()
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert left == [], f"left running by the server process: {left}"


def _subscribers(client: TestClient) -> int:
    from app.redisdb.invalidation import CHANNEL

    hub = client.app.state.services.redis  # type: ignore[attr-defined]

    async def count() -> int:
        found = await hub.client.pubsub_numsub(CHANNEL)
        return int(found[0][1])

    n: int = client.portal.call(count)
    return n


def test_a_paid_checkout_reaches_a_server_in_another_process(
        worker1: TestClient, local_stripe: str, settings: Settings, clock: Clock, tmp_path: Path) -> None:
    """A second real server process (`python -m app.cli run`) on the same embedded Postgres and Redis: a free
    broker's RateLimit-Policy there turns professional after a paid checkout done through this process, on the
    announcement (Redis pub/sub), well before that process's 300 s broker cache could expire."""
    broker = make_broker(worker1, tier="free")
    token = admin_token(worker1, broker)
    before = _subscribers(worker1)
    with server_process(settings, local_stripe, tmp_path / "server.log") as other, \
            httpx.Client(base_url=other, timeout=10) as there:
        deadline = time.monotonic() + 60  # its invalidation subscription: a state (PUBSUB NUMSUB), not a delay
        while _subscribers(worker1) <= before:
            assert time.monotonic() < deadline, "the server process never subscribed to the invalidation channel"
            time.sleep(0.05)

        def policy_there() -> str:
            resp = calculate(there, broker.auth)  # type: ignore[arg-type]
            assert resp.status_code in (200, 429), resp.text  # a 429 carries the tier's policy too
            return resp.headers["ratelimit-policy"]

        assert '"free";q=40' in policy_there()  # the other process holds the broker (free) in its cache now
        subscribe(worker1, local_stripe, broker, token)
        assert '"professional";q=400' in policy_quota(worker1, broker)
        deadline = time.monotonic() + 60  # a hang guard: the announcement takes ms; its cache keeps "free" 300 s
        while '"professional";q=400' not in (seen := policy_there()):
            assert time.monotonic() < deadline, f"still {seen} in the other process: the tier change did not reach it"
            time.sleep(0.1)
    assert worker1.get("/readyz").json()["status"] == "ok"  # the engines stay: this process still uses them


def test_signature_failures_are_400_and_apply_nothing(worker1: TestClient, local_stripe: str, clock: Clock) -> None:
    broker = make_broker(worker1, tier="free")
    token = admin_token(worker1, broker)
    sub_id = subscribe(worker1, local_stripe, broker, token)
    stripe_client(local_stripe).v1.subscriptions.cancel(sub_id)  # any event applied now would end the tier
    audits = len(audit_rows(worker1, broker.id, "billing.subscription_applied"))
    event = thin_event("customer.subscription.deleted", {"id": sub_id, "object": "subscription"})
    stale = int(time.time()) - 301
    tampered = dict(event, data={"object": {"id": sub_id, "object": "subscription", "status": "canceled"}})
    for resp in (deliver(worker1, event, secret="whsec_wrong"), deliver(worker1, event, t=stale),
                 deliver(worker1, event, body=orjson.dumps(tampered)),
                 worker1.post("/api/v1/billing/webhooks/stripe", json=event, headers={"Authorization": ""})):
        assert_problem(resp, 400, "webhook-signature-invalid")
    assert sql(worker1, "select id from stripe_events where id = :i", {"i": event["id"]}) == []
    assert len(audit_rows(worker1, broker.id, "billing.subscription_applied")) == audits
    assert worker1.get("/api/v1/billing/subscription", headers=bearer(token)).json()["tier"] == "professional"
    assert '"professional";q=400' in policy_quota(worker1, broker)
    assert deliver(worker1, event).status_code == 200  # the same event, signed: applied
    assert worker1.get("/api/v1/billing/subscription", headers=bearer(token)).json()["tier"] == "free"


def test_a_replayed_event_is_applied_once(worker1: TestClient, local_stripe: str, clock: Clock) -> None:
    broker = make_broker(worker1, tier="free")
    sub_id = subscribe(worker1, local_stripe, broker, admin_token(worker1, broker))
    before = len(audit_rows(worker1, broker.id, "billing.subscription_applied"))
    event = thin_event("customer.subscription.updated", {"id": sub_id, "object": "subscription"})
    first, again = deliver(worker1, event), deliver(worker1, event)
    assert first.json()["duplicate"] is False and again.json() == {"received": True, "duplicate": True,
                                                                  "outcome": None}
    assert len(audit_rows(worker1, broker.id, "billing.subscription_applied")) == before
    assert len(sql(worker1, "select id from stripe_events where id = :i", {"i": event["id"]})) == 1
    # A payment failure mails a notice: delivered three times, it is mailed (and audited) once.
    invoice = helper(local_stripe, f"/_double/subscriptions/{sub_id}/payment_failed")
    failed = next(e for e in events_of(local_stripe, "invoice.payment_failed")
                  if e["data"]["object"]["id"] == invoice["id"])
    assert [deliver(worker1, failed).json()["duplicate"] for _ in range(3)] == [False, True, True]
    assert len(audit_rows(worker1, broker.id, "billing.payment_failed_notice")) == 1
    subjects = [str(m["Subject"]) for m in billing_of(worker1).mailer.messages(broker.admin_email)]  # type: ignore[attr-defined]
    assert subjects.count("ForexRisk: a payment failed") == 1


class GatedMailer:
    """The outbox, with its first message held until the test lets it go: the delivery that sends it is
    then stopped inside its transaction (a notice is mailed just before the commit)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def send(self, to: str, subject: str, body: str) -> None:
        self.calls += 1
        if self.calls == 1:
            self.entered.set()
            await self.release.wait()
        await self.inner.send(to, subject, body)


async def _waiting_on_a_lock(owner_url: str, statement: str) -> bool:
    """Whether a backend of this database is waiting on a lock while running `statement...` (pg_stat_activity)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    engine = create_async_engine(owner_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            found = await conn.scalar(text(
                "select count(*) from pg_stat_activity where datname = current_database() "
                "and wait_event_type = 'Lock' and query ilike :q"), {"q": statement + "%"})
    finally:
        await engine.dispose()
    return bool(found)


def test_two_copies_of_an_event_delivered_at_once_are_applied_once(
        worker1: TestClient, local_stripe: str, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stripe may deliver one event twice at the same moment. The first copy is held inside its transaction
    (at its notice's mail) while the second arrives: the second waits on the first's claim of the event id
    (seen in pg_stat_activity, not assumed from timing), then answers duplicate. One notice, one audit row."""

    from tests.billing_helpers import WEBHOOK, sign

    broker = make_broker(worker1, tier="free")
    sub_id = subscribe(worker1, local_stripe, broker, admin_token(worker1, broker))
    invoice = helper(local_stripe, f"/_double/subscriptions/{sub_id}/payment_failed")
    failed = next(e for e in events_of(local_stripe, "invoice.payment_failed")
                  if e["data"]["object"]["id"] == invoice["id"])
    payload = orjson.dumps(failed)
    headers = {"Stripe-Signature": sign(payload), "Content-Type": "application/json"}
    billing = billing_of(worker1)
    outbox = billing.mailer
    app: Any = worker1.app
    owner_url = app.state.services.db.urls.owner

    async def two_at_once() -> tuple[list[dict[str, Any]], bool]:
        gate = GatedMailer(outbox)
        monkeypatch.setattr(billing, "mailer", gate)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            first = asyncio.create_task(c.post(WEBHOOK, content=payload, headers=headers))
            await asyncio.wait_for(gate.entered.wait(), 30)  # the first copy: applied, not committed
            second = asyncio.create_task(c.post(WEBHOOK, content=payload, headers=headers))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30  # a hang guard; the loop ends on a state, not a duration
            blocked = False
            while not (second.done() or gate.calls > 1):
                if blocked := await _waiting_on_a_lock(owner_url, "insert into stripe_events"):
                    break
                assert loop.time() < deadline, "the second copy neither waited on the claim nor finished"
                await asyncio.sleep(0.01)
            gate.release.set()
            answers = [await first, await second]
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
        return [a.json() for a in answers], blocked

    answers, blocked = worker1.portal.call(two_at_once)
    assert [a["duplicate"] for a in answers] == [False, True]
    assert blocked  # the copies overlapped: the second waited on the first's uncommitted claim
    assert len(audit_rows(worker1, broker.id, "billing.payment_failed_notice")) == 1
    subjects = [str(m["Subject"]) for m in outbox.messages(broker.admin_email)]  # type: ignore[attr-defined]
    assert subjects.count("ForexRisk: a payment failed") == 1
    processed = sql(worker1, "select processed_at, outcome from stripe_events where id = :i", {"i": failed["id"]})
    assert len(processed) == 1 and processed[0][0] is not None and processed[0][1].startswith("past_due")


def test_a_stripe_trial_ending_mails_the_admins_once(worker1: TestClient, local_stripe: str, clock: Clock) -> None:
    """`customer.subscription.trial_will_end` (Stripe sends it three days before a subscription's trial ends):
    the subscription is applied as it is now (trialing: the paid tier, its trial end shown), and every admin of
    the broker gets one notice through the mail interface, audited once however often the event comes."""
    broker = make_broker(worker1, tier="free")
    token = admin_token(worker1, broker)
    billing = billing_of(worker1)
    customer = worker1.portal.call(billing.customer_for, broker.id)
    # A subscription with a trial of its own (the portal, or the operator in Stripe's dashboard, can make one).
    sub = stripe_client(local_stripe).v1.subscriptions.create(params={
        "customer": customer, "items": [{"price": billing.price_ids["standard"]}],
        "trial_end": int(time.time()) + 14 * 86_400, "metadata": {"broker_id": str(broker.id)}})
    assert sub.status == "trialing" and sub.trial_end
    event = helper(local_stripe, f"/_double/subscriptions/{sub.id}/trial_will_end")  # what Stripe's clock sends
    assert event["type"] == "customer.subscription.trial_will_end"
    answers = [deliver(worker1, event).json() for _ in range(3)]
    assert [a["duplicate"] for a in answers] == [False, True, True], answers
    assert len(audit_rows(worker1, broker.id, "billing.trial_ending_notice")) == 1
    notices = [m for m in billing.mailer.messages(broker.admin_email)  # type: ignore[attr-defined]
               if str(m["Subject"]) == "Your ForexRisk trial ends soon"]
    assert len(notices) == 1 and "/api/v1/billing/portal" in str(notices[0].get_content())
    view = worker1.get("/api/v1/billing/subscription", headers=bearer(token)).json()
    assert (view["tier"], view["subscriptionStatus"], view["subscriptionId"]) == ("standard", "trialing", sub.id)
    assert view["trialEndsAt"] is not None and int(
        datetime.fromisoformat(view["trialEndsAt"].replace("Z", "+00:00")).timestamp()) == sub.trial_end


def test_out_of_order_events_end_in_the_current_state(worker1: TestClient, local_stripe: str, clock: Clock) -> None:
    broker = make_broker(worker1, tier="free")
    token = admin_token(worker1, broker)
    sub_id = subscribe(worker1, local_stripe, broker, token)
    stripe_ = stripe_client(local_stripe)
    stripe_.v1.subscriptions.cancel(sub_id)
    # Delivered out of order: `deleted` first, then the older `created` and `updated` arrive late.
    for type_ in ("customer.subscription.deleted", "customer.subscription.created", "customer.subscription.updated"):
        assert deliver(worker1, thin_event(type_, {"id": sub_id, "object": "subscription",
                                                   "status": "active"})).status_code == 200
    view = worker1.get("/api/v1/billing/subscription", headers=bearer(token)).json()
    assert (view["tier"], view["status"], view["paidTier"]) == ("free", "free", None)
    assert '"free";q=40' in policy_quota(worker1, broker)


def test_an_event_fetched_before_a_newer_one_committed_applies_the_newest_state(
        worker1: TestClient, local_stripe: str, clock: Clock) -> None:
    """Two events about one subscription, each fetched on its own: `updated` is fetched while the subscription
    is active, then it is cancelled and `deleted` is applied in full; `updated` is applied last. Its fetch is
    older than the state already applied: the subscription is read again under the broker's lock, so the
    broker stays free (applying the fetched state would put it back on the paid tier)."""
    from app.billing import webhooks

    broker = make_broker(worker1, tier="free")
    token = admin_token(worker1, broker)
    sub_id = subscribe(worker1, local_stripe, broker, token)
    billing = billing_of(worker1)
    ref = webhooks.EventRef(id=f"evt_{uuid.uuid4().hex}", type="customer.subscription.updated", created=0,
                            object_type="subscription", object_id=sub_id)
    early = worker1.portal.call(webhooks.fetch, billing, ref.type, ref.object_type, ref.object_id)
    assert early.subscription.status == "active"
    stripe_client(local_stripe).v1.subscriptions.cancel(sub_id)
    assert deliver(worker1, thin_event("customer.subscription.deleted", {"id": sub_id, "object": "subscription"})
                   ).status_code == 200
    assert worker1.get("/api/v1/billing/subscription", headers=bearer(token)).json()["tier"] == "free"
    worker1.portal.call(webhooks.apply_fetched, billing, ref, early)
    view = worker1.get("/api/v1/billing/subscription", headers=bearer(token)).json()
    assert (view["tier"], view["status"], view["paidTier"]) == ("free", "free", None), view


def test_dunning_keeps_the_tier_through_the_grace_period_then_free(
        worker1: TestClient, worker2: TestClient, local_stripe: str, clock: Clock) -> None:
    broker = make_broker(worker1, tier="free")
    token = admin_token(worker1, broker)
    sub_id = subscribe(worker1, local_stripe, broker, token)
    invoice = helper(local_stripe, f"/_double/subscriptions/{sub_id}/payment_failed")
    failed = next(e for e in events_of(local_stripe, "invoice.payment_failed")
                  if e["data"]["object"]["id"] == invoice["id"])
    assert deliver(worker1, failed).status_code == 200
    view = worker1.get("/api/v1/billing/subscription", headers=bearer(token)).json()
    assert view["status"] == "past_due" and view["tier"] == "professional" and view["graceEndsAt"]
    # The job covers every broker (other tests leave past-due accounts too): this one's entry is what counts.
    assert str(broker.id) not in run(worker1, tasks.end_grace_periods)["downgraded"]  # within the grace period
    subscribed(worker2)
    assert '"professional";q=400' in policy_quota(worker2, broker)
    clock.advance(days=7, seconds=1)
    assert str(broker.id) in run(worker1, tasks.end_grace_periods)["downgraded"]
    assert str(broker.id) not in run(worker1, tasks.end_grace_periods)["downgraded"]  # a rerun does nothing
    eventually_quota(worker2, broker, '"free";q=40')
    paid = helper(local_stripe, f"/_double/subscriptions/{sub_id}/payment_succeeded")
    event = next(e for e in events_of(local_stripe, "invoice.paid") if e["data"]["object"]["id"] == paid["id"])
    assert deliver(worker1, event).status_code == 200
    eventually_quota(worker2, broker, '"professional";q=400')


def test_billing_is_per_tenant(worker1: TestClient, local_stripe: str, clock: Clock) -> None:
    a, b = make_broker(worker1, tier="free"), make_broker(worker1, tier="free")
    token_a, token_b = admin_token(worker1, a), admin_token(worker1, b)
    subscribe(worker1, local_stripe, a, token_a)
    view_b = worker1.get("/api/v1/billing/subscription", headers=bearer(token_b)).json()
    assert view_b["tier"] == "free" and view_b["subscriptionId"] is None and view_b["invoices"] == []
    # B cannot reach A's subscription: there is no broker id to name, and the operator's route refuses B.
    resp = worker1.put(f"/api/v1/billing/brokers/{a.id}/enterprise", json={"enterprise": True}, headers=bearer(token_b))
    assert_problem(resp, 404, "not-found")  # like a broker that does not exist
    own = worker1.put(f"/api/v1/billing/brokers/{b.id}/enterprise", json={"enterprise": True}, headers=bearer(token_b))
    assert_problem(own, 403)
    assert worker1.post("/api/v1/billing/subscription/cancel", headers=bearer(token_b)).status_code == 409
    assert '"professional";q=400' in policy_quota(worker1, a)
    # A secret key (not a user) has no billing powers.
    assert_problem(worker1.get("/api/v1/billing/subscription", headers=a.auth), 403)
    # The app role sees only its own account row (forced RLS).
    rows = sql(worker1, "select broker_id from billing_accounts", url=worker1.app.state.services.db.urls.app)  # type: ignore[attr-defined]
    assert rows == []


def test_the_operator_sets_enterprise(worker1: TestClient, clock: Clock) -> None:
    broker = make_broker(worker1, tier="free")
    root = superadmin_token(worker1)
    resp = worker1.put(f"/api/v1/billing/brokers/{broker.id}/enterprise", json={"enterprise": True},
                       headers=bearer(root))
    assert resp.status_code == 200, resp.text
    assert resp.json()["tier"] == "enterprise" and resp.json()["status"] == "enterprise"
    assert audit_rows(worker1, broker.id, "billing.enterprise_set")
    token = admin_token(worker1, broker)
    assert_problem(worker1.post("/api/v1/billing/checkout", json={"tier": "standard"}, headers=bearer(token)), 409)


def test_checkout_honours_idempotency_keys(worker1: TestClient, clock: Clock) -> None:
    broker = make_broker(worker1, tier="free")
    token = admin_token(worker1, broker)
    key = {"Idempotency-Key": str(uuid.uuid4()), **bearer(token)}
    first = worker1.post("/api/v1/billing/checkout", json={"tier": "standard"}, headers=key)
    again = worker1.post("/api/v1/billing/checkout", json={"tier": "standard"}, headers=key)
    assert first.status_code == 201 and again.status_code == 201
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json()["sessionId"] == first.json()["sessionId"]
    other = worker1.post("/api/v1/billing/checkout", json={"tier": "professional"}, headers=key)
    assert_problem(other, 422, "idempotency-key-reused")
    portal = worker1.post("/api/v1/billing/portal", headers={"Idempotency-Key": str(uuid.uuid4()), **bearer(token)})
    assert portal.status_code == 201 and portal.json()["url"].startswith("http")


def test_upgrade_downgrade_and_leave(worker1: TestClient, local_stripe: str, clock: Clock) -> None:
    broker = make_broker(worker1, tier="free")
    token = admin_token(worker1, broker)
    subscribe(worker1, local_stripe, broker, token, tier="standard")
    assert '"standard";q=120' in policy_quota(worker1, broker)
    up = worker1.post("/api/v1/billing/subscription", json={"tier": "professional"}, headers=bearer(token))
    assert up.status_code == 200, up.text
    assert up.json()["tier"] == "professional"
    down = worker1.post("/api/v1/billing/subscription", json={"tier": "standard"}, headers=bearer(token))
    assert down.json()["tier"] == "standard"
    end = worker1.post("/api/v1/billing/subscription/cancel", json={"atPeriodEnd": True}, headers=bearer(token))
    assert end.json()["cancelAtPeriodEnd"] is True and end.json()["tier"] == "standard"  # paid until the end
    gone = worker1.post("/api/v1/billing/subscription/cancel", json={"atPeriodEnd": False}, headers=bearer(token))
    assert gone.json()["tier"] == "free" and gone.json()["status"] == "free"
    assert '"free";q=40' in policy_quota(worker1, broker)


def outbox_link(client: TestClient, email: str) -> str:
    from app.billing.mail import Outbox

    mailer = billing_of(client).mailer
    assert isinstance(mailer, Outbox)
    body = str(mailer.messages(email)[-1].get_content())
    link: str = next(w for w in body.split() if "/api/v1/signup/verify?token=" in w)
    return link


def test_signup_verify_trial_and_its_expiry(worker1: TestClient, clock: Clock) -> None:
    name = f"Acme {uuid.uuid4().hex[:8]}"
    email = f"owner@{uuid.uuid4().hex[:8]}.example.com"
    body = {"companyName": name, "adminEmail": email, "password": "a long enough passphrase"}
    resp = worker1.post("/api/v1/signup", json=body, headers={"Authorization": ""})
    assert resp.status_code == 202, resp.text
    slug, broker_id = resp.json()["slug"], uuid.UUID(resp.json()["brokerId"])
    login = {"broker": slug, "email": email, "password": body["password"]}
    assert worker1.post("/api/v1/auth/token", json=login, headers={"Authorization": ""}).status_code == 401
    again = worker1.post("/api/v1/signup", json=body, headers={"Authorization": ""})  # a retry: same answer
    assert again.status_code == 202 and again.json()["brokerId"] == str(broker_id)
    link = outbox_link(worker1, email)
    token = link.split("token=", 1)[1]
    assert_problem(worker1.post("/api/v1/signup/verify", json={"token": token[:-2] + "xx"},
                                headers={"Authorization": ""}), 422)
    verified = worker1.get(link.split("8000", 1)[-1] if "8000" in link else link, headers={"Authorization": ""})
    assert verified.status_code == 200, verified.text
    assert verified.json()["status"] == "active" and verified.json()["trialEndsAt"]
    assert worker1.post("/api/v1/auth/token", json=login, headers={"Authorization": ""}).status_code == 200
    broker = BrokerFixture(id=broker_id, slug=slug, secret_key="", publishable_key="", admin_email=email,
                           admin_id=None)
    token_ = admin_token_for(worker1, broker, body["password"])
    view = worker1.get("/api/v1/billing/subscription", headers=bearer(token_)).json()
    assert view["status"] == "trialing" and view["tier"] == "free"
    clock.advance(days=28)
    assert str(broker_id) in run(worker1, tasks.expire_trials)["noticed"]
    assert str(broker_id) not in run(worker1, tasks.expire_trials)["noticed"]  # once
    clock.advance(days=2, seconds=1)
    assert str(broker_id) in run(worker1, tasks.expire_trials)["ended"]
    assert worker1.get("/api/v1/billing/subscription", headers=bearer(token_)).json()["status"] == "free"
    subjects = [str(m["Subject"]) for m in billing_of(worker1).mailer.messages(email)]  # type: ignore[attr-defined]
    assert "Your ForexRisk trial ends soon" in subjects and "Your ForexRisk trial has ended" in subjects


def test_paying_ends_the_signup_trial(worker1: TestClient, local_stripe: str, clock: Clock) -> None:
    email = f"owner@{uuid.uuid4().hex[:8]}.example.com"
    body = {"companyName": f"Acme {uuid.uuid4().hex[:8]}", "adminEmail": email, "password": "a long enough passphrase"}
    resp = worker1.post("/api/v1/signup", json=body, headers={"Authorization": ""})
    assert resp.status_code == 202, resp.text
    link = outbox_link(worker1, email)
    assert worker1.get(link.split("8000", 1)[-1] if "8000" in link else link,
                       headers={"Authorization": ""}).status_code == 200
    broker = BrokerFixture(id=uuid.UUID(resp.json()["brokerId"]), slug=resp.json()["slug"], secret_key="",
                           publishable_key="", admin_email=email, admin_id=None)
    token = admin_token_for(worker1, broker, body["password"])
    clock.advance(days=3)
    subscribe(worker1, local_stripe, broker, token)
    view = worker1.get("/api/v1/billing/subscription", headers=bearer(token)).json()
    assert view["status"] == "active" and view["tier"] == "professional"
    ended = datetime.fromisoformat(view["trialEndsAt"].replace("Z", "+00:00"))
    assert ended <= clock(), view  # the trial ended when paying began, not 27 days from now
    clock.advance(days=28)
    assert str(broker.id) not in run(worker1, tasks.expire_trials)["noticed"]  # no "your trial ends" to a payer


def admin_token_for(client: TestClient, broker: BrokerFixture, password: str) -> str:
    from tests.helpers_auth import mfa_login

    token, _ = mfa_login(client, broker.slug, broker.admin_email, password)
    return token


def _signups(client: TestClient, domains: list[str]) -> list[int]:
    return [client.post("/api/v1/signup", json={"companyName": f"Spam {uuid.uuid4().hex[:8]}",
                                                "adminEmail": f"x{uuid.uuid4().hex[:6]}@{d}", "password": "p" * 12},
                        headers={"Authorization": ""}).status_code for d in domains]


def _forget_ip_counts(client: TestClient) -> None:
    hub = client.app.state.services.redis  # type: ignore[attr-defined]

    async def run_() -> None:
        keys = [k async for k in hub.client.scan_iter("signup:ip:*")]
        if keys:
            await hub.client.delete(*keys)

    client.portal.call(run_)


def test_signup_is_limited_per_email_domain_and_per_address(worker1: TestClient,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    billing = billing_of(worker1)
    monkeypatch.setattr(billing, "settings", billing.settings.model_copy(
        update={"signup_per_ip_per_hour": 1000, "signup_per_domain_per_day": 3}))
    domain = f"{uuid.uuid4().hex[:8]}.example.com"
    assert _signups(worker1, [domain] * 4) == [202, 202, 202, 429]
    monkeypatch.setattr(billing, "settings", billing.settings.model_copy(update={"signup_per_ip_per_hour": 2}))
    _forget_ip_counts(worker1)
    first = worker1.post("/api/v1/signup", json={"companyName": "x", "adminEmail": "a@b.example.com",
                                                   "password": "p" * 12}, headers={"Authorization": ""})
    assert _signups(worker1, [f"{uuid.uuid4().hex[:8]}.example.com" for _ in range(2)]) == [202, 429]
    assert first.status_code == 202
    assert_problem(worker1.post("/api/v1/signup", json={"companyName": "y", "adminEmail": "c@d.example.com",
                                                        "password": "p" * 12}, headers={"Authorization": ""}), 429)


def test_usage_is_reported_once_per_broker_and_day(worker1: TestClient, local_stripe: str, clock: Clock) -> None:
    broker = make_broker(worker1, tier="free")
    subscribe(worker1, local_stripe, broker, admin_token(worker1, broker))
    sql(worker1, "insert into calculations (id, broker_id, kind, input, result, input_hash, created_at, units) "
                 "select gen_random_uuid(), :b, 'position-size', '{}'::json, '{}'::json, 'x', :t, 2 "
                 "from generate_series(1, 3)", {"b": broker.id, "t": clock.now})
    day = clock.now.date().isoformat()
    first, second = run(worker1, tasks.report_usage, day), run(worker1, tasks.report_usage, day)
    assert first["reported"][str(broker.id)] == 6 and str(broker.id) not in second["reported"]  # units charged
    sent = helper_get(local_stripe, "/_double/meter_events")
    ours = [e for e in sent if e["identifier"].startswith(str(broker.id))]
    assert len(ours) == 1 and ours[0]["payload"]["value"] == "6"


def helper_get(url: str, path: str) -> list[dict[str, Any]]:
    from app.billing.gateway import LOCAL_API_KEY

    rows: list[dict[str, Any]] = httpx.get(f"{url}{path}", headers={"Authorization": f"Bearer {LOCAL_API_KEY}"},
                                           timeout=30).json()["data"]
    return rows


def test_the_emailed_link_opened_in_a_browser_goes_on_to_the_console(worker1: TestClient) -> None:
    """A browser (Accept: text/html first) is sent to the console's sign-in page; an API client gets JSON."""
    email = f"owner@{uuid.uuid4().hex[:8]}.example.com"
    resp = worker1.post("/api/v1/signup", json={"companyName": f"Acme {uuid.uuid4().hex[:8]}", "adminEmail": email,
                                                "password": "a long enough passphrase"}, headers={"Authorization": ""})
    assert resp.status_code == 202, resp.text
    path = "/api/v1/signup/verify?token=" + outbox_link(worker1, email).split("token=", 1)[1]
    browser = {"Authorization": "", "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    bad = worker1.get(path[:-2] + "xx", headers=browser, follow_redirects=False)
    assert bad.status_code == 303 and bad.headers["location"] == "/admin/#/signin?verify=invalid"
    assert_problem(worker1.get(path[:-2] + "xx", headers={"Authorization": ""}), 422)  # curl, httpx: */*
    good = worker1.get(path, headers=browser, follow_redirects=False)
    assert good.status_code == 303, good.text
    assert good.headers["location"] == f"/admin/#/signin?verified={resp.json()['slug']}"
    again = worker1.get(path, headers={"Authorization": "", "Accept": "application/json"})  # still JSON for clients
    assert again.status_code == 200 and again.json()["status"] == "active"


def test_a_tier_set_by_the_operator_is_managed_not_free(worker1: TestClient) -> None:
    """A broker given a paid tier by the operator (CLI, PATCH) has no subscription: it is `managed` at that tier,
    never shown as the free tier (the console showed "Free" next to the Standard limits)."""
    broker = make_broker(worker1, tier="standard")
    view = worker1.get("/api/v1/billing/subscription", headers=bearer(admin_token(worker1, broker))).json()
    assert (view["tier"], view["status"], view["paidTier"]) == ("standard", "managed", None)
    free = make_broker(worker1, tier="free")
    assert worker1.get("/api/v1/billing/subscription",
                       headers=bearer(admin_token(worker1, free))).json()["status"] in ("free", "trialing")


def test_every_billing_post_honours_idempotency_keys(worker1: TestClient, local_stripe: str, clock: Clock) -> None:
    """Portal, change and cancel replay the first answer for the same key (the middleware), and the key is also
    Stripe's: with our stored answer gone (another deployment's database, a lost row), the retry still reaches
    the same Checkout Session and portal session at Stripe."""
    broker = make_broker(worker1, tier="free")
    token = admin_token(worker1, broker)

    def post(path: str, key: str, body: dict[str, Any] | None = None) -> Any:
        return worker1.post(path, json=body, headers={"Idempotency-Key": key, **bearer(token)})

    def forget_stored_answers() -> None:
        sql(worker1, "delete from idempotency_keys where broker_id = :b", {"b": broker.id})

    key = str(uuid.uuid4())
    first = post("/api/v1/billing/checkout", key, {"tier": "standard"})
    forget_stored_answers()
    again = post("/api/v1/billing/checkout", key, {"tier": "standard"})
    assert first.status_code == again.status_code == 201 and "idempotent-replayed" not in again.headers
    assert again.json()["sessionId"] == first.json()["sessionId"]  # Stripe replayed it
    key = str(uuid.uuid4())
    portal = [post("/api/v1/billing/portal", key) for _ in range(2)]
    assert portal[1].headers.get("idempotent-replayed") == "true" and portal[1].json() == portal[0].json()
    forget_stored_answers()
    assert post("/api/v1/billing/portal", key).json() == portal[0].json()
    assert post("/api/v1/billing/portal", str(uuid.uuid4())).json() != portal[0].json()

    subscribe(worker1, local_stripe, broker, token, tier="standard")
    invoices = worker1.get("/api/v1/billing/subscription", headers=bearer(token)).json()["invoices"]
    key = str(uuid.uuid4())
    up = [post("/api/v1/billing/subscription", key, {"tier": "professional"}) for _ in range(2)]
    assert up[0].status_code == 200, up[0].text
    assert up[1].headers.get("idempotent-replayed") == "true" and up[1].json() == up[0].json()
    assert up[0].json()["tier"] == "professional" and up[0].json()["invoices"] == invoices  # as GET shows them
    assert_problem(post("/api/v1/billing/subscription", key, {"tier": "standard"}), 422, "idempotency-key-reused")
    key = str(uuid.uuid4())
    end = [post("/api/v1/billing/subscription/cancel", key, {"atPeriodEnd": False}) for _ in range(2)]
    assert end[0].status_code == 200, end[0].text
    assert end[1].headers.get("idempotent-replayed") == "true" and end[1].json() == end[0].json()
    assert end[0].json()["tier"] == "free" and end[0].json()["invoices"]
    assert audit_rows(worker1, broker.id, "billing.subscription_applied")


def test_signup_honours_idempotency_keys(worker1: TestClient) -> None:
    """Anonymous, so not through the shared middleware: the same key and body replay the first answer without
    a second mail; the key with another body is refused."""
    email = f"owner@{uuid.uuid4().hex[:8]}.example.com"
    body = {"companyName": f"Acme {uuid.uuid4().hex[:8]}", "adminEmail": email, "password": "a long enough passphrase"}
    headers = {"Authorization": "", "Idempotency-Key": str(uuid.uuid4())}
    first, again = (worker1.post("/api/v1/signup", json=body, headers=headers) for _ in range(2))
    assert first.status_code == again.status_code == 202, first.text
    assert "idempotent-replayed" not in first.headers and again.headers.get("idempotent-replayed") == "true"
    assert again.json() == first.json()
    assert len(billing_of(worker1).mailer.messages(email)) == 1  # type: ignore[attr-defined]
    other = worker1.post("/api/v1/signup", json=dict(body, companyName="Someone Else"), headers=headers)
    assert_problem(other, 422, "idempotency-key-reused")
    assert_problem(worker1.post("/api/v1/signup", json=body, headers={**headers, "Idempotency-Key": "with space"}),
                   400, "idempotency-key-invalid")
    # Without a key the sign-up's own retry rule holds: the same broker, and the link mailed again.
    plain = worker1.post("/api/v1/signup", json=body, headers={"Authorization": ""})
    assert plain.status_code == 202 and plain.json()["brokerId"] == first.json()["brokerId"]
    assert len(billing_of(worker1).mailer.messages(email)) == 2  # type: ignore[attr-defined]


def test_usage_already_at_stripe_is_not_sent_twice(worker1: TestClient, local_stripe: str, clock: Clock) -> None:
    """Our record of a reported day lost (restored backup): the rerun sends the same identifier, Stripe refuses
    it as a duplicate, and the day is recorded again without a second meter event."""
    broker = make_broker(worker1, tier="free")
    subscribe(worker1, local_stripe, broker, admin_token(worker1, broker))
    sql(worker1, "insert into calculations (id, broker_id, kind, input, result, input_hash, created_at, units) "
                 "values (gen_random_uuid(), :b, 'position-size', '{}'::json, '{}'::json, 'x', :t, 5)",
        {"b": broker.id, "t": clock.now})
    day = clock.now.date().isoformat()
    assert run(worker1, tasks.report_usage, day)["reported"][str(broker.id)] == 5
    sql(worker1, "delete from billing_usage_reports where broker_id = :b", {"b": broker.id})
    assert run(worker1, tasks.report_usage, day)["reported"][str(broker.id)] == 5
    assert len(sql(worker1, "select 1 from billing_usage_reports where broker_id = :b", {"b": broker.id})) == 1
    ours = [e for e in helper_get(local_stripe, "/_double/meter_events") if e["identifier"].startswith(str(broker.id))]
    assert len(ours) == 1


def test_the_local_checkout_page_returns_to_the_console_with_the_session_id(worker1: TestClient) -> None:
    """Stripe fills `{CHECKOUT_SESSION_ID}` in success_url; so does the local hosted page."""

    token = admin_token(worker1, make_broker(worker1, tier="free"))
    made = worker1.post("/api/v1/billing/checkout", json={"tier": "professional"}, headers=bearer(token)).json()
    paid = httpx.post(made["url"], timeout=30, follow_redirects=False)
    assert paid.status_code == 303
    assert paid.headers["location"].endswith(f"/admin/#/billing?checkout=success&session_id={made['sessionId']}")


def test_without_stripe_billing_answers_a_clear_problem(settings: Settings) -> None:
    """No STRIPE_API_KEY and no local server (production's case): 503 billing-unavailable naming what to set,
    for the routes that need Stripe and for Stripe's events; plans and the view still answer."""
    from app.billing.gateway import StripeGateway

    secrets_ = {"secret_pepper": "p" * 32, "encryption_key": "k" * 44, "jwt_private_key_pem": "pem",
                "session_secret": "s" * 32}
    production = Settings.model_construct(**{**settings.model_dump(), **secrets_, "environment": "production",
                                             "stripe_api_base": None, "stripe_api_key": None})
    assert StripeGateway.build(production) is None
    with pytest.raises(ValueError, match="STRIPE_API_KEY"):
        Settings(environment="production", stripe_api_base="http://127.0.0.1:1", **secrets_)  # type: ignore[arg-type]
    for c in _app(settings, None):  # type: ignore[arg-type]
        broker = make_broker(c, tier="free")
        token = admin_token(c, broker)
        for path, body in (("/api/v1/billing/checkout", {"tier": "professional"}), ("/api/v1/billing/portal", None)):
            problem = assert_problem(c.post(path, json=body, headers=bearer(token)), 503, "billing-unavailable")
            assert "STRIPE_API_KEY" in problem["detail"]
        hook = deliver(c, thin_event("customer.subscription.updated", {"id": "sub_x", "object": "subscription"}))
        assert "STRIPE_WEBHOOK_SECRET" in assert_problem(hook, 503, "billing-unavailable")["detail"]
        assert c.get("/api/v1/billing/plans", headers={"Authorization": ""}).status_code == 200
        assert c.get("/api/v1/billing/subscription", headers=bearer(token)).json()["invoices"] == []
