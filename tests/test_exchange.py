"""`POST /api/v1/auth/exchange`: a JWT the broker's server signed HS256 with its secret key, exchanged for ours."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import OctKey
from sqlalchemy import select

from app.auth import keys
from app.calculations.schemas import POSITION_SIZE_EXAMPLE
from app.models import AuditLog, User
from tests.conftest import BrokerFixture, make_broker

NO_AUTH = {"Authorization": ""}  # an empty header: the session client then sends no credential
PATH = "/api/v1/auth/exchange"


def key_id(full_key: str) -> str:
    parsed = keys.parse(full_key)
    assert parsed is not None
    return parsed.key_id


def claims_for(broker: BrokerFixture, **override: Any) -> dict[str, Any]:
    now = int(time.time())
    out: dict[str, Any] = {"iss": broker.slug, "sub": f"trader-{uuid.uuid4().hex[:8]}", "aud": "forexrisk",
                           "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}
    out.update(override)
    return {k: v for k, v in out.items() if v is not None}


def mint(signing_key: str, claims: dict[str, Any], kid: str | None = None, alg: str = "HS256") -> str:
    header = {"alg": alg, "kid": kid or key_id(signing_key), "typ": "JWT"}
    return jwt.encode(header, claims, OctKey.import_key(signing_key), algorithms=[alg])


def unsigned(claims: dict[str, Any], kid: str) -> str:
    def b64(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
    return f"{b64({'alg': 'none', 'kid': kid})}.{b64(claims)}."


def post(client: TestClient, token: str) -> Any:
    return client.post(PATH, json={"token": token}, headers=NO_AUTH)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_exchange_provisions_an_end_user_once(client: TestClient, broker_a: BrokerFixture) -> None:
    c = claims_for(broker_a, email="ada@trader.example.com", name="Ada")
    r = post(client, mint(broker_a.secret_key, c))
    assert r.status_code == 200, r.text
    pair = r.json()
    assert set(pair) == {"accessToken", "tokenType", "expiresIn", "refreshToken"}
    first = client.app.state.services.auth.signer.verify(pair["accessToken"])  # type: ignore[attr-defined]
    assert first.broker_id == broker_a.id and first.role == "END_USER" and first.amr == ("broker",)
    again = post(client, mint(broker_a.secret_key, {**c, "jti": uuid.uuid4().hex}))
    assert again.status_code == 200, again.text
    assert client.app.state.services.auth.signer.verify(again.json()["accessToken"]).sub == first.sub  # type: ignore[attr-defined]

    async def stored() -> tuple[list[User], list[str]]:
        async with client.app.state.services.db.tenant(broker_a.id) as s:  # type: ignore[attr-defined]
            users = (await s.execute(select(User).where(User.sso_issuer == f"broker:{broker_a.slug}"))).scalars()
            actions = (await s.execute(select(AuditLog.action))).scalars()
            return list(users), list(actions)
    users, actions = client.portal.call(stored)  # type: ignore[union-attr]
    assert [(u.email, u.sso_subject, u.role) for u in users] == [("ada@trader.example.com", c["sub"], "END_USER")]
    assert actions.count("auth.exchange") == 2
    # The refresh token of the pair rotates like any other.
    assert client.post("/api/v1/auth/refresh", json={"refreshToken": pair["refreshToken"]},
                       headers=NO_AUTH).status_code == 200


def test_without_email_the_user_gets_a_reserved_placeholder(client: TestClient, broker_a: BrokerFixture) -> None:
    r = post(client, mint(broker_a.secret_key, claims_for(broker_a)))
    assert r.status_code == 200, r.text
    sub = client.app.state.services.auth.signer.verify(r.json()["accessToken"]).sub  # type: ignore[attr-defined]

    async def email() -> str:
        async with client.app.state.services.db.tenant(broker_a.id) as s:  # type: ignore[attr-defined]
            return (await s.execute(select(User.email).where(User.id == sub))).scalar_one()
    assert client.portal.call(email).endswith(".invalid")  # type: ignore[union-attr]


def test_an_email_already_taken_is_never_linked(client: TestClient, broker_a: BrokerFixture) -> None:
    # The admin's email claimed by a trader token must not sign in as the admin.
    r = post(client, mint(broker_a.secret_key, claims_for(broker_a, email=broker_a.admin_email)))
    assert r.status_code == 200, r.text
    claims = client.app.state.services.auth.signer.verify(r.json()["accessToken"])  # type: ignore[attr-defined]
    assert claims.sub != broker_a.admin_id and claims.role == "END_USER"


def test_a_replayed_jti_is_refused(client: TestClient, broker_a: BrokerFixture) -> None:
    token = mint(broker_a.secret_key, claims_for(broker_a))
    assert post(client, token).status_code == 200
    r = post(client, token)
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    assert "accessToken" not in r.json()
    # The same jti under another broker is that broker's own business (jtis are per tenant).
    other = make_broker(client)
    jti = uuid.uuid4().hex
    assert post(client, mint(broker_a.secret_key, claims_for(broker_a, jti=jti))).status_code == 200
    assert post(client, mint(other.secret_key, claims_for(other, jti=jti))).status_code == 200


@pytest.mark.parametrize("case", [
    "alg-none", "hs256-with-another-brokers-key", "hs512", "wrong-aud", "wrong-iss", "expired",
    "lifetime-over-10-min", "missing-jti", "missing-sub", "unknown-kid", "not-a-jwt", "tampered-payload",
])
def test_bad_tokens_get_401(client: TestClient, broker_a: BrokerFixture, broker_b: BrokerFixture, case: str) -> None:
    now = int(time.time())
    kid = key_id(broker_a.secret_key)
    token = {
        "alg-none": lambda: unsigned(claims_for(broker_a), kid),
        # Signed with B's secret key but claiming A's key id (and A as issuer).
        "hs256-with-another-brokers-key": lambda: mint(broker_b.secret_key, claims_for(broker_a), kid=kid),
        "hs512": lambda: mint(broker_a.secret_key, claims_for(broker_a), alg="HS512"),
        "wrong-aud": lambda: mint(broker_a.secret_key, claims_for(broker_a, aud="forexrisk-api")),
        "wrong-iss": lambda: mint(broker_a.secret_key, claims_for(broker_a, iss=broker_b.slug)),
        "expired": lambda: mint(broker_a.secret_key, claims_for(broker_a, iat=now - 700, exp=now - 100)),
        "lifetime-over-10-min": lambda: mint(broker_a.secret_key, claims_for(broker_a, exp=now + 601)),
        "missing-jti": lambda: mint(broker_a.secret_key, claims_for(broker_a, jti=None)),
        "missing-sub": lambda: mint(broker_a.secret_key, claims_for(broker_a, sub=None)),
        "unknown-kid": lambda: mint(broker_a.secret_key, claims_for(broker_a), kid="A" * 12),
        "not-a-jwt": lambda: "definitely.not.a-jwt",
        "tampered-payload": lambda: _tamper(mint(broker_a.secret_key, claims_for(broker_a))),
    }[case]()
    r = post(client, token)
    assert r.status_code == 401, r.text
    assert r.headers["content-type"] == "application/problem+json" and "accessToken" not in r.json()


def _tamper(token: str) -> str:
    header, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "someone-else"
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{header}.{body}.{sig}"


def test_publishable_revoked_and_rotated_out_keys_cannot_sign(client: TestClient, broker_a: BrokerFixture) -> None:
    # A publishable key has no signing secret: even "signed" with its full string it never verifies.
    assert post(client, mint(broker_a.publishable_key, claims_for(broker_a))).status_code == 401
    r = client.post(f"/api/v1/brokers/{broker_a.id}/api-keys", json={"kind": "secret", "name": "signer"},
                    headers=bearer(broker_a.secret_key))
    assert r.status_code == 201, r.text
    signer, signer_id = r.json()["key"], r.json()["id"]
    assert post(client, mint(signer, claims_for(broker_a))).status_code == 200
    r = client.delete(f"/api/v1/brokers/{broker_a.id}/api-keys/{signer_id}", headers=bearer(broker_a.secret_key))
    assert r.status_code == 200, r.text
    assert post(client, mint(signer, claims_for(broker_a))).status_code == 401

    async def failures() -> list[dict[str, Any]]:
        async with client.app.state.services.db.tenant(broker_a.id) as s:  # type: ignore[attr-defined]
            rows = await s.execute(select(AuditLog.details).where(AuditLog.action == "auth.exchange_failed"))
            return list(rows.scalars())
    assert {"reason": "key revoked"} in client.portal.call(failures)  # type: ignore[union-attr]


def test_the_end_user_token_calculates_reads_its_own_and_nothing_admin(client: TestClient,
                                                                        broker_a: BrokerFixture) -> None:
    access = post(client, mint(broker_a.secret_key, claims_for(broker_a))).json()["accessToken"]
    other = post(client, mint(broker_a.secret_key, claims_for(broker_a))).json()["accessToken"]
    r = client.post("/api/v1/calculate/position-size", json=POSITION_SIZE_EXAMPLE, headers=bearer(access))
    assert r.status_code == 200, r.text
    calc_id = r.json()["calculationId"]
    r = client.post("/api/v1/calculate/position-size", json=POSITION_SIZE_EXAMPLE, headers=bearer(other))
    assert r.status_code == 200, r.text
    other_calc = r.json()["calculationId"]

    mine = client.get("/api/v1/calculations", headers=bearer(access))
    assert mine.status_code == 200, mine.text
    assert [i["calculationId"] for i in mine.json()["items"]] == [calc_id]  # not the other trader's
    assert client.get(f"/api/v1/calculations/{calc_id}", headers=bearer(access)).status_code == 200
    assert client.get(f"/api/v1/calculations/{other_calc}", headers=bearer(access)).status_code == 404

    for method, path in [("GET", f"/api/v1/brokers/{broker_a.id}/api-keys"),
                         ("GET", f"/api/v1/brokers/{broker_a.id}/users"),
                         ("GET", f"/api/v1/brokers/{broker_a.id}/sso"),
                         ("PUT", f"/api/v1/brokers/{broker_a.id}/config")]:
        r = client.request(method, path, headers=bearer(access), json={} if method == "PUT" else None)
        assert r.status_code == 403, (method, path, r.status_code, r.text)
