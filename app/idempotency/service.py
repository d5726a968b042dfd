"""Idempotency rules: who may reuse a key, what is stored, what is replayed, and how long.

- Scope: (the authenticated principal's broker, key). The same string in two brokers is two keys.
- A key is bound to its first request *and* its first credential: another API key or user of the same
  broker reusing it gets 422, never the stored response, which can hold a secret only the first
  caller was allowed to see (an API key's creation response).
- Fingerprint: HMAC-SHA256 with the server pepper over method, path, query and the exact body bytes.
- Stored: every final status below 500 except 408 and 429 (transient: a retry should run again).
  5xx, an exception, or a response over `max_body` (16 MiB) releases the key: a retry runs again.
- Lifetime: 24 h from the first request. An expired row is taken over by the next request with its key,
  and each new key purges up to `purge_batch` expired rows of its broker.
- A pending row older than `lease` belongs to a run that died (worker killed, database lost before the
  result was written): the next request takes it over instead of answering 409 for 24 h.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.exc import SQLAlchemyError

from app.auth.principal import Principal
from app.db.engine import Database
from app.errors import ServiceUnavailable
from app.idempotency import repository as repo
from app.idempotency.cipher import ResponseCipher, UnreadableResponse
from app.idempotency.errors import IdempotencyKeyInFlight, IdempotencyKeyInvalid, IdempotencyKeyReused

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]
Headers = list[tuple[bytes, bytes]]

# Response headers worth replaying. Everything else is per response (x-request-id, date, rate-limit
# headers, content-length: recomputed) or must never be replayed (set-cookie).
STORED_HEADERS = frozenset({b"content-type", b"content-language", b"location", b"etag", b"last-modified",
                            b"link", b"allow", b"www-authenticate"})
TRANSIENT_STATUSES = frozenset({408, 429})
_DB_ERRORS = (SQLAlchemyError, OSError)


def utc_now() -> datetime:
    return datetime.now(UTC)


def parse_key(values: list[bytes]) -> str:
    """1 to 255 visible ASCII characters (0x21-0x7E), sent once; a draft-style quoted string is just
    a key that includes its quotes."""
    if len(values) != 1:
        raise IdempotencyKeyInvalid("Send one Idempotency-Key header, not several.")
    raw = values[0]
    if not 1 <= len(raw) <= 255 or any(b < 0x21 or b > 0x7E for b in raw):
        raise IdempotencyKeyInvalid("Idempotency-Key must be 1 to 255 visible ASCII characters (no spaces).")
    return raw.decode("ascii")


def principal_ref(principal: Principal) -> str:
    return f"{principal.actor_type}:{principal.actor_id}"


@dataclass(frozen=True)
class StoredResponse:
    status: int
    headers: Headers
    body: bytes


@dataclass(frozen=True)
class Claim:
    """This run owns the key's pending row until it completes or releases it."""

    broker_id: uuid.UUID
    key: str
    claim_id: uuid.UUID


@dataclass
class IdempotencyService:
    db: Database
    cipher: ResponseCipher
    pepper: bytes
    clock: Clock = utc_now
    ttl: timedelta = timedelta(hours=24)
    lease: timedelta = timedelta(seconds=60)
    max_body: int = 16 * 1024 * 1024
    purge_batch: int = 100

    def fingerprint(self, method: str, path: str, query: bytes, body: bytes) -> bytes:
        mac = hmac.new(self.pepper, digestmod=hashlib.sha256)
        for part in (method.encode(), path.encode(), query, body):
            mac.update(len(part).to_bytes(8, "big"))  # length-prefixed: no two requests share a preimage
            mac.update(part)
        return mac.digest()

    async def begin(self, principal: Principal, key: str, fingerprint: bytes) -> Claim | StoredResponse:
        """Claim the key for this run, or return the response to replay; raises 409/422/503 problems."""
        try:
            return await self._begin(principal, key, fingerprint)
        except _DB_ERRORS as exc:
            log.warning("idempotency_unavailable", broker_id=str(principal.broker_id), error=str(exc))
            raise ServiceUnavailable("Idempotency-Key cannot be checked right now (database unreachable).") from exc

    async def _begin(self, principal: Principal, key: str, fingerprint: bytes) -> Claim | StoredResponse:
        ref = principal_ref(principal)
        # A row can vanish between the insert and the read (its run failed and released it): try again.
        for _ in range(3):
            now = self.clock()
            claim_id = uuid.uuid4()
            async with self.db.tenant(principal.broker_id) as session:
                claimed = await repo.claim(session, broker_id=principal.broker_id, key=key, fingerprint=fingerprint,
                                           principal=ref, claim_id=claim_id, now=now, expires_at=now + self.ttl,
                                           stale_before=now - self.lease)
                if claimed:
                    await repo.purge_expired(session, principal.broker_id, now, self.purge_batch)
                    await session.commit()
                    return Claim(principal.broker_id, key, claim_id)
                row = await repo.get(session, principal.broker_id, key)
                await session.commit()
            if row is None:
                continue
            if row.principal != ref:
                raise IdempotencyKeyReused("This Idempotency-Key was used by another credential; send a new key.")
            if not hmac.compare_digest(row.fingerprint, fingerprint):
                raise IdempotencyKeyReused("This Idempotency-Key was used with a different request "
                                           "(method, path, query or body); send a new key.")
            if row.status == "pending" or row.response_body is None or row.response_status is None:
                raise IdempotencyKeyInFlight()
            try:
                body = self.cipher.open(row.response_body, row.broker_id, row.key, row.claim)
            except UnreadableResponse:
                log.error("idempotency_unreadable", broker_id=str(row.broker_id))
                raise IdempotencyKeyReused("The stored response for this Idempotency-Key cannot be read; "
                                           "send a new key.") from None
            headers = [(str(n).encode("latin-1"), str(v).encode("latin-1")) for n, v in row.response_headers or []]
            return StoredResponse(row.response_status, headers, body)
        raise IdempotencyKeyInFlight()

    @staticmethod
    def storable(status: int) -> bool:
        return status < 500 and status not in TRANSIENT_STATUSES

    async def finish(self, claim: Claim, response: StoredResponse) -> None:
        """Store the response for replay (it has already been sent: a failure here only loses the replay)."""
        if not self.storable(response.status):
            await self.release(claim)
            return
        headers = [[n.decode("latin-1"), v.decode("latin-1")] for n, v in response.headers if n in STORED_HEADERS]
        sealed = self.cipher.seal(response.body, claim.broker_id, claim.key, claim.claim_id)
        try:
            async with self.db.tenant(claim.broker_id) as session:
                stored = await repo.complete(session, broker_id=claim.broker_id, key=claim.key,
                                             claim_id=claim.claim_id, status=response.status, headers=headers,
                                             body=sealed)
                await session.commit()
        except _DB_ERRORS as exc:
            # The row stays pending; after the lease the next request with this key runs again.
            log.error("idempotency_store_failed", broker_id=str(claim.broker_id), error=str(exc))
            return
        if not stored:
            log.warning("idempotency_claim_lost", broker_id=str(claim.broker_id))

    async def release(self, claim: Claim) -> None:
        try:
            async with self.db.tenant(claim.broker_id) as session:
                await repo.release(session, broker_id=claim.broker_id, key=claim.key, claim_id=claim.claim_id)
                await session.commit()
        except _DB_ERRORS as exc:
            log.error("idempotency_release_failed", broker_id=str(claim.broker_id), error=str(exc))
