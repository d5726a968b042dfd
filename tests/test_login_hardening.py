"""Issue 12, point 3: login attacks and revocation. A SUPERADMIN needs MFA for every platform route; an
unknown key id and a wrong secret take one path; logins, MFA and refresh are throttled per account and
per IP; disabling a user, a logout or a family revocation rejects that session's access tokens at once."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.admin.brokers.schemas import BrokerConfig, BrokerCreate
from app.admin.brokers.service import create_broker
from app.auth import keys
from tests.conftest import ADMIN_PASSWORD, BrokerFixture, make_broker
from tests.helpers_auth import (
    assert_problem,
    bearer,
    calculate,
    login,
    token_of,
)

pytestmark = pytest.mark.usefixtures("no_server_errors")


@pytest.fixture
def broker(client: TestClient) -> BrokerFixture:
    return make_broker(client)


def services(client: TestClient) -> Any:
    return client.app.state.services  # type: ignore[attr-defined]


# --- SUPERADMIN needs MFA for every platform route ----------------------------------------------
def test_superadmin_without_mfa_reaches_no_platform_route(client: TestClient, broker: BrokerFixture) -> None:
    slug = f"p-{uuid.uuid4().hex[:10]}"
    email = f"root@{slug}.example.com"
    spec = BrokerCreate(name=f"Platform {slug}", slug=slug, config=BrokerConfig(), admin_email=email,
                        admin_password=ADMIN_PASSWORD)
    svc = services(client)
    client.portal.call(lambda: create_broker(svc.db, svc.auth, spec, is_platform=True, admin_role="SUPERADMIN"))
    root = bearer(token_of(login(client, slug, email)))  # password only: amr ["pwd"]
    for path in ("/api/v1/brokers", f"/api/v1/brokers/{broker.id}", f"/api/v1/brokers/{broker.id}/users",
                 f"/api/v1/brokers/{broker.id}/api-keys", f"/api/v1/brokers/{broker.id}/sso",
                 "/api/v1/calculations"):
        assert_problem(client.get(path, headers=root), 403, "mfa-required")
    assert_problem(client.put(f"/api/v1/brokers/{broker.id}/config", json={}, headers=root), 403, "mfa-required")
    # Enrolment itself stays open, so the operator can fix it.
    assert client.post("/api/v1/auth/mfa/enrol", headers=root).status_code == 200


# --- one path for an unknown key id and a wrong secret -------------------------------------------
def test_unknown_key_id_and_wrong_secret_take_the_same_path(client: TestClient, broker: BrokerFixture,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    auth = services(client).auth
    known = keys.parse(broker.secret_key)
    assert known is not None

    def forge(key_id: str) -> str:
        body = f"fxr_live_sk_{key_id}_{'Z' * 32}"
        return body + keys.checksum(body)

    hashed: list[str] = []
    loads: list[str] = []
    real_hash, real_load = keys.hash_secret, auth._load_key

    def counting_hash(pepper: bytes, secret: str) -> bytes:
        hashed.append(secret)
        return real_hash(pepper, secret)

    async def counting_load(key_id: str) -> Any:
        loads.append(key_id)
        return await real_load(key_id)

    monkeypatch.setattr(keys, "hash_secret", counting_hash)
    monkeypatch.setattr(auth, "_load_key", counting_load)
    auth.keys.drop(known.key_id)
    unknown_id = "U" + uuid.uuid4().hex[:11]
    paths = []
    for credential in (forge(known.key_id), forge(unknown_id)):  # known id + wrong secret; unknown id
        for _ in range(2):  # first sight (one database lookup each), then from the cache (none)
            hashed.clear()
            loads.clear()
            resp = calculate(client, bearer(credential))
            body = assert_problem(resp, 401, "unauthorized")
            paths.append((len(loads), len(hashed), body["detail"]))
    assert paths[0] == paths[2] == (1, 1, "Unknown API key.")
    assert paths[1] == paths[3] == (0, 1, "Unknown API key.")
