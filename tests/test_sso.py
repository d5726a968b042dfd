"""OIDC single sign-on against a real provider on loopback (tests/oidc_provider.py): real HTTP, real
ES256 signatures, PKCE and nonce checked on both sides, state kept server-side in `sso_states`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from app.models import AuditLog, SsoConnection, SsoState
from tests.conftest import ADMIN_PASSWORD, BrokerFixture, make_broker
from tests.oidc_provider import Login, Provider, ServedProvider

NO_AUTH = {"Authorization": ""}  # an empty header: the session client then sends no credential


@pytest.fixture(scope="module")
def served() -> Iterator[Provider]:
    with ServedProvider(Provider()) as provider:
        yield provider


@pytest.fixture
def provider(served: Provider) -> Iterator[Provider]:
    served.tamper.clear()
    served.next_login = Login(sub=f"sub-{uuid.uuid4().hex[:8]}", email=f"{uuid.uuid4().hex[:8]}@idp.example.com",
                              name="Ada Trader")
    yield served
    served.tamper.clear()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def admin_token(client: TestClient, broker: BrokerFixture) -> str:
    """An admin access token with a second factor: password login, TOTP enrolment, then a recovery-code login
    (a recovery code stands in for the TOTP code, so no waiting for the next 30 s step)."""
    creds = {"broker": broker.slug, "email": broker.admin_email, "password": ADMIN_PASSWORD}
    r = client.post("/api/v1/auth/token", json=creds, headers=NO_AUTH)
    assert r.status_code == 200, r.text
    first = bearer(r.json()["accessToken"])
    secret = client.post("/api/v1/auth/mfa/enrol", headers=first).json()["secret"]
    r = client.post("/api/v1/auth/mfa/confirm", json={"code": pyotp.TOTP(secret).now()}, headers=first)
    assert r.status_code == 200, r.text
    r = client.post("/api/v1/auth/token", json={**creds, "recoveryCode": r.json()["recoveryCodes"][0]},
                    headers=NO_AUTH)
    assert r.status_code == 200, r.text
    token: str = r.json()["accessToken"]
    return token


def configure(client: TestClient, broker: BrokerFixture, provider: Provider, token: str,
              **extra: Any) -> dict[str, Any]:
    body = {"issuer": provider.issuer, "clientId": provider.client_id, "clientSecret": provider.client_secret,
            "defaultRole": "BROKER_USER", **extra}
    r = client.put(f"/api/v1/brokers/{broker.id}/sso", json=body, headers=bearer(token))
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


@pytest.fixture
def sso_broker(client: TestClient, provider: Provider) -> tuple[BrokerFixture, str]:
    broker = make_broker(client)
    token = admin_token(client, broker)
    configure(client, broker, provider, token)
    return broker, token


def start(client: TestClient, slug: str) -> str:
    """Our login redirect, then the provider's authorize redirect: the callback path with code and state."""
    r = client.get(f"/api/v1/auth/sso/{slug}/login", headers=NO_AUTH, follow_redirects=False)
    assert r.status_code == 302, r.text
    authorize = r.headers["location"]
    q = parse_qs(urlsplit(authorize).query)
    assert q["code_challenge_method"] == ["S256"] and q["nonce"][0] and q["state"][0]
    with httpx.Client(timeout=10, follow_redirects=False) as http:
        back = http.get(authorize)
    assert back.status_code == 302, back.text
    target = urlsplit(back.headers["location"])
    assert target.path == f"/api/v1/auth/sso/{slug}/callback"
    return f"{target.path}?{target.query}"


def finish(client: TestClient, callback: str) -> httpx.Response:
    return client.get(callback, headers=NO_AUTH, follow_redirects=False)


def claims(client: TestClient, access: str) -> Any:
    return client.app.state.services.auth.signer.verify(access)  # type: ignore[attr-defined]


def audit_actions(client: TestClient, broker_id: uuid.UUID) -> list[str]:
    async def load() -> list[str]:
        async with client.app.state.services.db.tenant(broker_id) as s:  # type: ignore[attr-defined]
            rows = await s.execute(select(AuditLog.action).order_by(AuditLog.created_at))
            return [r for (r,) in rows]
    return client.portal.call(load)  # type: ignore[union-attr]


def with_state(callback: str, state: str) -> str:
    path, _, query = callback.partition("?")
    q = {k: v[0] for k, v in parse_qs(query).items()}
    return f"{path}?code={q['code']}&state={state}"


def test_first_login_provisions_the_user_and_the_second_reuses_it(
        client: TestClient, provider: Provider, sso_broker: tuple[BrokerFixture, str]) -> None:
    broker, admin = sso_broker
    r = finish(client, start(client, broker.slug))
    assert r.status_code == 200, r.text
    pair = r.json()
    assert set(pair) == {"accessToken", "tokenType", "expiresIn", "refreshToken"}
    first = claims(client, pair["accessToken"])
    assert first.broker_id == broker.id and first.role == "BROKER_USER" and first.amr == ("sso",)

    r = finish(client, start(client, broker.slug))
    assert r.status_code == 200, r.text
    second = claims(client, r.json()["accessToken"])
    assert second.sub == first.sub

    users = client.get(f"/api/v1/brokers/{broker.id}/users", headers=bearer(admin)).json()
    sso_users = [u for u in users if u["sso"]]
    assert len(sso_users) == 1
    # The ID token has no email; it came from the provider's userinfo endpoint.
    assert sso_users[0]["id"] == str(first.sub) and sso_users[0]["email"] == provider.next_login.email
    assert audit_actions(client, broker.id).count("auth.sso_login") == 2
    # The SSO token works as a bearer credential on the API.
    me = client.get("/api/v1/calculations", headers=bearer(pair["accessToken"]))
    assert me.status_code == 200, me.text


def test_admin_powers_need_the_idp_to_assert_mfa(client: TestClient, provider: Provider) -> None:
    broker = make_broker(client)
    admin = admin_token(client, broker)
    configure(client, broker, provider, admin, defaultRole="BROKER_ADMIN")
    provider.next_login = Login(sub="admin-no-mfa", email="a1@idp.example.com", amr=["pwd"])
    weak = finish(client, start(client, broker.slug)).json()["accessToken"]
    assert claims(client, weak).amr == ("sso",)
    assert client.get(f"/api/v1/brokers/{broker.id}/sso", headers=bearer(weak)).status_code == 403
    provider.next_login = Login(sub="admin-mfa", email="a2@idp.example.com", amr=["pwd", "mfa"])
    strong = finish(client, start(client, broker.slug)).json()["accessToken"]
    assert "mfa" in claims(client, strong).amr
    assert client.get(f"/api/v1/brokers/{broker.id}/sso", headers=bearer(strong)).status_code == 200


def assert_sso_problem(r: httpx.Response) -> None:
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"] == "/problems/sso-error" and "accessToken" not in body and "refreshToken" not in body


def test_tampered_state_is_refused_and_the_genuine_one_still_works(
        client: TestClient, provider: Provider, sso_broker: tuple[BrokerFixture, str]) -> None:
    broker, _ = sso_broker
    callback = start(client, broker.slug)
    state = parse_qs(urlsplit(callback).query)["state"][0]
    before = provider.token_requests
    tampered = state[:-1] + ("A" if state[-1] != "A" else "B")
    assert_sso_problem(finish(client, with_state(callback, tampered)))
    assert_sso_problem(finish(client, with_state(callback, "")))
    assert provider.token_requests == before  # refused before the code was ever redeemed
    assert finish(client, callback).status_code == 200
    assert "auth.sso_failed" in audit_actions(client, broker.id)


def test_a_used_state_is_refused(client: TestClient, provider: Provider,
                                 sso_broker: tuple[BrokerFixture, str]) -> None:
    broker, _ = sso_broker
    callback = start(client, broker.slug)
    assert finish(client, callback).status_code == 200
    before = provider.token_requests
    assert_sso_problem(finish(client, callback))
    assert provider.token_requests == before


def test_another_brokers_state_is_refused(client: TestClient, provider: Provider,
                                          sso_broker: tuple[BrokerFixture, str]) -> None:
    broker, _ = sso_broker
    other = make_broker(client)
    callback = start(client, broker.slug)
    # RLS hides broker A's state row from broker B's callback.
    assert_sso_problem(finish(client, callback.replace(f"/sso/{broker.slug}/", f"/sso/{other.slug}/")))
    # B's callback could neither see nor delete A's state row, so A's own callback still completes.
    assert finish(client, callback).status_code == 200


def test_an_expired_state_is_refused(client: TestClient, provider: Provider,
                                     sso_broker: tuple[BrokerFixture, str]) -> None:
    broker, _ = sso_broker
    callback = start(client, broker.slug)
    state = parse_qs(urlsplit(callback).query)["state"][0]

    async def age() -> None:
        async with client.app.state.services.db.tenant(broker.id) as s:  # type: ignore[attr-defined]
            await s.execute(update(SsoState).where(SsoState.state == state)
                            .values(created_at=datetime.now(UTC) - timedelta(minutes=11)))
            await s.commit()
    client.portal.call(age)  # type: ignore[union-attr]
    assert_sso_problem(finish(client, callback))


@pytest.mark.parametrize("tamper", [
    {"nonce": "not-the-nonce"},
    {"aud": "someone-else"},
    {"iss": "https://evil.example.com"},
    {"foreign_key": True},
    {"lifetime": -300},
], ids=["wrong-nonce", "wrong-audience", "wrong-issuer", "bad-signature", "expired"])
def test_a_bad_id_token_gives_no_tokens(client: TestClient, provider: Provider,
                                        sso_broker: tuple[BrokerFixture, str], tamper: dict[str, Any]) -> None:
    broker, admin = sso_broker
    callback = start(client, broker.slug)
    provider.tamper.update(tamper)
    assert_sso_problem(finish(client, callback))
    users = client.get(f"/api/v1/brokers/{broker.id}/users", headers=bearer(admin)).json()
    assert not any(u["sso"] for u in users)  # nobody was provisioned


def test_a_discovery_document_naming_another_issuer_is_refused(client: TestClient) -> None:
    with ServedProvider(Provider(tamper={"discovery_issuer": "https://idp.example.com"})) as liar:
        broker = make_broker(client)
        configure(client, broker, liar, admin_token(client, broker))
        r = client.get(f"/api/v1/auth/sso/{broker.slug}/login", headers=NO_AUTH, follow_redirects=False)
        assert_sso_problem(r)


def test_config_secret_is_write_only_and_encrypted(client: TestClient, provider: Provider,
                                                   sso_broker: tuple[BrokerFixture, str]) -> None:
    broker, admin = sso_broker
    r = client.get(f"/api/v1/brokers/{broker.id}/sso", headers=bearer(admin))
    assert r.status_code == 200
    out = r.json()
    assert out["issuer"] == provider.issuer and out["clientSecretSet"] is True
    assert provider.client_secret not in r.text and "clientSecret" not in out
    # Replace without a secret: the stored one is kept (logins still work).
    r = client.put(f"/api/v1/brokers/{broker.id}/sso", headers=bearer(admin),
                   json={"issuer": provider.issuer, "clientId": provider.client_id, "defaultRole": "END_USER"})
    assert r.status_code == 200 and r.json()["defaultRole"] == "END_USER"

    async def stored() -> str:
        async with client.app.state.services.db.tenant(broker.id) as s:  # type: ignore[attr-defined]
            return (await s.execute(select(SsoConnection.client_secret_enc))).scalar_one()
    enc = client.portal.call(stored)  # type: ignore[union-attr]
    assert provider.client_secret not in enc
    assert finish(client, start(client, broker.slug)).status_code == 200
    actions = audit_actions(client, broker.id)
    assert "sso.config_created" in actions and "sso.config_updated" in actions

    assert client.delete(f"/api/v1/brokers/{broker.id}/sso", headers=bearer(admin)).status_code == 204
    assert client.get(f"/api/v1/brokers/{broker.id}/sso", headers=bearer(admin)).status_code == 404
    r = client.get(f"/api/v1/auth/sso/{broker.slug}/login", headers=NO_AUTH, follow_redirects=False)
    assert r.status_code == 404
    assert "sso.config_deleted" in audit_actions(client, broker.id)


def test_another_brokers_admin_gets_404(client: TestClient, provider: Provider,
                                        sso_broker: tuple[BrokerFixture, str]) -> None:
    broker, _ = sso_broker
    other = make_broker(client)
    intruder = bearer(admin_token(client, other))
    path = f"/api/v1/brokers/{broker.id}/sso"
    assert client.get(path, headers=intruder).status_code == 404
    body = {"issuer": provider.issuer, "clientId": "stolen", "clientSecret": "x" * 20}
    assert client.put(path, json=body, headers=intruder).status_code == 404
    assert client.delete(path, headers=intruder).status_code == 404
    # A random broker id looks the same as the real one.
    assert client.get(f"/api/v1/brokers/{uuid.uuid4()}/sso", headers=intruder).status_code == 404
    # Broker A's connection is untouched.
    assert finish(client, start(client, broker.slug)).status_code == 200


def test_who_may_manage_the_connection(client: TestClient, provider: Provider,
                                       sso_broker: tuple[BrokerFixture, str]) -> None:
    broker, _ = sso_broker
    path = f"/api/v1/brokers/{broker.id}/sso"
    # A secret key has no SSO scope; a publishable key no stored-data access; an admin without MFA no admin powers.
    assert client.get(path, headers=bearer(broker.secret_key)).status_code == 403
    assert client.get(path, headers={"Authorization": f"Bearer {broker.publishable_key}",
                                     "Origin": "https://www.example.com"}).status_code in (401, 403)
    creds = {"broker": broker.slug, "email": broker.admin_email, "password": ADMIN_PASSWORD}
    # This admin has MFA on now (the fixture enrolled it), so a password alone no longer logs in.
    assert client.post("/api/v1/auth/token", json=creds, headers=NO_AUTH).status_code == 401
    assert client.get(path, headers=NO_AUTH).status_code == 401


def test_issuer_must_be_https_except_loopback(client: TestClient, provider: Provider,
                                              sso_broker: tuple[BrokerFixture, str]) -> None:
    broker, admin = sso_broker
    body = {"issuer": "http://idp.example.com", "clientId": "c", "clientSecret": "s"}
    r = client.put(f"/api/v1/brokers/{broker.id}/sso", json=body, headers=bearer(admin))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "issuer"


def test_a_provider_error_at_the_callback_is_a_400(client: TestClient, provider: Provider,
                                                   sso_broker: tuple[BrokerFixture, str]) -> None:
    broker, _ = sso_broker
    callback = start(client, broker.slug)
    state = parse_qs(urlsplit(callback).query)["state"][0]
    r = finish(client, f"/api/v1/auth/sso/{broker.slug}/callback?error=access_denied&state={state}")
    assert_sso_problem(r)
    assert_sso_problem(finish(client, callback))  # the state was spent by the failed attempt


def test_a_console_login_ends_in_a_console_session_for_the_browser_that_started_it(
        client: TestClient, provider: Provider, sso_broker: tuple[BrokerFixture, str]) -> None:
    broker, _ = sso_broker
    client.cookies.clear()
    r = client.get(f"/api/v1/auth/sso/{broker.slug}/login?client=console", headers=NO_AUTH, follow_redirects=False)
    assert r.status_code == 302
    binding = next(c for c in r.headers.get_list("set-cookie") if c.startswith("fxr_sso="))
    assert "HttpOnly" in binding and "SameSite=lax" in binding and "Path=/api/v1/auth/sso" in binding
    with httpx.Client(timeout=10, follow_redirects=False) as http:
        back = http.get(r.headers["location"])
    target = urlsplit(back.headers["location"])
    callback = f"{target.path}?{target.query}"

    # The same callback link without this browser's binding (sent to someone else): the plain JSON pair, no
    # cookie session, so a victim's console is never signed in as the attacker. (The state is then used.)
    client.cookies.clear()  # another browser: no binding cookie
    plain = client.get(callback, headers=NO_AUTH, follow_redirects=False)
    assert plain.status_code == 200 and "refreshToken" in plain.json()
    assert not [c for c in plain.headers.get_list("set-cookie") if c.startswith("fxr_rt=")]

    # A fresh console login in this browser: a session cookie and the console.
    r = client.get(f"/api/v1/auth/sso/{broker.slug}/login?client=console", headers=NO_AUTH, follow_redirects=False)
    with httpx.Client(timeout=10, follow_redirects=False) as http:
        back = http.get(r.headers["location"])
    target = urlsplit(back.headers["location"])
    done = client.get(f"{target.path}?{target.query}", headers=NO_AUTH, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/admin/#/start"
    set_cookies = done.headers.get_list("set-cookie")
    assert any(c.startswith("fxr_rt=") and "HttpOnly" in c for c in set_cookies)
    csrf = {c.name: c.value for c in client.cookies.jar}["fxr_csrf"]
    refreshed = client.post("/api/v1/auth/refresh", json={}, headers={**NO_AUTH, "X-CSRF-Token": csrf})
    assert refreshed.status_code == 200, refreshed.text
    assert claims(client, refreshed.json()["accessToken"]).amr == ("sso",)

    # A failed console callback lands on the sign-in page with a message, not on JSON.
    r = client.get(f"/api/v1/auth/sso/{broker.slug}/login?client=console", headers=NO_AUTH, follow_redirects=False)
    state = parse_qs(urlsplit(r.headers["location"]).query)["state"][0]
    bad = client.get(f"/api/v1/auth/sso/{broker.slug}/callback?state={state}&error=access_denied",
                     headers=NO_AUTH, follow_redirects=False)
    assert bad.status_code == 303 and bad.headers["location"] == "/admin/#/signin?sso=failed"
    client.cookies.clear()
