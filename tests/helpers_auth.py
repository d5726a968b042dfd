"""Shared helpers for the identity and tenancy tests: logins, MFA, users, direct database access.

Direct SQL goes through the owner URL (superuser on the embedded server: RLS does not apply), and is
used only to arrange state (timestamps, replay counters) or to inspect what the API stored.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pyotp
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from app.admin.brokers.schemas import BrokerConfig, BrokerCreate
from app.admin.brokers.service import create_broker
from tests.conftest import ADMIN_PASSWORD, BrokerFixture

NO_AUTH = {"Authorization": ""}  # an empty header: the session client then sends no credential
USER_PASSWORD = "another long passphrase 42"
POSITION_SIZE = {"accountBalance": 10000, "accountCurrency": "USD", "currencyPair": "EURUSD",
                 "entryPrice": 1.1850, "stopLoss": 1.1820, "riskPercentage": 2, "leverage": 30}
PIP_VALUE = {"accountCurrency": "USD", "currencyPair": "USDJPY", "lots": 1, "price": 150.0}


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def sql(client: TestClient, statement: str, params: dict[str, Any] | None = None, url: str | None = None) -> list[Any]:
    """Run one statement in its own transaction (owner URL unless `url` is given); rows, if any."""
    target = url or client.app.state.services.db.urls.owner  # type: ignore[attr-defined]

    async def run() -> list[Any]:
        engine = create_async_engine(target, poolclass=NullPool)
        try:
            async with engine.begin() as conn:
                result = await conn.execute(text(statement), params or {})
                return list(result.all()) if result.returns_rows else []
        finally:
            await engine.dispose()

    return client.portal.call(run)  # type: ignore[arg-type]


def assert_problem(resp: Response, status: int, slug: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("application/problem+json"), resp.headers
    body: dict[str, Any] = resp.json()
    assert body["status"] == status
    if slug is not None:
        assert body["type"] == f"/problems/{slug}", body
    return body


def problem_fields(resp: Response) -> list[str]:
    return [e["field"] for e in resp.json().get("errors", [])]


def shape(body: dict[str, Any]) -> dict[str, Any]:
    """A problem body without what legitimately differs between two requests (path, request id)."""
    return {k: v for k, v in body.items() if k not in ("instance", "request_id")}


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    out: dict[str, Any] = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return out


# --- logins and MFA ------------------------------------------------------------------------------
def login(client: TestClient, slug: str, email: str, password: str = ADMIN_PASSWORD, *, totp: str | None = None,
          recovery: str | None = None, headers: dict[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"broker": slug, "email": email, "password": password}
    if totp is not None:
        body["totpCode"] = totp
    if recovery is not None:
        body["recoveryCode"] = recovery
    return client.post("/api/v1/auth/token", json=body, headers={**NO_AUTH, **(headers or {})})


def token_of(resp: Response) -> str:
    assert resp.status_code == 200, resp.text
    token: str = resp.json()["accessToken"]
    return token


def user_id_by_email(client: TestClient, broker_id: uuid.UUID, email: str) -> uuid.UUID:
    rows = sql(client, "select id from users where broker_id = :b and lower(email) = lower(:e)",
               {"b": broker_id, "e": email})
    assert len(rows) == 1
    uid: uuid.UUID = rows[0][0]
    return uid


def reset_totp_step(client: TestClient, user_id: uuid.UUID) -> None:
    """Forget the last accepted TOTP step, so the current step's code is usable once more (test set-up only)."""
    sql(client, "update users set totp_last_step = null where id = :u", {"u": user_id})


def wait_for_stable_step(margin: float = 3.0) -> None:
    """Wait until at least `margin` seconds remain in the current 30 s step, so a code computed now
    still belongs to the same step when the server checks it."""
    left = 30 - (time.time() % 30)
    if left < margin:
        time.sleep(left + 0.05)


@dataclass
class MfaUser:
    user_id: uuid.UUID
    secret: str
    recovery_codes: list[str]


def enable_mfa(client: TestClient, pwd_token: str) -> tuple[str, list[str]]:
    enrol = client.post("/api/v1/auth/mfa/enrol", headers=bearer(pwd_token))
    assert enrol.status_code == 200, enrol.text
    secret: str = enrol.json()["secret"]
    confirm = client.post("/api/v1/auth/mfa/confirm", json={"code": pyotp.TOTP(secret).now()},
                          headers=bearer(pwd_token))
    assert confirm.status_code == 200, confirm.text
    assert confirm.json()["enabled"] is True
    return secret, list(confirm.json()["recoveryCodes"])


def mfa_login(client: TestClient, slug: str, email: str, password: str = ADMIN_PASSWORD) -> tuple[str, MfaUser]:
    """Log in with a password, enrol and confirm TOTP, log in again with a code: an access token with amr otp."""
    pwd = token_of(login(client, slug, email, password))
    secret, codes = enable_mfa(client, pwd)
    user_id = uuid.UUID(jwt_claims(pwd)["sub"])
    reset_totp_step(client, user_id)  # the confirm used this step's code; a real user would wait 30 s
    token = token_of(login(client, slug, email, password, totp=pyotp.TOTP(secret).now()))
    assert "otp" in jwt_claims(token)["amr"]
    return token, MfaUser(user_id, secret, codes)


def admin_token(client: TestClient, broker: BrokerFixture) -> str:
    """An MFA-backed BROKER_ADMIN access token for the broker's fixture admin."""
    token, _ = mfa_login(client, broker.slug, broker.admin_email)
    return token


def create_user(client: TestClient, broker: BrokerFixture, role: str, *, email: str | None = None,
                password: str = USER_PASSWORD) -> tuple[uuid.UUID, str]:
    """Create a user with the broker's secret key; returns (id, email)."""
    email = email or f"{role.lower()}-{uuid.uuid4().hex[:8]}@{broker.slug}.example.com"
    resp = client.post(f"/api/v1/brokers/{broker.id}/users",
                       json={"email": email, "role": role, "password": password}, headers=broker.auth)
    assert resp.status_code == 201, resp.text
    return uuid.UUID(resp.json()["id"]), email


def user_token(client: TestClient, broker: BrokerFixture, role: str) -> tuple[uuid.UUID, str]:
    """A fresh user of `role` in the broker and its (password-only) access token."""
    uid, email = create_user(client, broker, role)
    return uid, token_of(login(client, broker.slug, email, USER_PASSWORD))


def superadmin_token(client: TestClient) -> str:
    """A SUPERADMIN of a fresh platform broker, logged in with MFA."""
    slug = f"p-{uuid.uuid4().hex[:10]}"
    email = f"root@{slug}.example.com"
    spec = BrokerCreate(name=f"Platform {slug}", slug=slug, config=BrokerConfig(), admin_email=email,
                        admin_password=ADMIN_PASSWORD)
    app = client.app
    client.portal.call(lambda: create_broker(app.state.services.db, app.state.services.auth, spec,  # type: ignore[attr-defined]
                                             is_platform=True, admin_role="SUPERADMIN"))
    token, _ = mfa_login(client, slug, email)
    return token


def calculate(client: TestClient, headers: dict[str, str], body: dict[str, Any] | None = None,
              path: str = "/api/v1/calculate/position-size") -> Response:
    return client.post(path, json=body if body is not None else POSITION_SIZE, headers=headers)


def audit_rows(client: TestClient, broker_id: uuid.UUID, action: str | None = None) -> list[Any]:
    statement = ("select action, actor_type, actor_id, target_type, target_id, ip, request_id, details "
                 "from audit_logs where broker_id = :b")
    params: dict[str, Any] = {"b": broker_id}
    if action is not None:
        statement += " and action = :a"
        params["a"] = action
    return sql(client, statement + " order by created_at", params)


def never_500(client: TestClient) -> Iterator[None]:
    """Fixture body: fail the test if any response it received was a 5xx."""
    seen: list[str] = []

    def hook(resp: Response) -> None:
        if resp.status_code >= 500:
            seen.append(f"{resp.request.method} {resp.request.url.path} -> {resp.status_code}")

    client.event_hooks["response"].append(hook)
    try:
        yield
    finally:
        client.event_hooks["response"].remove(hook)
    assert not seen, f"server errors: {seen}"
