"""Provisioning outside HTTP: the CLI's create-broker and create-superadmin, and the demo broker.

These open their own Database on the same data (embedded or DATABASE_URL), so they work while a
server runs on that data too.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.admin.api_keys.schemas import KeyCreate
from app.admin.api_keys.service import insert_key
from app.admin.brokers.schemas import BrokerConfig, BrokerCreate
from app.admin.brokers.service import create_broker
from app.audit import service as audit
from app.auth.service import AuthService
from app.config import Settings
from app.db.bootstrap import prepare, release
from app.db.engine import Database
from app.models import Broker, User
from app.secrets import load_secrets

DEMO_SLUG = "demo"
PLATFORM_SLUG = "platform"


@asynccontextmanager
async def services(settings: Settings) -> AsyncIterator[tuple[Database, AuthService]]:
    secrets_ = load_secrets(settings)
    urls = await prepare(settings, secrets_)
    db = Database.connect(urls, pool_size=2)
    try:
        yield db, AuthService(settings, secrets_, db)
    finally:
        await db.dispose()
        release(settings, urls)


async def new_broker(settings: Settings, spec: BrokerCreate, force: bool = False) -> dict[str, Any]:
    async with services(settings) as (db, auth):
        return await create_broker(db, auth, spec, force=force)


async def new_superadmin(settings: Settings, email: str, password: str) -> dict[str, Any]:
    """A SUPERADMIN user in the platform operator's own broker record (created on first use)."""
    async with services(settings) as (db, auth):
        async with db.platform() as s:
            platform_id = await s.scalar(select(Broker.id).where(Broker.slug == PLATFORM_SLUG))
        if platform_id is None:
            out = await create_broker(db, auth, BrokerCreate(name="ForexRisk platform", slug=PLATFORM_SLUG,
                                                             tier="enterprise", admin_email=email,
                                                             admin_password=password),
                                      is_platform=True, admin_role="SUPERADMIN")
            return {"brokerId": out["id"], "userId": out["adminUserId"], "email": email}
        async with db.platform() as s:
            password_hash = await auth.hash_password(password)
            user = User(broker_id=platform_id, email=email, role="SUPERADMIN", password_hash=password_hash)
            s.add(user)
            await s.flush()
            await audit.record(s, broker_id=platform_id, action="user.created", conn=None, actor_type="system",
                               actor_id="cli", target_type="user", target_id=user.id, details={"role": "SUPERADMIN"})
            await s.commit()
            return {"brokerId": platform_id, "userId": user.id, "email": email}


def _write_private(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, default=str)


async def ensure_demo_broker(settings: Settings, base_url: str) -> dict[str, Any]:
    """The demo broker, created once; its keys are kept in data_dir/demo-broker.json (development only)
    so every start can print a working request. Keys are otherwise never stored in plain text."""
    path = settings.data_dir / "demo-broker.json"
    async with services(settings) as (db, auth):
        async with db.platform() as s:
            existing = (await s.execute(select(Broker).where(Broker.slug == DEMO_SLUG))).scalar_one_or_none()
        if existing is not None and path.exists():
            saved: dict[str, Any] = json.loads(path.read_text())
            if saved.get("brokerId") == str(existing.id):
                return saved
        if existing is None:
            password = secrets.token_urlsafe(12)
            origins = sorted({base_url.rstrip("/"), "http://localhost:8000", "http://127.0.0.1:8000"})
            spec = BrokerCreate(name="Demo Broker", slug=DEMO_SLUG, tier="professional",
                                config=BrokerConfig.model_validate({"allowedOrigins": origins, "fullPage": True}),
                                admin_email="admin@demo.example.com", admin_password=password)
            out = await create_broker(db, auth, spec)
            data = {"brokerId": str(out["id"]), "slug": DEMO_SLUG, "secretKey": out["secretKey"],
                    "publishableKey": out["publishableKey"], "adminEmail": "admin@demo.example.com",
                    "adminPassword": password}
        else:  # the broker exists but its keys file is gone: issue fresh keys for it
            async with db.tenant(existing.id) as s:
                sk, _ = await insert_key(s, auth, existing.id, KeyCreate(kind="secret", name="demo"))
                pk, _ = await insert_key(s, auth, existing.id, KeyCreate(kind="publishable", name="demo widget"))
                await s.commit()
            data = {"brokerId": str(existing.id), "slug": DEMO_SLUG, "secretKey": sk, "publishableKey": pk}
        _write_private(path, data)
        return data
