"""Engines and sessions. The tenant is set per transaction, from the authenticated principal only.

`TenantSession` carries the broker id in `session.info`; the `after_begin` hook runs
`set_config('app.current_broker_id', :id, true)` (transaction-local, bound value) at the start of
every transaction, including those after a commit. A session without a broker raises before any
statement runs. Nothing is ever set at session level, so a pooled connection carries no tenant
from one transaction to the next.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, SessionTransaction

from app.db.bootstrap import DatabaseUrls


def json_dumps(value: Any) -> str:
    # Results may hold NumPy scalars (batch kernels); orjson writes them, the stdlib json does not.
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS).decode()


SET_TENANT = text("select set_config('app.current_broker_id', :b, true)")


class MissingTenant(RuntimeError):
    """A tenant session began a transaction without a broker id: a programming error, never a request's."""


@event.listens_for(Session, "after_begin")
def _set_tenant(session: Session, transaction: SessionTransaction, connection: Connection) -> None:
    if not session.info.get("tenant_scoped"):
        return
    broker_id = session.info.get("broker_id")
    if broker_id is None:
        raise MissingTenant("tenant session without a broker id")
    connection.execute(SET_TENANT, {"b": str(broker_id)})


@dataclass
class Database:
    urls: DatabaseUrls
    app_engine: AsyncEngine
    platform_engine: AsyncEngine
    app_sessions: async_sessionmaker[AsyncSession]
    platform_sessions: async_sessionmaker[AsyncSession]

    @classmethod
    def connect(cls, urls: DatabaseUrls, pool_size: int = 10) -> Database:
        common: dict[str, Any] = {"pool_pre_ping": True, "json_serializer": json_dumps,
                                  "connect_args": {"server_settings": {"application_name": "forexrisk"}}}
        app_engine = create_async_engine(urls.app, pool_size=pool_size, max_overflow=pool_size, **common)
        platform_engine = create_async_engine(urls.platform, pool_size=2, max_overflow=4, **common)
        return cls(
            urls=urls, app_engine=app_engine, platform_engine=platform_engine,
            app_sessions=async_sessionmaker(app_engine, expire_on_commit=False),
            platform_sessions=async_sessionmaker(platform_engine, expire_on_commit=False),
        )

    @asynccontextmanager
    async def tenant(self, broker_id: uuid.UUID) -> AsyncIterator[AsyncSession]:
        """A session whose every transaction is scoped to `broker_id` by RLS. Leftovers roll back on exit."""
        async with self.app_sessions(info={"tenant_scoped": True, "broker_id": broker_id}) as session:
            yield session

    @asynccontextmanager
    async def platform(self) -> AsyncIterator[AsyncSession]:
        """Cross-tenant session (BYPASSRLS role): platform operator work and pre-auth lookups only."""
        async with self.platform_sessions() as session:
            yield session

    async def dispose(self) -> None:
        await self.app_engine.dispose()
        await self.platform_engine.dispose()
