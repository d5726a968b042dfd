"""Mail in production: the SMTP mailer (app/billing/mail.py) against a local SMTP server (tests/smtp_server.py)
speaking STARTTLS, implicit TLS and AUTH; a sign-up's link goes out through it and verifies."""

from __future__ import annotations

import asyncio
import socket
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from app.billing.mail import Smtp, Unconfigured, build_mailer
from app.config import Settings
from app.errors import ServiceUnavailable
from tests.helpers_auth import assert_problem
from tests.platform_apps import app_on
from tests.smtp_server import SmtpServer

SENDER = "ForexRisk <no-reply@forexrisk.example>"


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture(params=["smtp", "smtps"])
def either(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, SmtpServer]]:
    """STARTTLS on a plain connection (smtp://) and TLS from the first byte (smtps://)."""
    server = SmtpServer(tmp_path, smtps=request.param == "smtps").start()
    yield request.param, server
    server.stop()


def url(server: SmtpServer, scheme: str = "smtp", password: str | None = None) -> str:
    return f"{scheme}://{server.user}:{(password or server.password).replace(' ', '%20')}@127.0.0.1:{server.port}"


def test_smtp_delivers_over_verified_tls_with_login(either: tuple[str, SmtpServer]) -> None:
    scheme, server = either
    mailer = Smtp(url(server, scheme), SENDER, tls=server.client_tls())
    asyncio.run(mailer.send("owner@acme.example.com", "Confirm your ForexRisk sign-up", "Open http://x/verify?token=abc"))
    (got,) = server.received
    assert got.tls and got.login == server.user
    assert got.sender == "no-reply@forexrisk.example" and got.recipients == ["owner@acme.example.com"]
    assert str(got.message["Subject"]) == "Confirm your ForexRisk sign-up"
    assert "http://x/verify?token=abc" in str(got.message.get_content())


def test_an_unverifiable_certificate_is_refused_not_mailed(either: tuple[str, SmtpServer]) -> None:
    """The default context is the system's trust store, which does not know the test server's certificate:
    nothing is sent (smtplib without a context would send over TLS it never verified), and it is a 503."""
    scheme, server = either
    with pytest.raises(ServiceUnavailable):
        asyncio.run(Smtp(url(server, scheme), SENDER).send("owner@acme.example.com", "s", "b"))
    assert server.received == []


def test_a_refused_login_or_an_unreachable_server_is_a_503(smtp: SmtpServer) -> None:
    with pytest.raises(ServiceUnavailable):
        asyncio.run(Smtp(url(smtp, password="wrong"), SENDER, tls=smtp.client_tls()).send("a@b.example", "s", "b"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # bound, never listening: connection refused
        with pytest.raises(ServiceUnavailable):
            asyncio.run(Smtp(f"smtp://127.0.0.1:{closed}", SENDER, timeout=5).send("a@b.example", "s", "b"))
    assert smtp.received == []


def test_production_mails_through_smtp_and_never_to_the_outbox(settings: Settings, smtp: SmtpServer) -> None:
    production = settings.model_copy(update={"environment": "production"})
    assert isinstance(build_mailer(production), Unconfigured)  # a 503 problem, never a file on the server
    assert isinstance(build_mailer(production.model_copy(update={"smtp_url": SecretStr(url(smtp))})), Smtp)


def test_signup_mails_its_link_through_smtp(settings: Settings, smtp: SmtpServer) -> None:
    with app_on(settings, smtp_url=SecretStr(url(smtp))) as client:
        mailer = client.app.state.services.billing.mailer  # type: ignore[attr-defined]
        assert isinstance(mailer, Smtp)
        mailer.tls = smtp.client_tls()  # this deployment trusts the mail server's CA
        email = f"owner@{uuid.uuid4().hex[:8]}.example.com"
        body = {"companyName": f"Acme {uuid.uuid4().hex[:8]}", "adminEmail": email,
                "password": "a long enough passphrase"}
        resp = client.post("/api/v1/signup", json=body, headers={"Authorization": ""})
        assert resp.status_code == 202, resp.text
        (got,) = smtp.received
        assert got.recipients == [email] and got.tls and got.login == smtp.user
        link = next(w for w in str(got.message.get_content()).split() if "/api/v1/signup/verify?token=" in w)
        verified = client.get("/api/v1/signup/verify?token=" + link.split("token=", 1)[1],
                              headers={"Authorization": "", "Accept": "application/json"})
        assert verified.status_code == 200 and verified.json()["status"] == "active"
        mailer.tls = ssl.create_default_context()  # the system's trust store only: the server is refused
        again = client.post("/api/v1/signup", json=dict(body, companyName=f"Other {uuid.uuid4().hex[:8]}",
                                                        adminEmail=f"x@{uuid.uuid4().hex[:8]}.example.com"),
                            headers={"Authorization": ""})
        assert_problem(again, 503, "service-unavailable")
