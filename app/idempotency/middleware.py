"""Pure-ASGI `Idempotency-Key` middleware (BaseHTTPMiddleware costs ~350 us per request here).

Sits inside RequestContextMiddleware, so request ids and the body-size limit (413) apply to what it
reads and answers. A request without the header, or on a route that ignores it (routes.py), costs
one scan of the header list and goes straight through.

With the header on an idempotent route:
1. Authenticate (in-process caches). A failure passes the request through untouched, so the route
   answers its own 401/403; so does a publishable (browser) key, which may not store responses.
2. Validate the key (400), buffer the body, fingerprint the request.
3. Claim the key: new, or replay the stored response (`Idempotent-Replayed: true`), or 422 (another
   request or credential), 409 (still running; `Retry-After: 1`), 503 (database unreachable).
4. Run the app on the buffered body. The response goes to the client as the app sends it and is
   copied on the side; after the app returns (still inside this request, so a quick retry sees
   "done") it is stored, or the key is released (5xx, exception) so a retry runs again.
"""

from __future__ import annotations

import structlog
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth.admission import admit
from app.auth.service import AuthService
from app.db.engine import Database
from app.errors import AppError, app_error_response
from app.idempotency.cipher import ResponseCipher
from app.idempotency.routes import METHODS, applies
from app.idempotency.service import Claim, Clock, IdempotencyService, StoredResponse, parse_key, utc_now
from app.services import services

log = structlog.get_logger(__name__)

HEADER = b"idempotency-key"
REPLAYED = (b"idempotent-replayed", b"true")


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp, clock: Clock = utc_now) -> None:
        self.app = app
        self.clock = clock
        self._service: IdempotencyService | None = None
        self._built_for: tuple[object, object] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in METHODS:
            await self.app(scope, receive, send)
            return
        for name, _ in scope["headers"]:
            if name == HEADER:
                break
        else:  # the common case: no header, one scan and straight through
            await self.app(scope, receive, send)
            return
        if not applies(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        keys = [value for name, value in scope["headers"] if name == HEADER]  # several: a 400
        await self._idempotent(scope, receive, send, keys)

    def service(self, scope: Scope) -> IdempotencyService:
        # The database and auth service exist only once the lifespan has run: built on first use, and
        # rebuilt if the app was restarted with new ones.
        svc = services(scope["app"])
        db: Database = svc.db
        auth: AuthService = svc.auth
        built = self._built_for
        if self._service is None or built is None or built[0] is not db or built[1] is not auth:
            self._service = IdempotencyService(db=db, cipher=ResponseCipher(auth.secrets.encryption_key),
                                               pepper=auth.secrets.pepper, clock=self.clock)
            self._built_for = (db, auth)
        return self._service

    async def _idempotent(self, scope: Scope, receive: Receive, send: Send, keys: list[bytes]) -> None:
        try:
            # The one admission path: the route that runs next reuses this Caller (kept in the scope).
            principal = (await admit(services(scope["app"]).auth, HTTPConnection(scope))).principal
        except AppError:
            await self.app(scope, receive, send)
            return
        if principal.kind == "publishable_key":
            await self.app(scope, receive, send)
            return
        service = self.service(scope)
        try:
            key = parse_key(keys)
        except AppError as exc:
            await self._problem(scope, receive, send, exc)
            return
        body = await _read_body(receive)  # over the limit: RequestContextMiddleware's 413 propagates
        if body is None:
            return  # the client left before sending its body: nothing to run, nobody to answer
        fingerprint = service.fingerprint(scope["method"], scope["path"], scope.get("query_string", b""), body)
        try:
            outcome = await service.begin(principal, key, fingerprint)
        except AppError as exc:
            await self._problem(scope, receive, send, exc)
            return
        if isinstance(outcome, StoredResponse):
            await _replay(send, outcome)
            return
        await self._run(scope, receive, send, body, service, outcome)

    async def _run(self, scope: Scope, receive: Receive, send: Send, body: bytes, service: IdempotencyService,
                   claim: Claim) -> None:
        capture = _Capture(send, service.max_body)
        fed = False

        async def replay_body() -> Message:
            # The buffered body once, then the real channel (the app may wait for http.disconnect).
            nonlocal fed
            if not fed:
                fed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        try:
            await self.app(scope, replay_body, capture.send)
        except Exception:
            await service.release(claim)  # a 5xx, never stored; release failures are logged, not raised
            raise
        # Cancellation (BaseException) does no database work here: the lease frees the row later.
        response = capture.response()
        if response is None:  # unfinished or too large to keep: a retry runs again
            await service.release(claim)
        else:
            await service.finish(claim, response)

    @staticmethod
    async def _problem(scope: Scope, receive: Receive, send: Send, exc: AppError) -> None:
        rid = scope.get("state", {}).get("request_id")
        await app_error_response(exc, str(rid) if rid else None, scope["path"])(scope, receive, send)


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _replay(send: Send, stored: StoredResponse) -> None:
    headers = [*stored.headers, REPLAYED]
    if stored.status >= 200 and stored.status not in (204, 304):  # those may not carry a Content-Length
        headers.append((b"content-length", str(len(stored.body)).encode()))
    await send({"type": "http.response.start", "status": stored.status, "headers": headers})
    await send({"type": "http.response.body", "body": stored.body})


class _Capture:
    """Forwards every message to the client at once and keeps a copy of the response (up to a limit)."""

    def __init__(self, send: Send, limit: int) -> None:
        self._send = send
        self._limit = limit
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.size = 0
        self.complete = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            self.headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunk = message.get("body", b"")
            self.size += len(chunk)
            if self.size <= self._limit:  # past the limit the copy is dropped; finish() then releases
                self.chunks.append(chunk)
            if not message.get("more_body", False):
                self.complete = True
        await self._send(message)

    def response(self) -> StoredResponse | None:
        """The whole response, or None when the app never finished one or it was over the limit."""
        if self.status is None or not self.complete:
            return None
        if self.size > self._limit:
            log.warning("idempotency_response_too_large", size=self.size, limit=self._limit)
            return None
        return StoredResponse(self.status, self.headers, b"".join(self.chunks))
