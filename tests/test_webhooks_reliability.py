"""Issue 17 follow-ups: nothing lost when Redis refuses a job (the sweepers), the pruning of inbound message ids
on a controllable clock, and the pre-auth IP limit in front of the inbound signature check."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from app.alerts.tasks import evaluate_alerts
from app.config import Settings
from app.integrations.platform_events.service import evaluation_job_id
from app.integrations.webhooks.service import attempt_job_id
from app.integrations.webhooks.tasks import deliver_webhook
from app.jobs.backoff import Backoff
from app.jobs.queue import JobInfo, JobQueue
from app.services import Services
from app.worker import runner
from tests.conftest import BrokerFixture, make_broker
from tests.helpers_platform import account, inbound_secret, position, post_events, signed_headers
from tests.helpers_receiver import receiver
from tests.platform_apps import FakeClock, app_on
from tests.test_webhooks import ALERT, own_service, register, run, svc

pytestmark = pytest.mark.usefixtures("no_server_errors")
# Nothing listens on port 1: every enqueue on this queue is refused, as with Redis down.
DEAD_REDIS = "redis://127.0.0.1:1/0"
DEADLINE_SECONDS = 60.0  # a ceiling for a job to finish, not a speed assumption


@dataclass
class OwnQueue:
    """A queue of the test's own and a worker for it (started on demand): the app's worker never sees it."""

    client: TestClient
    queue: JobQueue
    worker: runner.WorkerTask

    def start(self) -> None:
        self.client.portal.call(lambda: _start(self.worker))

    def wait(self, job_id: str) -> JobInfo:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while True:
            info: JobInfo = self.client.portal.call(self.queue.status, job_id)
            if info.state in ("complete", "failed"):
                return info
            assert time.monotonic() < deadline, f"job {job_id} still {info.state}"
            time.sleep(0.02)


async def _start(worker: runner.WorkerTask) -> None:
    worker.start()


@pytest.fixture
def own_queue(client: TestClient) -> Iterator[OwnQueue]:
    services: Services = svc(client)
    name = f"test-hooks:{uuid.uuid4().hex}"

    async def build() -> OwnQueue:
        queue = JobQueue(services.jobs.url, name)
        worker = runner.in_process(services, functions=[deliver_webhook, evaluate_alerts], cron=[], queue_name=name,
                                   backoff=Backoff(0.02, 1.0))
        return OwnQueue(client, queue, worker)

    made = client.portal.call(build)
    yield made
    client.portal.call(made.worker.stop)
    client.portal.call(made.queue.close)


@pytest.fixture
def dead_queue(client: TestClient) -> Iterator[JobQueue]:
    queue: JobQueue = client.portal.call(lambda: _queue(DEAD_REDIS))
    yield queue
    client.portal.call(queue.close)


async def _queue(url: str) -> JobQueue:
    return JobQueue(url, "dead")


def past_the_grace(client: TestClient) -> datetime:
    """A sweeper clock past the session's grace (tests/conftest.py sets a day, so the app's own sweepers leave
    running tests alone)."""
    return datetime.now(UTC) + timedelta(seconds=svc(client).settings.outbox_sweep_grace_seconds + 60)


def message_row(client: TestClient, broker: BrokerFixture, message_id: str) -> Any:
    async def read() -> Any:
        async with svc(client).db.tenant(broker.id) as session:
            return (await session.execute(text(
                "select traders, evaluated_at from platform_messages where message_id = :m"),
                {"m": message_id})).one_or_none()
    return client.portal.call(read)


# --- 1. nothing lost when Redis refuses the job --------------------------------------------------------------
def test_a_delivery_written_while_redis_refuses_arrives_exactly_once_after_the_sweep(
        client: TestClient, broker_a: BrokerFixture, own_queue: OwnQueue, dead_queue: JobQueue) -> None:
    writer = own_service(client, jobs=dead_queue)
    sweeper = own_service(client, jobs=own_queue.queue)
    with receiver() as rx:
        endpoint = register(client, broker_a, rx.url)
        [delivery] = run(client, writer.emit, broker_a.id, "alert.triggered", ALERT)  # stored; its job refused
        path = f"/api/v1/brokers/{broker_a.id}/webhook-endpoints/{endpoint['id']}/deliveries/{delivery}"
        before = client.get(path, headers=broker_a.auth).json()
        assert before["status"] == "pending" and before["attempts"] == 0
        grace = svc(client).settings.outbox_sweep_grace_seconds
        at = past_the_grace(client)
        # Within the grace the sweeper leaves it alone (its job may be on its way).
        assert str(delivery) not in str(run(client, sweeper.sweep, grace, datetime.now(UTC)))
        first = run(client, sweeper.sweep, grace, at)
        second = run(client, sweeper.sweep, grace, at)  # a second sweep (or a second worker's) queues nothing new
        assert first["queued"] >= 1 and second["queued"] >= 1
        job_id = attempt_job_id(broker_a.id, delivery, 1)
        queued = client.portal.call(own_queue.queue.status, job_id)
        assert queued.state == "queued" and queued.function == "deliver_webhook"
        own_queue.start()
        assert own_queue.wait(job_id).state == "complete"
        got = rx.wait_for(1)
        run(client, sweeper.sweep, grace, at)  # delivered: nothing left to sweep for it
        after = client.get(path, headers=broker_a.auth).json()
        assert after["status"] == "delivered" and after["attempts"] == 1
        assert [a["responseCode"] for a in after["attemptLog"]] == [200]
    assert len(rx.requests) == 1 and got[0].headers["webhook-id"] == after["messageId"]


def test_an_evaluation_never_queued_is_run_by_the_sweeper_and_alerts_once(
        client: TestClient, broker_a: BrokerFixture, own_queue: OwnQueue, dead_queue: JobQueue,
        monkeypatch: pytest.MonkeyPatch) -> None:
    services = svc(client)
    with receiver() as rx:
        register(client, broker_a, rx.url, ["alert.triggered"])
        made = client.post(f"/api/v1/brokers/{broker_a.id}/alert-rules", headers=broker_a.auth,
                           json={"kind": "risk-per-trade", "threshold": 5})
        assert made.status_code == 201, made.text
        secret = inbound_secret(client, broker_a)
        msg_id = f"msg_{uuid.uuid4().hex}"
        with monkeypatch.context() as m:  # Redis refuses the route's enqueue: the message is still a 200
            m.setattr(services.jobs, "enqueue", dead_queue.enqueue)
            resp = post_events(client, broker_a, secret, [account("t-sw"), position("opened", "t-sw", "p1")],
                               msg_id=msg_id)
        assert resp.status_code == 200, resp.text
        row = message_row(client, broker_a, msg_id)
        assert row.traders == ["t-sw"] and row.evaluated_at is None
        assert client.get(f"/api/v1/brokers/{broker_a.id}/alerts", headers=broker_a.auth).json() == []
        grace = services.settings.outbox_sweep_grace_seconds
        at = past_the_grace(client)
        for _ in range(2):  # twice: the same job id, one evaluation
            assert run(client, services.platform_events.sweep_evaluations, own_queue.queue, grace, at)["queued"] >= 1
        job_id = evaluation_job_id(broker_a.id, msg_id)
        assert client.portal.call(own_queue.queue.status, job_id).state == "queued"
        own_queue.start()
        done = own_queue.wait(job_id)
        assert done.state == "complete" and len(done.result["fired"]) == 1
        assert message_row(client, broker_a, msg_id).evaluated_at is not None  # the sweeper leaves it now
        got = rx.wait_for(1)  # the alert's delivery, by the app's worker
    assert len(got) == 1
    alerts = client.get(f"/api/v1/brokers/{broker_a.id}/alerts", headers=broker_a.auth).json()
    assert [a["traderId"] for a in alerts] == ["t-sw"]


def test_a_webhook_retry_refused_by_redis_is_left_pending_for_the_sweeper(
        client: TestClient, broker_a: BrokerFixture, dead_queue: JobQueue) -> None:
    service = own_service(client, jobs=dead_queue)
    with receiver(500) as rx:
        endpoint = register(client, broker_a, rx.url)
        [delivery] = run(client, service.emit, broker_a.id, "alert.triggered", ALERT)
        out = run(client, service.attempt, broker_a.id, delivery, 1)  # its retry cannot be queued
        rx.wait_for(1)
    assert out["status"] == "pending" and out["nextAttemptAt"] is not None
    detail = client.get(f"/api/v1/brokers/{broker_a.id}/webhook-endpoints/{endpoint['id']}/deliveries/{delivery}",
                        headers=broker_a.auth).json()
    assert detail["status"] == "pending" and detail["attempts"] == 1



# --- 4. inbound message ids: pruned after the replay window ----------------------------------------------------
def test_message_ids_are_pruned_after_the_replay_window(client: TestClient, broker_a: BrokerFixture,
                                                        dead_queue: JobQueue, monkeypatch: pytest.MonkeyPatch) -> None:
    services = svc(client)
    events = services.platform_events
    t0 = datetime.now(UTC).replace(microsecond=0)
    clock = {"now": t0}
    monkeypatch.setattr(events, "clock", lambda: clock["now"])
    margin = services.settings.platform_events_message_margin_seconds
    window = events.replay_window(margin)
    assert window == timedelta(seconds=2 * events.tolerance + margin)
    secret = inbound_secret(client, broker_a)
    done, waiting = f"msg_{uuid.uuid4().hex}", f"msg_{uuid.uuid4().hex}"
    body = orjson.dumps({"events": [account("t-pr")]})
    headers = signed_headers(secret, body, done, at=t0)
    url = f"/api/v1/integrations/events?broker={broker_a.id}"
    assert client.post(url, content=body, headers=headers).json()["applied"] == 1
    client.portal.call(evaluate_alerts, {"services": services}, str(broker_a.id), ["t-pr"], done)
    with monkeypatch.context() as m:  # this one's evaluation cannot be queued: the sweeper still needs its id
        m.setattr(services.jobs, "enqueue", dead_queue.enqueue)
        assert post_events(client, broker_a, secret, [account("t-pr2")], msg_id=waiting).status_code == 200
    clock["now"] = t0 + timedelta(seconds=1)
    assert client.post(url, content=body, headers=headers).json()["replay"] is True
    run(client, events.prune_messages, margin, t0 + window - timedelta(seconds=1))
    assert message_row(client, broker_a, done) is not None  # still inside the window: still a replay
    run(client, events.prune_messages, margin, t0 + window + timedelta(seconds=1))
    assert message_row(client, broker_a, done) is None
    assert message_row(client, broker_a, waiting) is not None  # kept for the sweeper
    # Past the window a replay fails the timestamp check: pruning its id let nothing through.
    clock["now"] = t0 + window + timedelta(seconds=1)
    assert client.post(url, content=body, headers=headers).status_code == 401
    run(client, events.prune_messages, margin, t0 + timedelta(days=3, seconds=1))  # the sweeper gave up on it
    assert message_row(client, broker_a, waiting) is None


# --- 4. inbound events: the pre-auth IP limit in front of the signature check ------------------------------------
@pytest.fixture(scope="module")
def limited(settings: Settings) -> Iterator[tuple[TestClient, FakeClock]]:
    """An app with a small pre-auth limit (3 at once, 6 a minute) and a controllable limiter clock."""
    with app_on(settings, pre_auth_per_minute=6, pre_auth_burst=3,
                rate_limit_prefix=f"rl-hooks-{uuid.uuid4().hex[:8]}:") as c:
        clock = FakeClock()
        c.app.state.services.limiter.clock_us = clock  # type: ignore[attr-defined]
        yield c, clock


def test_bad_signatures_spend_the_address_pre_auth_limit_and_are_refused_before_checking(
        limited: tuple[TestClient, FakeClock], monkeypatch: pytest.MonkeyPatch) -> None:
    c, clock = limited
    clock.advance(3600)  # a fresh bucket for the test client's address
    broker = make_broker(c)
    secret = inbound_secret(c, broker)
    events = c.app.state.services.platform_events  # type: ignore[attr-defined]
    lookups = {"n": 0}
    real_keys = events._keys

    async def counted(broker_id: uuid.UUID, now: datetime) -> list[str]:
        lookups["n"] += 1  # each signature check starts with the secret lookup
        keys: list[str] = await real_keys(broker_id, now)
        return keys

    monkeypatch.setattr(events, "_keys", counted)
    body = orjson.dumps({"events": [account("t-rl")]})
    url = f"/api/v1/integrations/events?broker={broker.id}"
    wrong = "whsec_" + "A" * 43 + "="

    def bad() -> Any:
        return c.post(url, content=body, headers=signed_headers(wrong, body))

    def good() -> Any:
        return c.post(url, content=body, headers=signed_headers(secret, body))

    assert [bad().status_code for _ in range(3)] == [401] * 3
    refused = bad()  # checked (this worker did not know yet), charged, refused
    assert refused.status_code == 429 and refused.headers["RateLimit-Policy"] == '"pre-auth";q=3;w=30'
    assert lookups["n"] == 4
    for send in (good, bad, good):  # now refused before any check, a correct signature too
        r = send()
        assert r.status_code == 429 and r.headers["Retry-After"] == refused.headers["Retry-After"]
    assert lookups["n"] == 4
    clock.advance(int(refused.headers["Retry-After"]))  # one unit back
    assert [good().status_code for _ in range(5)] == [200] * 5  # correct signatures are not charged
    assert bad().status_code == 401 and bad().status_code == 429
    assert lookups["n"] == 4 + 5 + 2
