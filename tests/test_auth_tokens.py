"""Access tokens (ES256, kid, typ at+jwt, aud, exp) and refresh tokens (rotation, grace window, reuse
detection, logout). Every forged or stale token is a 401 problem, never a 500."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey

from app.auth.tokens import TokenSigner
from tests.conftest import ADMIN_PASSWORD, BrokerFixture, make_broker
from tests.helpers_auth import (
    NO_AUTH,
    USER_PASSWORD,
    assert_problem,
    audit_rows,
    bearer,
    create_user,
    jwt_claims,
    login,
    shape,
    sql,
    token_of,
)

pytestmark = pytest.mark.usefixtures("no_server_errors")

PROTECTED = "/api/v1/calculations"


@pytest.fixture(scope="module")
def broker(client: TestClient) -> BrokerFixture:
    return make_broker(client)


@pytest.fixture(scope="module")
def other(client: TestClient) -> BrokerFixture:
    return make_broker(client)


def signer(client: TestClient) -> TokenSigner:
    s: TokenSigner = client.app.state.services.auth.signer  # type: ignore[attr-defined]
    return s


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def claims_for(client: TestClient, broker: BrokerFixture, **over: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": signer(client).issuer, "aud": "forexrisk-api", "sub": str(broker.admin_id),
            "broker_id": str(broker.id), "role": "BROKER_ADMIN", "iat": now, "nbf": now, "exp": now + 900,
            "jti": uuid.uuid4().hex, "amr": ["pwd"]}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def forge(client: TestClient, claims: dict[str, Any], key: ECKey | None = None, **header: Any) -> str:
    s = signer(client)
    head = {"alg": "ES256", "kid": s.kid, "typ": "at+jwt", **header}
    head = {k: v for k, v in head.items() if v is not None}
    return jwt.encode(head, claims, key or s.key, algorithms=["ES256"])


def get(client: TestClient, token: str) -> Any:
    return client.get(PROTECTED, headers=bearer(token))


def test_a_well_formed_token_of_ours_is_accepted(client: TestClient, broker: BrokerFixture) -> None:
    # The baseline every rejection below differs from in one respect only.
    assert get(client, forge(client, claims_for(client, broker))).status_code == 200
    real = token_of(login(client, broker.slug, broker.admin_email))
    header = orjson.loads(base64.urlsafe_b64decode(real.split(".")[0] + "=="))
    assert header == {"alg": "ES256", "kid": signer(client).kid, "typ": "at+jwt"}
    claims = jwt_claims(real)
    assert claims["exp"] - claims["iat"] == 15 * 60 and claims["aud"] == "forexrisk-api"
    assert get(client, real).status_code == 200


def test_alg_none_is_401(client: TestClient, broker: BrokerFixture) -> None:
    claims = claims_for(client, broker)
    for alg in ("none", "None", "NONE"):
        head = {"alg": alg, "kid": signer(client).kid, "typ": "at+jwt"}
        token = f"{b64(orjson.dumps(head))}.{b64(orjson.dumps(claims))}."
        assert_problem(get(client, token), 401, "unauthorized")
        # ... and with the real signature of a genuine token glued on.
        genuine = forge(client, claims).split(".")[2]
        assert_problem(get(client, token + genuine), 401, "unauthorized")


def test_hs256_signed_with_our_public_key_is_401(client: TestClient, broker: BrokerFixture) -> None:
    jwks = client.get("/.well-known/jwks.json", headers=NO_AUTH).json()
    assert len(jwks["keys"]) == 1 and "d" not in jwks["keys"][0]  # never the private part
    public = ECKey.import_key(jwks["keys"][0])
    secrets = [public.as_pem(private=False), orjson.dumps(jwks["keys"][0]), orjson.dumps(jwks)]
    claims = claims_for(client, broker)
    for alg, digest in (("HS256", hashlib.sha256), ("HS512", hashlib.sha512)):
        head = {"alg": alg, "kid": jwks["keys"][0]["kid"], "typ": "at+jwt"}
        signing_input = f"{b64(orjson.dumps(head))}.{b64(orjson.dumps(claims))}"
        for secret in secrets:
            sig = hmac.new(secret, signing_input.encode(), digest).digest()
            assert_problem(get(client, f"{signing_input}.{b64(sig)}"), 401, "unauthorized")


@pytest.mark.parametrize("case", ["wrong-aud", "no-aud", "wrong-iss", "no-exp", "no-sub", "no-broker", "no-jti",
                                  "unknown-role", "bad-sub", "not-yet-valid"])
def test_bad_claims_are_401(client: TestClient, broker: BrokerFixture, case: str) -> None:
    now = int(time.time())
    over: dict[str, Any] = {
        "wrong-aud": {"aud": "someone-else"}, "no-aud": {"aud": None}, "wrong-iss": {"iss": "https://evil.example"},
        "no-exp": {"exp": None}, "no-sub": {"sub": None}, "no-broker": {"broker_id": None}, "no-jti": {"jti": None},
        "unknown-role": {"role": "GOD"}, "bad-sub": {"sub": "not-a-uuid"},
        "not-yet-valid": {"nbf": now + 3600, "iat": now + 3600, "exp": now + 7200},
    }[case]
    assert_problem(get(client, forge(client, claims_for(client, broker, **over))), 401, "unauthorized")


@pytest.mark.parametrize("typ", ["JWT", "id_token+jwt", "at+JWT ", None])
def test_wrong_typ_is_401(client: TestClient, broker: BrokerFixture, typ: str | None) -> None:
    assert_problem(get(client, forge(client, claims_for(client, broker), typ=typ)), 401, "unauthorized")


def test_expiry_beyond_the_leeway_is_401(client: TestClient, broker: BrokerFixture) -> None:
    now = int(time.time())
    stale = claims_for(client, broker, iat=now - 3600, nbf=now - 3600, exp=now - 120)
    assert_problem(get(client, forge(client, stale)), 401, "unauthorized")
    # Inside the 30 s leeway a just-expired token still passes (clock skew), so the 401 above is the expiry.
    just = claims_for(client, broker, iat=now - 900, nbf=now - 900, exp=now - 5)
    assert get(client, forge(client, just)).status_code == 200


def test_unknown_kid_and_foreign_key_are_401(client: TestClient, broker: BrokerFixture) -> None:
    claims = claims_for(client, broker)
    assert_problem(get(client, forge(client, claims, kid="someone-elses-key")), 401, "unauthorized")
    assert_problem(get(client, forge(client, claims, kid=None)), 401, "unauthorized")
    stranger = ECKey.generate_key("P-256")
    assert_problem(get(client, forge(client, claims, key=stranger)), 401, "unauthorized")
    # A header pointing at a key elsewhere is not followed.
    assert_problem(get(client, forge(client, claims, key=stranger, jku="https://evil.example/jwks.json")), 401)


def test_tampered_payload_is_401(client: TestClient, broker: BrokerFixture, other: BrokerFixture) -> None:
    token = forge(client, claims_for(client, broker))
    head, _, sig = token.split(".")
    moved = b64(orjson.dumps(claims_for(client, broker, broker_id=str(other.id))))
    assert_problem(get(client, f"{head}.{moved}.{sig}"), 401, "unauthorized")


def test_token_for_another_broker_with_our_signature_sees_only_that_broker(
        client: TestClient, broker: BrokerFixture, other: BrokerFixture) -> None:
    # The broker comes from the verified claims, never from anything the caller adds.
    token = token_of(login(client, broker.slug, broker.admin_email))
    resp = client.get(f"/api/v1/brokers/{other.id}", headers={**bearer(token), "X-Tenant-ID": str(other.id)})
    assert_problem(resp, 404, "not-found")


def test_garbage_tokens_are_401(client: TestClient) -> None:
    for junk in ("a.b.c", "a.b", "....", "eyJ.eyJ.x", "x" * 5000, "Ünïcode.tok.en"):
        resp = client.get(PROTECTED, headers={"Authorization": f"Bearer {junk}".encode()})  # type: ignore[dict-item]
        assert_problem(resp, 401, "unauthorized")


# --- login ---------------------------------------------------------------------------------------------
def test_login_failures_look_alike_and_are_audited(client: TestClient, broker: BrokerFixture) -> None:
    wrong_pw = login(client, broker.slug, broker.admin_email, "wrong password entirely")
    no_user = login(client, broker.slug, "nobody@example.com", ADMIN_PASSWORD)
    no_broker = login(client, "no-such-broker", broker.admin_email, ADMIN_PASSWORD)
    bodies = [shape(assert_problem(r, 401, "unauthorized")) for r in (wrong_pw, no_user, no_broker)]
    assert bodies[0] == bodies[1] == bodies[2]
    failed = audit_rows(client, broker.id, "auth.login_failed")
    assert any(r.actor_id == str(broker.admin_id) and r.ip == "testclient" and r.request_id for r in failed)


def test_disabled_user_cannot_log_in_or_refresh(client: TestClient, broker: BrokerFixture) -> None:
    uid, email = create_user(client, broker, "BROKER_USER")
    pair = login(client, broker.slug, email, USER_PASSWORD).json()
    resp = client.patch(f"/api/v1/users/{uid}", json={"status": "disabled"}, headers=broker.auth)
    assert resp.status_code == 200 and resp.json()["status"] == "disabled"
    assert_problem(login(client, broker.slug, email, USER_PASSWORD), 401, "unauthorized")
    assert_problem(refresh(client, pair["refreshToken"]), 401, "unauthorized")


# --- refresh tokens ------------------------------------------------------------------------------------
def refresh(client: TestClient, token: str) -> Any:
    return client.post("/api/v1/auth/refresh", json={"refreshToken": token}, headers=NO_AUTH)


def fresh_session(client: TestClient, broker: BrokerFixture) -> tuple[uuid.UUID, dict[str, Any]]:
    uid, email = create_user(client, broker, "BROKER_USER")
    resp = login(client, broker.slug, email, USER_PASSWORD)
    assert resp.status_code == 200
    return uid, resp.json()


def age_used_tokens(client: TestClient, user_id: uuid.UUID, seconds: int) -> None:
    """Move the use of the user's refresh tokens into the past (instead of waiting out the grace window)."""
    sql(client, "update refresh_tokens set used_at = used_at - make_interval(secs => :s) "
                "where user_id = :u and used_at is not null", {"u": user_id, "s": seconds})


def test_refresh_rotates_and_a_retry_inside_the_grace_window_gets_the_same_pair(
        client: TestClient, broker: BrokerFixture) -> None:
    uid, first = fresh_session(client, broker)
    rt1 = first["refreshToken"]
    r2 = refresh(client, rt1)
    assert r2.status_code == 200, r2.text
    rt2 = r2.json()["refreshToken"]
    assert rt2 != rt1 and jwt_claims(r2.json()["accessToken"])["sub"] == str(uid)
    again = refresh(client, rt1)  # the response was lost; the client retries with RT1
    assert again.status_code == 200 and again.json()["refreshToken"] == rt2
    assert get(client, again.json()["accessToken"]).status_code == 200
    r3 = refresh(client, rt2)
    assert r3.status_code == 200 and r3.json()["refreshToken"] not in (rt1, rt2)
    # Only plain hashes are stored.
    stored = sql(client, "select token_hash, successor_hash from refresh_tokens where user_id = :u", {"u": uid})
    assert len(stored) == 3 and all(rt1.encode() not in (h or b"") for row in stored for h in row)


def test_replay_after_the_grace_window_revokes_the_family(client: TestClient, broker: BrokerFixture) -> None:
    uid, first = fresh_session(client, broker)
    rt1 = first["refreshToken"]
    rt2 = refresh(client, rt1).json()["refreshToken"]
    age_used_tokens(client, uid, 120)
    body = assert_problem(refresh(client, rt1), 401, "unauthorized")
    assert "reuse" in body["detail"].lower()
    assert_problem(refresh(client, rt2), 401, "unauthorized")  # the whole family is gone
    events = [r for r in audit_rows(client, broker.id, "auth.refresh_reuse_detected") if r.actor_id == str(uid)]
    assert len(events) == 1 and events[0].ip == "testclient" and events[0].request_id
    assert events[0].details["familyRevoked"] is True
    assert sql(client, "select count(*) from refresh_tokens where user_id = :u and revoked_at is null",
               {"u": uid})[0][0] == 0
    # Another login starts a new, working family.
    _, email = uid, sql(client, "select email from users where id = :u", {"u": uid})[0][0]
    fresh = login(client, broker.slug, email, USER_PASSWORD).json()["refreshToken"]
    assert refresh(client, fresh).status_code == 200


def test_replay_of_an_older_token_revokes_even_inside_the_window(client: TestClient, broker: BrokerFixture) -> None:
    # The grace retry is for the immediately previous token only: once RT2 is used, RT1 is a replay.
    _, first = fresh_session(client, broker)
    rt1 = first["refreshToken"]
    rt2 = refresh(client, rt1).json()["refreshToken"]
    rt3 = refresh(client, rt2).json()["refreshToken"]
    assert_problem(refresh(client, rt1), 401, "unauthorized")
    assert_problem(refresh(client, rt3), 401, "unauthorized")


def test_expired_refresh_tokens_are_401(client: TestClient, broker: BrokerFixture) -> None:
    for column in ("expires_at", "idle_expires_at"):
        uid, first = fresh_session(client, broker)
        sql(client, f"update refresh_tokens set {column} = now() - interval '1 second' where user_id = :u",
            {"u": uid})
        assert_problem(refresh(client, first["refreshToken"]), 401, "unauthorized")


def test_refresh_token_is_bound_to_its_broker(client: TestClient, broker: BrokerFixture,
                                              other: BrokerFixture) -> None:
    _, first = fresh_session(client, broker)
    rt = first["refreshToken"]
    moved = rt.replace(broker.id.hex, other.id.hex)
    assert_problem(refresh(client, moved), 401, "unauthorized")
    for junk in ("fxr_rt_nothex_x", "x", "fxr_rt_" + uuid.uuid4().hex + "_" + "a" * 43):
        assert_problem(refresh(client, junk), 401, "unauthorized")
    assert refresh(client, rt).status_code == 200  # untouched by the attempts


def test_refresh_token_is_not_an_access_token(client: TestClient, broker: BrokerFixture) -> None:
    _, first = fresh_session(client, broker)
    assert_problem(get(client, first["refreshToken"]), 401, "unauthorized")
    # An access token is no refresh token (it does not even fit the field).
    wrong = refresh(client, first["accessToken"])
    assert_problem(wrong, 422, "validation-error")
    assert [e["field"] for e in wrong.json()["errors"]] == ["refreshToken"]


def test_logout_revokes_the_session(client: TestClient, broker: BrokerFixture) -> None:
    uid, first = fresh_session(client, broker)
    rt2 = refresh(client, first["refreshToken"]).json()["refreshToken"]
    out = client.post("/api/v1/auth/logout", json={"refreshToken": rt2}, headers=NO_AUTH)
    assert out.status_code == 204
    assert_problem(refresh(client, rt2), 401, "unauthorized")
    assert_problem(refresh(client, first["refreshToken"]), 401, "unauthorized")
    assert [r.actor_id for r in audit_rows(client, broker.id, "auth.logout")].count(str(uid)) == 1
    # Logging out an unknown token says nothing about it.
    assert client.post("/api/v1/auth/logout", json={"refreshToken": "whatever"}, headers=NO_AUTH).status_code == 204


def test_every_login_is_audited(client: TestClient, broker: BrokerFixture) -> None:
    uid, _ = fresh_session(client, broker)
    rows = [r for r in audit_rows(client, broker.id, "auth.login") if r.actor_id == str(uid)]
    assert len(rows) == 1
    assert rows[0].actor_type == "user" and rows[0].ip == "testclient" and rows[0].request_id
    assert rows[0].details["amr"] == ["pwd"]
