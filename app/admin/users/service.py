"""Users of a broker: create, list, update, and what they did (activity)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from app.admin.users.schemas import UserCreate, UserUpdate
from app.audit import service as audit
from app.auth import invitations, refresh
from app.auth import users as repository
from app.auth.permissions import SCOPES, role_rank
from app.auth.principal import Principal
from app.auth.service import AuthService, require
from app.errors import Forbidden, InvalidField, NotFound
from app.models import AuditLog, Calculation, User


def user_out(row: User) -> dict[str, Any]:
    return {"id": row.id, "brokerId": row.broker_id, "email": row.email, "name": row.name, "role": row.role,
            "status": row.status, "mfaEnabled": row.totp_enabled, "sso": row.sso_subject is not None,
            "createdAt": row.created_at, "lastLoginAt": row.last_login_at}


def _may_grant(principal: Principal, role: str) -> bool:
    if principal.kind == "secret_key":
        # A key grants BROKER_ADMIN only when it holds every scope itself (an admin can do no more than a
        # full key); a narrower key (e.g. users:write only) must not mint a more powerful identity.
        if role_rank(role) >= role_rank("BROKER_ADMIN"):
            return role_rank(role) == role_rank("BROKER_ADMIN") and set(SCOPES) <= set(principal.scopes)
        return True
    return principal.role is not None and role_rank(role) <= role_rank(principal.role)


async def create(session: AsyncSession, auth: AuthService, principal: Principal, broker_id: uuid.UUID,
                 spec: UserCreate, conn: HTTPConnection) -> dict[str, Any]:
    if not _may_grant(principal, spec.role):
        raise Forbidden(f"This credential may not create a {spec.role}.")
    if await repository.email_taken(session, spec.email):
        raise InvalidField("email", "a user with this email already exists", "duplicate")
    row = User(broker_id=broker_id, email=spec.email, role=spec.role, name=spec.name,
               password_hash=await auth.hash_password(spec.password) if spec.password else None)
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent create of the same email
        raise InvalidField("email", "a user with this email already exists", "duplicate") from exc
    await session.refresh(row)
    await audit.record(session, broker_id=broker_id, action="user.created", conn=conn, principal=principal,
                       target_type="user", target_id=row.id, details={"role": row.role, "email": row.email})
    await session.commit()
    return user_out(row)


async def list_users(session: AsyncSession) -> list[dict[str, Any]]:
    rows = (await session.execute(select(User).order_by(User.created_at, User.id))).scalars().all()
    return [user_out(r) for r in rows]


async def get(session: AsyncSession, user_id: uuid.UUID) -> User:
    row = await session.get(User, user_id)
    if row is None:
        raise NotFound("No user with this id.")
    return row


def check_reach(principal: Principal, user_id: uuid.UUID, own: str, self_: str) -> None:
    """`own` lets the caller act on any user of its broker; `self_` only on its own record."""
    if principal.can(self_) and principal.user_id == user_id:
        return
    if principal.can(own):
        require(principal, own)  # the one check: admin powers of a person need MFA
        return
    raise NotFound("No user with this id.")


async def update(session: AsyncSession, auth: AuthService, principal: Principal, user_id: uuid.UUID,
                 spec: UserUpdate, conn: HTTPConnection) -> dict[str, Any]:
    row = await get(session, user_id)
    changes: dict[str, Any] = {}
    if spec.role is not None and spec.role != row.role:
        if principal.user_id == user_id:
            raise InvalidField("role", "nobody changes their own role", "forbidden_property")
        if not principal.can("users:update:own") or not _may_grant(principal, spec.role) \
                or not _may_grant(principal, row.role):
            raise Forbidden("This credential may not grant that role.")
        changes["role"] = spec.role
    if spec.status is not None and spec.status != row.status:
        if principal.user_id == user_id:
            raise InvalidField("status", "nobody disables their own account", "forbidden_property")
        changes["status"] = spec.status
    if spec.name is not None:
        changes["name"] = spec.name
    if spec.password is not None:
        changes["password_hash"] = await auth.hash_password(spec.password)
    for k, v in changes.items():
        setattr(row, k, v)
    row.updated_at = datetime.now(UTC)
    await audit.record(session, broker_id=row.broker_id, action="user.updated", conn=conn, principal=principal,
                       target_type="user", target_id=row.id,
                       details={"fields": sorted(k if k != "password_hash" else "password" for k in changes),
                                **({"role": changes["role"]} if "role" in changes else {})})
    await session.commit()
    if changes.get("status") == "disabled":
        auth.revoke_user(row.id)  # its access tokens stop on every worker, not in up to 15 minutes
    return user_out(row)


async def activity(session: AsyncSession, user_id: uuid.UUID, limit: int) -> dict[str, Any]:
    await get(session, user_id)
    uid = str(user_id)
    events = (await session.execute(
        select(AuditLog).where(or_(AuditLog.actor_id == uid, AuditLog.target_id == uid))
        .order_by(AuditLog.created_at.desc()).limit(limit))).scalars().all()
    calcs = (await session.execute(
        select(Calculation.id, Calculation.kind, Calculation.created_at).where(Calculation.user_id == user_id)
        .order_by(Calculation.created_at.desc()).limit(limit))).all()
    return {
        "userId": user_id,
        "events": [{"id": e.id, "action": e.action, "actorType": e.actor_type, "actorId": e.actor_id,
                    "targetType": e.target_type, "targetId": e.target_id, "ip": e.ip, "requestId": e.request_id,
                    "details": e.details, "createdAt": e.created_at} for e in events],
        "calculations": [{"calculationId": c.id, "kind": c.kind, "createdAt": c.created_at} for c in calcs],
    }


async def invite(session: AsyncSession, auth: AuthService, principal: Principal, user_id: uuid.UUID,
                 conn: HTTPConnection) -> dict[str, Any]:
    """A link for a user without a password (created for an invitation) to choose one."""
    row = await get(session, user_id)
    if row.password_hash is not None or row.sso_subject is not None or row.status != "active":
        raise InvalidField("userId", "only an active user who has no password yet can be invited", "not_invitable")
    token, exp = invitations.issue(auth.secrets.pepper, row.broker_id, row.id)
    base = auth.settings.public_base_url.rstrip("/")
    await audit.record(session, broker_id=row.broker_id, action="user.invited", conn=conn, principal=principal,
                       target_type="user", target_id=row.id)
    await session.commit()
    return {"userId": row.id, "email": row.email, "token": token, "url": f"{base}/admin/#/accept/{token}",
            "expiresAt": datetime.fromtimestamp(exp, UTC)}


async def reset_mfa(session: AsyncSession, auth: AuthService, principal: Principal, user_id: uuid.UUID,
                    conn: HTTPConnection) -> dict[str, Any]:
    """A user who lost their authenticator: TOTP and recovery codes cleared, every session ended; they
    enrol again at their next login."""
    if principal.user_id == user_id:
        raise InvalidField("userId", "another admin resets your MFA (it is what proves you are you)",
                           "forbidden_property")
    row = await get(session, user_id)
    row.totp_enabled = False
    row.totp_secret_enc = None
    row.totp_last_step = None
    row.recovery_codes = []
    row.mfa_failures = 0
    row.mfa_locked_until = None
    row.updated_at = datetime.now(UTC)
    families = await refresh.revoke_user_families(session, row.id)
    await audit.record(session, broker_id=row.broker_id, action="user.mfa_reset", conn=conn, principal=principal,
                       target_type="user", target_id=row.id, details={"sessionsEnded": len(families)})
    await session.commit()
    for family_id in families:
        auth.revoke_session(family_id)
    return user_out(row)


async def accept_invitation(auth: AuthService, token: str, password: str, conn: HTTPConnection) -> None:
    found = invitations.verify(auth.secrets.pepper, token)
    refused = InvalidField("token", "this invitation is invalid, expired or already used", "invalid_invitation")
    if found is None:
        raise refused
    async with auth.db.tenant(found.broker_id) as session:
        row = await session.get(User, found.user_id, with_for_update=True)
        if row is None or row.password_hash is not None or row.sso_subject is not None or row.status != "active":
            raise refused
        row.password_hash = await auth.hash_password(password)
        row.updated_at = datetime.now(UTC)
        await audit.record(session, broker_id=row.broker_id, action="user.invitation_accepted", conn=conn,
                           actor_type="user", actor_id=str(row.id), target_type="user", target_id=row.id)
        await session.commit()
