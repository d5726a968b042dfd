"""Webhook endpoints and deliveries.

An event (`emit`) becomes one delivery per enabled endpoint subscribed to its type, written in the caller's
transaction (the outbox: no delivery without its alert, no alert without its deliveries), then each delivery's
first attempt is queued. An attempt (`attempt`, run by the `deliver_webhook` job) signs the message, posts it
through the SSRF-safe transport and records the outcome; a failure queues the next attempt on the schedule
(app.integrations.webhooks.schedule) with the defer computed here, so the job queue's own retries never
stack on top. The message id (`webhook-id`) is the delivery's and the same on every attempt.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx
import orjson
import structlog
from cryptography.fernet import Fernet
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.engine import Database
from app.errors import InvalidField, NotFound
from app.integrations.platform_events.signature import new_secret
from app.integrations.webhooks import repository as repo
from app.integrations.webhooks import signing
from app.integrations.webhooks.schedule import WINDOW_SECONDS, retry_delay
from app.integrations.webhooks.ssrf import PinnedTransport, Resolver, TargetPolicy, TargetRefused, check_registration
from app.integrations.webhooks.ssrf import resolve as system_resolve
from app.jobs.ownership import broker_job_id

log = structlog.get_logger(__name__)
EVENT_TYPES = ("alert.triggered", "alert.cleared", "calculation.flagged")
Clock = Callable[[], datetime]


class Enqueuer(Protocol):  # app.jobs.queue.JobQueue
    async def enqueue(self, function: str, *args: Any, job_id: str | None = None,
                      defer_seconds: float | None = None) -> str: ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


def attempt_job_id(broker_id: uuid.UUID, delivery_id: uuid.UUID, attempt: int) -> str:
    return broker_job_id(broker_id, f"whd-{delivery_id.hex}-{attempt}")


def _retry_after(value: str | None, now: datetime) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((when.astimezone(UTC) - now).total_seconds(), 0.0) if when.tzinfo else None


@dataclass(frozen=True, slots=True)
class Response:
    status_code: int | None
    error: str | None
    abort: bool = False
    retry_after: float | None = None


def endpoint_out(row: Row[Any], now: datetime) -> dict[str, Any]:
    overlap = row.previous_valid_until if row.previous_secret_enc and row.previous_valid_until and \
        row.previous_valid_until > now else None
    return {"id": row.id, "url": row.url, "description": row.description, "eventTypes": list(row.event_types),
            "enabled": row.enabled, "disabledReason": row.disabled_reason, "disabledAt": row.disabled_at,
            "lastSuccessAt": row.last_success_at, "previousSecretValidUntil": overlap,
            "createdAt": row.created_at, "updatedAt": row.updated_at}


def delivery_out(row: Row[Any], attempts: Sequence[Row[Any]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row.id, "endpointId": row.endpoint_id, "messageId": row.message_id, "eventType": row.event_type,
        "status": row.status, "attempts": row.attempts, "nextAttemptAt": row.next_attempt_at,
        "lastResponseCode": row.last_status_code, "lastLatencyMs": row.last_latency_ms, "lastError": row.last_error,
        "redeliveryOf": row.redelivery_of, "createdAt": row.created_at, "deliveredAt": row.delivered_at}
    if attempts is not None:
        out["payload"] = orjson.loads(row.payload)
        out["attemptLog"] = [{"attempt": a.attempt, "at": a.attempted_at, "responseCode": a.status_code,
                              "latencyMs": a.latency_ms, "error": a.error} for a in attempts]
    return out


def _event_types(types: Sequence[str]) -> list[str]:
    unknown = [t for t in types if t not in EVENT_TYPES]
    if unknown:
        raise InvalidField("eventTypes", f"unknown event type(s) {', '.join(unknown)}: one of {', '.join(EVENT_TYPES)}",
                           "unknown_event_type")
    return list(dict.fromkeys(types))


class WebhookService:
    def __init__(self, db: Database, fernet: Fernet, policy: TargetPolicy, *, timeout_seconds: float = 5.0,
                 response_max_bytes: int = 1024, overlap_hours: float = 24.0, jobs: Enqueuer | None = None,
                 clock: Clock = _utcnow, rng: random.Random | None = None, resolver: Resolver = system_resolve) -> None:
        self.db = db
        self.fernet = fernet
        self.policy = policy
        self.timeout = timeout_seconds
        self.response_max_bytes = response_max_bytes
        self.overlap = timedelta(hours=overlap_hours)
        self.jobs = jobs
        self.clock = clock
        self.rng = rng or random.Random()
        self.resolver = resolver
        self.client = self._client()

    def _client(self) -> httpx.AsyncClient:
        # No redirects (a 3xx is a failed attempt), one timeout for every phase, no environment proxies (a
        # proxy would connect to the name itself, past the address check).
        return httpx.AsyncClient(transport=PinnedTransport(self.policy, lambda h, p: self.resolver(h, p)),
                                 timeout=self.timeout, follow_redirects=False, trust_env=False)

    async def close(self) -> None:
        await self.client.aclose()

    def _encrypt(self, secret: str) -> str:
        return self.fernet.encrypt(secret.encode()).decode()

    def _secrets(self, row: Row[Any], now: datetime) -> list[str]:
        keys = [self.fernet.decrypt(row.secret_enc.encode()).decode()]
        if row.previous_secret_enc and row.previous_valid_until and row.previous_valid_until > now:
            keys.append(self.fernet.decrypt(row.previous_secret_enc.encode()).decode())
        return keys

    # --- endpoints ------------------------------------------------------------------------------------------
    async def create(self, broker_id: uuid.UUID, url: str, event_types: Sequence[str],
                     description: str | None) -> dict[str, Any]:
        stored = await check_registration(self.policy, url, self.resolver)
        types = _event_types(event_types)
        secret, endpoint_id, now = new_secret(), uuid.uuid4(), self.clock()
        async with self.db.tenant(broker_id) as session:
            await repo.insert_endpoint(session, broker_id, endpoint_id, stored, description, types,
                                       self._encrypt(secret), now)
            row = (await repo.endpoints(session, endpoint_id))[0]
            await session.commit()
        return {**endpoint_out(row, now), "secret": secret}

    async def endpoints(self, broker_id: uuid.UUID) -> list[dict[str, Any]]:
        now = self.clock()
        async with self.db.tenant(broker_id) as session:
            return [endpoint_out(r, now) for r in await repo.endpoints(session)]

    async def _endpoint(self, session: AsyncSession, endpoint_id: uuid.UUID) -> Row[Any]:
        found = await repo.endpoints(session, endpoint_id)
        if not found:
            raise NotFound("No webhook endpoint with this id.")
        return found[0]

    async def get(self, broker_id: uuid.UUID, endpoint_id: uuid.UUID) -> dict[str, Any]:
        async with self.db.tenant(broker_id) as session:
            return endpoint_out(await self._endpoint(session, endpoint_id), self.clock())

    async def update(self, broker_id: uuid.UUID, endpoint_id: uuid.UUID, changes: dict[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if "url" in changes:
            values["url"] = await check_registration(self.policy, changes["url"], self.resolver)
        if "event_types" in changes:
            values["event_types"] = _event_types(changes["event_types"])
        if "description" in changes:
            values["description"] = changes["description"]
        if "enabled" in changes:
            values["enabled"] = changes["enabled"]
            if changes["enabled"]:  # re-enabled by the broker: the notice is cleared
                values["disabled_reason"], values["disabled_at"] = None, None
        now = self.clock()
        async with self.db.tenant(broker_id) as session:
            if not await repo.update_endpoint(session, endpoint_id, {**values, "updated_at": now}):
                raise NotFound("No webhook endpoint with this id.")
            row = await self._endpoint(session, endpoint_id)
            await session.commit()
        return endpoint_out(row, now)

    async def delete(self, broker_id: uuid.UUID, endpoint_id: uuid.UUID) -> None:
        async with self.db.tenant(broker_id) as session:
            if not await repo.delete_endpoint(session, endpoint_id):
                raise NotFound("No webhook endpoint with this id.")
            await session.commit()

    async def rotate(self, broker_id: uuid.UUID, endpoint_id: uuid.UUID, overlap_hours: float | None) -> dict[str, Any]:
        """A new secret, shown once; the previous one keeps signing beside it (two v1 signatures) for the overlap."""
        now = self.clock()
        until = now + (self.overlap if overlap_hours is None else timedelta(hours=overlap_hours))
        secret = new_secret()
        async with self.db.tenant(broker_id) as session:
            row = await self._endpoint(session, endpoint_id)
            await repo.update_endpoint(session, endpoint_id, {
                "secret_enc": self._encrypt(secret), "previous_secret_enc": row.secret_enc,
                "previous_valid_until": until, "updated_at": now})
            row = await self._endpoint(session, endpoint_id)
            await session.commit()
        return {**endpoint_out(row, now), "secret": secret}

    # --- deliveries -----------------------------------------------------------------------------------------
    async def emit_in(self, session: AsyncSession, broker_id: uuid.UUID, event_type: str,
                      data: dict[str, Any]) -> list[uuid.UUID]:
        """One delivery per subscribed enabled endpoint, in the caller's transaction; `schedule` them after its
        commit. The payload is Standard Webhooks' `{type, timestamp, data}`."""
        now = self.clock()
        payload = orjson.dumps({"type": event_type, "timestamp": now.isoformat().replace("+00:00", "Z"),
                                "data": data}).decode()
        out = []
        for endpoint in await repo.subscribed(session, event_type):
            delivery_id = uuid.uuid4()
            await repo.insert_delivery(session, broker_id, delivery_id, endpoint.id, f"msg_{uuid.uuid4().hex}",
                                       event_type, payload, now)
            out.append(delivery_id)
        return out

    async def schedule(self, broker_id: uuid.UUID, delivery_ids: Sequence[uuid.UUID]) -> None:
        if self.jobs is None:
            return
        for delivery_id in delivery_ids:
            await self.jobs.enqueue("deliver_webhook", str(broker_id), str(delivery_id), 1,
                                    job_id=attempt_job_id(broker_id, delivery_id, 1))

    async def emit(self, broker_id: uuid.UUID, event_type: str, data: dict[str, Any]) -> list[uuid.UUID]:
        async with self.db.tenant(broker_id) as session:
            ids = await self.emit_in(session, broker_id, event_type, data)
            await session.commit()
        await self.schedule(broker_id, ids)
        return ids

    async def deliveries(self, broker_id: uuid.UUID, endpoint_id: uuid.UUID, limit: int,
                         status: str | None) -> list[dict[str, Any]]:
        async with self.db.tenant(broker_id) as session:
            await self._endpoint(session, endpoint_id)
            return [delivery_out(r) for r in await repo.deliveries(session, endpoint_id, limit, status)]

    async def delivery(self, broker_id: uuid.UUID, endpoint_id: uuid.UUID, delivery_id: uuid.UUID) -> dict[str, Any]:
        async with self.db.tenant(broker_id) as session:
            row = await repo.delivery(session, delivery_id, endpoint_id)
            if row is None:
                raise NotFound("No delivery with this id.")
            return delivery_out(row, await repo.attempts(session, delivery_id))

    async def redeliver(self, broker_id: uuid.UUID, endpoint_id: uuid.UUID, delivery_id: uuid.UUID) -> dict[str, Any]:
        """The same message (same webhook-id, same body) on a fresh schedule, as a new delivery."""
        new_id, now = uuid.uuid4(), self.clock()
        async with self.db.tenant(broker_id) as session:
            row = await repo.delivery(session, delivery_id, endpoint_id)
            if row is None:
                raise NotFound("No delivery with this id.")
            await repo.insert_delivery(session, broker_id, new_id, endpoint_id, row.message_id, row.event_type,
                                       row.payload, now, redelivery_of=delivery_id)
            created = await repo.delivery(session, new_id)
            await session.commit()
        assert created is not None
        await self.schedule(broker_id, [new_id])
        return delivery_out(created, [])

    async def _post(self, url: str, body: str, headers: dict[str, str], now: datetime) -> Response:
        try:
            async with asyncio.timeout(self.timeout):
                async with self.client.stream("POST", url, content=body.encode(), headers=headers) as resp:
                    read = 0
                    async for chunk in resp.aiter_raw():  # only so much of an answer is ever read
                        read += len(chunk)
                        if read >= self.response_max_bytes:
                            break
                    abort = resp.headers.get("webhook-delivery", "").lower() == "abort-message"
                    after = _retry_after(resp.headers.get("retry-after"), now) if resp.status_code in (429, 503) \
                        else None
                    return Response(resp.status_code, None, abort, after)
        except TargetRefused as exc:
            return Response(None, f"refused: {exc}")
        except TimeoutError:
            return Response(None, f"timeout after {self.timeout:g} s")
        except (httpx.HTTPError, OSError) as exc:
            return Response(None, f"{type(exc).__name__}: {exc}"[:500])

    async def attempt(self, broker_id: uuid.UUID, delivery_id: uuid.UUID, attempt: int) -> dict[str, Any]:
        """Make attempt number `attempt` of a delivery; a no-op when that attempt was made already or the
        delivery is over (a rerun of the job, or a manual redelivery overtaking it)."""
        now = self.clock()
        async with self.db.tenant(broker_id) as session:
            row = await repo.delivery(session, delivery_id)
            if row is None or row.status != "pending" or row.attempts != attempt - 1:
                return {"deliveryId": str(delivery_id), "attempt": attempt, "skipped": True}
            endpoint = (await repo.endpoints(session, row.endpoint_id))[0]
            if not endpoint.enabled:
                await repo.record_attempt(session, broker_id, delivery_id, attempt, now, None, 0.0,
                                          "endpoint disabled", "cancelled", None)
                await session.commit()
                return {"deliveryId": str(delivery_id), "attempt": attempt, "status": "cancelled"}
            keys = self._secrets(endpoint, now)
            first = await repo.first_attempt_at(session, delivery_id) or now
        started = time.monotonic()
        answer = await self._post(endpoint.url, row.payload, signing.headers(row.message_id, now, row.payload, keys),
                                  now)
        latency_ms = round((time.monotonic() - started) * 1000, 3)
        status, next_at, delay, disable = self._outcome(answer, attempt, (now - first).total_seconds())
        async with self.db.tenant(broker_id) as session:
            recorded = await repo.record_attempt(session, broker_id, delivery_id, attempt, now, answer.status_code,
                                                 latency_ms, answer.error, status, next_at)
            if not recorded:
                return {"deliveryId": str(delivery_id), "attempt": attempt, "skipped": True}
            if status == "delivered":
                await repo.update_endpoint(session, endpoint.id, {"last_success_at": now})
            elif status == "exhausted" and (endpoint.last_success_at is None or endpoint.last_success_at < first):
                disable = f"every attempt failed for {WINDOW_SECONDS // 86_400} days (delivery {delivery_id})"
            if disable:
                await repo.update_endpoint(session, endpoint.id, {"enabled": False, "disabled_reason": disable,
                                                                  "disabled_at": now, "updated_at": now})
                log.warning("webhook_endpoint_disabled", broker_id=str(broker_id), endpoint_id=str(endpoint.id),
                            reason=disable)
            await session.commit()
        if delay is not None and self.jobs is not None:
            await self.jobs.enqueue("deliver_webhook", str(broker_id), str(delivery_id), attempt + 1,
                                    job_id=attempt_job_id(broker_id, delivery_id, attempt + 1), defer_seconds=delay)
        return {"deliveryId": str(delivery_id), "attempt": attempt, "status": status,
                "responseCode": answer.status_code, "error": answer.error,
                "nextAttemptAt": next_at.isoformat() if next_at else None, "deferSeconds": delay}

    def _outcome(self, answer: Response, attempt: int, since_first: float) -> \
            tuple[str, datetime | None, float | None, str | None]:
        """(status, next attempt time, its delay, why the endpoint is disabled)."""
        code = answer.status_code
        if code is not None and 200 <= code < 300:
            return "delivered", None, None, None
        if code == 410:  # Gone: the receiver says the endpoint no longer exists
            return "failed", None, None, "the endpoint answered 410 Gone"
        if answer.abort:  # the receiver asked us to stop retrying this message
            return "aborted", None, None, None
        delay = retry_delay(attempt, since_first, self.rng.uniform(-1.0, 1.0))
        if delay is not None and answer.retry_after is not None:
            delay = min(max(delay, answer.retry_after), WINDOW_SECONDS - since_first)
        if delay is None or delay <= 0:
            return "exhausted", None, None, None
        return "pending", self.clock() + timedelta(seconds=delay), delay, None
