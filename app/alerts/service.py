"""Alert rules (CRUD) and their evaluation on each trader's live book.

Evaluation reads the book (app.alerts.book), measures every enabled rule (app.alerts.rules), and in one
transaction fires the breaches that have no active alert, clears the active alerts whose value came back
past the clear threshold (or whose subject is gone: a closed position, a currency no longer held), and
writes an `alert.triggered` / `alert.cleared` delivery per subscribed endpoint beside each change
(the outbox); the deliveries are queued after the commit. Idempotent: a rerun on the same book changes
nothing, and two evaluations at once serialise on the active alerts' rows and the partial unique index.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Row
from starlette.requests import HTTPConnection

from app.alerts import repository as repo
from app.alerts.book import live_book
from app.alerts.rules import BELOW, UNITS, Rule, readings
from app.audit import service as audit
from app.auth.principal import Principal
from app.errors import InvalidField, NotFound
from app.services import Services


def _json(value: Any) -> str:
    # UTC times end in Z, like every other time of the webhook payload (the evidence's asOf included).
    return orjson.dumps(value, default=str, option=orjson.OPT_UTC_Z).decode()


def rule_out(row: Row[Any]) -> dict[str, Any]:
    return {"id": row.id, "kind": row.kind, "threshold": row.threshold,
            "clearThreshold": row.clear_threshold if row.clear_threshold is not None else row.threshold,
            "confidence": row.confidence, "unit": UNITS[row.kind],
            "direction": "below" if row.kind in BELOW else "above", "description": row.description,
            "enabled": row.enabled, "createdAt": row.created_at, "updatedAt": row.updated_at}


def alert_out(row: Row[Any]) -> dict[str, Any]:
    return {"id": row.id, "ruleId": row.rule_id, "kind": row.kind, "traderId": row.trader_id,
            "subject": row.subject or None, "status": row.status, "value": row.value, "threshold": row.threshold,
            "triggeredAt": row.triggered_at, "clearedAt": row.cleared_at, "evidence": row.evidence,
            "clearedEvidence": row.cleared_evidence}


def _check(kind: str, threshold: float, clear: float | None, confidence: float | None) -> None:
    if clear is not None and (clear < threshold if kind in BELOW else clear > threshold):
        side = "at or above" if kind in BELOW else "at or below"
        raise InvalidField("clearThreshold", f"must be {side} the threshold for a {kind} rule", "hysteresis")
    if confidence is not None and kind != "portfolio-var":
        raise InvalidField("confidence", "only portfolio-var rules have a confidence", "not_applicable")


def _audited(row: Row[Any]) -> dict[str, Any]:
    return {"kind": row.kind, "threshold": row.threshold, "clearThreshold": row.clear_threshold,
            "confidence": row.confidence, "enabled": row.enabled}


async def create_rule(svc: Services, broker_id: uuid.UUID, values: dict[str, Any], *,
                      principal: Principal | None = None, conn: HTTPConnection | None = None) -> dict[str, Any]:
    _check(values["kind"], values["threshold"], values.get("clear_threshold"), values.get("confidence"))
    if values["kind"] == "portfolio-var" and values.get("confidence") is None:
        values["confidence"] = 0.99
    rule_id, now = uuid.uuid4(), datetime.now(UTC)
    async with svc.db.tenant(broker_id) as session:
        await repo.insert_rule(session, broker_id, rule_id, {
            "kind": values["kind"], "threshold": values["threshold"], "clear_threshold": values.get("clear_threshold"),
            "confidence": values.get("confidence"), "description": values.get("description"),
            "enabled": values.get("enabled", True)}, now)
        row = (await repo.rules(session, rule_id))[0]
        await audit.record(session, broker_id=broker_id, action="alert_rule.created", conn=conn, principal=principal,
                           target_type="alert_rule", target_id=rule_id, details=_audited(row))
        await session.commit()
    return rule_out(row)


async def list_rules(svc: Services, broker_id: uuid.UUID) -> list[dict[str, Any]]:
    async with svc.db.tenant(broker_id) as session:
        return [rule_out(r) for r in await repo.rules(session)]


async def get_rule(svc: Services, broker_id: uuid.UUID, rule_id: uuid.UUID) -> dict[str, Any]:
    async with svc.db.tenant(broker_id) as session:
        found = await repo.rules(session, rule_id)
    if not found:
        raise NotFound("No alert rule with this id.")
    return rule_out(found[0])


async def update_rule(svc: Services, broker_id: uuid.UUID, rule_id: uuid.UUID, changes: dict[str, Any], *,
                      principal: Principal | None = None, conn: HTTPConnection | None = None) -> dict[str, Any]:
    async with svc.db.tenant(broker_id) as session:
        found = await repo.rules(session, rule_id)
        if not found:
            raise NotFound("No alert rule with this id.")
        row = found[0]
        merged = {"threshold": row.threshold, "clear_threshold": row.clear_threshold, "confidence": row.confidence,
                  **changes}
        _check(row.kind, merged["threshold"], merged["clear_threshold"], merged["confidence"])
        await repo.update_rule(session, rule_id, {**changes, "updated_at": datetime.now(UTC)})
        out = (await repo.rules(session, rule_id))[0]
        old, new = _audited(row), _audited(out)
        await audit.record(session, broker_id=broker_id, action="alert_rule.updated", conn=conn, principal=principal,
                           target_type="alert_rule", target_id=rule_id,
                           details={k: {"from": old[k], "to": new[k]} for k in old if old[k] != new[k]})
        await session.commit()
    return rule_out(out)


async def delete_rule(svc: Services, broker_id: uuid.UUID, rule_id: uuid.UUID, *,
                      principal: Principal | None = None, conn: HTTPConnection | None = None) -> None:
    async with svc.db.tenant(broker_id) as session:
        found = await repo.rules(session, rule_id)
        if not found or not await repo.delete_rule(session, rule_id):
            raise NotFound("No alert rule with this id.")
        await audit.record(session, broker_id=broker_id, action="alert_rule.deleted", conn=conn, principal=principal,
                           target_type="alert_rule", target_id=rule_id, details=_audited(found[0]))
        await session.commit()


async def list_alerts(svc: Services, broker_id: uuid.UUID, status: str | None, trader_id: str | None,
                      limit: int) -> list[dict[str, Any]]:
    async with svc.db.tenant(broker_id) as session:
        return [alert_out(r) for r in await repo.alerts(session, status=status, trader_id=trader_id, limit=limit)]


async def get_alert(svc: Services, broker_id: uuid.UUID, alert_id: uuid.UUID) -> dict[str, Any]:
    async with svc.db.tenant(broker_id) as session:
        found = await repo.alerts(session, alert_id=alert_id, limit=1)
    if not found:
        raise NotFound("No alert with this id.")
    return alert_out(found[0])


def _event(kind: str, alert_id: uuid.UUID, rule: Rule, trader_id: str, subject: str, value: float | None,
           at: datetime, evidence: dict[str, Any]) -> dict[str, Any]:
    return {"alertId": str(alert_id), "ruleId": str(rule.id), "kind": rule.kind, "traderId": trader_id,
            "subject": subject or None, "value": value, "threshold": rule.threshold,
            "clearThreshold": rule.clears_at, "unit": UNITS[rule.kind], kind: at.isoformat().replace("+00:00", "Z"),
            "evidence": evidence}


async def evaluate(svc: Services, broker_id: uuid.UUID, trader_ids: Sequence[str]) -> dict[str, Any]:
    """Evaluate the broker's enabled rules on each trader's book; what fired and what cleared."""
    async with svc.db.tenant(broker_id) as session:
        rule_rows = await repo.rules(session, enabled_only=True)
    rules = [Rule(r.id, r.kind, r.threshold, r.clear_threshold, r.confidence) for r in rule_rows]
    fired: list[str] = []
    cleared: list[str] = []
    if not rules:
        return {"fired": fired, "cleared": cleared}
    for trader_id in dict.fromkeys(trader_ids):
        account = await svc.platform_events.account(broker_id, trader_id)
        if account is None:
            continue
        book = orjson.loads(_json(await live_book(svc, broker_id, account)))  # JSON-shaped evidence
        measured = {rule.id: readings(rule, book) for rule in rules}
        now = datetime.now(UTC)
        deliveries: list[uuid.UUID] = []
        async with svc.db.tenant(broker_id) as session:
            current = {(a.rule_id, a.subject): a for a in await repo.active(session, trader_id)}
            for rule in rules:
                found = measured[rule.id]
                if found is None:  # not measurable now: leave its alerts as they are
                    continue
                by_subject = {r.subject: r for r in found}
                for reading in found:
                    if (rule.id, reading.subject) in current or not rule.breached(reading.value):
                        continue
                    alert_id = uuid.uuid4()
                    if await repo.fire(session, broker_id, alert_id, rule.id, trader_id, reading.subject,
                                       reading.value, rule.threshold, now, _json(reading.evidence)):
                        fired.append(str(alert_id))
                        deliveries += await svc.webhooks.emit_in(session, broker_id, "alert.triggered", _event(
                            "triggeredAt", alert_id, rule, trader_id, reading.subject, reading.value, now,
                            reading.evidence))
                for (rule_id, subject), alert in current.items():
                    if rule_id != rule.id:
                        continue
                    reading_now = by_subject.get(subject)
                    if reading_now is not None and not rule.cleared(reading_now.value):
                        continue  # still past the clear threshold: the alert stays active
                    evidence = reading_now.evidence if reading_now is not None else {"subjectGone": True}
                    if await repo.clear(session, alert.id, now, _json(evidence)):
                        cleared.append(str(alert.id))
                        deliveries += await svc.webhooks.emit_in(session, broker_id, "alert.cleared", _event(
                            "clearedAt", alert.id, rule, trader_id, subject,
                            reading_now.value if reading_now is not None else None, now, evidence))
            await session.commit()
        await svc.webhooks.schedule(broker_id, deliveries)
    return {"fired": fired, "cleared": cleared}
