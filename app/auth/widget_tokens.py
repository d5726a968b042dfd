"""Widget session tokens: `fxw_` + an HS256 JWT, 15 minutes, bound to broker, publishable key and origin.

The loader gets one from `/api/v1/widget/config` after the page's Origin passed the broker's
allow-list; the iframe sends it as a Bearer credential. Why a token at all rather than the
publishable key: the iframe runs on our origin, so the Origin check that guards a publishable key
cannot happen there; the token carries the result of that check for a short time.

Why it can never pass for anything else (RFC 8725): its own key (HKDF of the session secret with a
widget-only label, so no other HMAC in the app shares it), the algorithm pinned to HS256 while access
tokens are pinned to ES256, its own `typ` (`fxw+jwt`) and audience (`forexrisk-widget`), and the
`fxw_` prefix that routes it to this verifier before any other.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

PREFIX = "fxw_"
TYP = "fxw+jwt"
AUDIENCE = "forexrisk-widget"
ALGORITHM = "HS256"
LEEWAY_SECONDS = 5
_KDF_INFO = b"forexrisk widget session token v1"


class InvalidWidgetToken(Exception):
    """Why a token was refused; for logs only, the client gets one generic 401."""


@dataclass(frozen=True)
class WidgetClaims:
    broker_id: uuid.UUID
    key_id: str  # the publishable key's public handle (the 12 characters after `fxr_live_pk_`)
    origin: str | None  # the host page's origin checked at issue; None for our own full page (/w/{slug})
    exp: int

    @property
    def expires_at(self) -> str:
        return iso_utc(self.exp)


def iso_utc(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def derive_key(session_secret: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KDF_INFO)
    return hkdf.derive(session_secret.encode())


class WidgetTokenSigner:
    def __init__(self, session_secret: str, issuer: str, lifetime_seconds: int) -> None:
        self.key = OctKey.import_key(derive_key(session_secret))
        self.issuer = issuer
        self.lifetime = lifetime_seconds

    def issue(self, *, broker_id: uuid.UUID, key_id: str, origin: str | None,
              now: float | None = None) -> tuple[str, WidgetClaims]:
        issued = int(now if now is not None else time.time())
        exp = issued + self.lifetime
        claims = {"iss": self.issuer, "aud": AUDIENCE, "iat": issued, "nbf": issued, "exp": exp,
                  "jti": secrets.token_urlsafe(12), "bid": str(broker_id), "key": key_id, "org": origin}
        header = {"alg": ALGORITHM, "typ": TYP}
        token = PREFIX + jwt.encode(header, claims, self.key, algorithms=[ALGORITHM])
        return token, WidgetClaims(broker_id=broker_id, key_id=key_id, origin=origin, exp=exp)

    def verify(self, token: str, now: float | None = None) -> WidgetClaims:
        if not token.startswith(PREFIX):
            raise InvalidWidgetToken("no fxw_ prefix")
        try:
            decoded = jwt.decode(token[len(PREFIX):], self.key, algorithms=[ALGORITHM])
        except (JoseError, ValueError) as exc:
            raise InvalidWidgetToken(f"bad token: {type(exc).__name__}") from exc
        if decoded.header.get("typ") != TYP:
            raise InvalidWidgetToken("not a widget token (typ)")
        claims = decoded.claims
        registry = jwt.JWTClaimsRegistry(
            now=int(now) if now is not None else None, leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": self.issuer}, aud={"essential": True, "value": AUDIENCE},
            exp={"essential": True}, iat={"essential": True}, nbf={"essential": True},
            bid={"essential": True}, key={"essential": True},
        )
        try:
            registry.validate(claims)
            origin = claims.get("org")
            exp = claims["exp"]
            if not isinstance(exp, int) or isinstance(exp, bool) or not isinstance(claims["key"], str) \
                    or not (origin is None or isinstance(origin, str)):
                raise InvalidWidgetToken("claim types")
            return WidgetClaims(broker_id=uuid.UUID(str(claims["bid"])), key_id=claims["key"], origin=origin,
                                exp=exp)
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise InvalidWidgetToken(f"bad claims: {type(exc).__name__}") from exc
