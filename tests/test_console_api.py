"""What the console needs from the API, tested over HTTP: the shell and its headers, the refresh token in an
httpOnly cookie with a CSRF proof, logging out everywhere, invitations, MFA reset, the platform operator's
broker changes, the widget preview."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pyotp
import pytest
from fastapi.testclient import TestClient

from app.console.router import CSP
from tests.conftest import ADMIN_PASSWORD, BrokerFixture, make_broker
from tests.helpers_auth import (
    NO_AUTH,
    USER_PASSWORD,
    admin_token,
    assert_problem,
    audit_rows,
    bearer,
    create_user,
    login,
    mfa_login,
    problem_fields,
    sql,
    superadmin_token,
    token_of,
    user_token,
)


# --- the shell ---------------------------------------------------------------------------------------------
def test_the_shell_has_a_strict_csp_and_hashed_module_urls(client: TestClient) -> None:
    assert client.get("/admin", headers=NO_AUTH, follow_redirects=False).headers["location"] == "/admin/"
    r = client.get("/admin/", headers=NO_AUTH)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert csp == CSP and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"] == "no-cache"
    assert "<script>" not in r.text and " style=" not in r.text  # nothing inline for the CSP to refuse
    urls = re.findall(r'(?:src|href)="(/admin/static/v/[0-9a-f]{20}/[^"]+)"', r.text)
    assert any(u.endswith("/js/main.js") for u in urls)
    for url in urls:
        got = client.get(url, headers={**NO_AUTH, "Accept-Encoding": "br"})
        assert got.status_code == 200, url
        assert got.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert got.headers["x-content-type-options"] == "nosniff"
    main = client.get(urls[-1], headers={**NO_AUTH, "Accept-Encoding": "gzip"})
    etag = main.headers["etag"]
    assert client.get(urls[-1], headers={**NO_AUTH, "If-None-Match": etag}).status_code == 304


def test_only_console_files_are_served(client: TestClient) -> None:
    shell = client.get("/admin/", headers=NO_AUTH).text
    release = re.search(r"/admin/static/v/([0-9a-f]{20})/", shell).group(1)  # type: ignore[union-attr]
    for name in ("../app/main.py", "..%2f..%2fpyproject.toml", "index.html", "js/nope.js", "console.css.bak"):
        assert client.get(f"/admin/static/v/{release}/{name}", headers=NO_AUTH).status_code in (404, 422), name
    # An old release's URL answers the current file, revalidated (never cached as immutable).
    old = client.get("/admin/static/v/" + "0" * 20 + "/console.css", headers=NO_AUTH)
    assert old.status_code == 200 and old.headers["cache-control"] == "no-cache"


def test_every_console_string_exists_in_english(client: TestClient) -> None:
    """Each key the console's modules ask for by name is in en.json (a missing one would show the key)."""
    from pathlib import Path

    import orjson

    root = Path(__file__).resolve().parents[1] / "console"
    en = orjson.loads((root / "i18n" / "en.json").read_bytes())
    asked = set()
    for js in (root / "js").rglob("*.js"):
        asked |= set(re.findall(r"\bt\('([a-zA-Z0-9_.]+)'", js.read_text()))
    missing = sorted(k for k in asked if not k.endswith(".") and k not in en)
    assert not missing, missing


# --- the refresh token in a cookie ---------------------------------------------------------------------------
def _cookie_login(client: TestClient, broker: BrokerFixture) -> tuple[dict[str, Any], dict[str, str]]:
    client.cookies.clear()
    r = client.post("/api/v1/auth/token", headers=NO_AUTH, json={
        "broker": broker.slug, "email": broker.admin_email, "password": ADMIN_PASSWORD, "refreshCookie": True})
    assert r.status_code == 200, r.text
    cookies = {c.name: c for c in client.cookies.jar}
    return r.json(), {name: c.value for name, c in cookies.items() if c.value is not None}


def test_a_cookie_session_keeps_the_refresh_token_out_of_the_page(client: TestClient, broker_a: BrokerFixture) -> None:
    body, cookies = _cookie_login(client, broker_a)
    assert "refreshToken" not in body and body["accessToken"]
    assert set(cookies) >= {"fxr_rt", "fxr_csrf"}
    raw = client.post("/api/v1/auth/token", headers=NO_AUTH, json={
        "broker": broker_a.slug, "email": broker_a.admin_email, "password": ADMIN_PASSWORD, "refreshCookie": True})
    set_cookies = raw.headers.get_list("set-cookie")
    rt = next(c for c in set_cookies if c.startswith("fxr_rt="))
    assert "HttpOnly" in rt and "SameSite=strict" in rt and "Path=/api/v1/auth" in rt
    csrf = next(c for c in set_cookies if c.startswith("fxr_csrf="))
    assert "HttpOnly" not in csrf and "SameSite=strict" in csrf
    client.cookies.clear()


def test_refresh_from_the_cookie_needs_the_csrf_header_and_rotates(client: TestClient, broker_a: BrokerFixture) -> None:
    _, cookies = _cookie_login(client, broker_a)
    first_rt = cookies["fxr_rt"]
    # No header, a wrong one, or a forged cookie+header pair: 403, and the refresh token is not used.
    assert_problem(client.post("/api/v1/auth/refresh", json={}, headers=NO_AUTH), 403, "forbidden")
    assert_problem(client.post("/api/v1/auth/refresh", json={}, headers={**NO_AUTH, "X-CSRF-Token": "x.y"}), 403)
    forged = "abc.0123456789abcdef0123456789abcdef"  # equal in cookie and header, but not signed by us
    real = next(c for c in client.cookies.jar if c.name == "fxr_csrf")
    client.cookies.set("fxr_csrf", forged, domain=real.domain, path=real.path)
    assert_problem(client.post("/api/v1/auth/refresh", json={}, headers={**NO_AUTH, "X-CSRF-Token": forged}), 403)
    client.cookies.set("fxr_csrf", cookies["fxr_csrf"], domain=real.domain, path=real.path)
    ok = client.post("/api/v1/auth/refresh", json={}, headers={**NO_AUTH, "X-CSRF-Token": cookies["fxr_csrf"]})
    assert ok.status_code == 200, ok.text
    assert "refreshToken" not in ok.json()
    new_rt = {c.name: c.value for c in client.cookies.jar}["fxr_rt"]
    assert new_rt != first_rt
    # The old token replayed (after the grace window would be a theft): rotation's reuse detection still holds.
    sql(client, "update refresh_tokens set used_at = now() - interval '1 hour' where used_at is not null "
                "and broker_id = :b", {"b": broker_a.id})
    replay = client.post("/api/v1/auth/refresh", json={"refreshToken": first_rt}, headers=NO_AUTH)
    assert_problem(replay, 401)
    csrf = {c.name: c.value for c in client.cookies.jar}["fxr_csrf"]  # the refresh renewed it
    assert_problem(client.post("/api/v1/auth/refresh", json={}, headers={**NO_AUTH, "X-CSRF-Token": csrf}),
                   401)  # the whole family was revoked
    client.cookies.clear()


def test_logout_from_the_cookie_clears_it(client: TestClient, broker_a: BrokerFixture) -> None:
    body, cookies = _cookie_login(client, broker_a)
    out = client.post("/api/v1/auth/logout", json={}, headers={**NO_AUTH, "X-CSRF-Token": cookies["fxr_csrf"]})
    assert out.status_code == 204
    assert any(c.startswith("fxr_rt=") and "Max-Age=0" in c for c in out.headers.get_list("set-cookie"))
    assert_problem(client.get(f"/api/v1/brokers/{broker_a.id}", headers=bearer(body["accessToken"])), 401)
    client.cookies.clear()


def test_logout_everywhere_ends_every_session_of_the_user(client: TestClient, broker_a: BrokerFixture) -> None:
    uid, email = create_user(client, broker_a, "BROKER_USER")
    one = login(client, broker_a.slug, email, USER_PASSWORD).json()
    two = login(client, broker_a.slug, email, USER_PASSWORD).json()
    other_uid, other = user_token(client, broker_a, "BROKER_USER")  # another user keeps their session
    assert client.post("/api/v1/auth/logout", headers=NO_AUTH,
                       json={"refreshToken": one["refreshToken"], "everywhere": True}).status_code == 204
    for pair in (one, two):
        assert_problem(client.get(f"/api/v1/users/{uid}", headers=bearer(pair["accessToken"])), 401)
        assert_problem(client.post("/api/v1/auth/refresh", headers=NO_AUTH,
                                   json={"refreshToken": pair["refreshToken"]}), 401)
    assert client.get(f"/api/v1/users/{other_uid}", headers=bearer(other)).status_code == 200
    assert [r[0] for r in audit_rows(client, broker_a.id, "auth.logout_everywhere")] == ["auth.logout_everywhere"]
    # A stale token (already rotated) signs nobody out everywhere.
    three = login(client, broker_a.slug, email, USER_PASSWORD).json()
    rotated = client.post("/api/v1/auth/refresh", headers=NO_AUTH, json={"refreshToken": three["refreshToken"]}).json()
    assert client.post("/api/v1/auth/logout", headers=NO_AUTH,
                       json={"refreshToken": three["refreshToken"], "everywhere": True}).status_code == 204
    assert client.get(f"/api/v1/users/{uid}", headers=bearer(rotated["accessToken"])).status_code == 200


# --- MFA enrolment draws the QR code -------------------------------------------------------------------------
def test_enrolment_returns_a_qr_code_of_the_otpauth_uri(client: TestClient, broker_a: BrokerFixture) -> None:
    pwd = token_of(login(client, broker_a.slug, broker_a.admin_email))
    enrol = client.post("/api/v1/auth/mfa/enrol", headers=bearer(pwd)).json()
    assert enrol["qrSvg"].startswith("data:image/svg+xml")
    assert enrol["otpauthUri"].startswith("otpauth://totp/") and f"secret={enrol['secret']}" in enrol["otpauthUri"]


# --- invitations ------------------------------------------------------------------------------------------------
def test_an_invitation_sets_a_password_once(client: TestClient, broker_a: BrokerFixture) -> None:
    admin = bearer(admin_token(client, broker_a))
    email = f"invitee-{uuid.uuid4().hex[:6]}@example.com"
    made = client.post(f"/api/v1/brokers/{broker_a.id}/users", json={"email": email, "role": "BROKER_USER"},
                       headers=admin)
    assert made.status_code == 201, made.text
    inv = client.post(f"/api/v1/users/{made.json()['id']}/invitation", headers=admin)
    assert inv.status_code == 200, inv.text
    token = inv.json()["token"]
    assert inv.json()["url"].endswith(f"/admin/#/accept/{token}") and token.startswith("fxr_inv_")
    short = client.post("/api/v1/auth/invitations/accept", json={"token": token, "password": "short"}, headers=NO_AUTH)
    assert problem_fields(short) == ["password"]
    assert client.post("/api/v1/auth/invitations/accept", json={"token": token, "password": USER_PASSWORD},
                       headers=NO_AUTH).status_code == 204
    assert login(client, broker_a.slug, email, USER_PASSWORD).status_code == 200
    again = client.post("/api/v1/auth/invitations/accept", json={"token": token, "password": "another one, long"},
                        headers=NO_AUTH)
    assert_problem(again, 422)
    assert problem_fields(again) == ["token"]
    forged = token[:-3] + ("aaa" if not token.endswith("aaa") else "bbb")
    assert problem_fields(client.post("/api/v1/auth/invitations/accept", headers=NO_AUTH,
                                      json={"token": forged, "password": USER_PASSWORD})) == ["token"]
    # A user who has a password is not invitable; another broker's user is a 404.
    assert problem_fields(client.post(f"/api/v1/users/{made.json()['id']}/invitation", headers=admin)) == ["userId"]
    other = make_broker(client)
    assert_problem(client.post(f"/api/v1/users/{other.admin_id}/invitation", headers=admin), 404)
    assert {r[0] for r in audit_rows(client, broker_a.id)} >= {"user.invited", "user.invitation_accepted"}


# --- MFA reset ----------------------------------------------------------------------------------------------------
def test_an_admin_resets_another_users_mfa_and_their_sessions_end(client: TestClient, broker_a: BrokerFixture) -> None:
    admin = bearer(admin_token(client, broker_a))
    uid, email = create_user(client, broker_a, "BROKER_ADMIN")
    token, mfa = mfa_login(client, broker_a.slug, email, USER_PASSWORD)
    assert client.get(f"/api/v1/users/{uid}", headers=bearer(token)).status_code == 200
    reset = client.post(f"/api/v1/users/{uid}/mfa/reset", headers=admin)
    assert reset.status_code == 200 and reset.json()["mfaEnabled"] is False
    assert_problem(client.get(f"/api/v1/users/{uid}", headers=bearer(token)), 401)
    # The next login needs no code (and enrols again); the old TOTP secret is gone.
    again = login(client, broker_a.slug, email, USER_PASSWORD, totp=pyotp.TOTP(mfa.secret).now())
    assert again.status_code == 200  # the code is ignored: the account has no second factor any more
    # Nobody resets their own; a BROKER_USER may not.
    me = sql(client, "select id from users where lower(email) = lower(:e)", {"e": broker_a.admin_email})[0][0]
    assert problem_fields(client.post(f"/api/v1/users/{me}/mfa/reset", headers=admin)) == ["userId"]
    _, user = user_token(client, broker_a, "BROKER_USER")
    assert_problem(client.post(f"/api/v1/users/{uid}/mfa/reset", headers=bearer(user)), 403)


# --- the platform operator --------------------------------------------------------------------------------------
def test_the_platform_operator_changes_tiers_and_suspends(client: TestClient, broker_a: BrokerFixture) -> None:
    root = bearer(superadmin_token(client))
    changed = client.patch(f"/api/v1/brokers/{broker_a.id}", json={"tier": "professional"}, headers=root)
    assert changed.status_code == 200 and changed.json()["tier"] == "professional"
    assert client.patch(f"/api/v1/brokers/{broker_a.id}", json={"status": "suspended"}, headers=root).status_code == 200
    assert_problem(client.get(f"/api/v1/brokers/{broker_a.id}", headers=broker_a.auth), 401)
    assert login(client, broker_a.slug, broker_a.admin_email).status_code == 401
    back = client.patch(f"/api/v1/brokers/{broker_a.id}", json={"status": "active"}, headers=root)
    assert back.json()["status"] == "active"
    assert client.get(f"/api/v1/brokers/{broker_a.id}", headers=broker_a.auth).status_code == 200
    assert problem_fields(client.patch(f"/api/v1/brokers/{broker_a.id}", json={"status": "deleted"},
                                       headers=root)) == ["status"]
    assert_problem(client.patch(f"/api/v1/brokers/{broker_a.id}", json={"tier": "enterprise"},
                                headers=bearer(admin_token(client, broker_a))), 403)


# --- the widget preview -----------------------------------------------------------------------------------------
def test_the_preview_is_framable_by_our_own_origin_only(client: TestClient, broker_a: BrokerFixture) -> None:
    admin = bearer(admin_token(client, broker_a))
    r = client.post(f"/api/v1/brokers/{broker_a.id}/widget/preview", headers=admin)
    assert r.status_code == 200, r.text
    url = r.json()["frameUrl"]
    assert url.startswith("http://testserver/widget/preview?session=fxw_")
    doc = client.get(url.removeprefix("http://testserver") + "&wid=preview", headers=NO_AUTH)
    assert doc.status_code == 200
    assert "frame-ancestors http://testserver;" in doc.headers["content-security-policy"]
    assert '"parentOrigin":"http://testserver"' in doc.text and '"wid":"preview"' in doc.text
    # A session bound to a broker's page (the loader's) is not a preview session.
    cfg = client.get(f"/api/v1/widget/config?broker={broker_a.slug}&key={broker_a.publishable_key}",
                     headers={**NO_AUTH, "Origin": "https://www.example.com"})
    assert cfg.status_code == 200, cfg.text
    page_session = cfg.json()["session"]["token"]
    assert client.get(f"/widget/preview?session={page_session}", headers=NO_AUTH).status_code == 401


def test_no_preview_without_a_publishable_key(client: TestClient) -> None:
    broker = make_broker(client)
    admin = bearer(admin_token(client, broker))
    for key in client.get(f"/api/v1/brokers/{broker.id}/api-keys", headers=broker.auth).json():
        if key["kind"] == "publishable":
            gone = client.delete(f"/api/v1/brokers/{broker.id}/api-keys/{key['id']}", headers=broker.auth)
            assert gone.status_code == 200
    r = client.post(f"/api/v1/brokers/{broker.id}/widget/preview", headers=admin)
    assert_problem(r, 409)
    assert problem_fields(r) == ["publishableKey"]


@pytest.mark.parametrize("role", ["END_USER"])
def test_an_end_user_gets_no_preview(client: TestClient, broker_a: BrokerFixture, role: str) -> None:
    _, token = user_token(client, broker_a, role)
    assert_problem(client.post(f"/api/v1/brokers/{broker_a.id}/widget/preview", headers=bearer(token)), 403)


def test_every_locale_file_translates_known_strings_only() -> None:
    from pathlib import Path

    import orjson

    root = Path(__file__).resolve().parents[1] / "console" / "i18n"
    en = orjson.loads((root / "en.json").read_bytes())
    locales = {p.stem for p in root.glob("*.json")}
    assert locales == {"en", "de", "es", "fr", "it", "pt", "ja", "zh", "ar"}  # the widget's locales
    for locale in locales - {"en"}:
        strings = orjson.loads((root / f"{locale}.json").read_bytes())
        assert set(strings) <= set(en), (locale, sorted(set(strings) - set(en)))
        # Non-empty, except where English itself is empty (a prefix key such as `role.`).
        assert all(isinstance(v, str) and (v.strip() or en[k] == "") for k, v in strings.items()), locale
        # Placeholders survive translation.
        for key, value in strings.items():
            assert set(re.findall(r"\{\w+\}", value)) == set(re.findall(r"\{\w+\}", en[key])), (locale, key)
