"""Alembic environment. The app passes its owner connection in `config.attributes["connection"]`;
the `alembic` command line connects with DATABASE_URL (the owner role) itself."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from app.config import Settings
from app.models import Base

config = context.config
target_metadata = Base.metadata


def run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


async def run_cli() -> None:
    settings = Settings()
    if not settings.database_url:
        raise SystemExit("set DATABASE_URL to the owner role's URL (the app migrates the embedded database itself)")
    config.attributes.setdefault("app_role", settings.db_app_role)
    config.attributes.setdefault("platform_role", settings.db_platform_role)
    engine = create_async_engine(settings.database_url.replace("postgresql://", "postgresql+asyncpg://", 1))
    async with engine.begin() as conn:
        await conn.run_sync(run)
    await engine.dispose()


connection = config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    asyncio.run(run_cli())
