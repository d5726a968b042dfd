"""ORM mappings. Relationships are not declared: repositories compose explicit statements."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, Boolean, DateTime, Integer, LargeBinary, MetaData, String, Text, func
from sqlalchemy.dialects.postgresql import JSON, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSONB, list[Any]: JSONB, uuid.UUID: UUID(as_uuid=True)}


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Broker(Base):
    __tablename__ = "brokers"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, server_default=func.gen_random_uuid())
    slug: Mapped[str] = mapped_column(Text, unique=True)
    name: Mapped[str] = mapped_column(Text)
    domains: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    tier: Mapped[str] = mapped_column(Text, server_default="free")
    status: Mapped[str] = mapped_column(Text, server_default="active")
    is_platform: Mapped[bool] = mapped_column(Boolean, server_default="false")
    config: Mapped[dict[str, Any]] = mapped_column(server_default="{}")
    config_version: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class User(Base):
    __tablename__ = "users"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, server_default=func.gen_random_uuid())
    broker_id: Mapped[uuid.UUID]
    email: Mapped[str] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default="active")
    password_hash: Mapped[str | None] = mapped_column(Text)
    totp_secret_enc: Mapped[str | None] = mapped_column(Text)
    totp_enabled: Mapped[bool] = mapped_column(Boolean, server_default="false")
    totp_last_step: Mapped[int | None]
    mfa_failures: Mapped[int] = mapped_column(Integer, server_default="0")
    mfa_locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    recovery_codes: Mapped[list[Any]] = mapped_column(server_default="[]")
    sso_issuer: Mapped[str | None] = mapped_column(Text)
    sso_subject: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, server_default=func.gen_random_uuid())
    broker_id: Mapped[uuid.UUID]
    key_id: Mapped[str] = mapped_column(Text, unique=True)
    kind: Mapped[str] = mapped_column(Text)
    mode: Mapped[str] = mapped_column(Text)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary)
    signing_secret_enc: Mapped[str | None] = mapped_column(Text)
    prefix: Mapped[str] = mapped_column(Text)
    last4: Mapped[str] = mapped_column(String(4))
    name: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default="active")
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[uuid.UUID | None]
    rotated_from: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = _now()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_ip: Mapped[str | None] = mapped_column(Text)


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, server_default=func.gen_random_uuid())
    broker_id: Mapped[uuid.UUID]
    user_id: Mapped[uuid.UUID]
    family_id: Mapped[uuid.UUID]
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    issued_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    idle_expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    successor_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    amr: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")


class Calculation(Base):
    __tablename__ = "calculations"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    broker_id: Mapped[uuid.UUID]
    user_id: Mapped[uuid.UUID | None]
    api_key_id: Mapped[uuid.UUID | None]
    kind: Mapped[str] = mapped_column(Text)
    # json, not jsonb: stored as answered and only read back whole (migration 0005).
    input: Mapped[dict[str, Any]] = mapped_column(JSON)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    input_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()
    # Usage columns (migration 20261203_analytics): what analytics and billing query, as real columns.
    units: Mapped[int] = mapped_column(Integer, server_default="1")
    latency_ms: Mapped[float | None]
    instrument: Mapped[str | None] = mapped_column(Text)
    account_currency: Mapped[str | None] = mapped_column(Text)
    risk_pct: Mapped[float | None]


class AuditLog(Base):
    __tablename__ = "audit_logs"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, server_default=func.gen_random_uuid())
    broker_id: Mapped[uuid.UUID]
    actor_type: Mapped[str] = mapped_column(Text)
    actor_id: Mapped[str | None] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    target_type: Mapped[str | None] = mapped_column(Text)
    target_id: Mapped[str | None] = mapped_column(Text)
    ip: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(server_default="{}")
    created_at: Mapped[datetime] = _now()


class SsoConnection(Base):
    __tablename__ = "sso_connections"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, server_default=func.gen_random_uuid())
    broker_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    issuer: Mapped[str] = mapped_column(Text)
    client_id: Mapped[str] = mapped_column(Text)
    client_secret_enc: Mapped[str] = mapped_column(Text)
    default_role: Mapped[str] = mapped_column(Text, server_default="BROKER_USER")
    enabled: Mapped[bool] = mapped_column(Boolean, server_default="true")
    created_at: Mapped[datetime] = _now()


class SsoState(Base):
    __tablename__ = "sso_states"
    state: Mapped[str] = mapped_column(Text, primary_key=True)
    broker_id: Mapped[uuid.UUID]
    nonce: Mapped[str] = mapped_column(Text)
    code_verifier: Mapped[str] = mapped_column(Text)
    redirect_uri: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()
