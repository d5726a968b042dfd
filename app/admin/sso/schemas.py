from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from app.schemas import ApiModel, OutModel


class SsoConfigIn(ApiModel):
    issuer: Annotated[str, Field(min_length=8, max_length=500, pattern=r"^https?://[^\s?#]+$",
                                 description="The provider's issuer; discovery is read from "
                                             "<issuer>/.well-known/openid-configuration and must name it exactly")]
    client_id: Annotated[str, Field(min_length=1, max_length=500)]
    client_secret: Annotated[str, Field(min_length=1, max_length=2000)] | None = Field(
        default=None, description="Write-only; stored encrypted. Required when creating; omit to keep the current one.")
    default_role: Literal["BROKER_ADMIN", "BROKER_USER", "END_USER"] = "BROKER_USER"
    enabled: bool = True


class SsoConfigOut(OutModel):
    broker_id: uuid.UUID
    issuer: str
    client_id: str
    client_secret_set: bool
    default_role: str
    enabled: bool
    login_url: str
    callback_url: str
    created_at: datetime
