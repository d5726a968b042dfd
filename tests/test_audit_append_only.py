"""The audit log is append-only for every role the app logs in as; retention and erasure change it only
through their two owner-run functions (migration 20261203_21), each as narrow as its purpose.

(tests/test_rls_guards.py already checks the app role's UPDATE / DELETE / TRUNCATE; here: the platform
role, the functions' grants and their limits.)
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from tests.conftest import BrokerFixture, make_broker
from tests.helpers_auth import sql

SET_TENANT = "select set_config('app.current_broker_id', :b, true)"


@pytest.fixture(scope="module")
def urls(client: TestClient) -> Any:
    return client.app.state.services.db.urls  # type: ignore[attr-defined]


@pytest.fixture
def broker(client: TestClient) -> BrokerFixture:
    return make_broker(client)


def as_role(client: TestClient, url: str, broker_id: uuid.UUID, statement: str,
            params: dict[str, Any] | None) -> list[Any]:
    """One statement as a login role (its URL), in a transaction scoped to `broker_id`."""

    async def run() -> list[Any]:
        engine = create_async_engine(url, poolclass=NullPool)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(SET_TENANT), {"b": str(broker_id)})
                result = await conn.execute(text(statement), {"b": str(broker_id), **(params or {})})
                return list(result.all()) if result.returns_rows else []
        finally:
            await engine.dispose()

    return client.portal.call(run)  # type: ignore[arg-type]


def _entries(client: TestClient, broker_id: uuid.UUID) -> int:
    return int(sql(client, "select count(*) from audit_logs where broker_id = :b", {"b": broker_id})[0][0])


@pytest.mark.parametrize("statement", [
    "update audit_logs set action = 'tampered'",
    "delete from audit_logs",
    "truncate audit_logs",
])
def test_platform_role_cannot_rewrite_the_audit_log(client: TestClient, urls: Any, broker: BrokerFixture,
                                                    statement: str) -> None:
    before = _entries(client, broker.id)
    assert before > 0  # broker.created and friends
    with pytest.raises(DBAPIError, match="permission denied"):
        as_role(client, urls.platform, broker.id, statement, None)
    assert _entries(client, broker.id) == before


def _backdate(client: TestClient, broker_id: uuid.UUID, at: datetime, action: str) -> None:
    sql(client, "insert into audit_logs (broker_id, actor_type, action, created_at) values (:b, 'system', :a, :t)",
        {"b": broker_id, "a": action, "t": at})


PURGE = "select audit_purge_expired(cast(:b as uuid), :now, :limit, :dry)"


def test_app_role_may_not_purge(client: TestClient, urls: Any, broker: BrokerFixture) -> None:
    with pytest.raises(DBAPIError, match="permission denied"):
        as_role(client, urls.app, broker.id, PURGE, {"now": datetime.now(UTC), "limit": 10, "dry": True})


def test_purge_deletes_only_entries_older_than_seven_years_of_the_given_clock(client: TestClient, urls: Any,
                                                                              broker: BrokerFixture) -> None:
    # The clock is a fixed moment in the past: the database caps it at its own now(), never above.
    clock = datetime(2024, 3, 1, 12, tzinfo=UTC)
    _backdate(client, broker.id, datetime(2017, 2, 28, 12, tzinfo=UTC), "old.1")  # 7 y + 1 day before the clock
    _backdate(client, broker.id, datetime(2017, 1, 1, tzinfo=UTC), "old.2")
    _backdate(client, broker.id, datetime(2017, 3, 2, 12, tzinfo=UTC), "young")  # 7 y - 1 day
    before = _entries(client, broker.id)

    def purge(now: datetime, dry: bool, limit: int = 1000) -> int:
        rows = as_role(client, urls.platform, broker.id, PURGE, {"now": now, "limit": limit, "dry": dry})
        return int(rows[0][0])

    assert purge(clock, dry=True) == 2  # a dry run counts and deletes nothing
    assert _entries(client, broker.id) == before
    assert purge(clock, dry=False, limit=1) == 1  # batches: at most `limit` per call, oldest first
    left = {r[0] for r in sql(client, "select action from audit_logs where broker_id = :b", {"b": broker.id})}
    assert "old.2" not in left and {"old.1", "young"} <= left
    assert purge(clock, dry=False) == 1
    assert purge(clock, dry=True) == 0
    # Two days later on the same clock the younger entry is due too.
    assert purge(datetime(2024, 3, 3, 12, tzinfo=UTC), dry=False) == 1
    assert _entries(client, broker.id) == before - 3


def test_purge_cannot_move_the_cutoff_past_the_database_clock(client: TestClient, urls: Any,
                                                              broker: BrokerFixture) -> None:
    _backdate(client, broker.id, datetime(2024, 1, 1, tzinfo=UTC), "recent")
    before = _entries(client, broker.id)
    far = datetime(2100, 1, 1, tzinfo=UTC)
    rows = as_role(client, urls.platform, broker.id, PURGE, {"now": far, "limit": 1000, "dry": False})
    assert rows[0][0] == 0
    assert _entries(client, broker.id) == before


def test_purge_touches_only_the_named_broker(client: TestClient, urls: Any, broker: BrokerFixture) -> None:
    other = make_broker(client)
    _backdate(client, other.id, datetime(2001, 1, 1, tzinfo=UTC), "ancient")
    rows = as_role(client, urls.platform, broker.id, PURGE, {"now": datetime.now(UTC), "limit": 1000, "dry": False})
    assert rows[0][0] == 0
    assert sql(client, "select count(*) from audit_logs where broker_id = :b and action = 'ancient'",
               {"b": other.id})[0][0] == 1


PSEUDONYMISE = "select audit_pseudonymise_subject(cast(:u as uuid), :e, :p, cast(:ids as text[]))"


def test_pseudonymising_needs_an_erased_user_of_the_current_tenant(client: TestClient, urls: Any,
                                                                   broker: BrokerFixture) -> None:
    assert broker.admin_id is not None
    params = {"u": broker.admin_id, "e": broker.admin_email, "p": "erased-" + "ab" * 8, "ids": []}
    before = sql(client, "select count(*) from audit_logs where broker_id = :b and details::text like :e",
                 {"b": broker.id, "e": f"%{broker.admin_email}%"})[0][0]
    with pytest.raises(DBAPIError, match="not erased"):
        as_role(client, urls.app, broker.id, PSEUDONYMISE, params)
    with pytest.raises(DBAPIError, match="permission denied"):  # not the platform role's power
        as_role(client, urls.platform, broker.id, PSEUDONYMISE, params)
    sql(client, "update users set erased_at = now() where id = :u", {"u": broker.admin_id})
    other = make_broker(client)
    with pytest.raises(DBAPIError, match="not erased"):  # from another tenant the user does not exist
        as_role(client, urls.app, other.id, PSEUDONYMISE, params)
    with pytest.raises(DBAPIError, match="pseudonym"):
        as_role(client, urls.app, broker.id, PSEUDONYMISE, {**params, "p": "anything"})
    assert sql(client, "select count(*) from audit_logs where broker_id = :b and details::text like :e",
               {"b": broker.id, "e": f"%{broker.admin_email}%"})[0][0] == before
