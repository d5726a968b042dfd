"""Broker lifecycle and tenant configuration."""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from app.admin.api_keys.schemas import KeyCreate
from app.admin.api_keys.service import insert_key
from app.admin.brokers.schemas import BrokerConfig, BrokerCreate
from app.audit import service as audit
from app.auth.principal import Principal
from app.auth.service import AuthService
from app.db.engine import Database
from app.errors import Conflict, InvalidField, NotFound
from app.models import ApiKey, Broker, User


def broker_out(row: Broker) -> dict[str, Any]:
    return {"id": row.id, "slug": row.slug, "name": row.name, "tier": row.tier, "status": row.status,
            "domains": list(row.domains or ()), "config": row.config, "configVersion": row.config_version,
            "createdAt": row.created_at, "updatedAt": row.updated_at}


def slug_from_name(name: str) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:50] or "broker"
    return base


def name_key(name: str) -> str:
    """Names compare without case and surrounding or repeated spaces: "Acme  Forex " is "acme forex"."""
    return " ".join(name.split()).lower()


async def create_broker(db: Database, auth: AuthService, spec: BrokerCreate, *, principal: Principal | None = None,
                        conn: HTTPConnection | None = None, is_platform: bool = False,
                        admin_role: str = "BROKER_ADMIN", force: bool = False, status: str = "active",
                        issue_keys: bool = True, system_actor: str = "cli") -> dict[str, Any]:
    """Create a broker with its first secret and publishable keys (and an admin user when asked).

    A broker whose name is taken (by a broker not deleted) is a 409 unless `force`: running the same
    command twice must not silently make a second tenant. A self-serve sign-up (app.billing.signup) makes a
    `pending` broker without keys: its admin creates them after verifying the email and enrolling MFA."""
    try:
        config = spec.config.normalised()
    except ValueError as exc:
        raise InvalidField("config.instrumentOverrides", str(exc)) from exc
    async with db.platform() as session:
        key = name_key(spec.name)
        # Serialises creates of one name, so two concurrent ones cannot both pass the check below.
        await session.execute(text("select pg_advisory_xact_lock(hashtext(:k))"), {"k": "broker-name:" + key})
        if not force:
            same_name = func.lower(func.regexp_replace(func.btrim(Broker.name), r"\s+", " ", "g")) == key
            taken = (await session.execute(select(Broker.id, Broker.slug).where(same_name, Broker.status != "deleted")
                                           .limit(1))).one_or_none()
            if taken is not None:
                raise Conflict(f"A broker named {spec.name!r} exists ({taken.slug}, {taken.id}); pass force to "
                               f"create another one anyway.",
                               errors=[{"field": "name", "pointer": "#/name", "code": "duplicate",
                                        "detail": f"taken by {taken.slug}"}])
        slug = spec.slug
        if slug is None:
            slug = slug_from_name(spec.name)
            if await session.scalar(select(Broker.id).where(Broker.slug == slug)) is not None:
                slug = f"{slug[:50]}-{secrets.token_hex(3)}"
        broker = Broker(slug=slug, name=spec.name, tier=spec.tier, domains=list(spec.domains),
                        config=config.as_json(), is_platform=is_platform, status=status)
        session.add(broker)
        try:
            await session.flush()
        except IntegrityError as exc:
            raise InvalidField("slug", f"the slug {slug!r} is taken", "duplicate") from exc
        await session.refresh(broker)
        key_rows: list[ApiKey] = []
        secret_key = publishable_key = None
        if issue_keys:
            secret_key, sk_row = await insert_key(session, auth, broker.id, KeyCreate(kind="secret", name="default"))
            publishable_key, pk_row = await insert_key(session, auth, broker.id,
                                                       KeyCreate(kind="publishable", name="widget"))
            key_rows = [sk_row, pk_row]
        admin_id = None
        if spec.admin_email:
            if not spec.admin_password:
                raise InvalidField("adminPassword", "required with adminEmail")
            admin = User(broker_id=broker.id, email=spec.admin_email, role=admin_role,
                         password_hash=await auth.hash_password(spec.admin_password))
            session.add(admin)
            await session.flush()
            admin_id = admin.id
        actor = {"principal": principal} if principal else {"actor_type": "system", "actor_id": system_actor}
        await audit.record(session, broker_id=broker.id, action="broker.created", conn=conn, target_type="broker",
                           target_id=broker.id, details={"slug": slug, "tier": spec.tier}, **actor)
        for row in key_rows:
            await audit.record(session, broker_id=broker.id, action="api_key.created", conn=conn,
                               target_type="api_key", target_id=row.id,
                               details={"kind": row.kind, "prefix": row.prefix}, **actor)
        if admin_id:
            await audit.record(session, broker_id=broker.id, action="user.created", conn=conn, target_type="user",
                               target_id=admin_id, details={"role": admin_role}, **actor)
        await session.commit()
    out = broker_out(broker)
    keys = {"secretKey": secret_key, "publishableKey": publishable_key}
    return {**out, "brokerId": broker.id, **keys, "keys": keys, "adminUserId": admin_id}


async def list_brokers(db: Database, principal: Principal, session: AsyncSession) -> list[dict[str, Any]]:
    if principal.can("brokers:read:any"):
        async with db.platform() as platform:
            rows = (await platform.execute(select(Broker).where(Broker.is_platform.is_(False))
                                           .order_by(Broker.created_at))).scalars().all()
    else:
        rows = (await session.execute(select(Broker))).scalars().all()  # RLS: the own broker only
    return [broker_out(r) for r in rows]


async def get_broker(session: AsyncSession, broker_id: uuid.UUID) -> Broker:
    row = await session.get(Broker, broker_id)
    if row is None or row.status == "deleted":
        raise NotFound("No broker with this id.")
    return row


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON Merge Patch: objects merge key by key, `null` removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


async def _locked_broker(session: AsyncSession, broker_id: uuid.UUID) -> Broker:
    row = (await session.execute(select(Broker).where(Broker.id == broker_id).with_for_update())).scalar_one_or_none()
    if row is None or row.status == "deleted":
        raise NotFound("No broker with this id.")
    return row


async def patch_config(session: AsyncSession, auth: AuthService, principal: Principal, broker_id: uuid.UUID,
                       patch: dict[str, Any], conn: HTTPConnection) -> dict[str, Any]:
    """Change only what the patch names (a removed key goes back to its default); the merged whole is
    validated exactly like a PUT body. The row is locked, so concurrent patches do not lose each other."""
    row = await _locked_broker(session, broker_id)
    merged = merge_patch(row.config or {}, patch)
    config = BrokerConfig.model_validate_json(orjson.dumps(merged))
    return await update_config(session, auth, principal, broker_id, config, conn, row=row)


async def update_config(session: AsyncSession, auth: AuthService, principal: Principal, broker_id: uuid.UUID,
                        config: BrokerConfig, conn: HTTPConnection, row: Broker | None = None) -> dict[str, Any]:
    row = row or await _locked_broker(session, broker_id)
    try:
        new = config.normalised().as_json()
    except ValueError as exc:
        raise InvalidField("instrumentOverrides", str(exc)) from exc
    old = row.config or {}
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    row.config = new
    row.config_version = row.config_version + 1
    row.updated_at = datetime.now(UTC)
    await audit.record(session, broker_id=broker_id, action="broker.config_updated", conn=conn, principal=principal,
                       target_type="broker", target_id=broker_id,
                       details={"changed": changed, "configVersion": row.config_version})
    await session.commit()
    auth.forget_broker(broker_id)
    return broker_out(row)


async def delete_broker(db: Database, auth: AuthService, principal: Principal, broker_id: uuid.UUID,
                        conn: HTTPConnection) -> None:
    """Offboarding: the broker is marked deleted (its audit trail stays) and every key is revoked."""
    async with db.platform() as session:
        row = await session.get(Broker, broker_id)
        if row is None or row.status == "deleted" or row.is_platform:
            raise NotFound("No broker with this id.")
        row.status = "deleted"
        row.updated_at = datetime.now(UTC)
        key_ids = (await session.execute(select(ApiKey.key_id).where(ApiKey.broker_id == broker_id))).scalars().all()
        await session.execute(update(ApiKey).where(ApiKey.broker_id == broker_id, ApiKey.status == "active")
                              .values(status="revoked", revoked_at=datetime.now(UTC)))
        await audit.record(session, broker_id=broker_id, action="broker.deleted", conn=conn, principal=principal,
                           target_type="broker", target_id=broker_id)
        await session.commit()
    auth.forget_broker(broker_id)
    for key_id in key_ids:
        auth.forget_key(key_id)


async def set_tier(db: Database, auth: AuthService, broker_id: uuid.UUID, tier: str) -> None:
    """Change a broker's tier (billing calls this). Every worker applies the new limits on its next
    request: the cached record is dropped here and, through Redis pub/sub, on the other workers."""
    async with db.platform() as session:
        row = await session.get(Broker, broker_id)
        if row is None or row.status == "deleted":
            raise NotFound("No broker with this id.")
        row.tier = tier
        row.updated_at = datetime.now(UTC)
        await audit.record(session, broker_id=broker_id, action="broker.tier_changed", conn=None, principal=None,
                           target_type="broker", target_id=broker_id, details={"tier": tier})
        await session.commit()
    auth.forget_broker(broker_id)


async def update_broker(db: Database, auth: AuthService, principal: Principal, broker_id: uuid.UUID,
                        tier: str | None, status: str | None, conn: HTTPConnection) -> dict[str, Any]:
    """Tier and suspension, by the platform operator; the change applies on every worker's next request."""
    async with db.platform() as session:
        row = await session.get(Broker, broker_id)
        if row is None or row.status == "deleted":
            raise NotFound("No broker with this id.")
        if row.is_platform and status == "suspended":
            raise InvalidField("status", "the platform broker cannot be suspended", "forbidden_property")
        changed: dict[str, str] = {}
        if tier is not None and tier != row.tier:
            row.tier = changed["tier"] = tier
        if status is not None and status != row.status:
            row.status = changed["status"] = status
        if changed:
            row.updated_at = datetime.now(UTC)
            await audit.record(session, broker_id=broker_id, action="broker.updated", conn=conn, principal=principal,
                               target_type="broker", target_id=broker_id, details=changed)
        await session.commit()
        out = broker_out(row)
    auth.forget_broker(broker_id)
    return out
