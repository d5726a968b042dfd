"""Widget server side (issue 6): config from allowed origins only, fxw_ session tokens (what they may
and may not do, tampering, expiry, revocation), the iframe and full-page documents (CSP, escaping,
locale, theme, features), host mapping and the static files."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from httpx import Response
from joserfc import jwt
from joserfc.jwk import OctKey

from app.admin.brokers.schemas import BrokerConfig, BrokerCreate
from app.admin.brokers.service import create_broker
from app.auth.service import AuthService
from app.auth.widget_tokens import AUDIENCE, PREFIX, TYP, derive_key
from app.config import Settings
from app.widget import assets
from tests.conftest import ADMIN_PASSWORD, BrokerFixture, make_broker
from tests.helpers_auth import NO_AUTH, assert_problem, bearer, calculate, jwt_claims, shape, sql
from tests.platform_apps import app_on

pytestmark = pytest.mark.usefixtures("no_server_errors")

ORIGIN = "https://www.acme-widget.example"
OTHER_ALLOWED = "https://app.acme-widget.example"
CONFIG = {
    "allowedOrigins": [ORIGIN, OTHER_ALLOWED],
    "branding": {"primaryColor": "#AA3300", "logoUrl": "https://cdn.acme-widget.example/logo.svg",
                 "fontFamily": "Inter, sans-serif", "darkMode": True},
    "features": {"advancedScenarios": False, "correlationAnalysis": True, "portfolio": True, "projections": False},
    "locale": "de",
    "maxLeverage": 30,
    "fullPage": True,
}
CSP_REST = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' https: data:; "
            "connect-src 'self'; base-uri 'none'; form-action 'none'")
BOOT = re.compile(r'<script id="fxr-boot" type="application/json">(.*?)</script>', re.S)


# --- helpers -----------------------------------------------------------------------------------------
def new_broker(client: TestClient, *, name: str | None = None, config: dict[str, Any] | None = None,
               domains: list[str] | None = None) -> BrokerFixture:
    """make_broker with domains (the conftest helper has none)."""
    if not domains:
        return make_broker(client, config=config or CONFIG, name=name)
    slug = f"w-{uuid.uuid4().hex[:10]}"
    email = f"admin@{slug}.example.com"
    spec = BrokerCreate(name=name or f"Broker {slug}", slug=slug, tier="standard", domains=domains,
                        config=BrokerConfig.model_validate(config or CONFIG), admin_email=email,
                        admin_password=ADMIN_PASSWORD)
    app = client.app
    out = client.portal.call(create_broker, app.state.services.db, app.state.services.auth, spec)  # type: ignore[attr-defined,union-attr]
    return BrokerFixture(id=out["id"], slug=slug, secret_key=out["secretKey"], publishable_key=out["publishableKey"],
                         admin_email=email, admin_id=out["adminUserId"])


def auth_service(client: TestClient) -> AuthService:
    service: AuthService = client.app.state.services.auth  # type: ignore[attr-defined]
    return service


def get_config(client: TestClient, broker: BrokerFixture, *, key: str | None = None, slug: str | None = None,
               origin: str | None = ORIGIN, params: dict[str, str] | None = None) -> Response:
    headers = {**NO_AUTH, **({"Origin": origin} if origin is not None else {})}
    params = {"broker": slug or broker.slug, "key": key or broker.publishable_key, **(params or {})}
    return client.get("/api/v1/widget/config", params=params, headers=headers)


def session_token(client: TestClient, broker: BrokerFixture, **kw: Any) -> str:
    resp = get_config(client, broker, **kw)
    assert resp.status_code == 200, resp.text
    token: str = resp.json()["session"]["token"]
    return token


def widget_claims(token: str) -> dict[str, Any]:
    assert token.startswith(PREFIX)
    return jwt_claims(token[len(PREFIX):])


def widget_header(token: str) -> dict[str, Any]:
    part = token[len(PREFIX):].split(".")[0]
    out: dict[str, Any] = orjson.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return out


def boot_of(html: str) -> dict[str, Any]:
    match = BOOT.search(html)
    assert match, html
    out: dict[str, Any] = json.loads(match.group(1))
    return out


def frame(client: TestClient, token: str, **params: str) -> Response:
    return client.get("/widget/frame", params={"session": token, **params}, headers=NO_AUTH)


def publishable_key_id(client: TestClient, broker: BrokerFixture, key: str) -> str:
    prefix = key[: len("fxr_live_pk_") + 12]
    listed = client.get(f"/api/v1/brokers/{broker.id}/api-keys", headers=broker.auth)
    assert listed.status_code == 200, listed.text
    return str(next(k["id"] for k in listed.json() if k["prefix"] == prefix))


def forge(client: TestClient, claims_update: dict[str, Any], header_update: dict[str, Any] | None = None,
          key: bytes | None = None) -> str:
    """A token signed with the real widget key (or `key`) but with chosen claims or header."""
    now = int(time.time())
    signing_key = key or derive_key(auth_service(client).secrets.session_secret)
    claims = {"iss": "forexrisk", "aud": AUDIENCE, "iat": now, "nbf": now, "exp": now + 600, "jti": "x",
              "bid": str(uuid.uuid4()), "key": "x" * 12, "org": ORIGIN, **claims_update}
    header = {"alg": "HS256", "typ": TYP, **(header_update or {})}
    return PREFIX + jwt.encode(header, claims, OctKey.import_key(signing_key), algorithms=["HS256"])


@pytest.fixture(scope="module")
def broker(client: TestClient) -> BrokerFixture:
    return new_broker(client)


@pytest.fixture(scope="module")
def other(client: TestClient) -> BrokerFixture:
    return new_broker(client, config={"allowedOrigins": ["https://other-broker.example"]})


# --- config --------------------------------------------------------------------------------------------
def test_config_from_an_allowed_origin(client: TestClient, broker: BrokerFixture) -> None:
    resp = get_config(client, broker)
    assert resp.status_code == 200, resp.text
    assert resp.headers["access-control-allow-origin"] == ORIGIN
    assert "Origin" in resp.headers["vary"]
    assert resp.headers["cache-control"] == "no-store"
    body = resp.json()
    token = body["session"]["token"]
    assert body == {
        "broker": {"slug": broker.slug, "name": f"Broker {broker.slug}"},
        "branding": {"primaryColor": "#aa3300", "logoUrl": "https://cdn.acme-widget.example/logo.svg",
                     "fontFamily": "Inter, sans-serif", "darkMode": True},
        "features": {"advancedScenarios": False, "correlationAnalysis": True, "portfolio": True, "projections": False},
        "locale": "de", "maxLeverage": 30.0,
        "frameUrl": f"http://testserver/widget/frame?session={token}",
        "session": {"token": token, "expiresAt": body["session"]["expiresAt"]},
        "title": f"Positionsgrößenrechner – Broker {broker.slug}",  # the broker's locale (de)
    }
    # The loader asks for the page's language: the iframe's title is in it.
    assert get_config(client, broker, params={"locale": "fr"}).json()["title"] == (
        f"Calculateur de taille de position – Broker {broker.slug}")
    expires = datetime.fromisoformat(body["session"]["expiresAt"].replace("Z", "+00:00"))
    assert body["session"]["expiresAt"].endswith("Z")
    assert abs((expires - datetime.now(UTC)).total_seconds() - 900) < 30
    claims = widget_claims(token)
    assert claims["bid"] == str(broker.id) and claims["org"] == ORIGIN and claims["aud"] == AUDIENCE
    assert claims["key"] == broker.publishable_key.split("_")[3]
    assert widget_header(token) == {"alg": "HS256", "typ": TYP}


def test_config_accepts_every_allowed_origin_and_echoes_it(client: TestClient, broker: BrokerFixture) -> None:
    resp = get_config(client, broker, origin=OTHER_ALLOWED)
    assert resp.status_code == 200 and resp.headers["access-control-allow-origin"] == OTHER_ALLOWED
    assert widget_claims(resp.json()["session"]["token"])["org"] == OTHER_ALLOWED


@pytest.mark.parametrize("origin", ["https://evil.example", "https://www.acme-widget.example.evil.example",
                                    "http://www.acme-widget.example", "https://www.acme-widget.example:8443",
                                    "null", None])
def test_config_refuses_other_origins_without_cors(client: TestClient, broker: BrokerFixture,
                                                   origin: str | None) -> None:
    resp = get_config(client, broker, origin=origin)
    body = assert_problem(resp, 403, "origin-not-allowed")
    assert "access-control-allow-origin" not in resp.headers
    assert [e["field"] for e in body["errors"]] == ["origin"]


def test_config_refuses_a_secret_key(client: TestClient, broker: BrokerFixture) -> None:
    resp = get_config(client, broker, key=broker.secret_key)
    body = assert_problem(resp, 401, "unauthorized")
    assert "never put a secret key in a web page" in body["detail"].lower()
    assert [e["field"] for e in body["errors"]] == ["key"]
    # Sent from one of the broker's own pages: its developer can read this warning (issue 12).
    assert resp.headers["access-control-allow-origin"] == ORIGIN


@pytest.mark.parametrize("key", ["fxr_live_pk_garbage", "not-a-key", "fxr_live_pk_" + "A" * 12 + "_" + "B" * 38])
def test_config_refuses_malformed_keys(client: TestClient, broker: BrokerFixture, key: str) -> None:
    body = assert_problem(get_config(client, broker, key=key), 401, "unauthorized")
    assert [e["field"] for e in body["errors"]] == ["key"]


def test_config_wrong_or_unknown_slug_is_one_answer(client: TestClient, broker: BrokerFixture,
                                                    other: BrokerFixture) -> None:
    unknown = assert_problem(get_config(client, broker, slug="no-such-broker-here"), 401, "unauthorized")
    wrong = assert_problem(get_config(client, broker, slug=other.slug), 401, "unauthorized")
    assert shape(unknown) == shape(wrong)
    assert [e["field"] for e in wrong["errors"]] == ["broker"]
    # Another broker's key from its own allowed origin, but naming this broker: the same refusal.
    crossed = get_config(client, other, slug=broker.slug, origin="https://other-broker.example")
    assert shape(assert_problem(crossed, 401, "unauthorized")) == shape(wrong)


def test_config_missing_parameters_name_the_field(client: TestClient) -> None:
    resp = client.get("/api/v1/widget/config", params={"broker": "x"}, headers={**NO_AUTH, "Origin": ORIGIN})
    body = assert_problem(resp, 422, "validation-error")
    assert any(e["field"].endswith("key") for e in body["errors"]), body


def test_config_refused_for_an_inactive_broker(client: TestClient) -> None:
    b = new_broker(client)
    sql(client, "update brokers set status = 'suspended' where id = :b", {"b": b.id})
    auth_service(client).forget_broker(b.id)
    assert_problem(get_config(client, b), 401, "unauthorized")


def test_preflight(client: TestClient, broker: BrokerFixture) -> None:
    params = {"broker": broker.slug, "key": broker.publishable_key}
    ok = client.options("/api/v1/widget/config", params=params,
                        headers={**NO_AUTH, "Origin": ORIGIN, "Access-Control-Request-Method": "GET"})
    assert ok.status_code == 204, ok.text
    assert ok.headers["access-control-allow-origin"] == ORIGIN and "GET" in ok.headers["access-control-allow-methods"]
    bad = client.options("/api/v1/widget/config", params=params,
                         headers={**NO_AUTH, "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert_problem(bad, 403, "origin-not-allowed")
    assert "access-control-allow-origin" not in bad.headers


# --- the session token as a credential -------------------------------------------------------------
def test_session_runs_calculations(client: TestClient, broker: BrokerFixture) -> None:
    resp = calculate(client, bearer(session_token(client, broker)))
    assert resp.status_code == 200, resp.text
    assert resp.json()["lotSize"] == 0.66


@pytest.mark.parametrize("method,path", [
    ("GET", "/api/v1/calculations"), ("GET", "/api/v1/brokers/{b}"), ("GET", "/api/v1/brokers/{b}/api-keys"),
    ("POST", "/api/v1/brokers/{b}/api-keys"), ("GET", "/api/v1/brokers/{b}/users"),
    ("PUT", "/api/v1/brokers/{b}/config"),
])
def test_session_cannot_reach_stored_data_or_admin(client: TestClient, broker: BrokerFixture, method: str,
                                                   path: str) -> None:
    body = {"kind": "secret"} if method == "POST" else (CONFIG if method == "PUT" else None)
    resp = client.request(method, path.format(b=broker.id), json=body,
                          headers=bearer(session_token(client, broker)))
    assert resp.status_code in (403, 404), resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")


def test_renew_keeps_the_binding(client: TestClient, broker: BrokerFixture) -> None:
    token = session_token(client, broker, origin=OTHER_ALLOWED)
    resp = client.post("/api/v1/widget/session", headers=bearer(token))
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store"
    fresh = resp.json()
    assert set(fresh) == {"token", "expiresAt"} and fresh["token"] != token
    old, new = widget_claims(token), widget_claims(fresh["token"])
    assert (new["bid"], new["key"], new["org"]) == (old["bid"], old["key"], old["org"]) == (
        str(broker.id), old["key"], OTHER_ALLOWED)
    assert calculate(client, bearer(fresh["token"])).status_code == 200


@pytest.mark.parametrize("credential", ["", "publishable", "secret", "fxw_"])
def test_renew_needs_a_session_token(client: TestClient, broker: BrokerFixture, credential: str) -> None:
    value = {"publishable": broker.publishable_key, "secret": broker.secret_key}.get(credential, credential)
    headers = bearer(value) if value else NO_AUTH
    assert_problem(client.post("/api/v1/widget/session", headers=headers), 401, "unauthorized")


def _tampered(token: str) -> str:
    head, payload, sig = token.split(".")
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["org"] = "https://evil.example"
    forged = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=").decode()
    return f"{head}.{forged}.{sig}"


def _bad_tokens(client: TestClient, broker: BrokerFixture) -> dict[str, str]:
    good = session_token(client, broker)
    bound = {"bid": str(broker.id), "key": widget_claims(good)["key"]}
    auth = auth_service(client)
    expired, _ = auth.widget_tokens.issue(broker_id=broker.id, key_id=bound["key"], origin=ORIGIN,
                                          now=time.time() - 2000)
    sig = good.rsplit(".", 1)[1]
    flipped = good[: -len(sig)] + ("A" if sig[0] != "A" else "B") + sig[1:]
    none_alg = (PREFIX + base64.urlsafe_b64encode(b'{"alg":"none","typ":"fxw+jwt"}').rstrip(b"=").decode() + "."
                + good[len(PREFIX):].split(".")[1] + ".")
    access, _ = auth.signer.issue(user_id=uuid.uuid4(), broker_id=broker.id, role="BROKER_ADMIN", amr=["pwd", "otp"])
    return {
        "expired": expired,
        "signature flipped": flipped,
        "claims tampered": _tampered(good),
        "alg none": none_alg,
        "other key": forge(client, bound, key=b"k" * 32),
        "wrong typ": forge(client, bound, {"typ": "JWT"}),
        "wrong audience": forge(client, {**bound, "aud": "forexrisk-api"}),
        "wrong issuer": forge(client, {**bound, "iss": "someone-else"}),
        "not yet valid": forge(client, {**bound, "nbf": int(time.time()) + 600, "iat": int(time.time()) + 600}),
        "no binding": forge(client, {"bid": str(broker.id)} | {"key": None}),
        "other broker's key": forge(client, {**bound, "bid": str(uuid.uuid4())}),
        "access token as widget token": PREFIX + access,
        "widget token without prefix": good[len(PREFIX):],
    }


def test_bad_session_tokens_are_refused_everywhere(client: TestClient, broker: BrokerFixture) -> None:
    bad = _bad_tokens(client, broker)
    # The forgeries are only meaningful if the same construction with the real values is accepted.
    control = forge(client, {"bid": str(broker.id), "key": widget_claims(session_token(client, broker))["key"]})
    assert calculate(client, bearer(control)).status_code == 200
    for name, token in bad.items():
        responses = [calculate(client, bearer(token))]
        if token.startswith(PREFIX):
            responses += [client.post("/api/v1/widget/session", headers=bearer(token)), frame(client, token)]
        for resp in responses:
            assert resp.status_code == 401, (name, resp.request.url, resp.text)
            assert_problem(resp, 401, "unauthorized")


def test_revoked_publishable_key_ends_config_and_sessions(client: TestClient) -> None:
    b = new_broker(client)
    token = session_token(client, b)
    frame_token = session_token(client, b)
    assert calculate(client, bearer(token)).status_code == 200
    key_id = publishable_key_id(client, b, b.publishable_key)
    assert client.delete(f"/api/v1/brokers/{b.id}/api-keys/{key_id}", headers=b.auth).status_code == 200
    assert_problem(get_config(client, b), 401, "unauthorized")
    assert_problem(calculate(client, bearer(token)), 401, "unauthorized")
    assert_problem(client.post("/api/v1/widget/session", headers=bearer(token)), 401, "unauthorized")
    assert_problem(frame(client, frame_token), 401, "unauthorized")
    # Its full page has no publishable key left.
    assert_problem(client.get(f"/w/{b.slug}", headers=NO_AUTH), 404, "not-found")


def test_removing_an_origin_ends_its_sessions(client: TestClient) -> None:
    b = new_broker(client)
    kept, dropped = session_token(client, b, origin=ORIGIN), session_token(client, b, origin=OTHER_ALLOWED)
    resp = client.put(f"/api/v1/brokers/{b.id}/config", json={**CONFIG, "allowedOrigins": [ORIGIN]}, headers=b.auth)
    assert resp.status_code == 200, resp.text
    assert calculate(client, bearer(kept)).status_code == 200
    assert_problem(calculate(client, bearer(dropped)), 401, "unauthorized")
    assert_problem(client.post("/api/v1/widget/session", headers=bearer(dropped)), 401, "unauthorized")
    assert_problem(get_config(client, b, origin=OTHER_ALLOWED), 403, "origin-not-allowed")


# --- the iframe document -------------------------------------------------------------------------------
def test_frame_document_and_headers(client: TestClient, broker: BrokerFixture) -> None:
    token = session_token(client, broker)
    resp = frame(client, token, wid="w_1-A")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "text/html; charset=utf-8"
    assert resp.headers["content-security-policy"] == f"frame-ancestors {ORIGIN} {OTHER_ALLOWED}; {CSP_REST}"
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert resp.headers["cache-control"] == "no-store"
    assert resp.headers["vary"] == "Accept-Encoding" and resp.headers["content-encoding"] == "gzip"
    html = resp.text
    urls = {name: assets.ASSETS.url(name) for name in ("app.css", "app.js", "i18n/de.json", "instruments.json")}
    assert all(u.startswith("/widget/v/") for u in urls.values()), urls
    assert html.startswith('<!doctype html><html lang="de" dir="ltr"><head><meta charset="utf-8">'
                           '<meta name="viewport" content="width=device-width,initial-scale=1">'
                           f"<title>Positionsgrößenrechner – Broker {broker.slug}</title>"
                           f'<link rel="stylesheet" href="{urls["app.css"]}">'
                           f'<link rel="preload" href="{urls["i18n/de.json"]}" as="fetch" crossorigin>'
                           f'<link rel="preload" href="{urls["instruments.json"]}" as="fetch" crossorigin>'
                           '<script id="fxr-boot" type="application/json">')
    assert html.endswith(f'</script><script src="{urls["app.js"]}" defer></script></head>'
                         '<body><div id="app"></div></body></html>')
    boot = boot_of(html)
    session = boot.pop("session")
    assert boot.pop("assets") == {"i18n": urls["i18n/de.json"], "instruments": urls["instruments.json"]}
    assert boot == {
        "mode": "embedded", "wid": "w_1-A", "parentOrigin": ORIGIN,
        "broker": {"slug": broker.slug, "name": f"Broker {broker.slug}"},
        "branding": {"primaryColor": "#aa3300", "logoUrl": "https://cdn.acme-widget.example/logo.svg",
                     "fontFamily": "Inter, sans-serif", "darkMode": True},
        "features": {"advancedScenarios": False, "correlationAnalysis": True, "portfolio": True, "projections": False},
        "locale": "de", "theme": "dark", "maxLeverage": 30.0,
    }
    assert set(session) == {"token", "expiresAt"}
    assert widget_claims(session["token"])["org"] == ORIGIN
    assert calculate(client, bearer(session["token"])).status_code == 200


def test_frame_of_a_broker_without_origins_cannot_be_framed(client: TestClient) -> None:
    b = new_broker(client, config={"allowedOrigins": []})
    auth = auth_service(client)
    key = b.publishable_key.split("_")[3]
    token, _ = auth.widget_tokens.issue(broker_id=b.id, key_id=key, origin=None)
    resp = frame(client, token)
    assert resp.status_code == 200
    assert resp.headers["content-security-policy"] == f"frame-ancestors 'none'; {CSP_REST}"


@pytest.mark.parametrize("features,expected", [
    ("advancedScenarios,portfolio,correlationAnalysis",
     {"advancedScenarios": False, "correlationAnalysis": True, "portfolio": True, "projections": False}),
    ("advancedScenarios,projections", {"advancedScenarios": False, "correlationAnalysis": False, "portfolio": False,
                                       "projections": False}),
    ("portfolio, unknownThing", {"advancedScenarios": False, "correlationAnalysis": False, "portfolio": True,
                                 "projections": False}),
    ("", {"advancedScenarios": False, "correlationAnalysis": True, "portfolio": True, "projections": False}),
])
def test_features_narrow_but_never_enable(client: TestClient, broker: BrokerFixture, features: str,
                                          expected: dict[str, bool]) -> None:
    resp = frame(client, session_token(client, broker), features=features)
    assert boot_of(resp.text)["features"] == expected


@pytest.mark.parametrize("params,lang,direction,theme", [
    ({"locale": "ar"}, "ar", "rtl", "dark"),
    ({"locale": "ja", "theme": "light"}, "ja", "ltr", "light"),
    ({"locale": "xx", "theme": "auto"}, "de", "ltr", "auto"),
    ({"locale": "<b>", "theme": "purple"}, "de", "ltr", "dark"),
])
def test_locale_direction_and_theme(client: TestClient, broker: BrokerFixture, params: dict[str, str], lang: str,
                                    direction: str, theme: str) -> None:
    resp = frame(client, session_token(client, broker), **params)
    assert resp.status_code == 200
    assert resp.text.startswith(f'<!doctype html><html lang="{lang}" dir="{direction}">')
    boot = boot_of(resp.text)
    assert (boot["locale"], boot["theme"]) == (lang, theme)


def test_theme_default_follows_branding(client: TestClient) -> None:
    light = new_broker(client, config={"allowedOrigins": [ORIGIN]})
    boot = boot_of(frame(client, session_token(client, light)).text)
    assert (boot["theme"], boot["locale"], boot["maxLeverage"], boot["branding"]["logoUrl"]) == ("light", "en", None,
                                                                                                 None)


@pytest.mark.parametrize("wid", ["", "has space", "x" * 33, "a/b", "<script>"])
def test_frame_refuses_a_bad_widget_id(client: TestClient, broker: BrokerFixture, wid: str) -> None:
    body = assert_problem(frame(client, session_token(client, broker), wid=wid), 422, "validation-error")
    assert any(e["field"].endswith("wid") for e in body["errors"]), body


def test_frame_without_session_names_the_field(client: TestClient) -> None:
    body = assert_problem(client.get("/widget/frame", headers=NO_AUTH), 422, "validation-error")
    assert any(e["field"].endswith("session") for e in body["errors"]), body


# --- full page and host mapping ---------------------------------------------------------------------------
def test_full_page(client: TestClient, broker: BrokerFixture) -> None:
    resp = client.get(f"/w/{broker.slug}", params={"locale": "ar"}, headers=NO_AUTH)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-security-policy"] == f"frame-ancestors 'none'; {CSP_REST}"
    assert resp.headers["cache-control"] == "no-store" and resp.headers["x-content-type-options"] == "nosniff"
    assert resp.text.startswith('<!doctype html><html lang="ar" dir="rtl">')
    boot = boot_of(resp.text)
    assert (boot["mode"], boot["parentOrigin"], boot["wid"], boot["broker"]["slug"]) == ("page", None, None,
                                                                                         broker.slug)
    claims = widget_claims(boot["session"]["token"])
    assert claims["bid"] == str(broker.id) and claims["org"] is None
    assert calculate(client, bearer(boot["session"]["token"])).json()["lotSize"] == 0.66


def test_full_page_unknown_or_inactive_broker(client: TestClient) -> None:
    assert_problem(client.get("/w/no-such-broker-anywhere", headers=NO_AUTH), 404, "not-found")
    b = new_broker(client)
    assert client.get(f"/w/{b.slug}", headers=NO_AUTH).status_code == 200
    sql(client, "update brokers set status = 'suspended' where id = :b", {"b": b.id})
    auth_service(client).forget_broker(b.id)
    assert_problem(client.get(f"/w/{b.slug}", headers=NO_AUTH), 404, "not-found")


def test_host_mapping_serves_the_right_broker_only(client: TestClient) -> None:
    tag = uuid.uuid4().hex[:8]
    a = new_broker(client, domains=[f"risk.a-{tag}.example", f"calc.a-{tag}.example"])
    b = new_broker(client, domains=[f"risk.b-{tag}.example"])
    for host, expected in [(f"risk.a-{tag}.example", a), (f"CALC.A-{tag}.example:8443", a),
                           (f"risk.b-{tag}.example", b), (f"risk.b-{tag}.example.", b)]:
        resp = client.get("/", headers={**NO_AUTH, "Host": host})
        assert resp.status_code == 200, (host, resp.text)
        boot = boot_of(resp.text)
        assert boot["broker"]["slug"] == expected.slug and boot["mode"] == "page", host
        assert widget_claims(boot["session"]["token"])["bid"] == str(expected.id)
        assert resp.headers["content-security-policy"].startswith("frame-ancestors 'none';")
    for host in [f"a-{tag}.example", f"evil.risk.a-{tag}.example", "testserver", "127.0.0.1:8000", "[::1]:8000"]:
        assert_problem(client.get("/", headers={**NO_AUTH, "Host": host}), 404, "not-found")


def test_a_domain_claimed_twice_serves_neither(client: TestClient) -> None:
    host = f"shared-{uuid.uuid4().hex[:8]}.example"
    new_broker(client, domains=[host])
    new_broker(client, domains=[host])
    assert_problem(client.get("/", headers={**NO_AUTH, "Host": host}), 404, "not-found")


def test_boot_json_cannot_break_out(client: TestClient) -> None:
    name = "</script><script>alert(1)</script> & <!-- \u2028"
    b = new_broker(client, name=name)
    for resp in (client.get(f"/w/{b.slug}", headers=NO_AUTH), frame(client, session_token(client, b))):
        assert resp.status_code == 200
        html = resp.text
        assert "<script>alert" not in html and "<!--" not in html
        assert html.count("<script") == 2 and html.count("</script>") == 2
        assert " – &lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;!-- \u2028</title>" in html
        assert boot_of(html)["broker"]["name"] == name


# --- static files ---------------------------------------------------------------------------------------
@pytest.fixture
def widget_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "i18n").mkdir()
    (tmp_path / "widget.js").write_text("/* loader */ console.log('fxr');")
    (tmp_path / "app.js").write_text("/* app */")
    (tmp_path / "app.css").write_text(":root{--fxr:1}")
    (tmp_path / "i18n" / "en.json").write_text('{"title": "Position size"}')
    (tmp_path / "secret.txt").write_text("not served")
    monkeypatch.setattr(assets.ASSETS, "root", tmp_path)
    return tmp_path


def test_widget_dir_is_the_repository_one() -> None:
    assert assets.WIDGET_DIR == Path(__file__).resolve().parents[1] / "widget"


@pytest.mark.parametrize("path,media_type", [
    ("/widget.js", "text/javascript; charset=utf-8"), ("/widget/app.js", "text/javascript; charset=utf-8"),
    ("/widget/app.css", "text/css; charset=utf-8"), ("/widget/i18n/en.json", "application/json"),
])
def test_static_files(client: TestClient, widget_dir: Path, path: str, media_type: str) -> None:
    resp = client.get(path, headers=NO_AUTH)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == media_type
    assert resp.headers["cache-control"] == "public, max-age=300"
    assert resp.headers["x-content-type-options"] == "nosniff"
    name = path.removeprefix("/widget/").removeprefix("/")
    assert resp.content == (widget_dir / name).read_bytes()
    etag = resp.headers["etag"]
    again = client.get(path, headers={**NO_AUTH, "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag


def test_static_files_follow_edits_and_deletions(client: TestClient, widget_dir: Path) -> None:
    first = client.get("/widget/app.js", headers=NO_AUTH)
    (widget_dir / "app.js").write_text("/* app, edited and longer */")
    second = client.get("/widget/app.js", headers={**NO_AUTH, "If-None-Match": first.headers["etag"]})
    assert second.status_code == 200 and second.text == "/* app, edited and longer */"
    (widget_dir / "app.js").unlink()
    assert_problem(client.get("/widget/app.js", headers=NO_AUTH), 404, "not-found")


def test_loader_is_loadable_cross_origin(client: TestClient, widget_dir: Path) -> None:
    resp = client.get("/widget.js", headers=NO_AUTH)
    assert resp.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-origin" not in client.get("/widget/app.js", headers=NO_AUTH).headers


@pytest.mark.parametrize("path", [
    "/widget/..%2fapp/main.py", "/widget/..%2F..%2Fapp%2Fmain.py", "/widget/%2e%2e/app/main.py",
    "/widget/i18n/..%2f..%2fapp%2fmain.py.json", "/widget/i18n/xx.json", "/widget/i18n/EN.json",
    "/widget/secret.txt", "/widget/i18n/..%2fsecret.txt", "/widget/widget.js", "/widget/../pyproject.toml",
])
def test_static_files_refuse_everything_else(client: TestClient, widget_dir: Path, path: str) -> None:
    resp = client.get(path, headers=NO_AUTH)
    assert_problem(resp, 404, "not-found")
    assert b"not served" not in resp.content and b"create_app" not in resp.content


def test_missing_static_file_is_a_404_problem(client: TestClient, widget_dir: Path) -> None:
    assert_problem(client.get("/widget/i18n/de.json", headers=NO_AUTH), 404, "not-found")


def test_a_widget_session_runs_the_widgets_calculations_only(client: TestClient) -> None:
    """Issue 12: a widget session could call /batch, charged to the broker."""
    token = session_token(client, new_broker(client))
    size = {"accountBalance": 10000, "accountCurrency": "USD", "riskPercentage": 1, "currencyPair": "EURUSD",
            "entryPrice": 1.1, "stopLoss": 1.099}
    assert client.post("/api/v1/calculate/position-size", json=size, headers=bearer(token)).status_code == 200
    batch = client.post("/api/v1/calculate/batch", json={"items": [size] * 10}, headers=bearer(token))
    assert_problem(batch, 403, "forbidden")
    assert_problem(client.post("/api/v1/calculate/var", json={}, headers=bearer(token)), 403, "forbidden")


def test_one_widget_visitor_cannot_spend_the_brokers_quota(settings: Settings) -> None:
    """A visitor's own bucket (60 per minute per client address) runs out long before the broker's."""
    with app_on(settings, rate_limit_prefix="rl-widget-visitor:") as c:
        broker = make_broker(c, tier="standard", config={"allowedOrigins": [ORIGIN]})
        size = {"accountBalance": 10000, "accountCurrency": "USD", "riskPercentage": 1, "currencyPair": "EURUSD",
                "entryPrice": 1.1, "stopLoss": 1.099}
        statuses = []
        for _ in range(7):  # a visitor opening new sessions does not get a new bucket
            token = session_token(c, broker)
            statuses += [c.post("/api/v1/calculate/position-size", json=size, headers=bearer(token)).status_code
                         for _ in range(10)]
        assert statuses.count(200) == 60 and statuses.count(429) == 10
        left = c.post("/api/v1/calculate/position-size", json=size, headers=broker.auth)
        assert left.status_code == 200
        assert int(left.headers["RateLimit-Remaining"]) >= 120 - 60 - 7 - 1 - 1


def test_errors_to_the_brokers_own_pages_carry_cors(client: TestClient) -> None:
    """Issue 12: a web developer on an allowed page sees the real problem, not an opaque CORS failure;
    a page on any other origin still gets no CORS header."""
    broker = new_broker(client)
    wrong_key = broker.publishable_key[:-8] + "AAAAAAAA"
    own = get_config(client, broker, key=wrong_key)
    assert_problem(own, 401)
    assert own.headers["access-control-allow-origin"] == ORIGIN
    stranger = get_config(client, broker, key=wrong_key, origin="https://evil.example")
    assert_problem(stranger, 401)
    assert "access-control-allow-origin" not in stranger.headers


def test_the_full_page_is_opt_in(client: TestClient) -> None:
    """Issue 12: /w/{slug} handed every broker's visitors a renewable session, with no key and no Origin."""
    off = new_broker(client, config={**CONFIG, "fullPage": False})
    assert client.get(f"/w/{off.slug}", headers=NO_AUTH).status_code == 404
    on = new_broker(client)
    assert client.get(f"/w/{on.slug}", headers=NO_AUTH).status_code == 200


def test_full_pages_are_limited_per_address(settings: Settings) -> None:
    with app_on(settings, rate_limit_prefix="rl-pages:", widget_pages_per_ip=3) as c:
        broker = new_broker(c)
        statuses = [c.get(f"/w/{broker.slug}", headers=NO_AUTH).status_code for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]


def test_widget_sessions_from_the_config_are_limited_per_address(settings: Settings) -> None:
    with app_on(settings, rate_limit_prefix="rl-config:", widget_pages_per_ip=3) as c:
        broker = new_broker(c)
        statuses = [get_config(c, broker).status_code for _ in range(11)]
        assert statuses == [200] * 9 + [429, 429]  # three times the full-page allowance


# --- on the wire: compression, hashed URLs, ETags (issue 19) ---------------------------------------------
def test_assets_are_compressed_as_negotiated_and_hashed_urls_are_immutable(client: TestClient) -> None:
    app_js = assets.ASSETS.get("app.js")
    assert app_js is not None and len(app_js.body.body) > 1024
    url = app_js.url
    for accept, coding in (("gzip, deflate, br", "br"), ("gzip", "gzip"), ("br;q=0, gzip;q=0.5", "gzip"),
                           ("identity", None), ("gzip;q=0", None)):
        resp = client.get(url, headers={**NO_AUTH, "Accept-Encoding": accept})
        assert resp.status_code == 200
        assert resp.headers.get("content-encoding") == coding, accept
        assert resp.headers["vary"] == "Accept-Encoding"
        assert resp.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert resp.content == app_js.body.body  # decoded by the client: the same bytes
        wire = {"br": app_js.body.br, "gzip": app_js.body.gzip, None: app_js.body.body}[coding]
        assert wire is not None and int(resp.headers["content-length"]) == len(wire)
        again = client.get(url, headers={**NO_AUTH, "Accept-Encoding": accept, "If-None-Match": resp.headers["etag"]})
        assert again.status_code == 304 and again.headers["etag"] == resp.headers["etag"]
    assert len(app_js.body.br or b"") < len(app_js.body.gzip or b"") < len(app_js.body.body) // 2
    # A hash that is not the file's (a page from before a release) gets the current file, never cached as it.
    stale = client.get(f"/widget/v/{'0' * 20}/app.js", headers=NO_AUTH)
    assert stale.status_code == 200 and stale.headers["cache-control"] == "no-cache"
    assert stale.content == app_js.body.body
    # Only the served names exist under a hash, too.
    assert_problem(client.get(f"/widget/v/{app_js.digest}/secret.txt", headers=NO_AUTH), 404, "not-found")
    assert client.get(f"/widget/v/{app_js.digest}/..%2fpyproject.toml", headers=NO_AUTH).status_code in (404, 422)
    # The loader keeps its address (brokers paste it): five minutes, ETag, compressed.
    loader = client.get("/widget.js", headers={**NO_AUTH, "Accept-Encoding": "gzip"})
    assert loader.headers["content-encoding"] == "gzip" and loader.headers["cache-control"] == "public, max-age=300"


def test_widget_instrument_list_is_compact_and_cached(client: TestClient) -> None:
    url = assets.ASSETS.url("instruments.json")
    resp = client.get(url, headers={**NO_AUTH, "Accept-Encoding": "gzip"})
    assert resp.status_code == 200 and resp.headers["cache-control"] == "public, max-age=31536000, immutable"
    data = resp.json()
    rows = {r[0]: dict(zip(data["fields"], r, strict=True)) for r in data["items"]}
    assert rows["EURUSD"] == {"symbol": "EURUSD", "assetClass": "fx-major", "base": "EUR", "quote": "USD",
                              "pipSize": 0.0001, "digits": 5, "lotStep": 0.01}
    assert len(resp.content) < 8 * 1024 and int(resp.headers["content-length"]) < 2 * 1024


def test_instrument_catalogue_has_an_etag_and_compresses(client: TestClient) -> None:
    resp = client.get("/api/v1/instruments", headers={**NO_AUTH, "Accept-Encoding": "gzip"})
    assert resp.status_code == 200 and resp.headers["content-encoding"] == "gzip"
    assert resp.headers["cache-control"] == "public, max-age=3600" and resp.headers["vary"] == "Accept-Encoding"
    assert int(resp.headers["content-length"]) < len(resp.content) // 5
    again = client.get("/api/v1/instruments", headers={**NO_AUTH, "Accept-Encoding": "gzip",
                                                       "If-None-Match": resp.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    metals = client.get("/api/v1/instruments?assetClass=metal", headers=NO_AUTH)
    assert metals.headers["etag"] != resp.headers["etag"] and metals.json()["count"] >= 2
    assert client.get("/api/v1/instruments?assetClass=nope", headers=NO_AUTH).json()["count"] == 0


def test_the_calculation_api_is_never_compressed(client: TestClient) -> None:
    """Compression is for assets and documents only: the calculation path is latency-bound and benchmarked."""
    token = session_token(client, new_broker(client))
    body = {"accountBalance": 10000, "accountCurrency": "USD", "currencyPair": "EURUSD", "entryPrice": 1.185,
            "stopLoss": 1.182, "riskPercentage": 2, "takeProfit": [{"price": 1.19, "share": 0.5},
                                                                   {"price": 1.2, "share": 0.5}]}
    resp = client.post("/api/v1/calculate/position-size?explain=true", json=body,
                       headers={**bearer(token), "Accept-Encoding": "gzip, br"})
    assert resp.status_code == 200, resp.text
    assert len(resp.content) > 1024 and "content-encoding" not in resp.headers


def test_a_brokers_web_font_is_allowed_by_the_frame_csp(client: TestClient) -> None:
    """Issue 19: the broker's web font was blocked by the frame's CSP. Its stylesheet's origin joins
    style-src and its font hosts become font-src; nothing else is opened."""
    font = {"fontFamily": "Inter, sans-serif", "fontStylesheet": "https://fonts.googleapis.com/css2?family=Inter",
            "fontHosts": ["https://fonts.gstatic.com"]}
    b = new_broker(client, config={**CONFIG, "branding": {**CONFIG["branding"], **font}})
    resp = frame(client, session_token(client, b))
    csp = resp.headers["content-security-policy"]
    assert "style-src 'self' 'unsafe-inline' https://fonts.googleapis.com;" in csp
    assert csp.endswith("; font-src 'self' https://fonts.gstatic.com")
    assert '<link rel="stylesheet" href="https://fonts.googleapis.com/css2?family=Inter">' in resp.text
    # Without a font configured the policy is the fixed one (no font-src beyond 'self' by default-src).
    plain_csp = frame(client, session_token(client, new_broker(client))).headers["content-security-policy"]
    assert "font-src" not in plain_csp and "googleapis" not in plain_csp
    # Font hosts must be https origins.
    bad = client.put(f"/api/v1/brokers/{b.id}/config", headers=b.auth, json={
        **CONFIG, "branding": {**CONFIG["branding"], "fontHosts": ["http://fonts.example.com"]}})
    assert_problem(bad, 422)
