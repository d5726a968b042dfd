"""A small SMTP server for the mail tests (RFC 5321 with STARTTLS, RFC 3207, and AUTH PLAIN/LOGIN, RFC 4954).

aiosmtpd is not installed and the standard library's smtpd is deprecated (gone in 3.12), so this speaks the
few commands a submission client sends, over asyncio, on a free loopback port, with a self-signed certificate
for 127.0.0.1 made here. `smtps=True`: TLS from the first byte (port 465 style) instead of STARTTLS.
It refuses MAIL before TLS and AUTH, as a submission server does.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from pathlib import Path

from tests.tls import self_signed


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage
    login: str | None
    tls: bool


@dataclass
class SmtpServer:
    directory: Path
    user: str = "mailer"
    password: str = "s3cret pass"
    smtps: bool = False
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cert, key = self_signed(self.directory)
        self.server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server_tls.load_cert_chain(self.cert, key)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0

    def client_tls(self) -> ssl.SSLContext:
        """What a deployment with this server's CA in its trust store would use."""
        return ssl.create_default_context(cafile=str(self.cert))

    def start(self) -> SmtpServer:
        self.thread.start()
        server = asyncio.run_coroutine_threadsafe(asyncio.start_server(
            self.session, "127.0.0.1", 0, ssl=self.server_tls if self.smtps else None), self.loop).result(10)
        self.server = server
        self.port = server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tls, login = self.smtps, None
        sender, recipients = "", []

        async def reply(line: str) -> None:
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        await reply("220 127.0.0.1 ESMTP test")
        try:
            while line := (await reader.readline()).decode().rstrip("\r\n"):
                verb, _, arg = line.partition(" ")
                verb = verb.upper()
                if verb in ("EHLO", "HELO"):
                    extensions = ["AUTH PLAIN LOGIN"] if tls else ["STARTTLS"]
                    lines = ["127.0.0.1", *extensions]
                    for i, ext in enumerate(lines):
                        await reply(f"250{'-' if i < len(lines) - 1 else ' '}{ext}")
                elif verb == "STARTTLS" and not tls:
                    await reply("220 Ready to start TLS")
                    await writer.start_tls(self.server_tls)
                    tls = True
                elif verb == "AUTH" and tls:
                    mech, _, initial = arg.partition(" ")
                    if mech.upper() == "PLAIN":
                        _, user, password = base64.b64decode(initial).decode().split("\0")
                    else:  # LOGIN
                        await reply("334 VXNlcm5hbWU6")
                        user = base64.b64decode(await reader.readline()).decode()
                        await reply("334 UGFzc3dvcmQ6")
                        password = base64.b64decode(await reader.readline()).decode()
                    if (user, password) != (self.user, self.password):
                        await reply("535 5.7.8 Authentication credentials invalid")
                        continue
                    login = user
                    await reply("235 2.7.0 Authentication successful")
                elif verb == "MAIL":
                    if not tls or login is None:
                        await reply("530 5.7.0 Must issue a STARTTLS command and authenticate first")
                        continue
                    sender, recipients = arg.split(":", 1)[1].split()[0].strip("<>"), []
                    await reply("250 OK")
                elif verb == "RCPT":
                    recipients.append(arg.split(":", 1)[1].strip().strip("<>"))
                    await reply("250 OK")
                elif verb == "DATA":
                    await reply("354 End data with <CR><LF>.<CR><LF>")
                    data = bytearray()
                    while (chunk := await reader.readline()) not in (b".\r\n", b""):
                        data += chunk[1:] if chunk.startswith(b"..") else chunk
                    message = BytesParser(policy=default).parsebytes(bytes(data))
                    self.received.append(Received(sender, recipients, message, login, tls))  # type: ignore[arg-type]
                    await reply("250 OK: queued")
                elif verb == "QUIT":
                    await reply("221 Bye")
                    break
                elif verb in ("RSET", "NOOP"):
                    await reply("250 OK")
                else:
                    await reply("502 5.5.2 Command not recognized")
        except (ConnectionError, ssl.SSLError):
            pass  # a client that refused our certificate hangs up mid-handshake
        finally:
            writer.close()
