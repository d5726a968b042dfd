"""GDPR export and erasure of one user (a person), across every store that holds data about them.

What we hold about a user, and what erasure does with it:

- `users` row. Export: email, name, role, status, dates, SSO link (issuer, subject). Erase: email becomes
  `erased-<hmac>@invalid`; name, password, TOTP secret, recovery codes and SSO link cleared; disabled;
  `erased_at` set. The row stays: calculations and audit entries point at its id.
- MFA. Export: enrolled or not, failures, lockout, recovery codes left (never the secret or the hashes).
  Erase: cleared.
- `refresh_tokens` (sessions). Export: issue, expiry, use, revocation, factors (never the token hash).
  Erase: every live one revoked; its access tokens stop on every worker.
- `audit_logs` by, about or naming the user. Export: all. Erase: kept (7-year retention) with the user's
  id, email and SSO subject replaced by the pseudonym and its IPs truncated (/24, /48), by the owner-run
  function of migration 20261203_21 (the app role cannot UPDATE the audit log).
- `calculations` the user made. Export: inputs and results. Erase: kept for the 2-year retention
  (compliance reports need them); they hold no PII, only the user id, which now names a pseudonymised row.
- `api_keys` the user created. Export: prefix, last 4, name, status, dates. Erase: kept; a key belongs to
  the broker, and revoking it would break the broker's integration.
- other stores (ClickHouse analytics): each registered holder exports and erases its part
  (app.privacy.holders).

Not stored per person: widget visitors (anonymous sessions), login throttle counters in Redis (keyed by a
hash of broker and email, gone after the lockout window), idempotency records (encrypted responses,
gone after 24 h).

The pseudonym is an HMAC of (broker, user) under the server pepper: the same user always gets the same
pseudonym (erasure is idempotent, an auditor can match entries of one person), and nobody without the
pepper can compute it from an id.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from starlette.requests import HTTPConnection

from app.audit import service as audit
from app.auth.principal import Principal
from app.auth.service import AuthService, require
from app.db.engine import Database
from app.errors import NotFound, ServiceUnavailable
from app.models import ApiKey, AuditLog, Calculation, RefreshToken, User
from app.privacy import repository
from app.privacy.holders import PersonalDataHolder

log = structlog.get_logger(__name__)


def pseudonym_of(pepper: bytes, broker_id: uuid.UUID, user_id: uuid.UUID) -> str:
    digest = hmac.new(pepper, f"gdpr-pseudonym:{broker_id}:{user_id}".encode(), hashlib.sha256).hexdigest()
    return f"erased-{digest[:32]}"


def _user(row: User) -> dict[str, Any]:
    return {"id": str(row.id), "brokerId": str(row.broker_id), "email": row.email, "name": row.name,
            "role": row.role, "status": row.status, "createdAt": row.created_at, "updatedAt": row.updated_at,
            "lastLoginAt": row.last_login_at, "erasedAt": row.erased_at}


def _mfa(row: User) -> dict[str, Any]:
    return {"enabled": row.totp_enabled, "enrolmentStarted": row.totp_secret_enc is not None,
            "failures": row.mfa_failures, "lockedUntil": row.mfa_locked_until,
            "recoveryCodesLeft": len(row.recovery_codes or [])}  # hashes of the unused codes


def _session(row: RefreshToken) -> dict[str, Any]:
    return {"sessionId": str(row.family_id), "issuedAt": row.issued_at, "expiresAt": row.expires_at,
            "usedAt": row.used_at, "revokedAt": row.revoked_at, "factors": list(row.amr)}


def _key(row: ApiKey) -> dict[str, Any]:
    return {"id": str(row.id), "kind": row.kind, "prefix": row.prefix, "last4": row.last4, "name": row.name,
            "status": row.status, "createdAt": row.created_at, "revokedAt": row.revoked_at}


def _event(row: AuditLog) -> dict[str, Any]:
    return {"id": str(row.id), "action": row.action, "actorType": row.actor_type, "actorId": row.actor_id,
            "targetType": row.target_type, "targetId": row.target_id, "ip": row.ip, "requestId": row.request_id,
            "details": row.details, "createdAt": row.created_at}


def _calculation(row: Calculation) -> dict[str, Any]:
    return {"calculationId": str(row.id), "kind": row.kind, "createdAt": row.created_at,
            "viaApiKey": str(row.api_key_id) if row.api_key_id else None, "input": row.input, "result": row.result}


class PrivacyService:
    def __init__(self, db: Database, auth: AuthService, holders: Sequence[PersonalDataHolder] = ()) -> None:
        self.db = db
        self.auth = auth
        self.holders = list(holders)

    def register(self, holder: PersonalDataHolder) -> None:
        """Another store that holds personal data (the analytics store registers itself in the lifespan)."""
        self.holders.append(holder)

    async def reach(self, principal: Principal, user_id: uuid.UUID, own: str, any_: str) -> uuid.UUID:
        """The broker of the user the principal may act on: itself; any user of its broker with `own`
        (admins, with MFA; secret keys with the scope); any user anywhere for the platform operator.
        Anyone else, and another broker's user, get the 404 of a user that does not exist."""
        if principal.kind == "user" and principal.user_id == user_id:
            return principal.broker_id
        if principal.is_superadmin and principal.can(any_):
            require(principal, any_)
            async with self.db.platform() as s:
                broker_id = await repository.broker_of(s, user_id)
            if broker_id is None:
                raise NotFound("No user with this id.")
            return broker_id
        if principal.can(own):
            require(principal, own)
            return principal.broker_id
        raise NotFound("No user with this id.")

    async def export(self, principal: Principal, user_id: uuid.UUID, conn: HTTPConnection) -> dict[str, Any]:
        broker_id = await self.reach(principal, user_id, "users:read:own", "users:read:any")
        pseudonym = pseudonym_of(self.auth.secrets.pepper, broker_id, user_id)
        async with self.db.tenant(broker_id) as s:
            row = await repository.user(s, user_id)
            if row is None:
                raise NotFound("No user with this id.")
            out: dict[str, Any] = {
                "exportedAt": datetime.now(UTC), "user": _user(row), "mfa": _mfa(row),
                "sso": {"issuer": row.sso_issuer, "subject": row.sso_subject} if row.sso_subject else None,
                "sessions": [_session(r) for r in await repository.sessions(s, user_id)],
                "apiKeysCreated": [_key(r) for r in await repository.keys_created(s, user_id)],
                "auditEvents": [_event(r) for r in await repository.audit_events(s, user_id, row.email, pseudonym)],
                "calculations": [_calculation(r) for r in await repository.calculations(s, user_id)],
            }
            await audit.record(s, broker_id=broker_id, action="user.exported", conn=conn, principal=principal,
                               target_type="user", target_id=user_id if row.erased_at is None else pseudonym)
            await s.commit()
        out["elsewhere"] = {h.name: await h.export_user(broker_id, user_id) for h in self.holders}
        return out

    async def erase(self, principal: Principal, user_id: uuid.UUID, conn: HTTPConnection) -> dict[str, Any]:
        broker_id = await self.reach(principal, user_id, "users:delete:own", "users:delete:any")
        pseudonym = pseudonym_of(self.auth.secrets.pepper, broker_id, user_id)
        now = datetime.now(UTC)
        families: list[uuid.UUID] = []
        async with self.db.tenant(broker_id) as s:
            row = await repository.user(s, user_id)  # locked: two erasures of one user run one after the other
            if row is None:
                raise NotFound("No user with this id.")
            already = row.erased_at is not None
            entries = 0
            if not already:
                email, identifiers = row.email, [v for v in (row.sso_subject,) if v]
                row.email, row.name, row.status = f"{pseudonym}@invalid", None, "disabled"
                row.password_hash = row.totp_secret_enc = None
                row.totp_enabled, row.totp_last_step, row.recovery_codes = False, None, []
                row.mfa_failures, row.mfa_locked_until = 0, None
                row.sso_issuer = row.sso_subject = None
                row.erased_at = row.updated_at = now
                await s.flush()  # the function below checks erased_at in this transaction
                families = await repository.revoke_sessions(s, user_id, now)
                entries = await repository.pseudonymise_audit(s, user_id, email, pseudonym, identifiers)
            kept = await repository.count_calculations(s, user_id)
            erased_at = row.erased_at
            self_erasure = principal.kind == "user" and principal.user_id == user_id
            # The erasure itself, audited under the pseudonym (an entry naming the user's id would undo it).
            await audit.record(s, broker_id=broker_id, action="user.erased", conn=None if self_erasure else conn,
                               principal=principal, actor_id=pseudonym if self_erasure else None,
                               target_type="user", target_id=pseudonym,
                               details={"alreadyErased": already, "sessionsRevoked": len(families),
                                        "auditEntriesPseudonymised": entries, "calculationsKept": kept,
                                        "holders": [h.name for h in self.holders]})
            await s.commit()
        if not already:
            self.auth.revoke_user(user_id)  # its access tokens stop on every worker, now
            for family in families:
                self.auth.revoke_session(family)
        elsewhere: dict[str, Any] = {}
        for holder in self.holders:
            try:
                elsewhere[holder.name] = await holder.erase_user(broker_id, user_id, pseudonym)
            except Exception as exc:
                # Postgres is done (and committed); the erasure is idempotent, so the caller retries it.
                log.warning("privacy_holder_erase_failed", holder=holder.name, user_id=str(user_id),
                            error=f"{type(exc).__name__}: {exc}")
                raise ServiceUnavailable(f"The user is erased in Postgres; erasure in {holder.name} failed. "
                                         "Retry the request.") from exc
        log.info("privacy_user_erased", broker_id=str(broker_id), pseudonym=pseudonym, already=already)
        return {"userId": user_id, "brokerId": broker_id, "pseudonym": pseudonym, "erasedAt": erased_at,
                "alreadyErased": already, "sessionsRevoked": len(families), "auditEntriesPseudonymised": entries,
                "calculationsKept": kept, "elsewhere": elsewhere}
