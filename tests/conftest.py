"""One app per test worker on a real embedded Postgres (pgserver) in a temporary data directory.

`client` sends a valid secret key of a session broker by default, so calculation tests read as
before; tests about credentials pass their own `Authorization` header (an empty one sends none).
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.admin.brokers.schemas import BrokerConfig, BrokerCreate
from app.admin.brokers.service import create_broker
from app.billing.localserver.process import LocalStripe
from app.config import Settings
from app.main import create_app

pytest_plugins = ["tests.openapi_conformance", "tests.pii_scan"]

ADMIN_PASSWORD = "correct horse battery staple"


@dataclass
class BrokerFixture:
    id: uuid.UUID
    slug: str
    secret_key: str
    publishable_key: str
    admin_email: str
    admin_id: uuid.UUID | None

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret_key}"}


@pytest.fixture(scope="session")
def settings() -> Iterator[Settings]:
    # Not under pytest's 0700 tmp root: as root, pgserver runs Postgres as its own system user, which
    # must reach the data directory. The server deletes its data when the test process exits.
    data_dir = Path(tempfile.mkdtemp(prefix="forexrisk-test-"))
    data_dir.chmod(0o755)
    # Billing talks to a local Stripe server (localstripe + the double, app/billing/localserver) for the session.
    local_stripe = LocalStripe()
    stripe_url = local_stripe.start()
    # Light argon2 parameters keep the many test logins fast; production uses the OWASP profile.
    # The suite sends thousands of requests from one test client address: the pre-auth IP limit is
    # raised here; tests/test_rate_limits.py checks the real limits on apps of their own.
    yield Settings(environment="test", data_dir=data_dir, embedded_cleanup="delete", argon2_time_cost=1,
                   argon2_memory_kib=8192, pre_auth_per_minute=1_000_000, pre_auth_burst=1_000_000,
                   widget_pages_per_ip=1_000_000, widget_pages_per_broker=1_000_000,
                   # Likewise the per-IP login throttle (tests/test_login_hardening.py lowers it on purpose).
                   login_ip_free_failures=1_000_000, login_ip_lockout_failures=1_000_000,
                   # And the sign-up limits (tests/test_billing.py lowers them on purpose).
                   signup_per_ip_per_hour=1_000_000, signup_per_domain_per_day=1_000_000,
                   # CI shares 2 cores between two test workers and their servers: a 50 ms Redis timeout
                   # (production) would mark Redis down on scheduling hiccups and make cache tests flaky.
                   redis_timeout_ms=1000,
                   # Quotes come from what a test pushes into a broker's feed, not from the development
                   # snapshot, so a missing rate is still a missing rate (tests that want the snapshot ask
                   # for it in the broker's marketData config).
                   market_data_providers=["broker"], stripe_api_base=stripe_url,
                   # The webhook and alert sweepers of the app's own worker leave the deliveries and messages
                   # of running tests alone (tests that drive attempts themselves); tests sweep with their own clock.
                   outbox_sweep_grace_seconds=86_400)
    # The last app of the session has left: the keeper has stopped the engines and deleted data_dir/pg.
    local_stripe.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def app_client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def make_broker(client: TestClient, *, tier: str = "standard", config: dict[str, Any] | None = None,
                name: str | None = None) -> BrokerFixture:
    slug = f"b-{uuid.uuid4().hex[:10]}"
    email = f"admin@{slug}.example.com"
    spec = BrokerCreate(name=name or f"Broker {slug}", slug=slug, tier=tier,  # type: ignore[arg-type]
                        config=BrokerConfig.model_validate(config or {"allowedOrigins": ["https://www.example.com"]}),
                        admin_email=email, admin_password=ADMIN_PASSWORD)
    app = client.app
    out = client.portal.call(create_broker, app.state.services.db, app.state.services.auth, spec)  # type: ignore[attr-defined,union-attr]
    return BrokerFixture(id=out["id"], slug=slug, secret_key=out["secretKey"], publishable_key=out["publishableKey"],
                         admin_email=email, admin_id=out["adminUserId"])


@pytest.fixture(scope="session")
def calc_broker(app_client: TestClient) -> BrokerFixture:
    # Enterprise: the calculation tests send far more than a limited tier allows.
    return make_broker(app_client, tier="enterprise")


@pytest.fixture(scope="session")
def client(app_client: TestClient, calc_broker: BrokerFixture) -> TestClient:
    app_client.headers["Authorization"] = f"Bearer {calc_broker.secret_key}"
    return app_client


@pytest.fixture
def broker_a(client: TestClient) -> BrokerFixture:
    return make_broker(client)


@pytest.fixture
def broker_b(client: TestClient) -> BrokerFixture:
    return make_broker(client)


@pytest.fixture
def no_server_errors(client: TestClient) -> Iterator[None]:
    """Fails the test if any response it received was a 5xx (used by the auth and tenancy tests)."""
    from tests.helpers_auth import never_500

    yield from never_500(client)
