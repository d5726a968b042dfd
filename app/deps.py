"""Named dependencies (Annotated aliases): the one place a route gets its principal and its session."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.admission import Caller
from app.auth.principal import Principal
from app.auth.service import AuthService, require_platform_mfa
from app.db.engine import Database
from app.errors import Forbidden, NotFound
from app.ratelimit.gate import RateLimits
from app.services import services


def get_db(request: Request) -> Database:
    return services(request.app).db


def get_auth(request: Request) -> AuthService:
    return services(request.app).auth


def get_ratelimits(request: Request) -> RateLimits:
    return services(request.app).ratelimits


async def get_caller(request: Request, gate: Annotated[RateLimits, Depends(get_ratelimits)]) -> Caller:
    # The one admission path (app.auth.admission), then one unit of the tier's rate limit: an invalid
    # credential never reaches a tenant's bucket.
    caller = await gate.admit(request)
    await gate.charge(request, caller, 1)
    return caller


async def get_principal(caller: Annotated[Caller, Depends(get_caller)]) -> Principal:
    return caller.principal


async def get_stored_data_principal(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    """Stored data and admin routes: never a publishable (browser) key."""
    if principal.kind == "publishable_key":
        raise Forbidden("A publishable key only runs calculations; use a secret key or a user token.")
    return principal


async def get_platform_principal(principal: Annotated[Principal, Depends(get_stored_data_principal)]) -> Principal:
    """Every stored-data and admin route: a SUPERADMIN only with MFA (its reach is every tenant)."""
    require_platform_mfa(principal)
    return principal


DB = Annotated[Database, Depends(get_db)]
Auth = Annotated[AuthService, Depends(get_auth)]
CurrentPrincipal = Annotated[Principal, Depends(get_platform_principal)]
# The MFA enrolment routes only: a principal that may still lack its second factor.
EnrollingPrincipal = Annotated[Principal, Depends(get_stored_data_principal)]


async def tenant_db(principal: CurrentPrincipal, db: DB) -> AsyncIterator[AsyncSession]:
    """A session scoped by RLS to the principal's own broker."""
    async with db.tenant(principal.broker_id) as session:
        yield session


TenantDB = Annotated[AsyncSession, Depends(tenant_db)]


def target_broker(principal: Principal, broker_id: uuid.UUID) -> uuid.UUID:
    """The tenant a broker-scoped path acts on. Only the platform operator reaches other brokers; for
    everyone else another broker's id is indistinguishable from one that does not exist."""
    require_platform_mfa(principal)
    if principal.is_superadmin or broker_id == principal.broker_id:
        return broker_id
    raise NotFound("No broker with this id.")


async def broker_scope(broker_id: uuid.UUID, principal: CurrentPrincipal) -> uuid.UUID:
    """The `{broker_id}` of a broker-scoped admin path, checked once for every such route."""
    return target_broker(principal, broker_id)


# The tenant a `/brokers/{broker_id}/...` route acts on (its own, or any for the platform operator).
BrokerScope = Annotated[uuid.UUID, Depends(broker_scope)]
