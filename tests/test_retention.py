"""Retention (app/retention): calculations 2 years, audit entries 7 years, with a controllable clock.

The job function is called directly (ctx = {"services": ...}) for the clock cases, and once through the
queue and the in-process worker (end to end). Counts are read per broker: other tests share the database.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.retention.tasks import CRON, purge_expired_data
from app.worker.registry import cron_jobs, task_functions
from tests.conftest import BrokerFixture
from tests.helpers_auth import sql

# The clock of these tests: a fixed day in the past (the audit purge never looks past the database's now()).
DAY = datetime(2025, 6, 15, 12, tzinfo=UTC)


def _calc(client: TestClient, broker_id: uuid.UUID, at: datetime) -> uuid.UUID:
    calc_id = uuid.uuid4()
    sql(client, "insert into calculations (id, broker_id, kind, input, result, input_hash, created_at) "
                "values (:i, :b, 'position-size', '{}', '{}', 'h', :t)", {"i": calc_id, "b": broker_id, "t": at})
    return calc_id


def _audit(client: TestClient, broker_id: uuid.UUID, at: datetime, action: str) -> None:
    sql(client, "insert into audit_logs (broker_id, actor_type, action, created_at) values (:b, 'system', :a, :t)",
        {"b": broker_id, "a": action, "t": at})


def _run(client: TestClient, now: datetime, dry_run: bool, batch: int | None = None) -> dict[str, Any]:
    ctx = {"services": client.app.state.services}  # type: ignore[attr-defined]
    result: dict[str, Any] = client.portal.call(
        lambda: purge_expired_data(ctx, now.isoformat(), dry_run, batch))
    return result


def _mine(result: dict[str, Any], part: str, broker: BrokerFixture) -> int:
    return int(result[part]["perBroker"].get(str(broker.id), 0))


def _calc_ids(client: TestClient, broker_id: uuid.UUID) -> set[uuid.UUID]:
    return {r[0] for r in sql(client, "select id from calculations where broker_id = :b", {"b": broker_id})}


def _actions(client: TestClient, broker_id: uuid.UUID) -> set[str]:
    return {r[0] for r in sql(client, "select action from audit_logs where broker_id = :b", {"b": broker_id})}


def test_calculations_older_than_two_years_go_in_batches_after_a_dry_run(client: TestClient,
                                                                         broker_a: BrokerFixture) -> None:
    old = [_calc(client, broker_a.id, datetime(2023, 6, 14, 12, tzinfo=UTC)),  # 2 y + 1 day before the clock
           _calc(client, broker_a.id, datetime(2023, 1, 1, tzinfo=UTC)),
           _calc(client, broker_a.id, datetime(2021, 1, 1, tzinfo=UTC))]
    young = _calc(client, broker_a.id, datetime(2023, 6, 16, 12, tzinfo=UTC))  # 2 y - 1 day
    before = _calc_ids(client, broker_a.id)

    dry = _run(client, DAY, dry_run=True)
    assert dry["dryRun"] is True and _mine(dry, "calculations", broker_a) == 3
    assert dry["calculations"]["cutoff"].startswith("2023-06-15T12:00:00")
    assert _calc_ids(client, broker_a.id) == before  # counted, nothing deleted

    done = _run(client, DAY, dry_run=False, batch=2)  # 2 + 1: the loop runs until a short batch
    assert _mine(done, "calculations", broker_a) == 3
    assert _calc_ids(client, broker_a.id) == before - set(old) and young in _calc_ids(client, broker_a.id)
    assert _mine(_run(client, DAY, dry_run=False), "calculations", broker_a) == 0  # a rerun does nothing

    # Two days later on the same clock the younger one is due as well.
    later = _run(client, datetime(2025, 6, 17, 12, tzinfo=UTC), dry_run=False)
    assert _mine(later, "calculations", broker_a) == 1 and young not in _calc_ids(client, broker_a.id)


def test_audit_entries_older_than_seven_years_go_and_younger_stay(client: TestClient, broker_a: BrokerFixture,
                                                                  broker_b: BrokerFixture) -> None:
    _audit(client, broker_a.id, datetime(2018, 6, 14, 12, tzinfo=UTC), "old.a")  # 7 y + 1 day
    _audit(client, broker_a.id, datetime(2018, 6, 16, 12, tzinfo=UTC), "young.a")  # 7 y - 1 day
    _audit(client, broker_b.id, datetime(2010, 1, 1, tzinfo=UTC), "old.b")
    # A calculation of 3 years ago is past its retention, an audit entry of then is not.
    _audit(client, broker_a.id, datetime(2022, 1, 1, tzinfo=UTC), "three-years")

    dry = _run(client, DAY, dry_run=True)
    assert (_mine(dry, "auditLogs", broker_a), _mine(dry, "auditLogs", broker_b)) == (1, 1)
    assert {"old.a", "young.a", "three-years"} <= _actions(client, broker_a.id)

    done = _run(client, DAY, dry_run=False)
    assert (_mine(done, "auditLogs", broker_a), _mine(done, "auditLogs", broker_b)) == (1, 1)
    left = _actions(client, broker_a.id)
    assert "old.a" not in left and {"young.a", "three-years", "broker.created"} <= left
    assert "old.b" not in _actions(client, broker_b.id)


def test_the_clock_must_name_its_zone(client: TestClient) -> None:
    ctx = {"services": client.app.state.services}  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="time zone"):
        client.portal.call(lambda: purge_expired_data(ctx, "2025-06-15T12:00:00", True))


def test_the_purge_is_a_registered_daily_job_and_runs_on_the_worker(client: TestClient,
                                                                    broker_a: BrokerFixture) -> None:
    assert purge_expired_data in task_functions()
    assert CRON[0] in cron_jobs() and CRON[0].hour == 3 and CRON[0].minute == 15
    _calc(client, broker_a.id, datetime(2020, 1, 1, tzinfo=UTC))
    jobs = client.app.state.services.jobs  # type: ignore[attr-defined]
    job_id = client.portal.call(lambda: jobs.enqueue("purge_expired_data", DAY.isoformat(), True,
                                                     job_id=f"t-{uuid.uuid4().hex}"))
    deadline = time.monotonic() + 120  # a hang guard, not a speed check
    while (info := client.portal.call(jobs.status, job_id)).state not in ("complete", "failed"):
        assert time.monotonic() < deadline, info
        time.sleep(0.02)
    assert info.state == "complete", info
    assert info.result["dryRun"] is True and info.result["calculations"]["perBroker"][str(broker_a.id)] == 1
