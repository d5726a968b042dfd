"""Bring a database to a usable state: roles, schema (Alembic), and the URLs each role logs in with.

Three roles:
- the owner (the URL in DATABASE_URL, or the embedded superuser) runs migrations and owns the tables;
- the app role (NOSUPERUSER, NOBYPASSRLS, not owner) serves every tenant request under forced RLS;
- the platform role (BYPASSRLS) serves only the platform operator's cross-tenant work and the
  pre-authentication lookups (an API key id or a broker slug, before a tenant is known).

In production (k8s/) only the migration Job (`forexrisk migrate`) holds the owner URL: the API and worker
pods get DATABASE_APP_URL and DATABASE_PLATFORM_URL alone, never connect as the owner, and wait in an init
container (`forexrisk migrate --wait`) until the schema is at the head of the migrations they ship.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
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


def asyncpg_url(url: str) -> str:
    """The URL with SQLAlchemy's asyncpg driver (operators write postgresql://...)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


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


def role_passwords(settings: Settings, secrets: AppSecrets) -> tuple[str, str]:
    """The app and platform roles' passwords: those of DATABASE_APP_URL / DATABASE_PLATFORM_URL when given (so a
    superuser owner keeps the roles matching the URLs the pods log in with), else the configured or generated ones."""
    app = make_url(settings.database_app_url).password if settings.database_app_url else None
    platform = make_url(settings.database_platform_url).password if settings.database_platform_url else None
    return app or secrets.db_app_password, platform or secrets.db_platform_password


def owner_free(settings: Settings) -> bool:
    """True when this process never holds the owner URL: no DATABASE_URL, both role URLs given (production pods)."""
    return settings.database_url is None and bool(settings.database_app_url and settings.database_platform_url)


def _bootstrap_sync(conn: Connection, settings: Settings, passwords: tuple[str, str]) -> None:
    conn.execute(text("select pg_advisory_xact_lock(:k)"), {"k": BOOTSTRAP_LOCK})
    is_super = conn.scalar(text("select rolsuper from pg_roles where rolname = current_user"))
    if is_super and all(passwords):  # no password known: the roles are managed outside (a DBA created them)
        _ensure_role(conn, settings.db_app_role, passwords[0],
                     "nosuperuser nobypassrls nocreatedb nocreaterole noinherit")
        _ensure_role(conn, settings.db_platform_role, passwords[1],
                     "nosuperuser bypassrls nocreatedb nocreaterole noinherit")
    if settings.migrate_on_start:
        cfg = alembic_config(settings)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        # `migrate --wait` (the pods' init container, as the platform role) reads the version; nothing else.
        conn.execute(text(f'grant select on alembic_version to "{settings.db_platform_role}"'))


async def migrate(settings: Settings) -> str | None:
    """`forexrisk migrate`, the production migration Job: the only process holding the owner URL (DATABASE_URL).
    Creates the roles when the owner may (superuser, passwords from the role URLs), migrates to head."""
    if not settings.database_url:
        raise ValueError("forexrisk migrate needs DATABASE_URL (the owner role); `forexrisk run` migrates the "
                         "embedded database itself")
    passwords = (
        (make_url(settings.database_app_url).password if settings.database_app_url else None)
        or (settings.db_app_password.get_secret_value() if settings.db_app_password else ""),
        (make_url(settings.database_platform_url).password if settings.database_platform_url else None)
        or (settings.db_platform_password.get_secret_value() if settings.db_platform_password else ""),
    )
    engine = create_async_engine(asyncpg_url(settings.database_url))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_bootstrap_sync, settings.model_copy(update={"migrate_on_start": True}), passwords)
    finally:
        await engine.dispose()
    return head_revision(settings)


def head_revision(settings: Settings) -> str | None:
    """The newest migration this code ships."""
    return ScriptDirectory.from_config(alembic_config(settings)).get_current_head()


async def wait_for_schema(settings: Settings, timeout_seconds: float, poll_seconds: float = 1.0) -> str:
    """Wait (as the platform role) until the database's schema is at this code's head; return the revision.
    Raises TimeoutError naming what was found. Connection errors are retried: the database may be starting."""
    url = settings.database_platform_url
    if not url:
        raise ValueError("migrate --wait needs DATABASE_PLATFORM_URL (the pods never hold the owner URL)")
    head = head_revision(settings)
    engine = create_async_engine(asyncpg_url(url))
    deadline = time.monotonic() + timeout_seconds
    found: str | None = None
    try:
        while True:
            try:
                async with engine.connect() as conn:
                    found = await conn.scalar(text("select version_num from alembic_version"))
            except Exception as exc:  # not reachable yet, or not migrated yet (no table, no grant)
                found = f"unavailable ({type(exc).__name__})"
            if head is not None and found == head:
                return head
            if time.monotonic() >= deadline:
                raise TimeoutError(f"schema at {found}, this code needs {head}")
            await asyncio.sleep(poll_seconds)
    finally:
        await engine.dispose()


def ensure_postgres(data_dir: Path) -> None:
    """Postgres stopped while the keeper runs (an operator, an outage test): start it again."""
    if embedded.answers(data_dir):
        return
    with keeper.Control(data_dir):
        if not embedded.answers(data_dir):
            embedded.start(data_dir)


async def prepare(settings: Settings, secrets: AppSecrets) -> DatabaseUrls:
    """Start the embedded server when no DATABASE_URL is set, create roles, migrate; return the URLs.
    With only the role URLs (owner_free) nothing is created or migrated: the migration Job did that."""
    if owner_free(settings):
        assert settings.database_app_url and settings.database_platform_url
        return DatabaseUrls(owner="", app=asyncpg_url(settings.database_app_url),
                            platform=asyncpg_url(settings.database_platform_url))
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
            await conn.run_sync(_bootstrap_sync, settings, role_passwords(settings, secrets))
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
