"""A refresh carries exactly the login's authentication methods: it never adds a second factor."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import BrokerFixture
from tests.helpers_auth import NO_AUTH, bearer, enable_mfa, jwt_claims, login


def test_a_password_session_does_not_gain_otp_when_totp_is_enrolled_later(client: TestClient,
                                                                          broker_a: BrokerFixture) -> None:
    first = login(client, broker_a.slug, broker_a.admin_email)
    assert first.status_code == 200
    pwd_session = first.json()
    enable_mfa(client, pwd_session["accessToken"])  # the user now has TOTP; this session never showed a code
    refreshed = client.post("/api/v1/auth/refresh", json={"refreshToken": pwd_session["refreshToken"]},
                            headers=NO_AUTH)
    assert refreshed.status_code == 200, refreshed.text
    token = refreshed.json()["accessToken"]
    assert "otp" not in jwt_claims(token)["amr"]
    # and so the refreshed token still cannot use admin powers
    r = client.post(f"/api/v1/brokers/{broker_a.id}/api-keys", json={"kind": "secret"}, headers=bearer(token))
    assert r.status_code == 403


def test_a_users_write_key_cannot_create_a_broker_admin(client: TestClient, broker_a: BrokerFixture) -> None:
    made = client.post(f"/api/v1/brokers/{broker_a.id}/api-keys", json={"kind": "secret", "scopes": ["users:write"]},
                       headers=broker_a.auth)
    assert made.status_code == 201, made.text
    narrow = bearer(made.json()["key"])
    admin = client.post(f"/api/v1/brokers/{broker_a.id}/users", headers=narrow,
                        json={"email": "boss@example.com", "role": "BROKER_ADMIN", "password": "x" * 16})
    assert admin.status_code == 403
    user = client.post(f"/api/v1/brokers/{broker_a.id}/users",
                       json={"email": "desk@example.com", "role": "BROKER_USER", "password": "x" * 16}, headers=narrow)
    assert user.status_code == 201
