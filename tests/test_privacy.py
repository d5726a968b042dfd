"""GDPR export and erasure (app/privacy): who may call, what the export holds, and that an erased user's
email is in no table of the database afterwards (every text, json and array column of every table)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.privacy.service import PrivacyService
from tests.conftest import BrokerFixture, make_broker
from tests.helpers_auth import (
    NO_AUTH,
    USER_PASSWORD,
    admin_token,
    assert_problem,
    audit_rows,
    bearer,
    calculate,
    create_user,
    login,
    sql,
    superadmin_token,
    token_of,
)

# Every test but the one whose store fails on purpose (a 503 by design) checks for server errors.
NO_5XX = pytest.mark.usefixtures("no_server_errors")

TEXT_TYPES = ("text", "character varying", "character", "json", "jsonb", "ARRAY", "USER-DEFINED")


def places_holding(client: TestClient, needle: str) -> list[str]:
    """`table.column` of every row anywhere in the public schema whose text holds `needle` (any case)."""
    columns = sql(client, "select c.table_name, c.column_name from information_schema.columns c "
                          "join information_schema.tables t using (table_schema, table_name) "
                          "where c.table_schema = 'public' and t.table_type = 'BASE TABLE' "
                          "and c.data_type = any(:types) order by 1, 2", {"types": list(TEXT_TYPES)})
    assert len(columns) > 20  # the scan covers the schema, not a hand list
    found = []
    for table, column in columns:
        n = sql(client, f'select count(*) from "{table}" where strpos(lower("{column}"::text), lower(:n)) > 0',
                {"n": needle})[0][0]
        found += [f"{table}.{column}"] * n
    return found


@pytest.fixture
def person(client: TestClient, broker_a: BrokerFixture) -> dict[str, Any]:
    """A BROKER_USER with a footprint: logins (one failed, typed in capitals), a session, calculations."""
    email = f"Canary.{uuid.uuid4().hex[:8]}@example.org"
    user_id, _ = create_user(client, broker_a, "BROKER_USER", email=email)
    assert login(client, broker_a.slug, email.upper(), "wrong password 1234").status_code == 401
    token = token_of(login(client, broker_a.slug, email, USER_PASSWORD))
    calc = calculate(client, bearer(token))
    assert calc.status_code == 200
    assert client.get("/api/v1/calculations", headers=bearer(token)).status_code == 200  # stored now
    return {"id": user_id, "email": email, "token": token, "calc": calc.json()["calculationId"]}


@NO_5XX
def test_export_holds_everything_about_the_person_and_no_secret(client: TestClient, broker_a: BrokerFixture,
                                                                person: dict[str, Any]) -> None:
    resp = client.get(f"/api/v1/users/{person['id']}/export", headers=bearer(person["token"]))  # the user itself
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["user"]["email"] == person["email"] and out["user"]["role"] == "BROKER_USER"
    assert out["mfa"] == {"enabled": False, "enrolmentStarted": False, "failures": 0, "lockedUntil": None,
                          "recoveryCodesLeft": 0}
    assert len(out["sessions"]) >= 1 and out["sessions"][0]["revokedAt"] is None
    actions = [e["action"] for e in out["auditEvents"]]
    assert {"user.created", "auth.login_failed", "auth.login"} <= set(actions)
    assert [c["calculationId"] for c in out["calculations"]] == [person["calc"]]
    assert out["calculations"][0]["input"]["currencyPair"] == "EURUSD"
    assert set(out["elsewhere"]) == {"analytics"}  # ClickHouse: usage events keyed by the user's id
    text = resp.text
    for secret in ("argon2", "passwordHash", "password_hash", "tokenHash", "totpSecret", USER_PASSWORD):
        assert secret not in text
    # The export itself is audited.
    assert [r for r in audit_rows(client, broker_a.id, "user.exported") if r[4] == str(person["id"])]


@NO_5XX
def test_who_may_export(client: TestClient, broker_a: BrokerFixture, broker_b: BrokerFixture,
                        person: dict[str, Any]) -> None:
    path = f"/api/v1/users/{person['id']}/export"
    assert client.get(path, headers=bearer(admin_token(client, broker_a))).status_code == 200  # its admin
    assert client.get(path, headers=broker_a.auth).status_code == 200  # its broker's secret key
    assert client.get(path, headers=bearer(superadmin_token(client))).status_code == 200  # the platform operator
    # Another user of the same broker, another broker's admin and key: a user that does not exist.
    _, colleague = create_user(client, broker_a, "BROKER_USER")
    colleague_token = token_of(login(client, broker_a.slug, colleague, USER_PASSWORD))
    missing = assert_problem(client.get(f"/api/v1/users/{uuid.uuid4()}/export", headers=broker_b.auth), 404)
    for headers in (bearer(colleague_token), bearer(admin_token(client, broker_b)), broker_b.auth):
        body = assert_problem(client.get(path, headers=headers), 404, "not-found")
        assert body["detail"] == missing["detail"]
    assert_problem(client.get(path, headers=NO_AUTH), 401)


@NO_5XX
def test_erasure_leaves_no_email_in_any_table(client: TestClient, broker_a: BrokerFixture,
                                              person: dict[str, Any]) -> None:
    email = person["email"]
    before = places_holding(client, email)
    # The scan finds the person where they are: the user row and audit entries (created, failed login).
    assert "users.email" in before and before.count("audit_logs.details") >= 2, before
    entries_before = len(audit_rows(client, broker_a.id))

    resp = client.post(f"/api/v1/users/{person['id']}/erase", headers=bearer(admin_token(client, broker_a)))
    assert resp.status_code == 200, resp.text
    out = resp.json()
    pseudonym = out["pseudonym"]
    assert pseudonym.startswith("erased-") and out["alreadyErased"] is False
    assert out["sessionsRevoked"] >= 1 and out["auditEntriesPseudonymised"] >= 3 and out["calculationsKept"] == 1

    assert places_holding(client, email) == []
    assert places_holding(client, str(person["id"])).count("audit_logs.actor_id") == 0
    # The audit entries are still there, under the pseudonym; the erasure is one more entry.
    rows = audit_rows(client, broker_a.id)
    assert len(rows) >= entries_before + 1
    mine = [r for r in rows if pseudonym in (r[2], r[4])]
    assert {"user.created", "auth.login", "user.erased"} <= {r[0] for r in mine}
    assert any(r[7].get("email") == f"{pseudonym}@invalid" for r in mine if r[0] == "user.created")
    # The person can no longer log in, and the token they held stops at once.
    assert_problem(login(client, broker_a.slug, email, USER_PASSWORD), 401)
    assert_problem(client.get("/api/v1/calculations", headers=bearer(person["token"])), 401)
    user = client.get(f"/api/v1/users/{person['id']}", headers=broker_a.auth).json()
    assert user["email"] == f"{pseudonym}@invalid" and user["name"] is None and user["status"] == "disabled"

    # Idempotent: a second request changes nothing and says so.
    again = client.post(f"/api/v1/users/{person['id']}/erase", headers=broker_a.auth)
    assert again.status_code == 200 and again.json()["alreadyErased"] is True
    assert again.json()["pseudonym"] == pseudonym


@NO_5XX
def test_self_erasure_is_audited_under_the_pseudonym_only(client: TestClient, broker_a: BrokerFixture,
                                                          person: dict[str, Any]) -> None:
    resp = client.post(f"/api/v1/users/{person['id']}/erase", headers=bearer(person["token"]))
    assert resp.status_code == 200, resp.text
    pseudonym = resp.json()["pseudonym"]
    erased = audit_rows(client, broker_a.id, "user.erased")
    assert [(r[2], r[4], r[5]) for r in erased] == [(pseudonym, pseudonym, None)]  # no id, no IP
    assert places_holding(client, person["email"]) == []


@NO_5XX
def test_sso_subject_is_pseudonymised_too(client: TestClient, broker_a: BrokerFixture) -> None:
    email = f"sso.{uuid.uuid4().hex[:8]}@example.org"
    user_id, _ = create_user(client, broker_a, "END_USER", email=email)
    subject = f"trader-{uuid.uuid4().hex[:8]}"
    sql(client, "update users set sso_issuer = 'broker:x', sso_subject = :s where id = :u",
        {"s": subject, "u": user_id})
    sql(client, "insert into audit_logs (broker_id, actor_type, actor_id, action, details) "
                "values (:b, 'user', :u, 'auth.exchange', cast(:d as jsonb))",
        {"b": broker_a.id, "u": str(user_id), "d": f'{{"sub": "{subject}", "jti": "j1"}}'})
    assert client.post(f"/api/v1/users/{user_id}/erase", headers=broker_a.auth).status_code == 200
    assert places_holding(client, subject) == [] and places_holding(client, email) == []


class RecordingHolder:
    """A second store that holds personal data, as the analytics store plugs in (app.privacy.holders)."""

    name = "recording"

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.erased: list[tuple[uuid.UUID, uuid.UUID, str]] = []

    async def export_user(self, broker_id: uuid.UUID, user_id: uuid.UUID) -> dict[str, Any]:
        return {"userId": str(user_id)}

    async def erase_user(self, broker_id: uuid.UUID, user_id: uuid.UUID, pseudonym: str) -> dict[str, Any]:
        if self.fail:
            raise ConnectionError("store unreachable")
        self.erased.append((broker_id, user_id, pseudonym))
        return {"rows": 1}


def test_other_stores_erase_too_and_a_failure_is_retried(client: TestClient, broker_a: BrokerFixture,
                                                         person: dict[str, Any]) -> None:
    privacy: PrivacyService = client.app.state.services.privacy  # type: ignore[attr-defined]
    holder = RecordingHolder(fail=True)
    privacy.register(holder)
    try:
        path = f"/api/v1/users/{person['id']}/erase"
        export = client.get(f"/api/v1/users/{person['id']}/export", headers=broker_a.auth).json()
        assert export["elsewhere"]["recording"] == {"userId": str(person["id"])}
        assert_problem(client.post(path, headers=broker_a.auth), 503, "service-unavailable")
        assert places_holding(client, person["email"]) == []  # Postgres is done regardless
        holder.fail = False
        retry = client.post(path, headers=broker_a.auth)
        assert retry.status_code == 200 and retry.json()["elsewhere"]["recording"] == {"rows": 1}
        assert holder.erased == [(broker_a.id, person["id"], retry.json()["pseudonym"])]
    finally:
        privacy.holders.remove(holder)


@NO_5XX
def test_another_brokers_user_cannot_be_erased(client: TestClient, broker_a: BrokerFixture,
                                               person: dict[str, Any]) -> None:
    other = make_broker(client)
    assert_problem(client.post(f"/api/v1/users/{person['id']}/erase", headers=other.auth), 404, "not-found")
    assert places_holding(client, person["email"])  # untouched


@NO_5XX
def test_erasure_removes_the_users_events_from_clickhouse(client: TestClient, broker_a: BrokerFixture,
                                                          person: dict[str, Any]) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    analytics = services.analytics
    client.portal.call(services.recorder.flush)
    client.portal.call(analytics.flush)  # this test process owns the embedded ClickHouse
    if analytics.clickhouse is None:
        pytest.fail("the test app does not hold the analytics store")

    # Every ClickHouse table with a user id: the events and the rollups keyed by the user (first seen,
    # daily users). One that is not erased with the user fails here.
    tables = {r[0] for r in client.portal.call(
        analytics.clickhouse.query, "SELECT table FROM system.columns WHERE database = currentDatabase() "
        "AND name = 'user_id' AND table IN (SELECT name FROM system.tables WHERE database = currentDatabase() "
        "AND engine NOT LIKE '%View')", {})}
    assert tables == {"usage_metrics", "usage_first_seen", "usage_daily_users"}

    def rows_of_the_person() -> dict[str, int]:
        return {table: int(client.portal.call(
            analytics.clickhouse.query,
            f"SELECT count() FROM {table} WHERE broker_id = {{b:UUID}} AND user_id = {{u:UUID}}",
            {"b": broker_a.id, "u": person["id"]})[0][0]) for table in sorted(tables)}

    assert all(rows_of_the_person().values())  # the person's calculation (and logins) were shipped
    resp = client.post(f"/api/v1/users/{person['id']}/erase", headers=broker_a.auth)
    assert resp.status_code == 200, resp.text
    assert resp.json()["elsewhere"]["analytics"] == {"deleted": True}
    assert rows_of_the_person() == dict.fromkeys(tables, 0)


@NO_5XX
def test_events_not_yet_shipped_at_erasure_reach_clickhouse_without_the_user(client: TestClient,
                                                                           broker_a: BrokerFixture,
                                                                           person: dict[str, Any]) -> None:
    """The person's rows are still in Postgres only when they are erased: the shipper sends them later, and
    then without their id (forget_user could not delete what ClickHouse did not hold yet)."""
    services = client.app.state.services  # type: ignore[attr-defined]
    analytics = services.analytics
    client.portal.call(services.recorder.flush)
    client.portal.call(analytics.flush)
    if analytics.clickhouse is None:
        pytest.fail("the test app does not hold the analytics store")
    # Two more calculations by the person, stored in Postgres and not shipped yet.
    token = {"Authorization": f"Bearer {person['token']}"} if "token" in person else None
    if token is None:
        pytest.fail("the person fixture gives no token")
    body = {"accountBalance": 10000, "accountCurrency": "USD", "currencyPair": "EURUSD", "entryPrice": 1.1,
            "stopLoss": 1.09, "riskPercentage": 1}
    ids = [client.post("/api/v1/calculate/position-size", json=body, headers=token).json()["calculationId"]
           for _ in range(2)]
    client.portal.call(services.recorder.flush)
    resp = client.post(f"/api/v1/users/{person['id']}/erase", headers=broker_a.auth)
    assert resp.status_code == 200, resp.text
    # Now the two rows ship. The shipper holds back rows behind a transaction still open anywhere (its xid
    # watermark: a background task of the app may hold one for a moment), so flush until they are there.
    deadline = time.monotonic() + 60  # a hang guard, not a speed check
    while True:
        client.portal.call(analytics.flush)
        rows = client.portal.call(analytics.clickhouse.query,
                                  "SELECT toString(user_id) FROM usage_metrics WHERE event_id IN {ids:Array(UUID)}",
                                  {"ids": ids})
        if len(rows) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(rows) == 2 and all(r[0] is None or r[0] == "" for r in rows), rows
