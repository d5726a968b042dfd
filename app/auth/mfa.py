"""TOTP (RFC 6238) for broker admins: enrol, confirm, verify at login, recovery codes.

- SHA-1, 6 digits, 30 s steps (what every authenticator app supports); the current and the previous
  step are accepted (network delay), nothing else;
- the last accepted step is stored, so a code is never accepted twice (RFC 6238 section 5.2);
- failures are counted; `mfa_max_failures` in a row lock MFA for `mfa_lockout_seconds`;
- the secret is Fernet-encrypted at rest; recovery codes are stored as HMACs and each works once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import UTC, datetime, timedelta

import pyotp
import segno

from app.config import Settings
from app.errors import InvalidField, TooManyAttempts
from app.models import User

STEP = 30
RECOVERY_CODES = 10


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, email: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """The URI as a QR code, an SVG `data:` URI (segno: pure Python, no image library). Drawn server side so
    a browser page needs no QR script, and the secret never leaves the response that already carries it."""
    return str(segno.make(uri, error="m").svg_data_uri(scale=6, border=4, dark="#000", light="#fff"))


def _step(now: float) -> int:
    return int(now // STEP)


def matching_step(secret: str, code: str, now: float, last_step: int | None) -> int | None:
    """The step the code belongs to (current or previous), or None; steps at or before `last_step` never match."""
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    current = _step(now)
    for step in (current, current - 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(totp.at(step * STEP), code):
            return step
    return None


def recovery_hash(pepper: bytes, code: str) -> str:
    return hmac.new(pepper, b"recovery:" + code.replace("-", "").lower().encode(), hashlib.sha256).hexdigest()


def new_recovery_codes(pepper: bytes) -> tuple[list[str], list[str]]:
    codes = [f"{secrets.token_hex(3)}-{secrets.token_hex(3)}" for _ in range(RECOVERY_CODES)]
    return codes, [recovery_hash(pepper, c) for c in codes]


def check_lock(user: User, now: datetime) -> None:
    if user.mfa_locked_until is not None and user.mfa_locked_until > now:
        wait = int((user.mfa_locked_until - now).total_seconds()) + 1
        raise TooManyAttempts(f"Too many wrong codes; MFA is locked for {wait} s.")


def verify(user: User, secret: str, code: str | None, recovery_code: str | None, pepper: bytes,
           settings: Settings, now: float | None = None, field: str = "totpCode") -> str:
    """Check a TOTP or recovery code for `user`, updating its counters; returns the method used.

    Raises TooManyAttempts while locked and InvalidField for a wrong code (the caller commits either way,
    so failures are counted)."""
    t = time.time() if now is None else now
    moment = datetime.fromtimestamp(t, UTC)
    check_lock(user, moment)
    if recovery_code:
        digest = recovery_hash(pepper, recovery_code)
        codes = list(user.recovery_codes or [])
        if digest in codes:
            codes.remove(digest)
            user.recovery_codes = codes
            user.mfa_failures = 0
            return "recovery"
    elif code:
        step = matching_step(secret, code, t, user.totp_last_step)
        if step is not None:
            user.totp_last_step = step
            user.mfa_failures = 0
            return "otp"
    user.mfa_failures = (user.mfa_failures or 0) + 1
    if user.mfa_failures >= settings.mfa_max_failures:
        user.mfa_locked_until = moment + timedelta(seconds=settings.mfa_lockout_seconds)
        user.mfa_failures = 0
    raise InvalidField("recoveryCode" if recovery_code else field, "wrong, reused or expired code", "invalid_code")
