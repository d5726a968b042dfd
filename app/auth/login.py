"""Password login, refresh, logout and MFA enrolment for users."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import func, select
from starlette.requests import HTTPConnection

from app.audit import service as audit
from app.auth import mfa, refresh, throttle
from app.auth.principal import Principal
from app.auth.schemas import LoginRequest
from app.auth.service import AuthService
from app.errors import AppError, Forbidden, InvalidField, MfaRequired, TooManyAttempts, Unauthorized
from app.models import Broker, User

log = structlog.get_logger(__name__)

async def broker_id_by_slug(auth: AuthService, slug: str) -> uuid.UUID | None:
    async with auth.db.platform() as s:
        row = (await s.execute(select(Broker.id, Broker.status).where(Broker.slug == slug))).one_or_none()
    return row.id if row is not None and row.status == "active" else None


def token_pair(auth: AuthService, user: User, refresh_token: str, amr: list[str], sid: uuid.UUID) -> dict[str, Any]:
    """The pair of a session; `sid` (the refresh family) lets a logout or revocation reject its access tokens."""
    access, lifetime = auth.signer.issue(user_id=user.id, broker_id=user.broker_id, role=user.role, amr=amr, sid=sid)
    return {"accessToken": access, "tokenType": "Bearer", "expiresIn": lifetime, "refreshToken": refresh_token}


async def _password_ok(auth: AuthService, user: User | None, password: str) -> bool:
    # Without a user (or a password) the dummy hash is still verified: both cases cost the same time.
    ok = await auth.verify_password(user.password_hash if user and user.password_hash else auth.dummy_hash, password)
    return ok and user is not None and user.password_hash is not None


async def login(auth: AuthService, req: LoginRequest, conn: HTTPConnection) -> dict[str, Any]:
    # Throttled per account (what was typed, existing or not) and per client IP, before any check
    # (app.auth.throttle): during a wait or a lockout even the right password gets the 429.
    account, address = throttle.account_key("login", req.broker, req.email), throttle.ip_key(auth.client_ip(conn))
    await auth.throttle.check(account, address)
    broker_id = await broker_id_by_slug(auth, req.broker)
    if broker_id is None:
        # Security log for operators (the audit log needs a broker): the email and address are masked
        # on the way out (app.logging), so the line says "which network, how often", not who.
        log.info("auth_login_failed", broker=req.broker, email=req.email, ip=auth.client_ip(conn),
                 reason="unknown_broker")
        await _password_ok(auth, None, req.password)
        await auth.throttle.failed(account, address)
        raise Unauthorized("Wrong broker, email or password.")
    async with auth.db.tenant(broker_id) as s:
        user = (await s.execute(select(User).where(func.lower(User.email) == req.email.lower()))).scalar_one_or_none()
        if not await _password_ok(auth, user, req.password) or user is None or user.status != "active":
            await audit.record(s, broker_id=broker_id, action="auth.login_failed", conn=conn, actor_type="anonymous",
                               actor_id=str(user.id) if user else None, details={"email": req.email})
            log.info("auth_login_failed", broker=req.broker, email=req.email, ip=auth.client_ip(conn),
                     reason="credentials")
            verdict = await auth.throttle.failed(account, address)
            if verdict.locked:
                await audit.record(s, broker_id=broker_id, action="auth.login_locked", conn=conn,
                                   actor_type="anonymous", actor_id=str(user.id) if user else None,
                                   details={"email": req.email, "failures": verdict.failures,
                                            "lockoutSeconds": auth.settings.login_lockout_seconds})
            await s.commit()
            raise Unauthorized("Wrong broker, email or password.")
        amr = ["pwd"]
        if user.totp_enabled and user.totp_secret_enc:
            if not req.totp_code and not req.recovery_code:
                raise MfaRequired("This account has MFA: send totpCode (or recoveryCode) with the password.",
                                  errors=[{"field": "totpCode", "pointer": "#/totpCode", "code": "mfa_required",
                                           "detail": "required for this account"}])
            second = throttle.mfa_key(user.id)
            await auth.throttle.check(second)
            secret = auth.fernet.decrypt(user.totp_secret_enc.encode()).decode()
            try:
                method = mfa.verify(user, secret, req.totp_code, req.recovery_code, auth.secrets.pepper, auth.settings)
            except AppError as exc:
                await audit.record(s, broker_id=broker_id, action="auth.mfa_failed", conn=conn, actor_type="user",
                                   actor_id=str(user.id), target_type="user", target_id=user.id)
                await s.commit()
                if not isinstance(exc, TooManyAttempts):  # a wrong code; a refusal while locked is no guess
                    await auth.throttle.failed(second, address)
                raise
            amr.append("otp" if method == "otp" else "recovery")
            if method == "recovery":
                amr.append("otp")  # a recovery code stands in for the second factor
        user.last_login_at = datetime.now(UTC)
        token, sid = await refresh.issue(s, auth.settings, auth.secrets.pepper, broker_id=broker_id, user_id=user.id,
                                         amr=amr)
        await audit.record(s, broker_id=broker_id, action="auth.login", conn=conn, actor_type="user",
                           actor_id=str(user.id), target_type="user", target_id=user.id, details={"amr": amr})
        await s.commit()
        await auth.throttle.succeeded(account)
        if "otp" in amr:
            await auth.throttle.succeeded(throttle.mfa_key(user.id))
        return token_pair(auth, user, token, sorted(set(amr)), sid)


async def refresh_tokens(auth: AuthService, token: str, conn: HTTPConnection) -> dict[str, Any]:
    # A refresh token is 256 random bits: guessing one is hopeless, so refused refreshes are throttled per
    # client IP. (Per account would let anyone holding a dead token of a user block that user's live ones.)
    address = throttle.ip_key(auth.client_ip(conn))
    await auth.throttle.check(address)
    broker_id = refresh.broker_of(token)
    if broker_id is None or await auth.broker(broker_id) is None:
        await auth.throttle.failed(address)
        raise Unauthorized("Invalid refresh token.")
    async with auth.db.tenant(broker_id) as s:
        outcome = await refresh.rotate(s, auth.settings, auth.secrets.pepper, token)
        if outcome.reason == "reuse":
            await audit.record(s, broker_id=broker_id, action="auth.refresh_reuse_detected", conn=conn,
                               actor_type="user", actor_id=str(outcome.user_id), target_type="refresh_family",
                               target_id=outcome.family_id, details={"familyRevoked": True})
            await s.commit()
            if outcome.family_id is not None:
                auth.revoke_session(outcome.family_id)  # its access tokens too, on every worker
            await auth.throttle.failed(address)
            raise Unauthorized("Refresh token reuse detected; this session has been revoked. Log in again.")
        if outcome.token is None or outcome.user_id is None:
            await auth.throttle.failed(address)
            raise Unauthorized("Invalid or expired refresh token.")
        user = await s.get(User, outcome.user_id)
        if user is None or user.status != "active":
            raise Unauthorized("Invalid refresh token.")
        # Refreshed tokens carry exactly the login's amr: a refresh never adds a factor (an SSO or
        # password session of a user who enrolled TOTP later stays without "otp") and never drops one.
        await s.commit()
        assert outcome.family_id is not None
        return token_pair(auth, user, outcome.token, list(outcome.amr), outcome.family_id)


async def logout(auth: AuthService, token: str, conn: HTTPConnection) -> None:
    broker_id = refresh.broker_of(token)
    if broker_id is None:
        return
    async with auth.db.tenant(broker_id) as s:
        row = await refresh.family_of(s, auth.secrets.pepper, token)
        if row is not None:
            await refresh.revoke_family(s, row.family_id)
            await audit.record(s, broker_id=broker_id, action="auth.logout", conn=conn, actor_type="user",
                               actor_id=str(row.user_id), target_type="refresh_family", target_id=row.family_id)
            await s.commit()
            auth.revoke_session(row.family_id)  # its access tokens too, on every worker


async def logout_everywhere(auth: AuthService, token: str, conn: HTTPConnection) -> None:
    """Every session of the refresh token's user ends (each of its families), not only this one."""
    broker_id = refresh.broker_of(token)
    if broker_id is None:
        return
    async with auth.db.tenant(broker_id) as s:
        row = await refresh.family_of(s, auth.secrets.pepper, token)
        if row is None or row.revoked_at is not None or row.used_at is not None:
            return  # only the current token: an old (rotated or stolen) one signs nobody out everywhere
        families = await refresh.revoke_user_families(s, row.user_id)
        await audit.record(s, broker_id=broker_id, action="auth.logout_everywhere", conn=conn, actor_type="user",
                           actor_id=str(row.user_id), target_type="user", target_id=row.user_id,
                           details={"sessions": len(families)})
        await s.commit()
    for family_id in families:
        auth.revoke_session(family_id)  # their access tokens too, on every worker


async def mfa_enrol(auth: AuthService, principal: Principal, conn: HTTPConnection) -> dict[str, Any]:
    if principal.kind != "user" or principal.user_id is None:
        raise Forbidden("MFA belongs to a user; log in with a password first.")
    async with auth.db.tenant(principal.broker_id) as s:
        user = await s.get(User, principal.user_id)
        if user is None:
            raise Unauthorized()
        if user.totp_enabled:
            raise InvalidField("mfa", "MFA is already enabled for this account", "already_enabled")
        secret = mfa.new_secret()
        user.totp_secret_enc = auth.fernet.encrypt(secret.encode()).decode()
        user.totp_last_step = None
        await audit.record(s, broker_id=user.broker_id, action="mfa.enrolment_started", conn=conn,
                           principal=principal, target_type="user", target_id=user.id)
        await s.commit()
        uri = mfa.provisioning_uri(secret, user.email, "ForexRisk")
        return {"secret": secret, "otpauthUri": uri, "qrSvg": mfa.qr_svg(uri)}


async def mfa_confirm(auth: AuthService, principal: Principal, code: str, conn: HTTPConnection) -> dict[str, Any]:
    if principal.kind != "user" or principal.user_id is None:
        raise Forbidden("MFA belongs to a user.")
    async with auth.db.tenant(principal.broker_id) as s:
        user = await s.get(User, principal.user_id)
        if user is None or not user.totp_secret_enc:
            raise InvalidField("code", "start with POST /api/v1/auth/mfa/enrol", "not_enrolled")
        if user.totp_enabled:
            raise InvalidField("code", "MFA is already enabled", "already_enabled")
        address, second = throttle.ip_key(auth.client_ip(conn)), throttle.mfa_key(user.id)
        await auth.throttle.check(second, address)
        secret = auth.fernet.decrypt(user.totp_secret_enc.encode()).decode()
        try:
            mfa.verify(user, secret, code, None, auth.secrets.pepper, auth.settings, field="code")
        except AppError as exc:
            await s.commit()
            if not isinstance(exc, TooManyAttempts):
                await auth.throttle.failed(second, address)
            raise
        codes, hashes = mfa.new_recovery_codes(auth.secrets.pepper)
        user.totp_enabled = True
        user.recovery_codes = hashes
        await audit.record(s, broker_id=user.broker_id, action="mfa.enabled", conn=conn, principal=principal,
                           target_type="user", target_id=user.id)
        await s.commit()
        return {"enabled": True, "recoveryCodes": codes}
