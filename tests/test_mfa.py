"""TOTP MFA for broker admins: enrol and confirm, required at login once enabled, current and previous
step only, no code twice, lockout after repeated failures, single-use recovery codes, and admin
powers only with a second factor."""

from __future__ import annotations

import time
import uuid

import pyotp
import pytest
from fastapi.testclient import TestClient

from tests.conftest import BrokerFixture, make_broker
from tests.helpers_auth import (
    NO_AUTH,
    USER_PASSWORD,
    MfaUser,
    assert_problem,
    audit_rows,
    bearer,
    create_user,
    jwt_claims,
    login,
    mfa_login,
    problem_fields,
    reset_totp_step,
    sql,
    token_of,
    wait_for_stable_step,
)

pytestmark = pytest.mark.usefixtures("no_server_errors")


@pytest.fixture
def broker(client: TestClient) -> BrokerFixture:
    return make_broker(client)


@pytest.fixture
def admin(client: TestClient) -> tuple[BrokerFixture, str, MfaUser]:
    """A broker whose admin has MFA on; (broker, access token with otp, the admin's TOTP)."""
    b = make_broker(client)
    token, user = mfa_login(client, b.slug, b.admin_email)
    return b, token, user


def wrong_code(secret: str) -> str:
    totp = pyotp.TOTP(secret)
    now = time.time()
    valid = {totp.at(now + d) for d in (-60, -30, 0, 30)}
    return next(c for c in ("000000", "111111", "222222", "333333", "444444") if c not in valid)


def test_enrol_and_confirm(client: TestClient, broker: BrokerFixture) -> None:
    pwd = bearer(token_of(login(client, broker.slug, broker.admin_email)))
    enrol = client.post("/api/v1/auth/mfa/enrol", headers=pwd)
    assert enrol.status_code == 200
    secret = enrol.json()["secret"]
    assert enrol.json()["otpauthUri"].startswith("otpauth://totp/") and secret in enrol.json()["otpauthUri"]
    stored = sql(client, "select totp_secret_enc, totp_enabled from users where id = :u", {"u": broker.admin_id})
    assert stored[0][0] and secret not in stored[0][0] and stored[0][1] is False  # encrypted at rest
    # A wrong code does not switch it on, and login still needs the password only.
    bad = client.post("/api/v1/auth/mfa/confirm", json={"code": wrong_code(secret)}, headers=pwd)
    assert_problem(bad, 422, "validation-error")
    assert problem_fields(bad) == ["code"]
    assert login(client, broker.slug, broker.admin_email).status_code == 200
    wait_for_stable_step()
    ok = client.post("/api/v1/auth/mfa/confirm", json={"code": pyotp.TOTP(secret).now()}, headers=pwd)
    assert ok.status_code == 200 and ok.json()["enabled"] is True
    codes = ok.json()["recoveryCodes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    hashes = sql(client, "select recovery_codes::text from users where id = :u", {"u": broker.admin_id})[0][0]
    assert not any(c in hashes or c.replace("-", "") in hashes for c in codes)
    user = client.get(f"/api/v1/users/{broker.admin_id}", headers=broker.auth).json()
    assert user["mfaEnabled"] is True
    again = client.post("/api/v1/auth/mfa/enrol", headers=pwd)
    assert_problem(again, 422, "validation-error")
    assert {r.action for r in audit_rows(client, broker.id)} >= {"mfa.enrolment_started", "mfa.enabled"}


def test_login_requires_the_code_once_enabled(client: TestClient, admin: tuple[BrokerFixture, str, MfaUser]) -> None:
    b, _, user = admin
    resp = login(client, b.slug, b.admin_email)
    assert_problem(resp, 401, "mfa-required")
    assert problem_fields(resp) == ["totpCode"]
    # The code without the right password is still a wrong password.
    assert_problem(login(client, b.slug, b.admin_email, "not the password at all", totp=pyotp.TOTP(user.secret).now()),
                   401, "unauthorized")


def test_a_code_is_accepted_once(client: TestClient, admin: tuple[BrokerFixture, str, MfaUser]) -> None:
    b, _, user = admin
    reset_totp_step(client, user.user_id)
    wait_for_stable_step()
    code = pyotp.TOTP(user.secret).now()
    first = login(client, b.slug, b.admin_email, totp=code)
    assert first.status_code == 200
    assert set(jwt_claims(first.json()["accessToken"])["amr"]) == {"pwd", "otp"}
    replay = login(client, b.slug, b.admin_email, totp=code)
    assert_problem(replay, 422, "validation-error")
    assert problem_fields(replay) == ["totpCode"]


def test_only_the_current_and_previous_step(client: TestClient, admin: tuple[BrokerFixture, str, MfaUser]) -> None:
    b, _, user = admin
    totp = pyotp.TOTP(user.secret)
    for offset, accepted in ((-30, True), (-60, False), (30, False), (-90, False)):
        reset_totp_step(client, user.user_id)
        wait_for_stable_step()
        resp = login(client, b.slug, b.admin_email, totp=totp.at(time.time() + offset))
        assert (resp.status_code == 200) is accepted, (offset, resp.text)
    # After a previous-step code, the current step is still open; the previous one is spent.
    reset_totp_step(client, user.user_id)
    wait_for_stable_step()
    assert login(client, b.slug, b.admin_email, totp=totp.at(time.time() - 30)).status_code == 200
    assert login(client, b.slug, b.admin_email, totp=totp.at(time.time() - 30)).status_code == 422
    assert login(client, b.slug, b.admin_email, totp=totp.now()).status_code == 200


def test_repeated_wrong_codes_lock_mfa(client: TestClient, admin: tuple[BrokerFixture, str, MfaUser]) -> None:
    b, _, user = admin
    limit = client.app.state.services.settings.mfa_max_failures  # type: ignore[attr-defined]
    reset_totp_step(client, user.user_id)
    for _ in range(limit):
        assert_problem(login(client, b.slug, b.admin_email, totp=wrong_code(user.secret)), 422)
    wait_for_stable_step()
    locked = login(client, b.slug, b.admin_email, totp=pyotp.TOTP(user.secret).now())
    assert_problem(locked, 429, "too-many-attempts")  # even the right code, while locked
    assert_problem(login(client, b.slug, b.admin_email, recovery=user.recovery_codes[0]), 429)
    failures = [r for r in audit_rows(client, b.id, "auth.mfa_failed") if r.actor_id == str(user.user_id)]
    assert len(failures) == limit + 2 and all(r.ip == "testclient" for r in failures)
    # The lock is for a time: once it has passed (moved into the past here), the right code works.
    sql(client, "update users set mfa_locked_until = now() - interval '1 second' where id = :u", {"u": user.user_id})
    assert login(client, b.slug, b.admin_email, totp=pyotp.TOTP(user.secret).now()).status_code == 200


def test_wrong_codes_below_the_limit_do_not_lock(client: TestClient,
                                                 admin: tuple[BrokerFixture, str, MfaUser]) -> None:
    b, _, user = admin
    limit = client.app.state.services.settings.mfa_max_failures  # type: ignore[attr-defined]
    reset_totp_step(client, user.user_id)
    for _ in range(limit - 1):
        assert login(client, b.slug, b.admin_email, totp=wrong_code(user.secret)).status_code == 422
    wait_for_stable_step()
    assert login(client, b.slug, b.admin_email, totp=pyotp.TOTP(user.secret).now()).status_code == 200
    assert sql(client, "select mfa_failures from users where id = :u", {"u": user.user_id})[0][0] == 0


def test_recovery_code_works_once(client: TestClient, admin: tuple[BrokerFixture, str, MfaUser]) -> None:
    b, _, user = admin
    code = user.recovery_codes[3]
    ok = login(client, b.slug, b.admin_email, recovery=code.upper())
    assert ok.status_code == 200
    assert "otp" in jwt_claims(ok.json()["accessToken"])["amr"]
    again = login(client, b.slug, b.admin_email, recovery=code)
    assert_problem(again, 422, "validation-error")
    assert problem_fields(again) == ["recoveryCode"]
    assert login(client, b.slug, b.admin_email, recovery="abcdef-abcdef").status_code == 422
    assert login(client, b.slug, b.admin_email, recovery=user.recovery_codes[4]).status_code == 200
    left = sql(client, "select jsonb_array_length(recovery_codes) from users where id = :u", {"u": user.user_id})
    assert left[0][0] == 8


def test_refresh_keeps_the_second_factor(client: TestClient, admin: tuple[BrokerFixture, str, MfaUser]) -> None:
    b, _, user = admin
    reset_totp_step(client, user.user_id)
    pair = login(client, b.slug, b.admin_email, totp=pyotp.TOTP(user.secret).now()).json()
    new = client.post("/api/v1/auth/refresh", json={"refreshToken": pair["refreshToken"]}, headers=NO_AUTH)
    assert new.status_code == 200
    token = new.json()["accessToken"]
    assert "otp" in jwt_claims(token)["amr"]
    assert client.get(f"/api/v1/brokers/{b.id}/users", headers=bearer(token)).status_code == 200


def test_keys_have_no_mfa_to_enrol(client: TestClient, broker: BrokerFixture) -> None:
    assert_problem(client.post("/api/v1/auth/mfa/enrol", headers=broker.auth), 403, "forbidden")
    assert_problem(client.post("/api/v1/auth/mfa/enrol", headers=NO_AUTH), 401)


def _admin_actions(broker: BrokerFixture, other_user: uuid.UUID, key_id: str) -> list[tuple[str, str, object]]:
    b = broker.id
    return [
        ("PUT", f"/api/v1/brokers/{b}/config", {"maxLeverage": 20, "allowedOrigins": ["https://www.example.com"]}),
        ("POST", f"/api/v1/brokers/{b}/users",
         {"email": f"x-{uuid.uuid4().hex[:6]}@example.com", "role": "BROKER_USER", "password": USER_PASSWORD}),
        ("POST", f"/api/v1/brokers/{b}/api-keys", {"kind": "secret"}),
        ("POST", f"/api/v1/brokers/{b}/api-keys/{key_id}/rotate", {}),
        ("DELETE", f"/api/v1/brokers/{b}/api-keys/{key_id}", None),
        ("PATCH", f"/api/v1/users/{other_user}", {"role": "BROKER_ADMIN"}),
        ("PATCH", f"/api/v1/users/{other_user}", {"status": "disabled"}),
        ("GET", f"/api/v1/brokers/{b}/users", None),
        ("GET", f"/api/v1/brokers/{b}/api-keys", None),
        ("GET", f"/api/v1/users/{other_user}", None),
        ("GET", f"/api/v1/users/{other_user}/activity", None),
    ]


def test_broker_admin_without_mfa_gets_403_on_admin_powers(client: TestClient, broker: BrokerFixture) -> None:
    other_user, _ = create_user(client, broker, "BROKER_USER")
    key = client.post(f"/api/v1/brokers/{broker.id}/api-keys", json={"kind": "secret"}, headers=broker.auth).json()
    pwd_only = bearer(token_of(login(client, broker.slug, broker.admin_email)))
    for method, path, body in _admin_actions(broker, other_user, key["id"]):
        resp = client.request(method, path, json=body, headers=pwd_only)
        assert_problem(resp, 403, "mfa-required")
    # Nothing changed.
    user = client.get(f"/api/v1/users/{other_user}", headers=broker.auth).json()
    assert user["role"] == "BROKER_USER" and user["status"] == "active"
    assert client.get(f"/api/v1/brokers/{broker.id}", headers=broker.auth).json()["configVersion"] == 1
    # Non-admin things stay open to the password-only admin: own record, broker, calculations.
    assert client.get(f"/api/v1/users/{broker.admin_id}", headers=pwd_only).status_code == 200
    assert client.get(f"/api/v1/brokers/{broker.id}", headers=pwd_only).status_code == 200
    assert client.get("/api/v1/calculations", headers=pwd_only).status_code == 200


def test_the_same_admin_with_mfa_may(client: TestClient, admin: tuple[BrokerFixture, str, MfaUser]) -> None:
    b, token, _ = admin
    other_user, _ = create_user(client, b, "BROKER_USER")
    key = client.post(f"/api/v1/brokers/{b.id}/api-keys", json={"kind": "secret"}, headers=b.auth).json()
    for method, path, body in _admin_actions(b, other_user, key["id"]):
        resp = client.request(method, path, json=body, headers=bearer(token))
        assert resp.status_code in (200, 201), (method, path, resp.text)
