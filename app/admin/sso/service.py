"""A broker's OIDC connection: read, create or replace, delete. The client secret is write-only."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from app.admin.sso.schemas import SsoConfigIn
from app.audit import service as audit
from app.auth import sso
from app.auth.permissions import role_rank
from app.auth.principal import Principal
from app.auth.service import AuthService
from app.errors import Forbidden, InvalidField, NotFound
from app.models import Broker, SsoConnection


def config_out(auth: AuthService, row: SsoConnection, slug: str) -> dict[str, Any]:
    base = auth.settings.public_base_url.rstrip("/")
    return {"brokerId": row.broker_id, "issuer": row.issuer, "clientId": row.client_id, "clientSecretSet": True,
            "defaultRole": row.default_role, "enabled": row.enabled,
            "loginUrl": f"{base}/api/v1/auth/sso/{slug}/login", "callbackUrl": sso.callback_url(auth.settings, slug),
            "createdAt": row.created_at}


async def _slug(session: AsyncSession, broker_id: uuid.UUID) -> str:
    slug = await session.scalar(select(Broker.slug).where(Broker.id == broker_id))
    if slug is None:
        raise NotFound("No broker with this id.")
    return slug


async def get(session: AsyncSession, auth: AuthService, broker_id: uuid.UUID) -> dict[str, Any]:
    row = (await session.execute(select(SsoConnection))).scalar_one_or_none()
    if row is None:
        raise NotFound("This broker has no single sign-on connection.")
    return config_out(auth, row, await _slug(session, broker_id))


async def put(session: AsyncSession, auth: AuthService, principal: Principal, broker_id: uuid.UUID,
              spec: SsoConfigIn, conn: HTTPConnection) -> dict[str, Any]:
    if not sso.url_allowed(auth.settings, spec.issuer):
        raise InvalidField("issuer", "must be an https URL", "insecure_url")
    # Users provisioned by SSO get this role; nobody may hand out more than they hold themselves.
    if principal.kind == "user" and role_rank(spec.default_role) > role_rank(principal.role or ""):
        raise Forbidden(f"This credential may not grant {spec.default_role}.")
    slug = await _slug(session, broker_id)
    row = (await session.execute(select(SsoConnection))).scalar_one_or_none()
    created = row is None
    if row is None:
        if spec.client_secret is None:
            raise InvalidField("clientSecret", "required when creating the connection", "missing")
        row = SsoConnection(broker_id=broker_id, issuer=spec.issuer, client_id=spec.client_id,
                            client_secret_enc="", default_role=spec.default_role, enabled=spec.enabled)
        session.add(row)
    else:
        sso.forget_provider(row.issuer)
        row.issuer, row.client_id = spec.issuer, spec.client_id
        row.default_role, row.enabled = spec.default_role, spec.enabled
    if spec.client_secret is not None:
        row.client_secret_enc = auth.fernet.encrypt(spec.client_secret.encode()).decode()
    await session.flush()
    await session.refresh(row)
    await audit.record(session, broker_id=broker_id, action="sso.config_created" if created else "sso.config_updated",
                       conn=conn, principal=principal, target_type="sso_connection", target_id=row.id,
                       details={"issuer": row.issuer, "clientId": row.client_id, "defaultRole": row.default_role,
                                "enabled": row.enabled, "secretChanged": spec.client_secret is not None})
    await session.commit()
    return config_out(auth, row, slug)


async def remove(session: AsyncSession, principal: Principal, broker_id: uuid.UUID, conn: HTTPConnection) -> None:
    row = (await session.execute(delete(SsoConnection).returning(SsoConnection.id, SsoConnection.issuer))).one_or_none()
    if row is None:
        raise NotFound("This broker has no single sign-on connection.")
    sso.forget_provider(row.issuer)
    await audit.record(session, broker_id=broker_id, action="sso.config_deleted", conn=conn, principal=principal,
                       target_type="sso_connection", target_id=row.id, details={"issuer": row.issuer})
    await session.commit()
