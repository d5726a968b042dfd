"""Pure-ASGI middleware (BaseHTTPMiddleware costs ~350 us per request here, see perf-notes)."""

from __future__ import annotations

import re
import secrets
from typing import Any

import orjson
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import PROBLEM_JSON, PayloadTooLarge
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
            await self._too_large(send, rid, scope["path"])
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
                    raise PayloadTooLarge(f"Request body exceeds {limit} bytes.")
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
        except PayloadTooLarge:
            if started:
                raise
            await self._too_large(send, rid, scope["path"])
        finally:
            structlog.contextvars.unbind_contextvars("request_id")

    async def _too_large(self, send: Send, rid: str, path: str) -> None:
        body: dict[str, Any] = {
            "type": "/problems/payload-too-large",
            "title": "Payload too large",
            "status": 413,
            "detail": f"Request body exceeds {self.max_body_bytes} bytes.",
            "instance": path,
            "request_id": rid,
            "errors": [{"field": "body", "pointer": "#", "code": "too_large",
                        "detail": f"at most {self.max_body_bytes} bytes"}],
        }
        raw = orjson.dumps(body)
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(raw)).encode()),
            (b"x-request-id", rid.encode())]})
        await send({"type": "http.response.body", "body": raw})
