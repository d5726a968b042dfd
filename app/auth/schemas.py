from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from app.schemas import ApiModel, OutModel


class LoginRequest(ApiModel):
    broker: Annotated[str, Field(min_length=1, max_length=63, description="The broker's slug")]
    email: Annotated[str, Field(min_length=3, max_length=320)]
    password: Annotated[str, Field(min_length=1, max_length=200)]
    totp_code: Annotated[str, Field(max_length=10)] | None = None
    recovery_code: Annotated[str, Field(max_length=20)] | None = None
    refresh_cookie: bool = Field(
        default=False, description="Browser clients: the refresh token goes into an httpOnly, SameSite=Strict "
        "cookie scoped to /api/v1/auth (with a CSRF cookie, `fxr_csrf`) instead of the body, so page scripts never "
        "hold it. Refresh and logout then take it from the cookie, with the header X-CSRF-Token = fxr_csrf.")


class RefreshRequest(ApiModel):
    refresh_token: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        default=None, description="Omitted: the `fxr_rt` cookie, with the X-CSRF-Token header (browser clients)")


class LogoutRequest(RefreshRequest):
    everywhere: bool = Field(default=False, description="End every session of the user, on every device, "
                                                        "not only this one")


class TokenPair(OutModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int
    refresh_token: str | None = Field(default=None, description="Absent when the refresh token went into a cookie")


class MfaEnrolment(OutModel):
    secret: str
    otpauth_uri: str
    qr_svg: str = Field(description="The otpauth URI as a QR code: an SVG `data:` URI for an <img>")


class MfaConfirm(ApiModel):
    code: Annotated[str, Field(min_length=6, max_length=6)]


class MfaConfirmed(OutModel):
    enabled: bool
    recovery_codes: list[str]


class Jwk(OutModel):
    """A public signing key (RFC 7517): P-256 EC, ES256."""

    kty: Literal["EC"]
    crv: Literal["P-256"]
    x: str
    y: str
    kid: str = Field(description="Key id (RFC 7638 thumbprint); the `kid` of the access tokens it verifies")
    use: Literal["sig"]
    alg: Literal["ES256"]


class JwkSet(OutModel):
    keys: list[Jwk]
