"""Broker admin API: `/api/v1/brokers`, config, API keys."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from starlette.responses import Response

from app.admin.api_keys import service as key_service
from app.admin.api_keys.schemas import KeyCreate, KeyCreated, KeyOut, KeyRotate, KeyRotated
from app.admin.brokers import service
from app.admin.brokers.schemas import BrokerConfig, BrokerCreate, BrokerCreated, BrokerOut, BrokerUpdate
from app.auth.service import require
from app.deps import DB, Auth, BrokerScope, CurrentPrincipal, TenantDB
from app.errors import UnsupportedMediaType
from app.jsonbody import StrictRoute

router = APIRouter(prefix="/api/v1/brokers", tags=["brokers"], route_class=StrictRoute)


@router.get("", response_model=list[BrokerOut], summary="Brokers the caller may see (its own; all for SUPERADMIN)")
async def list_brokers(principal: CurrentPrincipal, db: DB, session: TenantDB) -> list[dict[str, Any]]:
    require(principal, "brokers:read:own")
    return await service.list_brokers(db, principal, session)


@router.post("", status_code=201, response_model=BrokerCreated,
             summary="Create a broker with its first keys (platform operator only)")
async def create_broker(spec: BrokerCreate, principal: CurrentPrincipal, db: DB, auth: Auth, request: Request,
                        force: Annotated[bool, Query(description="Create it even when a broker has this name "
                                                                 "(otherwise 409)")] = False) -> dict[str, Any]:
    require(principal, "brokers:create:any")
    return await service.create_broker(db, auth, spec, principal=principal, conn=request, force=force)


@router.get("/{broker_id}", response_model=BrokerOut, summary="One broker")
async def get_broker(target: BrokerScope, principal: CurrentPrincipal, db: DB) -> dict[str, Any]:
    require(principal, "brokers:read:own")
    async with db.tenant(target) as session:
        return service.broker_out(await service.get_broker(session, target))


@router.patch("/{broker_id}", response_model=BrokerOut,
              summary="Change a broker's tier or suspend / reactivate it (platform operator)")
async def update_broker(target: BrokerScope, spec: BrokerUpdate, principal: CurrentPrincipal, db: DB, auth: Auth,
                        request: Request) -> dict[str, Any]:
    require(principal, "brokers:update:any")
    return await service.update_broker(db, auth, principal, target, spec.tier, spec.status, request)


@router.delete("/{broker_id}", status_code=204, summary="Offboard a broker: mark deleted, revoke its keys")
async def delete_broker(target: BrokerScope, principal: CurrentPrincipal, db: DB, auth: Auth,
                        request: Request) -> Response:
    require(principal, "brokers:delete:any")
    await service.delete_broker(db, auth, principal, target, request)
    return Response(status_code=204)


MERGE_PATCH = "application/merge-patch+json"


@router.patch("/{broker_id}/config", response_model=BrokerOut,
              summary="Change part of the broker's configuration (JSON Merge Patch, RFC 7396)",
              description="Send only what changes: `{\"branding\": {\"primaryColor\": \"#0a7f5a\"}}` changes the "
                          "colour and nothing else; `null` resets a key to its default. Content-Type "
                          "`application/merge-patch+json` (`application/json` is accepted too).")
async def patch_config(target: BrokerScope, patch: Annotated[dict[str, Any], Body(media_type=MERGE_PATCH)],
                       principal: CurrentPrincipal, db: DB, auth: Auth, request: Request) -> dict[str, Any]:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media not in (MERGE_PATCH, "application/json"):
        raise UnsupportedMediaType(f"Send the patch as {MERGE_PATCH} (got {media or 'none'}).",
                                   errors=[{"field": "content-type", "pointer": "#", "code": "unsupported_media_type",
                                            "detail": f"expected {MERGE_PATCH} or application/json"}])
    require(principal, "brokers:update:own")
    async with db.tenant(target) as session:
        return await service.patch_config(session, auth, principal, target, patch, request)


@router.put("/{broker_id}/config", response_model=BrokerOut,
            summary="Replace the whole configuration (keys left out go back to their defaults; to change one "
                    "setting use PATCH)")
async def put_config(target: BrokerScope, config: BrokerConfig, principal: CurrentPrincipal, db: DB, auth: Auth,
                     request: Request) -> dict[str, Any]:
    require(principal, "brokers:update:own")
    async with db.tenant(target) as session:
        return await service.update_config(session, auth, principal, target, config, request)


@router.get("/{broker_id}/api-keys", response_model=list[KeyOut], summary="API keys: prefix and last 4 only")
async def list_keys(target: BrokerScope, principal: CurrentPrincipal, db: DB) -> list[dict[str, Any]]:
    require(principal, "keys:read:own")
    async with db.tenant(target) as session:
        return await key_service.list_keys(session)


@router.post("/{broker_id}/api-keys", status_code=201, response_model=KeyCreated,
             summary="Create a key; the full key is in this response only")
async def create_key(target: BrokerScope, spec: KeyCreate, principal: CurrentPrincipal, db: DB, auth: Auth,
                     request: Request) -> dict[str, Any]:
    require(principal, "keys:create:own")
    async with db.tenant(target) as session:
        return await key_service.create(session, auth, principal, target, spec, request)


@router.post("/{broker_id}/api-keys/{key_id}/rotate", status_code=201, response_model=KeyRotated,
             summary="Rotate: a new key now, the old one keeps working for the overlap window")
async def rotate_key(target: BrokerScope, key_id: uuid.UUID, principal: CurrentPrincipal, db: DB, auth: Auth,
                     request: Request, body: KeyRotate | None = None) -> dict[str, Any]:
    require(principal, "keys:create:own")
    async with db.tenant(target) as session:
        return await key_service.rotate(session, auth, principal, target, key_id,
                                        body.overlap_hours if body else None, request)


@router.delete("/{broker_id}/api-keys/{key_id}", response_model=KeyOut, summary="Revoke a key at once")
async def revoke_key(target: BrokerScope, key_id: uuid.UUID, principal: CurrentPrincipal, db: DB, auth: Auth,
                     request: Request) -> dict[str, Any]:
    require(principal, "keys:revoke:own")
    async with db.tenant(target) as session:
        return await key_service.revoke(session, auth, principal, target, key_id, request)


@router.post("/{broker_id}/api-keys/{key_id}/revoke", response_model=KeyOut, summary="Revoke a key (POST form)")
async def revoke_key_post(target: BrokerScope, key_id: uuid.UUID, principal: CurrentPrincipal, db: DB, auth: Auth,
                          request: Request) -> dict[str, Any]:
    return await revoke_key(target, key_id, principal, db, auth, request)
