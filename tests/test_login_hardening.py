"""Issue 12, point 3: login attacks and revocation. A SUPERADMIN needs MFA for every platform route; an
unknown key id and a wrong secret take one path; logins, MFA and refresh are throttled per account and
per IP; disabling a user, a logout or a family revocation rejects that session's access tokens at once."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pyotp
import pytest
from fastapi.testclient import TestClient

from app.admin.brokers.schemas import BrokerConfig, BrokerCreate
from app.admin.brokers.service import create_broker
from app.auth import keys
from app.config import Settings
from tests.conftest import ADMIN_PASSWORD, BrokerFixture, make_broker
from tests.helpers_auth import (
    NO_AUTH,
    USER_PASSWORD,
    assert_problem,
    audit_rows,
    bearer,
    calculate,
    create_user,
    jwt_claims,
    login,
    mfa_login,
    reset_totp_step,
    sql,
    token_of,
    wait_for_stable_step,
)
from tests.platform_apps import app_on

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


# --- login throttle ------------------------------------------------------------------------------
class FrozenClock:
    """The throttle's clock, moved by the test: no test here depends on how fast the machine is."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> FrozenClock:
    frozen = FrozenClock()
    monkeypatch.setattr(services(client).auth.throttle, "clock", frozen)
    return frozen


def attempt(client: TestClient, slug: str, email: str, password: str) -> tuple[int, int | None]:
    resp = login(client, slug, email, password)
    if resp.status_code == 429:
        assert_problem(resp, 429, "too-many-attempts")
    retry = resp.headers.get("retry-after")
    return resp.status_code, int(retry) if retry else None


def test_450_wrong_passwords_get_429_and_a_lockout(client: TestClient, broker: BrokerFixture,
                                                   clock: FrozenClock) -> None:
    settings = services(client).settings
    free, lock = settings.login_free_failures, settings.login_lockout_failures
    statuses = [attempt(client, broker.slug, broker.admin_email, f"wrong {i}")[0] for i in range(450)]
    assert statuses[: free + 1] == [401] * (free + 1)  # the (free + 1)th failure starts the delays
    assert statuses[free + 1:] == [429] * (450 - free - 1)
    # The right password does not get through a wait either.
    assert attempt(client, broker.slug, broker.admin_email, ADMIN_PASSWORD)[0] == 429
    # A client that waits as told: delays 1, 2, 4 ... s, then the lockout.
    waits: list[int] = []
    retry: int | None = None
    for _ in range(3 * lock):
        status, retry = attempt(client, broker.slug, broker.admin_email, "still wrong")
        if status == 401:
            continue
        assert status == 429 and retry is not None
        if retry > 60:
            break
        waits.append(retry)
        clock.now += retry
    assert waits == [2 ** i for i in range(lock - free - 1)]
    assert retry == settings.login_lockout_seconds
    locked = [r for r in audit_rows(client, broker.id, "auth.login_locked")]
    assert len(locked) == 1 and locked[0].details["failures"] == lock
    clock.now += settings.login_lockout_seconds - 1
    assert attempt(client, broker.slug, broker.admin_email, ADMIN_PASSWORD)[0] == 429
    clock.now += 1
    assert attempt(client, broker.slug, broker.admin_email, ADMIN_PASSWORD)[0] == 200
    # A success clears the account's count.
    assert [attempt(client, broker.slug, broker.admin_email, "x")[0] for _ in range(free + 1)] == [401] * (free + 1)


def test_the_throttle_reveals_no_account(client: TestClient, broker: BrokerFixture, clock: FrozenClock) -> None:
    def run(email: str) -> list[tuple[int, int | None]]:
        seen = []
        for _ in range(14):
            seen.append(attempt(client, broker.slug, email, "wrong password"))
            clock.now += 1.5
        return seen

    assert run(broker.admin_email) == run(f"nobody-{uuid.uuid4().hex[:6]}@example.com")


def test_failures_from_one_address_throttle_every_account(settings: Settings,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # Its own app behind a trusted proxy, so requests can come from different client addresses.
    with app_on(settings, client=("10.1.2.3", 40000), trusted_proxies=["10.0.0.0/8"], login_ip_free_failures=2,
                login_ip_lockout_failures=4, login_lockout_seconds=600) as c:
        frozen = FrozenClock()
        monkeypatch.setattr(services(c).auth.throttle, "clock", frozen)
        broker = make_broker(c)
        address = {"X-Forwarded-For": "203.0.113.7"}
        statuses = [login(c, broker.slug, f"user{i}@example.com", "wrong", headers=address).status_code
                    for i in range(5)]
        assert statuses == [401, 401, 401, 429, 429]  # five accounts, one address
        frozen.now += 1
        assert login(c, broker.slug, "user9@example.com", "wrong", headers=address).status_code == 401
        # Four failures: the address is locked, for every account; another address is not.
        locked = login(c, broker.slug, broker.admin_email, ADMIN_PASSWORD, headers=address)
        assert_problem(locked, 429, "too-many-attempts")
        assert int(locked.headers["retry-after"]) == 600
        elsewhere = login(c, broker.slug, broker.admin_email, ADMIN_PASSWORD,
                          headers={"X-Forwarded-For": "198.51.100.9"})
        assert elsewhere.status_code == 200
        # Refresh attempts count against (and are refused for) the address too.
        refused = c.post("/api/v1/auth/refresh", json={"refreshToken": "fxr_rt_" + "0" * 32 + "_" + "A" * 43},
                         headers={**NO_AUTH, **address})
        assert_problem(refused, 429, "too-many-attempts")
        other = c.post("/api/v1/auth/refresh", json={"refreshToken": "fxr_rt_" + "0" * 32 + "_" + "A" * 43},
                       headers={**NO_AUTH, "X-Forwarded-For": "198.51.100.10"})
        assert_problem(other, 401, "unauthorized")


def test_the_throttle_holds_while_redis_is_down(client: TestClient, broker: BrokerFixture, clock: FrozenClock,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    hub = services(client).redis
    monkeypatch.setattr(hub, "down_until", float("inf"))  # Redis counts as unreachable: local counters
    free = services(client).settings.login_free_failures
    statuses = [attempt(client, broker.slug, broker.admin_email, "wrong")[0] for _ in range(free + 3)]
    assert statuses == [401] * (free + 1) + [429, 429]
    assert services(client).auth.throttle.local  # counted in this worker's memory


# --- revocation on every worker ------------------------------------------------------------------
def until(condition: Any, what: str, timeout: float = 20.0) -> float:
    """Wait for a condition of the system (not for a time): the seconds it took. The timeout only stops
    a broken run; the assertions are about the condition."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, f"never happened: {what}"
        time.sleep(0.005)
    return time.monotonic() - start


@pytest.fixture
def worker_b(settings: Settings) -> Any:
    """A second worker of the same deployment (same Postgres and Redis), receiving the invalidation channel."""
    with app_on(settings) as other:
        until(lambda: services(other).auth.live(), "worker B subscribed and synced")
        yield other


def session_of(client: TestClient, broker: BrokerFixture) -> tuple[uuid.UUID, dict[str, Any]]:
    uid, email = create_user(client, broker, "BROKER_USER")
    pair = login(client, broker.slug, email, USER_PASSWORD).json()
    return uid, pair


def test_logout_ends_the_access_tokens_on_every_worker(client: TestClient, worker_b: TestClient,
                                                      broker: BrokerFixture) -> None:
    _, pair = session_of(client, broker)
    access = bearer(pair["accessToken"])
    sid = jwt_claims(pair["accessToken"])["sid"]
    assert calculate(client, access).status_code == 200 and calculate(worker_b, access).status_code == 200
    assert client.post("/api/v1/auth/logout", json={"refreshToken": pair["refreshToken"]},
                       headers=NO_AUTH).status_code == 204
    assert_problem(calculate(client, access), 401, "unauthorized")  # this worker: at once
    until(lambda: sid in services(worker_b).auth.revocations.sessions, "worker B heard of the logout")
    assert_problem(calculate(worker_b, access), 401, "unauthorized")


def test_disabling_a_user_ends_its_access_tokens_on_every_worker(client: TestClient, worker_b: TestClient,
                                                                broker: BrokerFixture) -> None:
    uid, pair = session_of(client, broker)
    access = bearer(pair["accessToken"])
    assert calculate(worker_b, access).status_code == 200
    assert client.patch(f"/api/v1/users/{uid}", json={"status": "disabled"}, headers=broker.auth).status_code == 200
    assert_problem(calculate(client, access), 401, "unauthorized")
    until(lambda: str(uid) in services(worker_b).auth.revocations.users, "worker B heard of the disabled user")
    assert_problem(calculate(worker_b, access), 401, "unauthorized")
    # Enabled again: a new login works (its tokens are issued after the revocation).
    assert client.patch(f"/api/v1/users/{uid}", json={"status": "active"}, headers=broker.auth).status_code == 200


def test_refresh_reuse_ends_the_session_access_tokens(client: TestClient, broker: BrokerFixture) -> None:
    uid, pair = session_of(client, broker)
    second = client.post("/api/v1/auth/refresh", json={"refreshToken": pair["refreshToken"]}, headers=NO_AUTH).json()
    access = bearer(second["accessToken"])
    assert calculate(client, access).status_code == 200
    sql(client, "update refresh_tokens set used_at = used_at - interval '120 seconds' "
                "where user_id = :u and used_at is not null", {"u": uid})
    replay = client.post("/api/v1/auth/refresh", json={"refreshToken": pair["refreshToken"]}, headers=NO_AUTH)
    assert_problem(replay, 401, "unauthorized")
    assert_problem(calculate(client, access), 401, "unauthorized")
    assert_problem(calculate(client, bearer(pair["accessToken"])), 401, "unauthorized")


def test_a_worker_that_missed_the_message_asks_postgres(client: TestClient, worker_b: TestClient,
                                                        broker: BrokerFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    _, pair = session_of(client, broker)
    access = bearer(pair["accessToken"])
    b_auth = services(worker_b).auth
    assert calculate(worker_b, access).status_code == 200
    # Worker A revokes without telling anyone (its message is lost) ...
    monkeypatch.setattr(services(client).auth, "announce", None)
    client.post("/api/v1/auth/logout", json={"refreshToken": pair["refreshToken"]}, headers=NO_AUTH)
    assert jwt_claims(pair["accessToken"])["sid"] not in b_auth.revocations.sessions
    # ... B, while its subscription is down, asks Postgres for every session (no cache here) ...
    monkeypatch.setattr(b_auth, "revocation_check_seconds", 0.0)
    b_auth.subscribed.clear()
    assert_problem(calculate(worker_b, access), 401, "unauthorized")
    # ... and when it subscribes again it reloads the revocations before trusting its memory.
    b_auth._checked.clear()
    worker_b.portal.call(b_auth.clear_caches)
    b_auth.subscribed.set()
    until(b_auth.live, "worker B reloaded")
    assert jwt_claims(pair["accessToken"])["sid"] in b_auth.revocations.sessions
    assert_problem(calculate(worker_b, access), 401, "unauthorized")


# --- MFA codes: growing waits per account after the code lock -------------------------------------
def test_wrong_mfa_codes_wait_longer_and_longer(client: TestClient, broker: BrokerFixture,
                                                clock: FrozenClock) -> None:
    from tests.test_mfa import wrong_code

    _, user = mfa_login(client, broker.slug, broker.admin_email)
    settings = services(client).settings
    limit, lock = settings.mfa_max_failures, settings.mfa_lockout_seconds
    reset_totp_step(client, user.user_id)

    def unlock_code_lock() -> None:  # the code lock of app.auth.mfa runs on the database's time
        sql(client, "update users set mfa_locked_until = null where id = :u", {"u": user.user_id})

    for _ in range(limit):
        assert login(client, broker.slug, broker.admin_email, totp=wrong_code(user.secret)).status_code == 422
    waits = []
    for _ in range(4):
        unlock_code_lock()
        assert login(client, broker.slug, broker.admin_email, totp=wrong_code(user.secret)).status_code == 422
        refused = login(client, broker.slug, broker.admin_email, totp=wrong_code(user.secret))
        assert_problem(refused, 429, "too-many-attempts")
        waits.append(int(refused.headers["retry-after"]))
        clock.now += waits[-1]
    assert waits == [lock, 2 * lock, 4 * lock, 8 * lock]  # 5, 10, 20, 40 minutes
    # The right code after the wait works, and clears the count.
    unlock_code_lock()
    wait_for_stable_step()
    assert login(client, broker.slug, broker.admin_email, totp=pyotp.TOTP(user.secret).now()).status_code == 200
