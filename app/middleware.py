"""Pure-ASGI middleware (BaseHTTPMiddleware costs ~350 us per request here, see perf-notes)."""

from __future__ import annotations

import re
import secrets

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import PayloadTooLarge, app_error_response
from app.ratelimit.headers import header_list

_VALID_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")


class RequestContextMiddleware:
    """Request id on every response (a valid incoming X-Request-ID is echoed, anything else replaced),
    bound into the log context; request bodies above the configured limit get a 413 problem; the
    RateLimit headers of the request's rate-limit decision, on every response that had one."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid_bytes: bytes | None = None
        length: int | None = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                if _VALID_ID.match(value):
                    rid_bytes = value
            elif name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = None
        rid = rid_bytes.decode() if rid_bytes else secrets.token_hex(16)
        scope.setdefault("state", {})["request_id"] = rid
        structlog.contextvars.bind_contextvars(request_id=rid)
        header = (b"x-request-id", rid.encode())

        if length is not None and length > self.max_body_bytes:
            await self._problem(self.too_large(), scope, receive, send)
            return

        limit = self.max_body_bytes
        seen = 0

        async def limited_receive() -> Message:
            # Chunked bodies have no content-length: count while reading. The app's handler turns
            # the error into the same 413 problem.
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise self.too_large()
            return message

        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [*message.get("headers", []), header]
                decision = scope["state"].get("ratelimit")
                if decision is not None:  # set by the rate-limit gate (app.ratelimit.gate)
                    headers.extend(header_list(decision))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        except PayloadTooLarge as exc:  # a chunked body over the limit, raised while the app read it
            if started:
                raise
            await self._problem(exc, scope, receive, send)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")

    def too_large(self) -> PayloadTooLarge:
        """The one 413 for a body over the limit, with or without a content-length."""
        return PayloadTooLarge(f"Request body exceeds {self.max_body_bytes} bytes.",
                               errors=[{"field": "body", "pointer": "#", "code": "too_large",
                                        "detail": f"at most {self.max_body_bytes} bytes"}])

    @staticmethod
    async def _problem(exc: PayloadTooLarge, scope: Scope, receive: Receive, send: Send) -> None:
        rid = scope["state"]["request_id"]
        response = app_error_response(exc, rid, scope["path"])
        response.headers["x-request-id"] = rid
        await response(scope, receive, send)
