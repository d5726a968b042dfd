"""API keys: shown once, stored only as an HMAC, listed as prefix + last 4, rotated with an overlap,
revoked at once, restricted by scope; every key event in the audit log."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.auth import keys
from tests.conftest import BrokerFixture, make_broker
from tests.helpers_auth import (
    PIP_VALUE,
    assert_problem,
    audit_rows,
    bearer,
    calculate,
    problem_fields,
    sql,
)

pytestmark = pytest.mark.usefixtures("no_server_errors")


@pytest.fixture(scope="module")
def broker(client: TestClient) -> BrokerFixture:
    return make_broker(client)


@pytest.fixture(scope="module")
def other(client: TestClient) -> BrokerFixture:
    return make_broker(client)


def new_key(client: TestClient, broker: BrokerFixture, **spec: Any) -> dict[str, Any]:
    resp = client.post(f"/api/v1/brokers/{broker.id}/api-keys", json={"kind": "secret", **spec}, headers=broker.auth)
    assert resp.status_code == 201, resp.text
    out: dict[str, Any] = resp.json()
    return out


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_full_key_only_in_the_create_response(client: TestClient, broker: BrokerFixture) -> None:
    created = new_key(client, broker, name="shown once")
    full = created["key"]
    parsed = keys.parse(full)
    assert parsed is not None and parsed.kind == "secret" and parsed.mode == "live"
    assert full.startswith(created["prefix"] + "_") and full.endswith(created["last4"])
    assert calculate(client, bearer(full)).status_code == 200
    listed = client.get(f"/api/v1/brokers/{broker.id}/api-keys", headers=broker.auth)
    assert listed.status_code == 200
    entry = next(k for k in listed.json() if k["id"] == created["id"])
    assert "key" not in entry and entry["prefix"] == created["prefix"] and entry["last4"] == full[-4:]
    assert len(entry["last4"]) == 4
    for resp in (listed, client.get(f"/api/v1/brokers/{broker.id}", headers=broker.auth),
                 client.get(f"/api/v1/users/{broker.admin_id}/activity", headers=broker.auth)):
        assert full not in resp.text and parsed.secret not in resp.text


def test_publishable_keys_get_calc_run_only(client: TestClient, broker: BrokerFixture) -> None:
    created = new_key(client, broker, kind="publishable", scopes=["users:write", "keys:manage"])
    assert created["scopes"] == ["calc:run"]
    assert created["key"].startswith("fxr_live_pk_")


def test_no_column_anywhere_holds_a_plaintext_key(client: TestClient, broker: BrokerFixture) -> None:
    created = new_key(client, broker, name="needle")
    full = created["key"]
    secret = keys.parse(full).secret  # type: ignore[union-attr]
    calculate(client, bearer(full))
    client.get("/api/v1/calculations", headers=bearer(full))  # flushes usage and stored calculations
    needles = [full, secret, secret.encode().hex()]
    # Every text, varchar, bytea, json and array column of api_keys, as the owner (no RLS).
    columns = sql(client, "select column_name, data_type from information_schema.columns "
                          "where table_schema = 'public' and table_name = 'api_keys'")
    textual = [c for c, t in columns if t in ("text", "character varying", "bytea", "jsonb", "ARRAY")]
    assert {"secret_hash", "signing_secret_enc", "prefix", "last4", "key_id"} <= set(textual)
    for column in textual:
        rendered = f"encode({column}, 'escape')" if dict(columns)[column] == "bytea" else f"{column}::text"
        for needle in needles:
            hits = sql(client, f"select count(*) from api_keys where strpos({rendered}, :n) > 0 "
                               f"or strpos({column}::text, :n) > 0", {"n": needle})
            assert hits[0][0] == 0, f"api_keys.{column} holds the plaintext key"
    # And no other table (audit details, stored calculations...) holds it either.
    tables = [r[0] for r in sql(client, "select tablename from pg_tables where schemaname = 'public'")]
    for table in tables:
        for needle in needles:
            hits = sql(client, f"select count(*) from {table} t where strpos(t::text, :n) > 0", {"n": needle})
            assert hits[0][0] == 0, f"{table} holds the plaintext key"
    # The stored hash is what the key verifies against (so the search above looked at the right row).
    row = sql(client, "select secret_hash from api_keys where id = :i", {"i": uuid.UUID(created["id"])})
    assert row[0][0] == keys.hash_secret(client.app.state.services.auth.secrets.pepper, secret)  # type: ignore[attr-defined]


def test_rotation_overlap_keeps_the_old_key_until_it_expires(client: TestClient, broker: BrokerFixture) -> None:
    old = new_key(client, broker, name="to rotate")
    rotated = client.post(f"/api/v1/brokers/{broker.id}/api-keys/{old['id']}/rotate", json={},
                          headers=broker.auth)
    assert rotated.status_code == 201, rotated.text
    new = rotated.json()
    assert new["rotatedFrom"] == old["id"] and new["key"] != old["key"]
    expires = _when(new["previousKeyExpiresAt"])
    assert abs(expires - (datetime.now(UTC) + timedelta(hours=24))) < timedelta(minutes=1)  # default overlap
    assert calculate(client, bearer(old["key"])).status_code == 200
    assert calculate(client, bearer(new["key"])).status_code == 200
    listed = {k["id"]: k for k in client.get(f"/api/v1/brokers/{broker.id}/api-keys", headers=broker.auth).json()}
    assert _when(listed[old["id"]]["expiresAt"]) == expires and listed[new["id"]]["expiresAt"] is None
    # Both events, by whom, from where, in which request.
    events = {(r.action, r.target_id): r for r in audit_rows(client, broker.id)}
    rot = events[("api_key.rotated", old["id"])]
    made = events[("api_key.created", new["id"])]
    for ev in (rot, made):
        assert ev.actor_type == "api_key" and ev.ip == "testclient" and ev.request_id
    assert rot.details["newKeyId"] == new["id"] and made.details["rotatedFrom"] == old["id"]


def test_rotated_key_stops_at_its_expiry(client: TestClient, broker: BrokerFixture) -> None:
    old = new_key(client, broker)
    # 1.8 s of overlap: long enough to see the old key work, short enough to wait out.
    rotated = client.post(f"/api/v1/brokers/{broker.id}/api-keys/{old['id']}/rotate", json={"overlapHours": 0.0005},
                          headers=broker.auth)
    assert rotated.status_code == 201
    new = rotated.json()
    expires = _when(new["previousKeyExpiresAt"])
    assert calculate(client, bearer(old["key"])).status_code == 200
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.1)
    assert_problem(calculate(client, bearer(old["key"])), 401, "unauthorized")
    assert calculate(client, bearer(new["key"])).status_code == 200


def test_rotation_without_overlap_cuts_the_old_key_at_once(client: TestClient, broker: BrokerFixture) -> None:
    old = new_key(client, broker)
    assert calculate(client, bearer(old["key"])).status_code == 200  # cached as valid
    rotated = client.post(f"/api/v1/brokers/{broker.id}/api-keys/{old['id']}/rotate", json={"overlapHours": 0},
                          headers=broker.auth)
    assert rotated.status_code == 201
    assert_problem(calculate(client, bearer(old["key"])), 401, "unauthorized")
    assert calculate(client, bearer(rotated.json()["key"])).status_code == 200
    # A revoked key cannot be rotated back to life.
    client.delete(f"/api/v1/brokers/{broker.id}/api-keys/{rotated.json()['id']}", headers=broker.auth)
    again = client.post(f"/api/v1/brokers/{broker.id}/api-keys/{rotated.json()['id']}/rotate", json={},
                        headers=broker.auth)
    assert_problem(again, 404, "not-found")


def test_revoke_is_immediate_and_audited(client: TestClient, broker: BrokerFixture) -> None:
    key = new_key(client, broker)
    assert calculate(client, bearer(key["key"])).status_code == 200
    resp = client.delete(f"/api/v1/brokers/{broker.id}/api-keys/{key['id']}", headers=broker.auth)
    assert resp.status_code == 200 and resp.json()["status"] == "revoked" and resp.json()["revokedAt"]
    assert_problem(calculate(client, bearer(key["key"])), 401, "unauthorized")
    # Revoking twice is harmless and logs once.
    assert client.delete(f"/api/v1/brokers/{broker.id}/api-keys/{key['id']}", headers=broker.auth).status_code == 200
    assert len([r for r in audit_rows(client, broker.id, "api_key.revoked") if r.target_id == key["id"]]) == 1


@pytest.mark.parametrize("path", ["/api/v1/brokers/{b}/api-keys", "/api/v1/brokers/{b}/users", "/api/v1/brokers/{b}",
                                  "/api/v1/calculations", "/api/v1/users/{u}", "/api/v1/users/{u}/activity"])
def test_calc_only_key_is_refused_stored_data_and_admin_reads(client: TestClient, broker: BrokerFixture,
                                                              path: str) -> None:
    restricted = bearer(new_key(client, broker, scopes=["calc:run"])["key"])
    assert calculate(client, restricted, PIP_VALUE, "/api/v1/calculate/pip-value").status_code == 200
    resp = client.get(path.format(b=broker.id, u=broker.admin_id), headers=restricted)
    assert resp.status_code in (403, 404), resp.text
    assert resp.status_code == (404 if path.startswith("/api/v1/users") else 403)


def test_calc_only_key_is_refused_admin_writes(client: TestClient, broker: BrokerFixture) -> None:
    restricted = bearer(new_key(client, broker, scopes=["calc:run"])["key"])
    b = broker.id
    calc = calculate(client, broker.auth).json()["calculationId"]
    attempts = [
        ("PUT", f"/api/v1/brokers/{b}/config", {"maxLeverage": 5}),
        ("POST", f"/api/v1/brokers/{b}/users", {"email": "x@example.com", "role": "BROKER_ADMIN"}),
        ("POST", f"/api/v1/brokers/{b}/api-keys", {"kind": "secret"}),
        ("GET", f"/api/v1/calculations/{calc}", None),
    ]
    for method, path, body in attempts:
        assert_problem(client.request(method, path, json=body, headers=restricted), 403, "forbidden")


def test_scopes_grant_exactly_their_permissions(client: TestClient, broker: BrokerFixture) -> None:
    reader = bearer(new_key(client, broker, scopes=["calculations:read"])["key"])
    assert client.get("/api/v1/calculations", headers=reader).status_code == 200
    assert_problem(calculate(client, reader), 403, "forbidden")
    assert_problem(client.get(f"/api/v1/brokers/{broker.id}/api-keys", headers=reader), 403)
    manager = bearer(new_key(client, broker, scopes=["keys:manage"])["key"])
    assert client.get(f"/api/v1/brokers/{broker.id}/api-keys", headers=manager).status_code == 200
    assert_problem(client.get(f"/api/v1/brokers/{broker.id}/users", headers=manager), 403)
    assert_problem(client.put(f"/api/v1/brokers/{broker.id}/config", json={}, headers=manager), 403)


def test_a_restricted_key_cannot_mint_a_stronger_key(client: TestClient, broker: BrokerFixture) -> None:
    manager = bearer(new_key(client, broker, scopes=["keys:manage"])["key"])
    # Creating a key with more scopes than the creator holds is refused ...
    for spec in ({"kind": "secret"}, {"kind": "secret", "scopes": ["brokers:write"]}):
        resp = client.post(f"/api/v1/brokers/{broker.id}/api-keys", json=spec, headers=manager)
        assert_problem(resp, 403, "forbidden")
    # ... so is rotating a stronger key (which would hand over its full replacement) ...
    full = new_key(client, broker)
    resp = client.post(f"/api/v1/brokers/{broker.id}/api-keys/{full['id']}/rotate", json={}, headers=manager)
    assert_problem(resp, 403, "forbidden")
    assert calculate(client, bearer(full["key"])).status_code == 200  # and the stronger key is untouched
    # ... while a key within its own scopes is fine.
    same = client.post(f"/api/v1/brokers/{broker.id}/api-keys", json={"kind": "secret", "scopes": ["keys:manage"]},
                       headers=manager)
    assert same.status_code == 201, same.text


def test_unknown_scope_is_422_naming_scopes(client: TestClient, broker: BrokerFixture) -> None:
    resp = client.post(f"/api/v1/brokers/{broker.id}/api-keys", json={"kind": "secret", "scopes": ["root"]},
                       headers=broker.auth)
    assert_problem(resp, 422, "validation-error")
    assert problem_fields(resp) == ["scopes"]
    bad_kind = client.post(f"/api/v1/brokers/{broker.id}/api-keys", json={"kind": "master"}, headers=broker.auth)
    assert_problem(bad_kind, 422)
    assert problem_fields(bad_kind) == ["kind"]


def test_test_mode_keys(client: TestClient, broker: BrokerFixture) -> None:
    created = new_key(client, broker, mode="test")
    assert created["key"].startswith("fxr_test_sk_") and created["mode"] == "test"
    assert calculate(client, bearer(created["key"])).status_code == 200


def test_keys_of_one_broker_are_invisible_to_another(client: TestClient, broker: BrokerFixture,
                                                     other: BrokerFixture) -> None:
    mine = {k["id"] for k in client.get(f"/api/v1/brokers/{broker.id}/api-keys", headers=broker.auth).json()}
    theirs = {k["id"] for k in client.get(f"/api/v1/brokers/{other.id}/api-keys", headers=other.auth).json()}
    assert mine and theirs and not mine & theirs
    some = next(iter(theirs))
    assert_problem(client.delete(f"/api/v1/brokers/{broker.id}/api-keys/{some}", headers=broker.auth), 404)
    assert calculate(client, other.auth).status_code == 200


def test_a_key_seen_again_is_not_hashed_again_and_revocation_still_cuts_it(
        client: TestClient, broker: BrokerFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    key = new_key(client, broker)
    hashed: list[str] = []
    real = keys.hash_secret

    def counting(pepper: bytes, secret: str) -> bytes:
        hashed.append(secret)
        return real(pepper, secret)

    monkeypatch.setattr(keys, "hash_secret", counting)
    for _ in range(3):
        assert calculate(client, bearer(key["key"])).status_code == 200
    assert len(hashed) == 1  # verified once; the same cached row needs no second HMAC
    wrong = key["key"][:-7] + ("A" if key["key"][-7] != "A" else "B") + key["key"][-6:]
    wrong = wrong[:-6] + keys.checksum(wrong[:-6])  # a well-formed key with another secret: full check
    assert_problem(calculate(client, bearer(wrong)), 401, "unauthorized")
    assert len(hashed) == 2
    client.delete(f"/api/v1/brokers/{broker.id}/api-keys/{key['id']}", headers=broker.auth)
    assert_problem(calculate(client, bearer(key["key"])), 401, "unauthorized")
