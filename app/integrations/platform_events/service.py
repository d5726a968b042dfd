"""Inbound platform events: verify the message, record its id (a replay changes nothing), check each event on
its own, apply the good ones to the account state in one transaction, and say per index what happened."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from cryptography.fernet import Fernet
from pydantic import ValidationError
from starlette.requests import HTTPConnection

from app.audit import service as audit
from app.db.engine import Database
from app.errors import AppError, MalformedJSON, Unauthorized, _errors_from_pydantic, dotted, pointer
from app.integrations.platform_events import repository as repo
from app.integrations.platform_events import signature
from app.integrations.platform_events.schemas import DATA_MODELS, EVENT_TYPES, EventIn, EventsIn
from app.jobs.ownership import broker_job_id
from app.jobs.queue import JobQueue, JobsUnavailable
from app.jsonbody import loads

if TYPE_CHECKING:  # recorded in the audit log, never built here
    from app.auth.principal import Principal

Clock = Callable[[], datetime]
log = structlog.get_logger(__name__)
# A message whose evaluation never ran is swept for this long (then its id is pruned like any other): the
# webhook retry window, so an outage shorter than that loses no alert.
SWEEP_WINDOW = timedelta(days=3)
SWEEP_BATCH = 1000
PRUNE_BATCH = 10_000


def _utcnow() -> datetime:
    return datetime.now(UTC)


def evaluation_job_id(broker_id: uuid.UUID, message_id: str) -> str:
    """The job that evaluates the alert rules of a message's traders: one per message, so a retried enqueue is
    the same job; owned by the broker (app.jobs.ownership)."""
    return broker_job_id(broker_id, "alerts-" + hashlib.sha256(message_id.encode()).hexdigest()[:32])


def _refused(index: int, event_id: str | None, errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"index": index, "id": event_id, "status": "refused", "errors": errors}


@dataclass(slots=True)
class Received:
    """What a message did: the answer's body, and the traders whose state changed (their alerts are due)."""

    body: dict[str, Any]
    traders: list[str] = field(default_factory=list)


class PlatformEvents:
    def __init__(self, db: Database, fernet: Fernet, overlap_hours: float = 24.0, clock: Clock = _utcnow,
                 tolerance_seconds: float = signature.TOLERANCE_SECONDS) -> None:
        self.db = db
        self.fernet = fernet
        self.overlap = timedelta(hours=overlap_hours)
        self.clock = clock
        self.tolerance = tolerance_seconds

    # --- the broker's inbound secret ---------------------------------------------------------------------
    async def rotate_secret(self, broker_id: uuid.UUID, overlap_hours: float | None = None, *,
                            principal: Principal | None = None, conn: HTTPConnection | None = None) -> dict[str, Any]:
        """A new secret, shown once; the previous one keeps verifying for the overlap."""
        now = self.clock()
        secret = signature.new_secret()
        until = now + (self.overlap if overlap_hours is None else timedelta(hours=overlap_hours))
        async with self.db.tenant(broker_id) as session:
            had = await repo.read_secret(session, broker_id)
            await repo.rotate_secret(session, broker_id, self.fernet.encrypt(secret.encode()).decode(), now, until)
            await audit.record(session, broker_id=broker_id, conn=conn, principal=principal,
                               action="platform_events.secret_rotated" if had else "platform_events.secret_created",
                               target_type="platform_events_secret", target_id=broker_id,
                               details={"previousValidUntil": until.isoformat()} if had else {})
            await session.commit()
        return {"secret": secret, "rotatedAt": now, "previousValidUntil": until if had is not None else None}

    async def secret_info(self, broker_id: uuid.UUID) -> dict[str, Any]:
        async with self.db.tenant(broker_id) as session:
            found = await repo.read_secret(session, broker_id)
        if found is None:
            return {"configured": False, "rotatedAt": None, "previousValidUntil": None}
        until = found.previous_valid_until if found.previous_secret_enc is not None else None
        return {"configured": True, "rotatedAt": found.rotated_at,
                "previousValidUntil": until if until is not None and until > self.clock() else None}

    async def _keys(self, broker_id: uuid.UUID, now: datetime) -> list[str]:
        async with self.db.tenant(broker_id) as session:
            found = await repo.read_secret(session, broker_id)
        if found is None:
            return []
        keys = [self.fernet.decrypt(found.secret_enc.encode()).decode()]
        if found.previous_secret_enc and found.previous_valid_until and found.previous_valid_until > now:
            keys.append(self.fernet.decrypt(found.previous_secret_enc.encode()).decode())
        return keys

    # --- receiving -----------------------------------------------------------------------------------------
    async def receive(self, broker_id: uuid.UUID, headers: Mapping[str, str], body: bytes) -> Received:
        now = self.clock()
        keys = await self._keys(broker_id, now)
        if not keys:  # an unknown broker, or one without a secret: the same 401 as a wrong signature
            raise Unauthorized("The message signature is not valid: no inbound secret for this broker.")
        message_id, _sent = signature.verify(keys, headers, body, now, self.tolerance)
        try:
            doc = loads(body)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
            raise MalformedJSON(f"The body is not JSON: {exc}") from None
        try:
            envelope = EventsIn.model_validate(doc)
        except ValidationError as exc:
            raise EventsRefused("Invalid field(s)", _errors_from_pydantic(list(exc.errors()))) from None
        results: list[dict[str, Any]] = []
        good: list[tuple[int, EventIn, Any]] = []
        for i, raw in enumerate(envelope.events):
            checked = _check(i, raw)
            if isinstance(checked, dict):
                results.append(checked)
            else:
                good.append((i, *checked))
        if not good:
            raise EventsRefused("No event could be applied; invalid field(s)",
                                [e for r in results for e in r["errors"]])
        traders: list[str] = []
        async with self.db.tenant(broker_id) as session:
            if not await repo.first_sight_of_message(session, broker_id, message_id, now, len(envelope.events)):
                await session.rollback()
                return Received(_answer(message_id, True, [
                    {"index": i, "id": ev.id, "status": "duplicate", "errors": None} for i, ev, _ in good] + results))
            for i, ev, data in good:
                fresh = await repo.first_sight_of_event(session, broker_id, ev.id, ev.type, data.trader_id,
                                                        ev.timestamp, now, orjson.dumps(ev.data).decode())
                status = "duplicate"
                if fresh:
                    status = "applied" if await repo.apply(session, broker_id, ev.timestamp, data) else "superseded"
                if status == "applied":  # only a changed book is evaluated again
                    traders.append(data.trader_id)
                results.append({"index": i, "id": ev.id, "status": status, "errors": None})
            changed = list(dict.fromkeys(traders))
            if changed:  # what the sweeper evaluates should the job never be queued (Redis down, a crash)
                await repo.message_traders(session, broker_id, message_id, changed)
            await session.commit()
        return Received(_answer(message_id, False, results), changed)

    # --- the evaluation of each message's traders, and the message ids' lifetime ----------------------------
    async def schedule_evaluation(self, jobs: JobQueue, broker_id: uuid.UUID, message_id: str,
                                  traders: list[str]) -> bool:
        """Queue the alert evaluation of a message's traders (one job per message: its id is derived from the
        message id, so queueing it again is a no-op). False when the queue is down: the sweeper queues it."""
        try:
            await jobs.enqueue("evaluate_alerts", str(broker_id), traders, message_id,
                               job_id=evaluation_job_id(broker_id, message_id))
        except JobsUnavailable:
            log.warning("alerts_not_scheduled", broker_id=str(broker_id), traders=len(traders))
            return False
        return True

    async def mark_evaluated(self, broker_id: uuid.UUID, message_id: str) -> None:
        async with self.db.tenant(broker_id) as session:
            await repo.message_evaluated(session, broker_id, message_id, self.clock())
            await session.commit()

    async def sweep_evaluations(self, jobs: JobQueue, grace_seconds: float,
                                now: datetime | None = None) -> dict[str, Any]:
        """Queue again the evaluations of messages received more than `grace_seconds` ago and never evaluated
        (the job was not queued, or was lost with Redis's data). Idempotent: the job id is the message's, so a
        job still queued or running is not queued twice."""
        now = now or self.clock()
        async with self.db.platform() as session:
            found = await repo.unevaluated(session, now - timedelta(seconds=grace_seconds), now - SWEEP_WINDOW,
                                           SWEEP_BATCH)
        queued = 0
        for broker_id, message_id, traders in found:
            if not await self.schedule_evaluation(jobs, broker_id, message_id, traders):
                break  # still down: the next sweep tries again
            queued += 1
        return {"found": len(found), "queued": queued}

    def replay_window(self, margin_seconds: float) -> timedelta:
        """How long a message id must be kept to refuse its replay: its timestamp may be up to the tolerance
        ahead of our clock when it arrives, and a copy is accepted up to the tolerance after that timestamp,
        so twice the tolerance after receipt; plus a margin for clocks of several servers."""
        return timedelta(seconds=2 * self.tolerance + margin_seconds)

    async def prune_messages(self, margin_seconds: float, now: datetime | None = None) -> dict[str, Any]:
        """Delete the message ids past the replay window (a replay that old fails the timestamp check anyway),
        in batches; those still waiting for the sweeper stay until it gives up on them."""
        now = now or self.clock()
        cutoff = now - self.replay_window(margin_seconds)
        total = 0
        while True:
            async with self.db.platform() as session:
                deleted = await repo.prune_messages(session, cutoff, now - SWEEP_WINDOW, PRUNE_BATCH)
                await session.commit()
            total += deleted
            if deleted < PRUNE_BATCH:
                return {"cutoff": cutoff.isoformat(), "deleted": total}

    async def account(self, broker_id: uuid.UUID, trader_id: str) -> repo.Account | None:
        async with self.db.tenant(broker_id) as session:
            return await repo.read_account(session, broker_id, trader_id)


class EventsRefused(AppError):
    """422: the envelope is invalid, or no event of the message could be applied (each named by its field)."""

    status = 422
    slug = "validation-error"

    def __init__(self, what: str, errors: list[dict[str, Any]]) -> None:
        fields = ", ".join(dict.fromkeys(e["field"] for e in errors))
        super().__init__(f"{what}: {fields}", errors=errors)


def _answer(message_id: str, replay: bool, results: list[dict[str, Any]]) -> dict[str, Any]:
    results.sort(key=lambda r: int(r["index"]))
    count = {s: sum(1 for r in results if r["status"] == s) for s in ("applied", "superseded", "duplicate", "refused")}
    return {"messageId": message_id, "replay": replay, "applied": count["applied"], "superseded": count["superseded"],
            "duplicates": count["duplicate"], "refused": count["refused"], "results": results}


def _check(index: int, raw: Any) -> dict[str, Any] | tuple[EventIn, Any]:
    prefix: tuple[Any, ...] = ("events", index)
    event_id = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else None
    try:
        ev = EventIn.model_validate(raw)
    except ValidationError as exc:
        return _refused(index, event_id, _errors_from_pydantic(list(exc.errors()), prefix))
    if ev.type not in DATA_MODELS:
        loc = (*prefix, "type")
        return _refused(index, ev.id, [{"field": dotted(loc), "pointer": pointer(loc), "code": "unknown_event_type",
                                        "detail": f"unknown event type {ev.type!r}: one of {', '.join(EVENT_TYPES)}"}])
    try:
        data = DATA_MODELS[ev.type].model_validate(ev.data)
    except ValidationError as exc:
        return _refused(index, ev.id, _errors_from_pydantic(list(exc.errors()), (*prefix, "data")))
    return ev, data

