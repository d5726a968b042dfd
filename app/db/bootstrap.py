"""Bring a database to a usable state: roles, schema (Alembic), and the URLs each role logs in with.

Three roles:
- the owner (the URL in DATABASE_URL, or the embedded superuser) runs migrations and owns the tables;
- the app role (NOSUPERUSER, NOBYPASSRLS, not owner) serves every tenant request under forced RLS;
- the platform role (BYPASSRLS) serves only the platform operator's cross-tenant work and the
  pre-authentication lookups (an API key id or a broker slug, before a tenant is known).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app import keeper
from app.config import Settings
from app.db import embedded
from app.secrets import AppSecrets

ROOT = Path(__file__).resolve().parents[2]
EMBEDDED_DATABASE = "forexrisk"
# Any fixed 64-bit number: serialises bootstraps of several processes on one database.
BOOTSTRAP_LOCK = 7_312_201_640


@dataclass(frozen=True)
class DatabaseUrls:
    owner: str = field(repr=False)  # URLs carry passwords: kept out of reprs and logs
    app: str = field(repr=False)
    platform: str = field(repr=False)
    embedded: bool = False


def _with_role(url: URL, user: str, password: str) -> str:
    return url.set(username=user, password=password).render_as_string(hide_password=False)


def alembic_config(settings: Settings) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.attributes["app_role"] = settings.db_app_role
    cfg.attributes["platform_role"] = settings.db_platform_role
    return cfg


async def _ensure_database(server_url: str, name: str) -> None:
    engine = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            exists = await conn.scalar(text("select 1 from pg_database where datname = :n"), {"n": name})
            if not exists:
                try:
                    await conn.execute(text(f'create database "{name}"'))
                except Exception as exc:  # another process created it between our check and create
                    # ("already exists", or the unique index on pg_database when both created it at once)
                    if "already exists" not in str(exc) and "pg_database_datname_index" not in str(exc):
                        raise
    finally:
        await engine.dispose()


def _ensure_role(conn: Connection, name: str, password: str, attrs: str) -> None:
    exists = conn.scalar(text("select 1 from pg_roles where rolname = :n"), {"n": name})
    # Role names come from Settings, not from requests; passwords go through format('%L') quoting.
    verb = "alter" if exists else "create"
    sql = conn.scalar(
        text(f"select format('{verb} role %I with login {attrs} password %L', cast(:n as text), cast(:p as text))"),
                      {"n": name, "p": password})
    conn.execute(text(str(sql)))


def _bootstrap_sync(conn: Connection, settings: Settings, secrets: AppSecrets) -> None:
    conn.execute(text("select pg_advisory_xact_lock(:k)"), {"k": BOOTSTRAP_LOCK})
    is_super = conn.scalar(text("select rolsuper from pg_roles where rolname = current_user"))
    if is_super:
        _ensure_role(conn, settings.db_app_role, secrets.db_app_password,
                     "nosuperuser nobypassrls nocreatedb nocreaterole noinherit")
        _ensure_role(conn, settings.db_platform_role, secrets.db_platform_password,
                     "nosuperuser bypassrls nocreatedb nocreaterole noinherit")
    if settings.migrate_on_start:
        cfg = alembic_config(settings)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def ensure_postgres(data_dir: Path) -> None:
    """Postgres stopped while the keeper runs (an operator, an outage test): start it again."""
    if embedded.answers(data_dir):
        return
    with keeper.Control(data_dir):
        if not embedded.answers(data_dir):
            embedded.start(data_dir)


async def prepare(settings: Settings, secrets: AppSecrets) -> DatabaseUrls:
    """Start the embedded server when no DATABASE_URL is set, create roles, migrate; return the URLs."""
    if settings.database_url:
        owner = make_url(settings.database_url)
        if owner.drivername in ("postgresql", "postgres"):
            owner = owner.set(drivername="postgresql+asyncpg")
        is_embedded = False
    else:
        keeper.join(settings.data_dir, settings.embedded_cleanup)  # the caller leaves: release(settings)
        ensure_postgres(settings.data_dir)
        server = make_url(embedded.url(settings.data_dir))
        await _ensure_database(server.render_as_string(hide_password=False), EMBEDDED_DATABASE)
        owner = server.set(database=EMBEDDED_DATABASE)
        is_embedded = True
    owner_str = owner.render_as_string(hide_password=False)
    engine = create_async_engine(owner_str)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_bootstrap_sync, settings, secrets)
    except BaseException:
        if is_embedded:
            keeper.leave(settings.data_dir)
        raise
    finally:
        await engine.dispose()
    app_url = settings.database_app_url or _with_role(owner, settings.db_app_role, secrets.db_app_password)
    platform_url = settings.database_platform_url or _with_role(owner, settings.db_platform_role,
                                                                secrets.db_platform_password)
    return DatabaseUrls(owner=owner_str, app=app_url, platform=platform_url, embedded=is_embedded)


def release(settings: Settings, urls: DatabaseUrls) -> None:
    """The process is done with the database prepare() gave it (the embedded one stops with its last user)."""
    if urls.embedded:
        keeper.leave(settings.data_dir)
