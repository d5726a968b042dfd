"""Cross-tenant matrix: every admin and stored-data endpoint x {own, other broker, no auth, publishable
key, insufficient role}, plus the credential rules of the calculation endpoints.

Another broker's id (or object) answers 404 with the same body as an id that does not exist; no
credential is 401; a publishable key on stored data or admin routes is 403; a role or scope without
the permission is 403 (user records answer 404: a caller who may not see a user learns nothing).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from app.jobs.ownership import broker_job_id
from tests.conftest import BrokerFixture, make_broker
from tests.helpers_auth import (
    NO_AUTH,
    PIP_VALUE,
    USER_PASSWORD,
    admin_token,
    assert_problem,
    bearer,
    calculate,
    create_user,
    shape,
    superadmin_token,
    user_token,
)

pytestmark = pytest.mark.usefixtures("no_server_errors")

ORIGIN = "https://www.example.com"
CONFIG = {"branding": {"primaryColor": "#112233"}, "allowedOrigins": [ORIGIN]}
SSO = {"issuer": "https://idp.example.com", "clientId": "forexrisk", "clientSecret": "s3cret"}
# Routes with an id in their path that are not tenant data: public by design (the catalogue, the SSO
# entry points addressed by the broker's public slug).
PUBLIC_WITH_IDS = {("GET", "/api/v1/instruments/{symbol}"), ("GET", "/api/v1/auth/sso/{broker_slug}/login"),
                   ("GET", "/api/v1/auth/sso/{broker_slug}/callback")}
ID_NAMES = {"broker_id": "broker", "user_id": "user", "key_id": "key", "calculation_id": "calc", "job_id": "job",
            "report_id": "report"}
REPORT_PERIOD = {"from": "2026-01-01", "to": "2026-01-31"}


@dataclass
class World:
    a: BrokerFixture
    b: BrokerFixture
    admin: dict[str, str]  # A's BROKER_ADMIN, logged in with MFA
    broker_user: dict[str, str]  # A's BROKER_USER
    end_user: dict[str, str]  # A's END_USER
    calc_only: dict[str, str]  # an A secret key restricted to calc:run
    superadmin: dict[str, str]
    a_end_user_id: uuid.UUID
    a_calc: uuid.UUID
    b_calc: uuid.UUID
    b_key: uuid.UUID
    a_job: str
    b_job: str
    a_report: uuid.UUID  # a complete compliance report of each broker
    b_report: uuid.UUID

    def new_key(self, client: TestClient) -> uuid.UUID:
        resp = client.post(f"/api/v1/brokers/{self.a.id}/api-keys", json={"kind": "secret", "name": "matrix"},
                           headers=self.a.auth)
        assert resp.status_code == 201, resp.text
        return uuid.UUID(resp.json()["id"])


def _job_id(client: TestClient, broker: BrokerFixture) -> str:
    """A background job of the broker (app.jobs.ownership: its id names the broker)."""
    jobs = client.app.state.services.jobs  # type: ignore[attr-defined]
    job_id = broker_job_id(broker.id)
    found: str = client.portal.call(lambda: jobs.enqueue("refresh_history", ["EURUSD"], job_id=job_id))
    return found


def _report_id(client: TestClient, broker: BrokerFixture) -> uuid.UUID:
    """A complete compliance report of the broker (built by the in-process worker)."""
    resp = client.post(f"/api/v1/brokers/{broker.id}/reports/compliance", json=REPORT_PERIOD, headers=broker.auth)
    assert resp.status_code == 202, resp.text
    report_id = resp.json()["id"]
    deadline = time.monotonic() + 120  # a hang guard, not a speed check
    while (got := client.get(f"/api/v1/brokers/{broker.id}/reports/{report_id}", headers=broker.auth)
           ).json()["status"] not in ("complete", "failed"):
        assert time.monotonic() < deadline, got.text
        time.sleep(0.05)
    assert got.json()["status"] == "complete", got.text
    return uuid.UUID(report_id)


def _calc_id(client: TestClient, broker: BrokerFixture) -> uuid.UUID:
    resp = calculate(client, broker.auth)
    assert resp.status_code == 200, resp.text
    return uuid.UUID(resp.json()["calculationId"])


@pytest.fixture(scope="module")
def world(client: TestClient) -> World:
    # Enterprise: the matrix sends more requests than a standard tier allows in a burst.
    a, b = make_broker(client, tier="enterprise"), make_broker(client, tier="enterprise")
    _, bu = user_token(client, a, "BROKER_USER")
    end_id, eu = user_token(client, a, "END_USER")
    key = client.post(f"/api/v1/brokers/{a.id}/api-keys", json={"kind": "secret", "scopes": ["calc:run"]},
                      headers=a.auth)
    assert key.status_code == 201, key.text
    b_keys = client.get(f"/api/v1/brokers/{b.id}/api-keys", headers=b.auth)
    assert b_keys.status_code == 200
    return World(a=a, b=b, admin=bearer(admin_token(client, a)), broker_user=bearer(bu), end_user=bearer(eu),
                 calc_only=bearer(key.json()["key"]), superadmin=bearer(superadmin_token(client)),
                 a_end_user_id=end_id, a_calc=_calc_id(client, a), b_calc=_calc_id(client, b),
                 b_key=uuid.UUID(b_keys.json()[0]["id"]), a_job=_job_id(client, a), b_job=_job_id(client, b),
                 a_report=_report_id(client, a), b_report=_report_id(client, b))


def _unique_email() -> str:
    return f"new-{uuid.uuid4().hex[:8]}@example.com"


# name -> (method, path template, body factory)
ENDPOINTS: dict[str, tuple[str, str, Callable[[], dict[str, Any]] | None]] = {
    "list-brokers": ("GET", "/api/v1/brokers", None),
    "create-broker": ("POST", "/api/v1/brokers",
                      lambda: {"name": f"New broker {uuid.uuid4().hex[:8]}", "tier": "free"}),
    "get-broker": ("GET", "/api/v1/brokers/{broker}", None),
    "delete-broker": ("DELETE", "/api/v1/brokers/{broker}", None),
    "put-config": ("PUT", "/api/v1/brokers/{broker}/config", lambda: CONFIG),
    "patch-config": ("PATCH", "/api/v1/brokers/{broker}/config", lambda: {"branding": {"primaryColor": "#445566"}}),
    "get-sso": ("GET", "/api/v1/brokers/{broker}/sso", None),
    "put-sso": ("PUT", "/api/v1/brokers/{broker}/sso", lambda: SSO),
    "delete-sso": ("DELETE", "/api/v1/brokers/{broker}/sso", None),
    "list-users": ("GET", "/api/v1/brokers/{broker}/users", None),
    "create-user": ("POST", "/api/v1/brokers/{broker}/users",
                    lambda: {"email": _unique_email(), "role": "BROKER_USER", "password": USER_PASSWORD}),
    "get-user": ("GET", "/api/v1/users/{user}", None),
    "patch-user": ("PATCH", "/api/v1/users/{user}", lambda: {"name": "Renamed"}),
    "user-activity": ("GET", "/api/v1/users/{user}/activity", None),
    "export-user": ("GET", "/api/v1/users/{user}/export", None),
    "erase-user": ("POST", "/api/v1/users/{user}/erase", None),
    "list-keys": ("GET", "/api/v1/brokers/{broker}/api-keys", None),
    "create-key": ("POST", "/api/v1/brokers/{broker}/api-keys", lambda: {"kind": "secret", "scopes": ["calc:run"]}),
    "rotate-key": ("POST", "/api/v1/brokers/{broker}/api-keys/{key}/rotate", lambda: {"overlapHours": 1}),
    "revoke-key": ("DELETE", "/api/v1/brokers/{broker}/api-keys/{key}", None),
    "revoke-key-post": ("POST", "/api/v1/brokers/{broker}/api-keys/{key}/revoke", None),
    "list-calculations": ("GET", "/api/v1/calculations", None),
    "get-calculation": ("GET", "/api/v1/calculations/{calc}", None),
    "billing-enterprise": ("PUT", "/api/v1/billing/brokers/{broker}/enterprise", lambda: {"enterprise": False}),
    "get-job": ("GET", "/api/v1/jobs/{job}", None),
    "request-report": ("POST", "/api/v1/brokers/{broker}/reports/compliance", lambda: REPORT_PERIOD),
    "list-reports": ("GET", "/api/v1/brokers/{broker}/reports", None),
    "get-report": ("GET", "/api/v1/brokers/{broker}/reports/{report}", None),
    "download-report": ("GET", "/api/v1/brokers/{broker}/reports/{report}/download", None),
    "update-broker": ("PATCH", "/api/v1/brokers/{broker}", lambda: {"tier": "enterprise"}),
    "invite-user": ("POST", "/api/v1/users/{user}/invitation", None),
    "reset-mfa": ("POST", "/api/v1/users/{user}/mfa/reset", None),
    "widget-preview": ("POST", "/api/v1/brokers/{broker}/widget/preview", None),
}

OWN_STATUS = {"list-brokers": 200, "create-broker": 201, "get-broker": 200, "delete-broker": 204, "put-config": 200,
              "patch-config": 200, "get-sso": 200, "put-sso": 200, "delete-sso": 204, "revoke-key-post": 200,
              "list-users": 200, "create-user": 201, "get-user": 200, "patch-user": 200, "user-activity": 200,
              "export-user": 200, "erase-user": 200,
              "list-keys": 200, "create-key": 201, "rotate-key": 201, "revoke-key": 200,
              "list-calculations": 200, "get-calculation": 200, "get-job": 200,
              "request-report": 202, "list-reports": 200, "get-report": 200, "download-report": 200,
              "billing-enterprise": 200, "update-broker": 200, "invite-user": 200, "reset-mfa": 200,
              "widget-preview": 200}
# Platform-wide operations: their "own" caller is the platform operator.
SUPERADMIN_ONLY = {"create-broker", "delete-broker", "billing-enterprise", "update-broker"}

# name -> (credential lacking the permission, status)
ROLE_CASES: dict[str, tuple[str, int]] = {
    "list-brokers": ("end_user", 403),
    "create-broker": ("admin", 403),
    "get-broker": ("end_user", 403),
    "delete-broker": ("admin", 403),
    "put-config": ("broker_user", 403),
    "patch-config": ("broker_user", 403),
    "get-sso": ("broker_user", 403),
    "put-sso": ("broker_user", 403),
    "delete-sso": ("broker_user", 403),
    "revoke-key-post": ("broker_user", 403),
    "list-users": ("broker_user", 403),
    "create-user": ("broker_user", 403),
    # A user record the caller may not see is indistinguishable from one that does not exist.
    "get-user": ("broker_user", 404),
    "patch-user": ("broker_user", 404),
    "user-activity": ("end_user", 404),
    "export-user": ("broker_user", 404),
    "erase-user": ("broker_user", 404),
    "list-keys": ("broker_user", 403),
    "create-key": ("broker_user", 403),
    "rotate-key": ("broker_user", 403),
    "revoke-key": ("broker_user", 403),
    "list-calculations": ("calc_only", 403),
    "get-calculation": ("calc_only", 403),
    "billing-enterprise": ("admin", 403),
    "get-job": ("end_user", 403),
    "request-report": ("broker_user", 403),
    "list-reports": ("broker_user", 403),
    "get-report": ("calc_only", 403),
    "download-report": ("broker_user", 403),
    "update-broker": ("admin", 403),
    "invite-user": ("broker_user", 403),
    "reset-mfa": ("broker_user", 403),
    "widget-preview": ("end_user", 403),
}


def route_table() -> set[tuple[str, str]]:
    """Every tenant route of the app (its published OpenAPI paths), path ids named as in ENDPOINTS."""
    from app.main import create_app  # the document only: no lifespan, nothing starts

    table = set()
    for path, operations in create_app().openapi()["paths"].items():
        if not path.startswith("/api/v1/") or path.startswith("/api/v1/calculate/"):
            continue
        for method in operations:
            if (method.upper(), path) in PUBLIC_WITH_IDS:
                continue
            if "{" in path or path.startswith(("/api/v1/brokers", "/api/v1/users", "/api/v1/calculations")):
                normalised = re.sub(r"\{(\w+)\}", lambda m: "{" + ID_NAMES.get(m.group(1), m.group(1)) + "}", path)
                table.add((method.upper(), normalised))
    return table


# A tenant route the hand list above does not name is still called by every generic check below (no
# credential, a publishable key, another tenant's ids against random ones), with an empty body.
GENERATED: dict[str, tuple[str, str, Callable[[], dict[str, Any]] | None]] = {
    f"{m} {t}": (m, t, None) for m, t in sorted(route_table())
    if (m, t) not in {(method, template) for method, template, _ in ENDPOINTS.values()}}
EVERY = {**ENDPOINTS, **GENERATED}
WITH_IDS = [name for name, (_, path, _) in EVERY.items() if "{" in path]


class _Ids(dict[str, Any]):
    """Path ids by name; an id the matrix does not name (a sub-resource of a broker path, e.g. a trader or an
    alert rule) is a fresh random one, which the broker scope refuses before it is looked at."""

    def __missing__(self, key: str) -> str:
        return uuid.uuid4().hex


def _call(client: TestClient, name: str, headers: dict[str, str], **ids: Any) -> Response:
    method, template, body = EVERY[name]
    path = template.format_map(_Ids(ids))
    return client.request(method, path, json=body() if body else None, headers=headers)


def _own_ids(client: TestClient, w: World, name: str) -> dict[str, Any]:
    broker = w.a.id
    if name == "delete-broker":
        broker = make_broker(client).id  # a throwaway tenant for the platform operator to offboard
    key = w.new_key(client) if name in ("rotate-key", "revoke-key", "revoke-key-post") else None
    if name in ("get-sso", "delete-sso"):  # something to read or remove
        assert client.put(f"/api/v1/brokers/{broker}/sso", json=SSO, headers=w.admin).status_code == 200
    # Erasure is for good: a throwaway user, not the end user the other checks log in as.
    # An MFA reset ends every session of its user: a throwaway user too.
    user = create_user(client, w.a, "END_USER")[0] if name in ("erase-user", "reset-mfa") else w.a_end_user_id
    if name == "invite-user":  # an invitation is for a user who has no password yet
        made = client.post(f"/api/v1/brokers/{broker}/users", json={"email": _unique_email(), "role": "BROKER_USER"},
                           headers=w.a.auth)
        assert made.status_code == 201, made.text
        user = uuid.UUID(made.json()["id"])
    return {"broker": broker, "user": user, "calc": w.a_calc, "key": key, "job": w.a_job, "report": w.a_report}


def _other_ids(w: World) -> dict[str, Any]:
    return {"broker": w.b.id, "user": w.b.admin_id, "calc": w.b_calc, "key": w.b_key, "job": w.b_job,
            "report": w.b_report}


def _random_ids() -> dict[str, Any]:
    return {"broker": uuid.uuid4(), "user": uuid.uuid4(), "calc": uuid.uuid4(), "key": uuid.uuid4(),
            "job": broker_job_id(uuid.uuid4()), "report": uuid.uuid4()}


@pytest.mark.parametrize("name", list(ENDPOINTS))
def test_own(client: TestClient, world: World, name: str) -> None:
    headers = world.superadmin if name in SUPERADMIN_ONLY else world.admin
    resp = _call(client, name, headers, **_own_ids(client, world, name))
    assert resp.status_code == OWN_STATUS[name], resp.text


@pytest.mark.parametrize("name", WITH_IDS)
def test_other_broker_is_not_found_like_a_random_id(client: TestClient, world: World, name: str) -> None:
    other = _call(client, name, world.admin, **_other_ids(world))
    missing = _call(client, name, world.admin, **_random_ids())
    body = assert_problem(other, 404, "not-found")
    assert shape(body) == shape(assert_problem(missing, 404, "not-found"))
    # The same with a full-scope secret key of A.
    other_key = _call(client, name, world.a.auth, **_other_ids(world))
    assert shape(assert_problem(other_key, 404, "not-found")) == shape(body)


@pytest.mark.parametrize("name", ["rotate-key", "revoke-key"])
def test_other_brokers_key_under_own_broker_path_is_not_found(client: TestClient, world: World, name: str) -> None:
    ids = {**_other_ids(world), "broker": world.a.id}
    body = assert_problem(_call(client, name, world.admin, **ids), 404, "not-found")
    missing = _call(client, name, world.admin, **{**_random_ids(), "broker": world.a.id})
    assert shape(body) == shape(assert_problem(missing, 404, "not-found"))


def test_other_broker_state_is_untouched(client: TestClient, world: World) -> None:
    b = world.b
    for name in ("put-config", "delete-broker", "rotate-key", "revoke-key", "patch-user", "create-user",
                 "create-key", "erase-user"):
        assert _call(client, name, world.admin, **_other_ids(world)).status_code == 404
    resp = client.get(f"/api/v1/brokers/{b.id}", headers=b.auth)
    assert resp.status_code == 200
    assert resp.json()["status"] == "active"
    assert resp.json()["configVersion"] == 1
    keys = client.get(f"/api/v1/brokers/{b.id}/api-keys", headers=b.auth).json()
    assert len(keys) == 2 and all(k["status"] == "active" and k["expiresAt"] is None for k in keys)
    users = client.get(f"/api/v1/brokers/{b.id}/users", headers=b.auth).json()
    assert [u["email"] for u in users] == [b.admin_email] and users[0]["name"] is None
    assert calculate(client, bearer(b.secret_key)).status_code == 200


@pytest.mark.parametrize("name", list(EVERY))
def test_no_auth_is_401(client: TestClient, world: World, name: str) -> None:
    resp = _call(client, name, NO_AUTH, **_random_ids())
    assert_problem(resp, 401, "unauthorized")
    assert resp.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("name", list(EVERY))
def test_publishable_key_is_403(client: TestClient, world: World, name: str) -> None:
    headers = {**bearer(world.a.publishable_key), "Origin": ORIGIN}
    resp = _call(client, name, headers, broker=world.a.id, user=world.a_end_user_id, calc=world.a_calc,
                 key=world.b_key, job=world.a_job, report=world.a_report)
    assert_problem(resp, 403, "forbidden")


@pytest.mark.parametrize("name", list(ENDPOINTS))
def test_insufficient_role_or_scope(client: TestClient, world: World, name: str) -> None:
    who, status = ROLE_CASES[name]
    key = world.new_key(client) if name in ("rotate-key", "revoke-key", "revoke-key-post") else None
    resp = _call(client, name, getattr(world, who), broker=world.a.id, user=world.a.admin_id, calc=world.a_calc,
                 key=key, job=world.a_job, report=world.a_report)
    assert_problem(resp, status)


def test_lists_hold_only_the_own_tenant(client: TestClient, world: World) -> None:
    brokers = client.get("/api/v1/brokers", headers=world.admin)
    assert [x["id"] for x in brokers.json()] == [str(world.a.id)]
    calcs = client.get("/api/v1/calculations?limit=200", headers=world.admin).json()["items"]
    ids = {c["calculationId"] for c in calcs}
    assert str(world.a_calc) in ids and str(world.b_calc) not in ids
    users = client.get(f"/api/v1/brokers/{world.a.id}/users", headers=world.admin).json()
    assert world.b.admin_email not in {u["email"] for u in users}
    assert all(u["brokerId"] == str(world.a.id) for u in users)


def test_end_user_reads_only_its_own_calculations_and_record(client: TestClient, world: World) -> None:
    mine = calculate(client, world.end_user)
    assert mine.status_code == 200
    calc_id = mine.json()["calculationId"]
    items = client.get("/api/v1/calculations", headers=world.end_user).json()["items"]
    assert [c["calculationId"] for c in items] == [calc_id]
    assert client.get(f"/api/v1/calculations/{calc_id}", headers=world.end_user).status_code == 200
    assert_problem(client.get(f"/api/v1/calculations/{world.a_calc}", headers=world.end_user), 404)
    assert client.get(f"/api/v1/users/{world.a_end_user_id}", headers=world.end_user).status_code == 200


def test_superadmin_reaches_every_tenant(client: TestClient, world: World) -> None:
    listed = {x["id"] for x in client.get("/api/v1/brokers", headers=world.superadmin).json()}
    assert {str(world.a.id), str(world.b.id)} <= listed
    assert client.get(f"/api/v1/brokers/{world.b.id}", headers=world.superadmin).status_code == 200


# --- the calculation API ---------------------------------------------------------------------------
def test_publishable_key_runs_calculations_from_an_allowed_origin_only(client: TestClient, world: World) -> None:
    pk = bearer(world.a.publishable_key)
    assert calculate(client, {**pk, "Origin": ORIGIN}, PIP_VALUE, "/api/v1/calculate/pip-value").status_code == 200
    assert calculate(client, {**pk, "Origin": ORIGIN + "/"}).status_code == 200
    for origin in ("https://evil.example.net", "http://www.example.com", "https://www.example.com.evil.net"):
        assert_problem(calculate(client, {**pk, "Origin": origin}), 403, "origin-not-allowed")
    assert_problem(calculate(client, pk), 403, "origin-not-allowed")  # no Origin at all
    # The X-API-Key form is held to the same rule.
    assert calculate(client, {**NO_AUTH, "X-API-Key": world.a.publishable_key, "Origin": ORIGIN}).status_code == 200
    assert_problem(calculate(client, {**NO_AUTH, "X-API-Key": world.a.publishable_key}), 403, "origin-not-allowed")


def _corrupt(key: str) -> str:
    last = key[-1]
    return key[:-1] + ("A" if last != "A" else "B")


def test_calculation_credentials(client: TestClient, world: World) -> None:
    assert calculate(client, world.a.auth).status_code == 200
    assert calculate(client, {**NO_AUTH, "X-API-Key": world.a.secret_key}).status_code == 200
    assert_problem(calculate(client, NO_AUTH), 401, "unauthorized")
    bad_checksum = _corrupt(world.a.secret_key)
    assert_problem(calculate(client, bearer(bad_checksum)), 401, "unauthorized")
    # A well-formed key with a valid checksum that was never issued.
    body = world.a.secret_key[:-6]
    forged_secret = body[:-32] + "x" * 32
    from app.auth.keys import checksum
    assert_problem(calculate(client, bearer(forged_secret + checksum(forged_secret))), 401, "unauthorized")
    # A live key presented as a test key (mode is part of the checked identity).
    as_test = world.a.secret_key[:-6].replace("fxr_live_", "fxr_test_", 1)
    assert_problem(calculate(client, bearer(as_test + checksum(as_test))), 401, "unauthorized")
    assert_problem(calculate(client, {"Authorization": f"Basic {world.a.secret_key}"}), 401, "unauthorized")
    assert_problem(calculate(client, bearer("not-a-key-or-token")), 401, "unauthorized")


def test_revoked_key_is_401(client: TestClient, world: World) -> None:
    resp = client.post(f"/api/v1/brokers/{world.a.id}/api-keys", json={"kind": "secret"}, headers=world.admin)
    assert resp.status_code == 201
    key, key_id = resp.json()["key"], resp.json()["id"]
    assert calculate(client, bearer(key)).status_code == 200
    revoked = client.delete(f"/api/v1/brokers/{world.a.id}/api-keys/{key_id}", headers=world.admin)
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert_problem(calculate(client, bearer(key)), 401, "unauthorized")
    assert_problem(client.get("/api/v1/calculations", headers=bearer(key)), 401, "unauthorized")


def test_deleted_broker_credentials_stop_working(client: TestClient, world: World) -> None:
    gone = make_broker(client)
    assert calculate(client, gone.auth).status_code == 200
    assert client.delete(f"/api/v1/brokers/{gone.id}", headers=world.superadmin).status_code == 204
    assert_problem(calculate(client, gone.auth), 401, "unauthorized")
    assert_problem(calculate(client, {**bearer(gone.publishable_key), "Origin": ORIGIN}), 401, "unauthorized")
    assert_problem(client.get(f"/api/v1/brokers/{gone.id}", headers=world.superadmin), 404, "not-found")


def test_the_matrix_covers_every_route_of_the_app() -> None:
    """The generic checks (no credential, a publishable key, another tenant's ids) run over the app's own
    route table, so a new tenant route is covered without editing this file; the hand list adds each
    route's own status and the role that may not call it (today it names every route)."""
    assert set(EVERY) >= set(ENDPOINTS)
    assert route_table() == {(method, template) for method, template, _ in EVERY.values()}
