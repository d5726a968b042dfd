"""Users: `/api/v1/brokers/{brokerId}/users`, `/api/v1/users/{userId}` and its activity."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from app.admin.users import service
from app.admin.users.schemas import ActivityOut, InvitationAccept, InvitationOut, UserCreate, UserOut, UserUpdate
from app.auth.service import require
from app.deps import DB, Auth, BrokerScope, CurrentPrincipal, TenantDB
from app.jsonbody import StrictRoute

router = APIRouter(tags=["users"], route_class=StrictRoute)


@router.get("/api/v1/brokers/{broker_id}/users", response_model=list[UserOut], summary="The broker's users")
async def list_users(target: BrokerScope, principal: CurrentPrincipal, db: DB) -> list[dict[str, Any]]:
    require(principal, "users:read:own")
    async with db.tenant(target) as session:
        return await service.list_users(session)


@router.post("/api/v1/brokers/{broker_id}/users", status_code=201, response_model=UserOut, summary="Create a user")
async def create_user(target: BrokerScope, spec: UserCreate, principal: CurrentPrincipal, db: DB, auth: Auth,
                      request: Request) -> dict[str, Any]:
    require(principal, "users:create:own")
    async with db.tenant(target) as session:
        return await service.create(session, auth, principal, target, spec, request)


@router.get("/api/v1/users/{user_id}", response_model=UserOut, summary="One user")
async def get_user(user_id: uuid.UUID, principal: CurrentPrincipal, session: TenantDB) -> dict[str, Any]:
    service.check_reach(principal, user_id, "users:read:own", "users:read:self")
    return service.user_out(await service.get(session, user_id))


@router.patch("/api/v1/users/{user_id}", response_model=UserOut, summary="Update a user")
async def update_user(user_id: uuid.UUID, spec: UserUpdate, principal: CurrentPrincipal, session: TenantDB,
                      auth: Auth, request: Request) -> dict[str, Any]:
    service.check_reach(principal, user_id, "users:update:own", "users:read:self")
    return await service.update(session, auth, principal, user_id, spec, request)


@router.get("/api/v1/users/{user_id}/activity", response_model=ActivityOut,
            summary="A user's audit events and recent calculations")
async def activity(user_id: uuid.UUID, principal: CurrentPrincipal, session: TenantDB,
                   limit: Annotated[int, Query(ge=1, le=500)] = 100) -> dict[str, Any]:
    service.check_reach(principal, user_id, "users:read:own", "users:read:self")
    return await service.activity(session, user_id, limit)


@router.post("/api/v1/users/{user_id}/invitation", response_model=InvitationOut,
             summary="An invitation link for a user created without a password (valid 7 days, single use)")
async def invite(user_id: uuid.UUID, principal: CurrentPrincipal, session: TenantDB, auth: Auth,
                 request: Request) -> dict[str, Any]:
    require(principal, "users:create:own")
    return await service.invite(session, auth, principal, user_id, request)


@router.post("/api/v1/users/{user_id}/mfa/reset", response_model=UserOut,
             summary="Reset a user's MFA (lost authenticator): TOTP and recovery codes cleared, sessions ended")
async def reset_mfa(user_id: uuid.UUID, principal: CurrentPrincipal, session: TenantDB, auth: Auth,
                    request: Request) -> dict[str, Any]:
    require(principal, "users:update:own")
    return await service.reset_mfa(session, auth, principal, user_id, request)


@router.post("/api/v1/auth/invitations/accept", status_code=204, tags=["auth"],
             summary="Accept an invitation: choose a password (then log in)")
async def accept_invitation(spec: InvitationAccept, auth: Auth, request: Request) -> Response:
    await service.accept_invitation(auth, spec.token, spec.password, request)
    return Response(status_code=204)
