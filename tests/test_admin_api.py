"""Admin API: users, broker configuration, audit trail, stored calculations, per-broker policy."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import BrokerFixture, make_broker
from tests.helpers_auth import (
    POSITION_SIZE,
    USER_PASSWORD,
    assert_problem,
    audit_rows,
    bearer,
    calculate,
    create_user,
    login,
    mfa_login,
    problem_fields,
    superadmin_token,
    user_token,
)

pytestmark = pytest.mark.usefixtures("no_server_errors")

ORIGIN = "https://www.example.com"


@pytest.fixture(scope="module")
def a(client: TestClient) -> BrokerFixture:
    return make_broker(client)


@pytest.fixture(scope="module")
def b(client: TestClient) -> BrokerFixture:
    return make_broker(client)


@pytest.fixture(scope="module")
def admin(client: TestClient, a: BrokerFixture) -> dict[str, str]:
    token, _ = mfa_login(client, a.slug, a.admin_email)
    return bearer(token)


def put_config(client: TestClient, broker: BrokerFixture, config: dict[str, Any],
               headers: dict[str, str] | None = None) -> Any:
    body = {"allowedOrigins": [ORIGIN], **config}
    return client.put(f"/api/v1/brokers/{broker.id}/config", json=body, headers=headers or broker.auth)


# --- users -----------------------------------------------------------------------------------------
def test_duplicate_email_is_422_naming_email(client: TestClient, a: BrokerFixture, b: BrokerFixture,
                                             admin: dict[str, str]) -> None:
    _, email = create_user(client, a, "BROKER_USER")
    for variant in (email, email.upper()):
        resp = client.post(f"/api/v1/brokers/{a.id}/users",
                           json={"email": variant, "role": "END_USER", "password": USER_PASSWORD}, headers=admin)
        assert_problem(resp, 422, "validation-error")
        assert problem_fields(resp) == ["email"]
    # Emails are unique per broker, not across brokers (and B learns nothing about A's users).
    assert client.post(f"/api/v1/brokers/{b.id}/users", json={"email": email, "role": "END_USER"},
                       headers=b.auth).status_code == 201


@pytest.mark.parametrize("body, field", [
    ({"email": "not-an-email", "role": "BROKER_USER"}, "email"),
    ({"email": "x@example.com", "role": "SUPERADMIN"}, "role"),
    ({"email": "x@example.com", "role": "BROKER_USER", "password": "short"}, "password"),
    ({"email": "x@example.com", "role": "BROKER_USER", "brokerId": "00000000-0000-0000-0000-000000000000"},
     "brokerId"),
])
def test_bad_user_input_is_422_naming_the_field(client: TestClient, a: BrokerFixture, admin: dict[str, str],
                                                body: dict[str, Any], field: str) -> None:
    resp = client.post(f"/api/v1/brokers/{a.id}/users", json=body, headers=admin)
    assert_problem(resp, 422, "validation-error")
    assert field in problem_fields(resp)


def test_patch_own_role_or_status_is_422(client: TestClient, a: BrokerFixture, admin: dict[str, str]) -> None:
    resp = client.patch(f"/api/v1/users/{a.admin_id}", json={"role": "END_USER"}, headers=admin)
    assert_problem(resp, 422, "validation-error")
    assert problem_fields(resp) == ["role"]
    resp = client.patch(f"/api/v1/users/{a.admin_id}", json={"status": "disabled"}, headers=admin)
    assert problem_fields(resp) == ["status"]
    uid, tok = user_token(client, a, "BROKER_USER")
    resp = client.patch(f"/api/v1/users/{uid}", json={"role": "BROKER_ADMIN"}, headers=bearer(tok))
    assert_problem(resp, 422)
    assert problem_fields(resp) == ["role"]
    # Properties nobody writes through this route.
    for body in ({"tier": "enterprise"}, {"brokerId": str(uuid.uuid4())}, {"id": str(uuid.uuid4())},
                 {"email": "new@example.com"}, {"mfaEnabled": False}):
        resp = client.patch(f"/api/v1/users/{uid}", json=body, headers=bearer(tok))
        assert_problem(resp, 422, "validation-error")
        assert problem_fields(resp) == list(body)
    me = client.get(f"/api/v1/users/{uid}", headers=bearer(tok)).json()
    assert me["role"] == "BROKER_USER" and me["brokerId"] == str(a.id)
    # A user may rename itself.
    assert client.patch(f"/api/v1/users/{uid}", json={"name": "Me"}, headers=bearer(tok)).json()["name"] == "Me"


def test_admin_changes_another_users_role(client: TestClient, a: BrokerFixture, admin: dict[str, str]) -> None:
    uid, _ = create_user(client, a, "END_USER")
    resp = client.patch(f"/api/v1/users/{uid}", json={"role": "BROKER_USER", "name": "Promoted"}, headers=admin)
    assert resp.status_code == 200 and resp.json()["role"] == "BROKER_USER"
    ev = [r for r in audit_rows(client, a.id, "user.updated") if r.target_id == str(uid)]
    assert ev and ev[-1].details["role"] == "BROKER_USER" and ev[-1].details["fields"] == ["name", "role"]


def test_broker_user_cannot_update_config_or_grant_roles(client: TestClient, a: BrokerFixture) -> None:
    _, tok = user_token(client, a, "BROKER_USER")
    assert_problem(put_config(client, a, {"maxLeverage": 5}, bearer(tok)), 403, "forbidden")
    target, _ = create_user(client, a, "END_USER")
    assert_problem(client.patch(f"/api/v1/users/{target}", json={"role": "BROKER_ADMIN"}, headers=bearer(tok)), 404)
    assert_problem(client.post(f"/api/v1/brokers/{a.id}/users", json={"email": "z@example.com"},
                               headers=bearer(tok)), 403)


# --- broker configuration ----------------------------------------------------------------------------
@pytest.mark.parametrize("config, field", [
    ({"branding": {"primaryColor": "red"}}, "branding.primaryColor"),
    ({"branding": {"primaryColor": "#12345"}}, "branding.primaryColor"),
    ({"branding": {"primaryColor": "#1234567"}}, "branding.primaryColor"),
    ({"branding": {"logoUrl": "http://cdn.example.com/logo.png"}}, "branding.logoUrl"),
    ({"branding": {"logoUrl": "javascript:alert(1)"}}, "branding.logoUrl"),
    ({"branding": {"logoUrl": "https://cdn.example.com/a\"onerror=\"x.png"}}, "branding.logoUrl"),
    ({"branding": {"fontFamily": "x;}</style><script>"}}, "branding.fontFamily"),
    ({"branding": {"shadow": True}}, "branding.shadow"),
    ({"theme": "dark"}, "theme"),
    ({"features": {"everything": True}}, "features.everything"),
    ({"maxLeverage": 0}, "maxLeverage"),
    ({"maxLeverage": "10"}, "maxLeverage"),
    ({"allowedOrigins": ["https://www.example.com/path"]}, "allowedOrigins[0]"),
    ({"allowedOrigins": ["http://www.example.com"]}, "allowedOrigins[0]"),
    ({"locale": "xx"}, "locale"),
    ({"jurisdiction": "mars"}, "jurisdiction"),
    ({"instrumentOverrides": {"EURUSD": {"lotStep": -1}}}, "instrumentOverrides.EURUSD.lotStep"),
    ({"rounding": {"lotRounding": "up"}}, "rounding.lotRounding"),
])
def test_bad_config_is_422_naming_the_field(client: TestClient, a: BrokerFixture, admin: dict[str, str],
                                            config: dict[str, Any], field: str) -> None:
    resp = put_config(client, a, config, admin)
    assert_problem(resp, 422, "validation-error")
    assert problem_fields(resp) == [field]


def test_config_update_applies_and_is_audited(client: TestClient, a: BrokerFixture, admin: dict[str, str]) -> None:
    before = client.get(f"/api/v1/brokers/{a.id}", headers=admin).json()["configVersion"]
    rid = f"cfg-{uuid.uuid4().hex}"
    config = {"branding": {"primaryColor": "#AABBCC", "logoUrl": "https://cdn.example.com/logo.svg",
                           "darkMode": True}, "features": {"advancedScenarios": True}, "locale": "de"}
    resp = put_config(client, a, config, {**admin, "X-Request-ID": rid})
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["configVersion"] == before + 1
    assert out["config"]["branding"]["primaryColor"] == "#aabbcc" and out["config"]["locale"] == "de"
    assert out["config"]["features"]["advancedScenarios"] is True
    events = client.get(f"/api/v1/users/{a.admin_id}/activity", headers=admin).json()["events"]
    ev = next(e for e in events if e["requestId"] == rid)
    assert ev["action"] == "broker.config_updated" and ev["actorType"] == "user"
    assert ev["actorId"] == str(a.admin_id) and ev["ip"] == "testclient" and ev["targetId"] == str(a.id)
    assert {"branding", "features", "locale"} <= set(ev["details"]["changed"])


# --- the audit trail -----------------------------------------------------------------------------------
def test_logins_key_events_config_and_user_changes_are_audited(client: TestClient) -> None:
    broker = make_broker(client)
    token, user = mfa_login(client, broker.slug, broker.admin_email)
    admin = bearer(token)
    rid = uuid.uuid4().hex[:12]
    h = {**admin, "X-Request-ID": f"{rid}-create"}
    spec = {"email": f"u-{rid}@example.com", "role": "END_USER", "password": USER_PASSWORD}
    uid = client.post(f"/api/v1/brokers/{broker.id}/users", headers=h, json=spec).json()["id"]
    client.patch(f"/api/v1/users/{uid}", json={"name": "Renamed"}, headers={**admin, "X-Request-ID": f"{rid}-patch"})
    key = client.post(f"/api/v1/brokers/{broker.id}/api-keys", json={"kind": "secret"},
                      headers={**admin, "X-Request-ID": f"{rid}-key"}).json()
    client.post(f"/api/v1/brokers/{broker.id}/api-keys/{key['id']}/rotate", json={},
                headers={**admin, "X-Request-ID": f"{rid}-rotate"})
    client.delete(f"/api/v1/brokers/{broker.id}/api-keys/{key['id']}", headers={**admin, "X-Request-ID": f"{rid}-rev"})
    put_config(client, broker, {"maxLeverage": 50}, {**admin, "X-Request-ID": f"{rid}-cfg"})
    login(client, broker.slug, f"u-{rid}@example.com", USER_PASSWORD, headers={"X-Request-ID": f"{rid}-login"})
    expected = {f"{rid}-create": "user.created", f"{rid}-patch": "user.updated", f"{rid}-key": "api_key.created",
                f"{rid}-rotate": "api_key.rotated", f"{rid}-rev": "api_key.revoked",
                f"{rid}-cfg": "broker.config_updated", f"{rid}-login": "auth.login"}
    rows = audit_rows(client, broker.id)
    for request_id, action in expected.items():
        match = [r for r in rows if r.request_id == request_id and r.action == action]
        assert len(match) == 1, (request_id, action)
        ev = match[0]
        assert ev.ip == "testclient" and ev.actor_type == "user"
        assert ev.actor_id == (uid if action == "auth.login" else str(user.user_id))
    # The admin's own logins too (password, then with the code).
    logins = [r for r in rows if r.action == "auth.login" and r.actor_id == str(user.user_id)]
    assert [sorted(r.details["amr"]) for r in logins] == [["pwd"], ["otp", "pwd"]]
    # And through the API, for the user the change was made to.
    events = client.get(f"/api/v1/users/{uid}/activity", headers=admin).json()["events"]
    assert {e["action"] for e in events} >= {"user.created", "user.updated", "auth.login"}
    assert all(e["ip"] and e["requestId"] for e in events)


def test_activity_of_another_brokers_user_is_404(client: TestClient, a: BrokerFixture, b: BrokerFixture,
                                                 admin: dict[str, str]) -> None:
    assert_problem(client.get(f"/api/v1/users/{b.admin_id}/activity", headers=admin), 404, "not-found")
    events = client.get(f"/api/v1/users/{a.admin_id}/activity", headers=admin).json()["events"]
    assert events and all(str(b.id) not in str(e) for e in events)


# --- brokers (platform operator) ----------------------------------------------------------------------
def test_superadmin_creates_brokers_with_keys_and_duplicate_slug_is_422(client: TestClient) -> None:
    root = bearer(superadmin_token(client))
    slug = f"new-{uuid.uuid4().hex[:8]}"
    resp = client.post("/api/v1/brokers", json={"name": "New Broker", "slug": slug, "tier": "professional"},
                       headers=root)
    assert resp.status_code == 201, resp.text
    out = resp.json()
    assert out["slug"] == slug and out["tier"] == "professional"
    assert calculate(client, bearer(out["secretKey"])).status_code == 200
    dup = client.post("/api/v1/brokers", json={"name": "Again", "slug": slug}, headers=root)
    assert_problem(dup, 422, "validation-error")
    assert problem_fields(dup) == ["slug"]
    for body, field in (({"name": "X", "tier": "gold"}, "tier"), ({"name": "X", "slug": "Bad Slug"}, "slug"),
                        ({"name": "X", "config": {"nope": 1}}, "config.nope"), ({"name": ""}, "name")):
        bad = client.post("/api/v1/brokers", json=body, headers=root)
        assert_problem(bad, 422, "validation-error")
        assert problem_fields(bad) == [field]


# --- stored calculations and per-broker policy --------------------------------------------------------------
def test_stored_calculation_belongs_to_its_broker(client: TestClient, a: BrokerFixture, b: BrokerFixture) -> None:
    made = calculate(client, a.auth)
    assert made.status_code == 200
    calc_id = made.json()["calculationId"]
    listed = client.get("/api/v1/calculations?kind=position-size", headers=a.auth).json()["items"]
    assert calc_id in [c["calculationId"] for c in listed]
    one = client.get(f"/api/v1/calculations/{calc_id}", headers=a.auth)
    assert one.status_code == 200
    stored = one.json()
    assert stored["kind"] == "position-size" and stored["input"] == POSITION_SIZE
    assert stored["result"]["lotSize"] == made.json()["lotSize"] and stored["apiKeyId"]
    assert_problem(client.get(f"/api/v1/calculations/{calc_id}", headers=b.auth), 404, "not-found")
    assert calc_id not in [c["calculationId"] for c in
                           client.get("/api/v1/calculations?limit=200", headers=b.auth).json()["items"]]


def test_broker_config_applies_to_calculations(client: TestClient) -> None:
    broker = make_broker(client)
    base = calculate(client, broker.auth).json()
    assert base["leverage"] == 30 and base["leverageCap"] != "broker" and base["lotSize"] == 0.66
    resp = put_config(client, broker, {"maxLeverage": 10, "instrumentOverrides": {"eur/usd": {"lotStep": 0.1}}})
    assert resp.status_code == 200, resp.text
    assert "EURUSD" in resp.json()["config"]["instrumentOverrides"]
    capped = calculate(client, broker.auth).json()
    assert capped["leverage"] == 10 and capped["leverageCap"] == "broker"
    assert capped["lotSize"] == 0.6
    # The publishable key (widget) gets the same policy; another broker does not.
    widget = calculate(client, {**bearer(broker.publishable_key), "Origin": ORIGIN}).json()
    assert widget["leverage"] == 10 and widget["lotSize"] == 0.6
    other = calculate(client, make_broker(client).auth).json()
    assert other["leverage"] == 30 and other["lotSize"] == 0.66
    # A stricter request value still wins over the broker's cap.
    lower = calculate(client, broker.auth, {**POSITION_SIZE, "leverage": 5}).json()
    assert lower["leverage"] == 5


def test_allowed_origins_follow_the_config(client: TestClient) -> None:
    broker = make_broker(client)
    pk = bearer(broker.publishable_key)
    assert calculate(client, {**pk, "Origin": "https://risk.acme.example"}).status_code == 403
    put_config(client, broker, {"allowedOrigins": ["https://risk.acme.example"]})
    assert calculate(client, {**pk, "Origin": "https://risk.acme.example"}).status_code == 200
    assert calculate(client, {**pk, "Origin": ORIGIN}).status_code == 403
