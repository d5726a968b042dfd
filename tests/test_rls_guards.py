"""Database backstop: forced RLS on every tenant table, a powerless app role, no tenant leaking through
a pooled connection, an append-only audit log, a transaction-local tenant setting.

These tests connect to Postgres directly with the app's own role URLs (never through the API).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from app.db.engine import Database, MissingTenant
from app.models import User
from tests.conftest import BrokerFixture, make_broker
from tests.helpers_auth import calculate, create_user, sql

pytestmark = pytest.mark.usefixtures("no_server_errors")

SET_TENANT = "select set_config('app.current_broker_id', :b, true)"


@pytest.fixture(scope="module")
def two(client: TestClient) -> tuple[BrokerFixture, BrokerFixture]:
    """Two brokers with rows in the tenant tables (users, keys, audit, a stored calculation)."""
    a, b = make_broker(client), make_broker(client)
    for broker in (a, b):
        create_user(client, broker, "BROKER_USER")
        assert calculate(client, broker.auth).status_code == 200
        assert client.get("/api/v1/calculations", headers=broker.auth).status_code == 200  # flushes the store
    return a, b


@pytest.fixture(scope="module")
def urls(client: TestClient) -> Any:
    return client.app.state.services.db.urls  # type: ignore[attr-defined]


def tenant_tables(client: TestClient) -> list[str]:
    rows = sql(client, "select c.table_name from information_schema.columns c "
                       "join information_schema.tables t using (table_schema, table_name) "
                       "where c.table_schema = 'public' and c.column_name = 'broker_id' "
                       "and t.table_type = 'BASE TABLE' order by 1")
    return [r[0] for r in rows]


def test_every_tenant_table_is_known(client: TestClient) -> None:
    # A new tenant table must be added to the RLS migration; this list moving is the reminder.
    assert set(tenant_tables(client)) >= {"users", "api_keys", "refresh_tokens", "calculations", "audit_logs",
                                          "sso_connections", "sso_states", "exchange_jtis", "idempotency_keys"}


def test_every_broker_id_table_and_brokers_have_forced_rls_and_a_policy(client: TestClient) -> None:
    tables = [*tenant_tables(client), "brokers"]
    rows = sql(client, "select c.relname, c.relrowsecurity, c.relforcerowsecurity, "
                       "(select count(*) from pg_policy p where p.polrelid = c.oid), "
                       "(select string_agg(pg_get_expr(p.polqual, p.polrelid), ' ') from pg_policy p "
                       " where p.polrelid = c.oid), "
                       "(select string_agg(coalesce(pg_get_expr(p.polwithcheck, p.polrelid), ''), ' ') "
                       " from pg_policy p where p.polrelid = c.oid) "
                       "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                       "where n.nspname = 'public' and c.relname = any(:t)", {"t": tables})
    found = {r[0]: r for r in rows}
    assert set(found) == set(tables)
    for name, (_, enabled, forced, policies, using, check) in found.items():
        assert enabled, f"{name}: row level security not enabled"
        assert forced, f"{name}: row level security not forced"
        assert policies >= 1, f"{name}: no policy"
        assert "app.current_broker_id" in using, f"{name}: policy does not compare to the tenant setting"
        assert "app.current_broker_id" in check, f"{name}: policy has no WITH CHECK on the tenant"


def test_app_role_is_powerless(client: TestClient, urls: Any) -> None:
    role = sql(client, "select current_user", url=urls.app)[0][0]
    attrs = sql(client, "select rolsuper, rolbypassrls, rolcreaterole, rolcreatedb from pg_roles where rolname = :r",
                {"r": role})
    assert attrs == [(False, False, False, False)]
    owned = sql(client, "select c.relname from pg_class c join pg_roles r on r.oid = c.relowner "
                        "join pg_namespace n on n.oid = c.relnamespace "
                        "where n.nspname = 'public' and r.rolname = :r", {"r": role})
    assert owned == []
    # Nor a member of a role that could lend it those powers.
    members = sql(client, "select b.rolname from pg_auth_members m join pg_roles b on b.oid = m.roleid "
                          "join pg_roles u on u.oid = m.member where u.rolname = :r", {"r": role})
    assert members == []
    # The owner (who runs migrations) is someone else.
    owner = sql(client, "select pg_get_userbyid(relowner) from pg_class where relname = 'users'")[0][0]
    assert owner != role


def test_no_tenant_set_means_zero_rows_everywhere(client: TestClient, urls: Any,
                                                  two: tuple[BrokerFixture, BrokerFixture]) -> None:
    tables = [*tenant_tables(client), "brokers"]
    populated = 0
    for table in tables:
        as_owner = sql(client, f"select count(*) from {table}")[0][0]
        as_app = sql(client, f"select count(*) from {table}", url=urls.app)[0][0]
        assert as_app == 0, f"{table}: {as_app} rows visible without a tenant"
        populated += as_owner > 0
    # The zero above means something: the main tables do hold rows.
    assert populated >= 5
    # An empty string (what a reset GUC looks like) is no tenant either.
    for table in tables:
        rows = sql(client, f"select count(*) from {table}, "
                           "(select set_config('app.current_broker_id', '', true)) s", url=urls.app)
        assert rows[0][0] == 0


def test_tenant_set_sees_exactly_its_own_rows(client: TestClient, urls: Any,
                                              two: tuple[BrokerFixture, BrokerFixture]) -> None:
    a, b = two

    async def run() -> dict[str, set[uuid.UUID]]:
        engine = create_async_engine(urls.app, poolclass=NullPool)
        seen: dict[str, set[uuid.UUID]] = {}
        try:
            async with engine.begin() as conn:
                await conn.execute(text(SET_TENANT), {"b": str(a.id)})
                for table in ("users", "api_keys", "audit_logs", "calculations"):
                    ids = (await conn.execute(text(f"select distinct broker_id from {table}"))).scalars().all()
                    seen[table] = set(ids)
                seen["brokers"] = set((await conn.execute(text("select id from brokers"))).scalars().all())
        finally:
            await engine.dispose()
        return seen

    seen = client.portal.call(run)
    assert all(ids == {a.id} for ids in seen.values()), seen


@pytest.fixture
def pool_of_one(client: TestClient, urls: Any) -> Iterator[Database]:
    db = Database.connect(urls, pool_size=1)
    # Database.connect allows `pool_size` overflow; one connection only, so reuse is certain.
    db.app_engine.pool._max_overflow = 0  # type: ignore[attr-defined]
    yield db
    client.portal.call(db.dispose)


async def _pid_and_users(conn: AsyncConnection) -> tuple[int, list[uuid.UUID]]:
    pid = (await conn.execute(text("select pg_backend_pid()"))).scalar_one()
    brokers = (await conn.execute(text("select broker_id from users"))).scalars().all()
    return int(pid), list(brokers)


def test_one_pooled_connection_a_then_none_then_b(client: TestClient, pool_of_one: Database,
                                                  two: tuple[BrokerFixture, BrokerFixture]) -> None:
    a, b = two
    db = pool_of_one

    async def run() -> list[tuple[int, list[uuid.UUID]]]:
        out = []
        async with db.app_engine.connect() as conn:  # A, set exactly as the app's tenant hook does
            async with conn.begin():
                await conn.execute(text(SET_TENANT), {"b": str(a.id)})
                out.append(await _pid_and_users(conn))
        async with db.app_engine.connect() as conn:  # same pooled connection, no tenant
            async with conn.begin():
                out.append(await _pid_and_users(conn))
        async with db.tenant(b.id) as session:  # the app's own tenant session, for B
            conn = await session.connection()
            out.append(await _pid_and_users(conn))
            await session.commit()
            # A second transaction in the same session is scoped again (after_begin hook).
            conn = await session.connection()
            out.append(await _pid_and_users(conn))
        async with db.app_engine.connect() as conn:  # and nothing of B lingers either
            async with conn.begin():
                out.append(await _pid_and_users(conn))
        return out

    results = client.portal.call(run)
    pids = {pid for pid, _ in results}
    assert len(pids) == 1, "the test must reuse one backend connection"
    (_, with_a), (_, none1), (_, with_b), (_, with_b_again), (_, none2) = results
    assert with_a and set(with_a) == {a.id}
    assert none1 == []
    assert with_b and set(with_b) == {b.id}
    assert with_b_again and set(with_b_again) == {b.id}
    assert none2 == []


def test_interleaved_tenants_on_one_connection_never_mix(client: TestClient, pool_of_one: Database,
                                                         two: tuple[BrokerFixture, BrokerFixture]) -> None:
    a, b = two
    db = pool_of_one
    order = [a, b, b, a, a, b, a, b, b, b, a] * 5

    async def run() -> list[tuple[uuid.UUID, set[uuid.UUID]]]:
        out = []
        for broker in order:
            async with db.tenant(broker.id) as session:
                rows = (await session.execute(text("select broker_id from users union "
                                                   "select broker_id from api_keys"))).scalars().all()
                out.append((broker.id, set(rows)))
        return out

    for expected, seen in client.portal.call(run):
        assert seen == {expected}


def test_tenant_session_without_broker_fails_closed(client: TestClient) -> None:
    db: Database = client.app.state.services.db  # type: ignore[attr-defined]

    async def run() -> None:
        async with db.app_sessions(info={"tenant_scoped": True}) as session:
            await session.get(User, uuid.uuid4())

    with pytest.raises(MissingTenant):
        client.portal.call(run)


@pytest.mark.parametrize("statement", [
    "update audit_logs set action = 'tampered'",
    "delete from audit_logs",
    "truncate audit_logs",
])
def test_app_role_cannot_rewrite_the_audit_log(client: TestClient, urls: Any, statement: str,
                                               two: tuple[BrokerFixture, BrokerFixture]) -> None:
    a, _ = two
    before = sql(client, "select count(*), count(*) filter (where action = 'tampered') from audit_logs "
                         "where broker_id = :b", {"b": a.id})[0]
    assert before[0] > 0

    async def run() -> None:
        engine = create_async_engine(urls.app, poolclass=NullPool)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(SET_TENANT), {"b": str(a.id)})
                await conn.execute(text(statement))
        finally:
            await engine.dispose()

    with pytest.raises(DBAPIError, match="permission denied"):
        client.portal.call(run)
    after = sql(client, "select count(*), count(*) filter (where action = 'tampered') from audit_logs "
                        "where broker_id = :b", {"b": a.id})[0]
    assert after == before


def test_app_role_can_append_to_the_audit_log_of_its_tenant_only(client: TestClient, urls: Any,
                                                                  two: tuple[BrokerFixture, BrokerFixture]) -> None:
    a, b = two
    insert = "insert into audit_logs (broker_id, actor_type, action) values (:b, 'system', 'test.append')"

    async def run(target: uuid.UUID) -> None:
        engine = create_async_engine(urls.app, poolclass=NullPool)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(SET_TENANT), {"b": str(a.id)})
                await conn.execute(text(insert), {"b": target})
        finally:
            await engine.dispose()

    client.portal.call(run, a.id)
    with pytest.raises(DBAPIError, match="row-level security"):
        client.portal.call(run, b.id)  # WITH CHECK: never a row for another tenant
    assert sql(client, "select count(*) from audit_logs where action = 'test.append' and broker_id = :b",
               {"b": b.id})[0][0] == 0


def test_tenant_setting_is_transaction_local(client: TestClient, urls: Any,
                                             two: tuple[BrokerFixture, BrokerFixture]) -> None:
    a, _ = two

    async def run() -> tuple[Any, Any, int]:
        engine = create_async_engine(urls.app, poolclass=NullPool)
        try:
            async with engine.connect() as conn:
                async with conn.begin():
                    await conn.execute(text(SET_TENANT), {"b": str(a.id)})
                    inside = (await conn.execute(text("select current_setting('app.current_broker_id', true)"))
                              ).scalar_one()
                async with conn.begin():
                    after = (await conn.execute(text("select current_setting('app.current_broker_id', true)"))
                             ).scalar_one()
                    rows = (await conn.execute(text("select count(*) from users"))).scalar_one()
        finally:
            await engine.dispose()
        return inside, after, int(rows)

    inside, after, rows = client.portal.call(run)
    assert inside == str(a.id)
    assert after in ("", None)
    assert rows == 0
