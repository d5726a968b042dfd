"""Outgoing mail behind one small interface: SMTP in production, a local outbox elsewhere.

The outbox writes one RFC 5322 file (and a plain-text copy) per message under data_dir/outbox (development:
open it to click the link; tests: read it). Production without SMTP_URL refuses mail with a 503 problem
rather than drop it.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import uuid
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from app.config import Settings
from app.errors import ServiceUnavailable


class Mailer(Protocol):
    async def send(self, to: str, subject: str, body: str) -> None: ...


def message(sender: str, to: str, subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Message-ID"] = f"<{uuid.uuid4()}@forexrisk>"
    msg.set_content(body)
    return msg


class Outbox:
    def __init__(self, directory: Path, sender: str) -> None:
        self.directory = directory
        self.sender = sender

    async def send(self, to: str, subject: str, body: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = uuid.uuid4().hex
        (self.directory / f"{name}.eml").write_bytes(bytes(message(self.sender, to, subject, body)))
        # The same as plain text beside it (the .eml is quoted-printable: links are wrapped), to read or grep.
        (self.directory / f"{name}.txt").write_text(f"To: {to}\nSubject: {subject}\n\n{body}", encoding="utf-8")

    def messages(self, to: str | None = None) -> list[EmailMessage]:
        """What was sent (to one address), oldest first."""
        if not self.directory.exists():
            return []
        out = []
        for path in sorted(self.directory.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns):
            msg = BytesParser(policy=default).parsebytes(path.read_bytes())
            if to is None or str(msg["To"]).lower() == to.lower():
                out.append(msg)
        return out


class Smtp:
    """smtplib in a thread (the standard library's client; one message per connection is plenty here).

    TLS always, and verified: the server's certificate must chain to the system's trust store (or `tls`, a
    context of the caller's) and name the host. smtplib's own default (no context) verifies nothing, and the
    messages carry sign-up links. A server that cannot be reached, refuses TLS, the login or a recipient is a
    503 problem for the request that mailed, never a 500."""

    def __init__(self, url: str, sender: str, timeout: float = 10.0, tls: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("SMTP_URL is smtp://user:password@host:port (STARTTLS) or smtps://...")
        self.parts, self.sender, self.timeout = parts, sender, timeout
        self.tls = tls or ssl.create_default_context()

    def _send(self, msg: EmailMessage) -> None:
        p = self.parts
        port = p.port or (465 if p.scheme == "smtps" else 587)
        host = p.hostname or ""
        client: smtplib.SMTP = (smtplib.SMTP_SSL(host, port, timeout=self.timeout, context=self.tls)
                                if p.scheme == "smtps" else smtplib.SMTP(host, port, timeout=self.timeout))
        with client:
            if p.scheme == "smtp":
                client.starttls(context=self.tls)
            if p.username:
                client.login(unquote(p.username), unquote(p.password or ""))
            client.send_message(msg)

    async def send(self, to: str, subject: str, body: str) -> None:
        try:
            await asyncio.to_thread(self._send, message(self.sender, to, subject, body))
        except (OSError, smtplib.SMTPException) as exc:  # ssl.SSLError and socket errors are OSErrors
            raise ServiceUnavailable(f"Mail could not be sent ({type(exc).__name__}); retry later.") from exc


class Unconfigured:
    """Production without SMTP_URL: mail is refused with a clear problem instead of silently dropped."""

    async def send(self, to: str, subject: str, body: str) -> None:
        raise ServiceUnavailable("This deployment cannot send mail: set SMTP_URL.")


def build_mailer(settings: Settings) -> Mailer:
    if settings.smtp_url is not None:
        return Smtp(settings.smtp_url.get_secret_value(), settings.mail_from)
    if settings.environment == "production":
        return Unconfigured()
    return Outbox(settings.data_dir / "outbox", settings.mail_from)
