from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from app.schemas import ApiModel, OutModel

Email = Annotated[str, Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
Password = Annotated[str, Field(min_length=12, max_length=200)]
TenantRole = Literal["BROKER_ADMIN", "BROKER_USER", "END_USER"]


class UserCreate(ApiModel):
    email: Email
    role: TenantRole = "BROKER_USER"
    name: Annotated[str, Field(max_length=200)] | None = None
    password: Password | None = Field(default=None, description="Omit for SSO-only users.")


class UserUpdate(ApiModel):
    """Writable properties. `role` only by an admin for another user; tier, broker and ids never (422)."""

    name: Annotated[str, Field(max_length=200)] | None = None
    password: Password | None = None
    status: Literal["active", "disabled"] | None = None
    role: TenantRole | None = None


class UserOut(OutModel):
    id: uuid.UUID
    broker_id: uuid.UUID
    email: str
    name: str | None
    role: str
    status: str
    mfa_enabled: bool
    sso: bool
    created_at: datetime
    last_login_at: datetime | None


class AuditEvent(OutModel):
    id: uuid.UUID
    action: str = Field(description="e.g. user.created, api_key.rotated, auth.login")
    actor_type: str
    actor_id: str | None
    target_type: str | None
    target_id: str | None
    ip: str | None
    request_id: str | None
    details: dict[str, Any] = Field(description="Action-specific facts (never secrets)")
    created_at: datetime


class CalculationRef(OutModel):
    calculation_id: uuid.UUID
    kind: str = Field(description="The calculation route's last path segment, e.g. position-size")
    created_at: datetime


class ActivityOut(OutModel):
    user_id: uuid.UUID
    events: list[AuditEvent] = Field(description="Audit events by or about the user, newest first")
    calculations: list[CalculationRef] = Field(description="The user's stored calculations, newest first")


class InvitationOut(OutModel):
    user_id: uuid.UUID
    email: str
    token: str = Field(description="Single use: valid until the user has chosen a password, or expiresAt")
    url: str = Field(description="The console page where the invitee chooses a password (send it to them)")
    expires_at: datetime


class InvitationAccept(ApiModel):
    token: Annotated[str, Field(min_length=10, max_length=400)]
    password: Password
