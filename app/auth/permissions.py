"""Roles, scopes and the permissions they grant: checked in one place (`has_permission`).

Permission strings are `<resource>:<action>:<reach>`; reach `own` means the principal's own broker,
`any` crosses tenants (platform operator only), `self` means the principal's own user record.
"""

from __future__ import annotations

import functools
from typing import Literal

Role = Literal["SUPERADMIN", "BROKER_ADMIN", "BROKER_USER", "END_USER"]

CALC = {"calc:run"}
END_USER = CALC | {"calculations:read:self", "users:read:self"}
BROKER_USER = CALC | {"calculations:read:own", "brokers:read:own", "users:read:self", "analytics:read:own"}
BROKER_ADMIN = BROKER_USER | {
    "brokers:update:own", "users:read:own", "users:create:own", "users:update:own", "users:delete:own",
    "keys:read:own", "keys:create:own", "keys:revoke:own", "audit:read:own", "sso:manage:own",
    # Webhook endpoints and their secrets, the platform-events inbound secret, alert rules, redeliveries.
    "webhooks:manage:own",
    # Billing (app/billing): users only, never an API key scope; MFA like every admin power.
    "billing:read:own", "billing:manage:own",
}
SUPERADMIN = BROKER_ADMIN | {"brokers:read:any", "brokers:create:any", "brokers:delete:any", "brokers:update:any",
                             "users:read:any", "users:create:any", "users:delete:any", "keys:create:any",
                             "keys:read:any", "keys:revoke:any", "audit:read:any", "calculations:read:any",
                             "billing:manage:any"}

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "SUPERADMIN": frozenset(SUPERADMIN),
    "BROKER_ADMIN": frozenset(BROKER_ADMIN),
    "BROKER_USER": frozenset(BROKER_USER),
    "END_USER": frozenset(END_USER),
}

# API key scopes and what each grants. A secret key defaults to every scope; narrower keys are
# Stripe-style restricted keys. Publishable keys get `calc:run` only, whatever is asked.
SCOPE_PERMISSIONS: dict[str, frozenset[str]] = {
    "calc:run": frozenset(CALC),
    "calculations:read": frozenset({"calculations:read:own"}),
    "brokers:read": frozenset({"brokers:read:own"}),
    "brokers:write": frozenset({"brokers:read:own", "brokers:update:own"}),
    "users:read": frozenset({"users:read:own"}),
    "users:write": frozenset({"users:read:own", "users:create:own", "users:update:own", "users:delete:own"}),
    "keys:manage": frozenset({"keys:read:own", "keys:create:own", "keys:revoke:own"}),
    "audit:read": frozenset({"audit:read:own"}),
    "analytics:read": frozenset({"analytics:read:own"}),
    # Manage (and so also read) the integration: webhook endpoints and secrets, the inbound secret, alert rules.
    # Not implied by brokers:write: a key that edits broker settings does not also route events elsewhere.
    "webhooks:manage": frozenset({"webhooks:manage:own"}),
}
SCOPES: tuple[str, ...] = tuple(SCOPE_PERMISSIONS)
PUBLISHABLE_SCOPES: tuple[str, ...] = ("calc:run",)
# A secret key can create users and keys but never roles above BROKER_ADMIN (granted on creation).


def permissions_for_scopes(scopes: list[str] | tuple[str, ...]) -> frozenset[str]:
    return _permissions(tuple(scopes))


@functools.lru_cache(maxsize=1024)  # every API-key request asks; a key's scopes are one of few sets
def _permissions(scopes: tuple[str, ...]) -> frozenset[str]:
    out: set[str] = set()
    for scope in scopes:
        out |= SCOPE_PERMISSIONS.get(scope, frozenset())
    return frozenset(out)


def role_rank(role: str) -> int:
    return {"SUPERADMIN": 3, "BROKER_ADMIN": 2, "BROKER_USER": 1, "END_USER": 0}.get(role, -1)
