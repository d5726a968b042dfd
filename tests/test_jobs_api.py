"""GET /api/v1/jobs/{jobId}: a broker sees its own jobs only; the platform operator any."""

from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi.testclient import TestClient

from app.jobs.ownership import broker_job_id, job_owner
from tests.conftest import BrokerFixture
from tests.helpers_auth import assert_problem, bearer, superadmin_token, user_token


def _enqueue(client: TestClient, *args: Any, job_id: str) -> str:
    jobs = client.app.state.services.jobs  # type: ignore[attr-defined]
    found: str = client.portal.call(lambda: jobs.enqueue("refresh_history", *args, job_id=job_id))
    return found


def _finished(client: TestClient, job_id: str, headers: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 120  # a hang guard only
    while True:
        r = client.get(f"/api/v1/jobs/{job_id}", headers=headers)
        assert r.status_code == 200, r.text
        if r.json()["state"] in ("complete", "failed"):
            return dict(r.json())
        assert time.monotonic() < deadline, r.json()
        time.sleep(0.02)


def test_job_ids_carry_their_broker() -> None:
    broker = uuid.uuid4()
    assert job_owner(broker_job_id(broker, "report-1")) == broker
    assert job_owner(broker_job_id(broker)) == broker
    assert job_owner("refresh_history_daily:1700000000123") is None
    assert job_owner(f"broker:{broker}") is None and job_owner(f"broker:{broker}x:k") is None


def test_a_broker_reads_its_own_job_and_another_broker_gets_404(client: TestClient, broker_a: BrokerFixture,
                                                                broker_b: BrokerFixture) -> None:
    job_id = _enqueue(client, ["EURUSD"], job_id=broker_job_id(broker_a.id, f"history-{uuid.uuid4().hex}"))
    body = _finished(client, job_id, broker_a.auth)
    assert body["jobId"] == job_id and body["state"] == "complete" and body["function"] == "refresh_history"
    assert body["tries"] == 1 and body["result"]["refreshed"]["EURUSD"]["bars"] > 0
    assert body["enqueuedAt"] <= body["startedAt"] <= body["finishedAt"]
    assert "error" not in body and "scheduledAt" not in body
    # The other broker: the same 404 as for an id that was never used.
    other = client.get(f"/api/v1/jobs/{job_id}", headers=broker_b.auth)
    unknown = client.get(f"/api/v1/jobs/{broker_job_id(broker_b.id, 'never')}", headers=broker_b.auth)
    assert assert_problem(other, 404, "not-found")["detail"] == assert_problem(unknown, 404, "not-found")["detail"]
    # A BROKER_USER of the owner reads it too; a publishable key does not.
    _, token = user_token(client, broker_a, "BROKER_USER")
    assert client.get(f"/api/v1/jobs/{job_id}", headers=bearer(token)).json()["state"] == "complete"
    assert_problem(client.get(f"/api/v1/jobs/{job_id}", headers=bearer(broker_a.publishable_key)), 403)


def test_platform_jobs_are_for_the_platform_operator_only(client: TestClient, broker_a: BrokerFixture) -> None:
    job_id = _enqueue(client, ["GBPUSD"], job_id=f"history-{uuid.uuid4().hex}")
    assert_problem(client.get(f"/api/v1/jobs/{job_id}", headers=broker_a.auth), 404, "not-found")
    root = bearer(superadmin_token(client))
    assert _finished(client, job_id, root)["state"] == "complete"
    # The operator reads brokers' jobs too; unknown ids are 404 for it as well.
    owned = _enqueue(client, ["USDJPY"], job_id=broker_job_id(broker_a.id))
    assert _finished(client, owned, root)["jobId"] == owned
    assert_problem(client.get("/api/v1/jobs/nothing-here", headers=root), 404, "not-found")


def test_a_malformed_job_id_is_a_validation_problem(client: TestClient, broker_a: BrokerFixture) -> None:
    r = client.get("/api/v1/jobs/" + "x" * 201, headers=broker_a.auth)
    assert_problem(r, 422, "validation-error")
    assert_problem(client.get("/api/v1/jobs/a%20b", headers=broker_a.auth), 422, "validation-error")
