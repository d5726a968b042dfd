"""Access tokens: ES256 JWTs with `kid`, `typ: at+jwt`, 15 minutes, published in our JWKS.

Validation is strict and one-way (RFC 8725): the algorithm is pinned to ES256 (so `alg: none` and
HS256-signed-with-our-public-key are refused by the parser), `typ` must be `at+jwt` (an ID token or
any other JWT cannot pass as an access token), and iss, aud, exp, iat, sub and broker_id are required.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet

ACCESS_TYP = "at+jwt"
AUDIENCES = ("forexrisk-api", "forexrisk-admin")
LEEWAY_SECONDS = 30


class InvalidToken(Exception):
    pass


@dataclass(frozen=True)
class AccessClaims:
    sub: uuid.UUID
    broker_id: uuid.UUID
    role: str
    jti: str
    exp: int
    amr: tuple[str, ...]
    iat: int = 0
    sid: str | None = None  # the session (refresh family) the token belongs to


class TokenSigner:
    def __init__(self, private_pem: bytes, issuer: str, lifetime_seconds: int) -> None:
        self.key = ECKey.import_key(private_pem)
        self.kid = self.key.thumbprint()
        self.issuer = issuer
        self.lifetime = lifetime_seconds
        self._jwks: dict[str, Any] = dict(KeySet([self.key]).as_dict(private=False))
        for k in self._jwks["keys"]:
            k.update({"kid": self.kid, "use": "sig", "alg": "ES256"})

    def jwks(self) -> dict[str, Any]:
        return self._jwks

    def issue(self, *, user_id: uuid.UUID, broker_id: uuid.UUID, role: str, amr: list[str],
              audience: str = "forexrisk-api", now: float | None = None,
              sid: uuid.UUID | None = None) -> tuple[str, int]:
        issued = int(now if now is not None else time.time())
        claims = {
            "iss": self.issuer, "aud": audience, "sub": str(user_id), "broker_id": str(broker_id), "role": role,
            "iat": issued, "nbf": issued, "exp": issued + self.lifetime, "jti": secrets.token_urlsafe(16),
            "amr": amr,
        }
        if sid is not None:
            claims["sid"] = str(sid)
        header = {"alg": "ES256", "kid": self.kid, "typ": ACCESS_TYP}
        return jwt.encode(header, claims, self.key, algorithms=["ES256"]), self.lifetime

    def verify(self, token: str, now: float | None = None) -> AccessClaims:
        try:
            decoded = jwt.decode(token, self.key, algorithms=["ES256"])
        except (JoseError, ValueError) as exc:
            raise InvalidToken(f"bad token: {type(exc).__name__}") from exc
        header, claims = decoded.header, decoded.claims
        if header.get("typ") != ACCESS_TYP:
            raise InvalidToken("not an access token (typ)")
        if header.get("kid") != self.kid:
            raise InvalidToken("unknown kid")
        registry = jwt.JWTClaimsRegistry(
            now=int(now) if now is not None else None, leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "values": list(AUDIENCES)},
            exp={"essential": True}, iat={"essential": True}, sub={"essential": True},
            broker_id={"essential": True}, role={"essential": True}, jti={"essential": True},
        )
        try:
            registry.validate(claims)
            return AccessClaims(sub=uuid.UUID(claims["sub"]), broker_id=uuid.UUID(claims["broker_id"]),
                                role=str(claims["role"]), jti=str(claims["jti"]), exp=int(claims["exp"]),
                                amr=tuple(claims.get("amr") or ()), iat=int(claims["iat"]),
                                sid=str(claims["sid"]) if claims.get("sid") else None)
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise InvalidToken(f"bad claims: {type(exc).__name__}") from exc
