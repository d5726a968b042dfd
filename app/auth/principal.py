"""Who is calling: the authenticated principal every tenant-scoped operation derives its broker from."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal

PrincipalKind = Literal["secret_key", "publishable_key", "user"]


@dataclass(frozen=True)
class Principal:
    broker_id: uuid.UUID
    kind: PrincipalKind
    permissions: frozenset[str]
    role: str | None = None
    user_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None
    scopes: tuple[str, ...] = ()
    amr: tuple[str, ...] = field(default=())
    # A widget session (fxw_): one visitor of a broker's page. It runs the widget's own calculations only
    # and spends a small per-visitor bucket first (app.ratelimit.gate), so no visitor drains the broker.
    widget_session: bool = False

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    @property
    def is_superadmin(self) -> bool:
        return self.role == "SUPERADMIN"

    @property
    def actor_type(self) -> str:
        return "user" if self.kind == "user" else "api_key"

    @property
    def actor_id(self) -> str:
        ident = self.user_id if self.kind == "user" else self.api_key_id
        return str(ident)
