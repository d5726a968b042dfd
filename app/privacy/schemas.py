"""Wire shapes of the GDPR routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from app.schemas import OutModel


class UserExport(OutModel):
    """Everything the service holds about one person (see app/privacy/service.py for the inventory)."""

    exported_at: datetime
    user: dict[str, Any] = Field(description="The user record: email, name, role, status, dates")
    mfa: dict[str, Any] = Field(description="MFA facts (enrolled, failures, lockout, recovery codes left); "
                                            "never the secret or the code hashes")
    sso: dict[str, Any] | None = Field(description="The SSO link (issuer, subject), if any")
    sessions: list[dict[str, Any]] = Field(description="Login sessions (refresh token families)")
    api_keys_created: list[dict[str, Any]] = Field(description="API keys this user created (never secrets)")
    audit_events: list[dict[str, Any]] = Field(description="Audit entries by, about or naming this user")
    calculations: list[dict[str, Any]] = Field(description="Calculations this user made, inputs and results")
    elsewhere: dict[str, Any] = Field(description="What other stores (analytics) hold, per store")


class ErasureOut(OutModel):
    user_id: uuid.UUID
    broker_id: uuid.UUID
    pseudonym: str = Field(description="What stands for the user in the audit log from now on")
    erased_at: datetime | None
    already_erased: bool = Field(description="True when an earlier request erased the user (idempotent)")
    sessions_revoked: int
    audit_entries_pseudonymised: int
    calculations_kept: int = Field(description="Kept for the retention period; they hold no PII")
    elsewhere: dict[str, Any] = Field(description="What each other store (analytics) did")
