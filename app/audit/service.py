"""The append-only audit log: who did what, from where, with which request id.

Entries are written in the same transaction as the change they describe, so a change never lands
without its entry. The app role can only INSERT and SELECT audit_logs (no UPDATE, no DELETE).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from app.models import AuditLog

if TYPE_CHECKING:  # audit sits below auth: it records a principal, it never builds one
    from app.auth.principal import Principal


def client_ip(conn: HTTPConnection | None) -> str | None:
    if conn is None or conn.client is None:
        return None
    return conn.client.host


def request_id(conn: HTTPConnection | None) -> str | None:
    if conn is None:
        return None
    rid = conn.scope.get("state", {}).get("request_id")
    return str(rid) if rid else None


async def record(session: AsyncSession, *, broker_id: uuid.UUID, action: str, conn: HTTPConnection | None,
                 principal: Principal | None = None, actor_type: str | None = None, actor_id: str | None = None,
                 target_type: str | None = None, target_id: str | uuid.UUID | None = None,
                 details: dict[str, Any] | None = None) -> None:
    await session.execute(insert(AuditLog).values(
        broker_id=broker_id,
        actor_type=actor_type or (principal.actor_type if principal else "system"),
        actor_id=actor_id or (principal.actor_id if principal else None),
        action=action, target_type=target_type, target_id=str(target_id) if target_id else None,
        ip=client_ip(conn), request_id=request_id(conn), details=details or {},
    ))
