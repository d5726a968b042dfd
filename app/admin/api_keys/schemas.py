from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, field_validator

from app.auth.permissions import SCOPES
from app.schemas import ApiModel, OutModel


class KeyCreate(ApiModel):
    kind: Literal["secret", "publishable"] = "secret"
    mode: Literal["live", "test"] = "live"
    name: Annotated[str, Field(max_length=100)] | None = None
    scopes: Annotated[list[str], Field(min_length=1, max_length=len(SCOPES))] | None = Field(
        default=None, description="Secret keys only; default: every scope. Publishable keys always get calc:run.")

    @field_validator("scopes")
    @classmethod
    def known_scopes(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            unknown = [s for s in v if s not in SCOPES]
            if unknown:
                raise ValueError(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}")
            return sorted(set(v))
        return v


class KeyRotate(ApiModel):
    overlap_hours: Annotated[float, Field(ge=0, le=720)] | None = Field(
        default=None, description="How long the old key keeps working (default 24 h).")


class KeyOut(OutModel):
    id: uuid.UUID
    kind: str
    mode: str
    name: str | None
    prefix: str
    last4: str
    scopes: list[str]
    status: str
    expires_at: datetime | None
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    rotated_from: uuid.UUID | None


class KeyCreated(KeyOut):
    key: str = Field(description="The full key. Shown once; store it now.")


class KeyRotated(KeyCreated):
    previous_key_expires_at: datetime = Field(description="When the rotated key stops working (the overlap's end)")
