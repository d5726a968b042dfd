"""Broker records (the tenant configuration they carry is app.broker_config)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from app.broker_config import DOMAIN as DOMAIN
from app.broker_config import BrokerConfig as BrokerConfig
from app.broker_config import Domain as Domain
from app.broker_config import Locale as Locale
from app.broker_config import Slug as Slug
from app.broker_config import Tier as Tier
from app.schemas import ApiModel, OutModel


class BrokerCreate(ApiModel):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    slug: Slug | None = None
    tier: Tier = "free"
    domains: Annotated[list[Domain], Field(max_length=20)] = []
    config: BrokerConfig = BrokerConfig()
    admin_email: Annotated[str, Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = None
    admin_password: Annotated[str, Field(min_length=12, max_length=200)] | None = None


class BrokerOut(OutModel):
    id: uuid.UUID
    slug: str
    name: str
    tier: Tier
    status: str
    domains: list[str]
    config: dict[str, Any]
    config_version: int
    created_at: datetime
    updated_at: datetime


class CreatedKeys(OutModel):
    secret_key: str = Field(description="Shown once. Server-side only.")
    publishable_key: str = Field(description="For the browser widget; works only from allowedOrigins.")


class BrokerCreated(BrokerOut):
    broker_id: uuid.UUID
    keys: CreatedKeys
    secret_key: str
    publishable_key: str
    admin_user_id: uuid.UUID | None = Field(description="The first admin user (with adminEmail); null without")


class BrokerUpdate(ApiModel):
    """The platform operator's changes to a broker: its tier, and suspension (every credential of a suspended
    broker is refused until it is active again; nothing is deleted)."""

    tier: Tier | None = None
    status: Literal["active", "suspended"] | None = None
