"""The one admission path: any credential (secret or publishable key, access token, widget session)
becomes a Caller — the principal and its broker record (tier, config version, calculation policy) —
once per request.

The result (or the refusal) is kept in the ASGI scope, so the idempotency middleware, the rate-limit
gate, the calculation pipeline and the admin dependencies all see the same Caller and nothing verifies
a credential twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection

from app.auth.cache import BrokerRecord
from app.auth.principal import Principal
from app.errors import AppError
from app.policy import BrokerPolicy

if TYPE_CHECKING:
    from app.auth.service import AuthService

SCOPE_KEY = "caller"


@dataclass(frozen=True, slots=True)
class Caller:
    principal: Principal
    broker: BrokerRecord

    @property
    def policy(self) -> BrokerPolicy:
        return self.broker.policy


async def admit(auth: AuthService, conn: HTTPConnection) -> Caller:
    """The request's Caller, or the AppError (401/403/503) that refuses it, decided once per request."""
    state = conn.scope.setdefault("state", {})
    known = state.get(SCOPE_KEY)
    if isinstance(known, Caller):
        return known
    if isinstance(known, AppError):
        raise known
    try:
        principal = await auth.authenticate(conn)
        broker = await auth.active_broker(principal.broker_id)
    except AppError as exc:
        state[SCOPE_KEY] = exc
        raise
    caller = Caller(principal, broker)
    state[SCOPE_KEY] = caller
    return caller
