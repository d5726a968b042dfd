"""OIDC single sign-on for enterprise brokers (authorization code flow with PKCE and nonce).

One connection per broker (`sso_connections`: issuer, client id, Fernet-encrypted client secret,
default role). The flow:

1. `login`: discovery (the document's `issuer` must equal the configured issuer exactly: the issuer
   is pinned), a fresh state, nonce and PKCE verifier stored server-side in `sso_states` (not in a
   cookie session, so login and callback may land on different workers and SameSite rules cannot
   lose it), then the provider's authorize URL built by Authlib.
2. `callback`: the state row is deleted and returned in one statement (single use, even when the
   rest fails), refused after 10 minutes or under another broker (RLS hides it); the code is
   exchanged with Authlib's httpx client (client secret + PKCE verifier); the ID token is verified with
   joserfc against the provider's JWKS: asymmetric algorithms only, iss = the pinned issuer, aud
   contains our client id (azp when there are several), nonce = the stored nonce, exp and iat.
3. The user is found by (issuer, sub) or provisioned with the connection's default role; never linked
   to an existing account by email (that account is not this identity).

Our token pair carries amr ["sso"]. The IdP counts as a second factor only when its ID token's amr
says "mfa" or "otp"; then we add "mfa" and "otp" (our marker that a second factor was satisfied, as
login.py does for recovery codes); otherwise admin powers still need our own TOTP.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from app.audit import service as audit
from app.auth import refresh
from app.auth import users as repository
from app.auth.login import broker_id_by_slug, token_pair
from app.auth.service import AuthService
from app.config import Settings
from app.errors import NotFound, SsoError, Unauthorized
from app.models import SsoConnection, SsoState, User

STATE_TTL = timedelta(minutes=10)
# Explicit timeouts for every call to a provider: a slow IdP must not hold a worker.
HTTP_TIMEOUT_SECONDS = 10.0
DISCOVERY_TTL_SECONDS = 3600.0
JWKS_TTL_SECONDS = 3600.0
ID_TOKEN_LEEWAY = 60
# Asymmetric only: an HMAC-signed ID token would be keyed by the client secret, and `none` never verifies.
ID_TOKEN_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
                                 "EdDSA"})
MFA_AMR = frozenset({"mfa", "otp"})
SCOPE = "openid email profile"


class SsoFailed(SsoError):
    """A failed callback: the detail the caller sees and the reason the audit log keeps."""

    def __init__(self, detail: str, reason: str) -> None:
        super().__init__(detail)
        self.reason = reason


def callback_url(settings: Settings, slug: str) -> str:
    return f"{settings.public_base_url.rstrip('/')}/api/v1/auth/sso/{slug}/callback"


def _loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_allowed(settings: Settings, url: str) -> bool:
    """https everywhere; plain http only to loopback outside production (a provider on the same host)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    return parts.scheme == "http" and settings.environment != "production" and _loopback(parts.hostname)


# --- provider metadata and keys (per process, refreshed hourly; unknown kid forces one refetch) ------------


@dataclass
class _Cached:
    fetched: float
    value: Any


_discovery: dict[str, _Cached] = {}
_jwks: dict[str, _Cached] = {}


async def _get_json(settings: Settings, url: str) -> dict[str, Any]:
    if not url_allowed(settings, url):
        raise SsoFailed("The identity provider's endpoints must use https.", "insecure_endpoint")
    try:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_SECONDS, follow_redirects=False) as http:
            resp = await http.get(url, headers={"Accept": "application/json"})
        resp.raise_for_status()
        body = resp.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise SsoFailed("The identity provider could not be reached.", f"fetch_failed:{type(exc).__name__}") from exc
    if not isinstance(body, dict):
        raise SsoFailed("The identity provider sent malformed metadata.", "malformed_metadata")
    return body


async def discover(settings: Settings, issuer: str) -> dict[str, Any]:
    cached = _discovery.get(issuer)
    if cached is not None and time.monotonic() - cached.fetched < DISCOVERY_TTL_SECONDS:
        meta: dict[str, Any] = cached.value
        return meta
    meta = await _get_json(settings, issuer.rstrip("/") + "/.well-known/openid-configuration")
    if meta.get("issuer") != issuer:  # OIDC Discovery 4.3: exact match, or the document is not this issuer's
        raise SsoFailed("The identity provider's discovery document names another issuer.", "issuer_mismatch")
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        value = meta.get(name)
        if not isinstance(value, str) or not url_allowed(settings, value):
            raise SsoFailed("The identity provider's discovery document is incomplete or insecure.", f"bad_{name}")
    _discovery[issuer] = _Cached(time.monotonic(), meta)
    return meta


async def _key_set(settings: Settings, jwks_uri: str, *, force: bool = False) -> KeySet:
    cached = _jwks.get(jwks_uri)
    if not force and cached is not None and time.monotonic() - cached.fetched < JWKS_TTL_SECONDS:
        keys: KeySet = cached.value
        return keys
    try:
        keys = KeySet.import_key_set(await _get_json(settings, jwks_uri))  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise SsoFailed("The identity provider's keys could not be read.", "bad_jwks") from exc
    _jwks[jwks_uri] = _Cached(time.monotonic(), keys)
    return keys


def forget_provider(issuer: str) -> None:
    """Drop cached metadata (the connection changed)."""
    _discovery.pop(issuer, None)


# --- login ----------------------------------------------------------------------------------------------


async def _connection(auth: AuthService, slug: str) -> tuple[uuid.UUID, SsoConnection]:
    broker_id = await broker_id_by_slug(auth, slug)
    if broker_id is None:
        raise NotFound("No single sign-on for this broker.")
    async with auth.db.tenant(broker_id) as s:
        conn = (await s.execute(select(SsoConnection))).scalar_one_or_none()
    if conn is None or not conn.enabled:
        raise NotFound("No single sign-on for this broker.")
    return broker_id, conn


def _oauth_client(auth: AuthService, conn: SsoConnection, redirect_uri: str) -> Any:
    secret = auth.fernet.decrypt(conn.client_secret_enc.encode()).decode()
    return AsyncOAuth2Client(client_id=conn.client_id, client_secret=secret, scope=SCOPE, redirect_uri=redirect_uri,
                             code_challenge_method="S256", timeout=HTTP_TIMEOUT_SECONDS, follow_redirects=False)


async def login_url(auth: AuthService, slug: str) -> str:
    """The provider's authorize URL for a fresh, server-side state."""
    broker_id, conn = await _connection(auth, slug)
    meta = await discover(auth.settings, conn.issuer)
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(48)  # 64 characters: inside RFC 7636's 43..128
    redirect_uri = callback_url(auth.settings, slug)
    async with _oauth_client(auth, conn, redirect_uri) as client:
        url, _ = client.create_authorization_url(meta["authorization_endpoint"], state=state, code_verifier=verifier,
                                                 nonce=nonce)
    async with auth.db.tenant(broker_id) as s:
        # Abandoned logins leave rows behind; each new login sweeps its broker's expired ones.
        await s.execute(delete(SsoState).where(SsoState.created_at < datetime.now(UTC) - STATE_TTL))
        s.add(SsoState(state=state, broker_id=broker_id, nonce=nonce, code_verifier=verifier,
                       redirect_uri=redirect_uri))
        await s.commit()
    return str(url)


# --- callback -------------------------------------------------------------------------------------------


async def _take_state(auth: AuthService, broker_id: uuid.UUID, state: str) -> SsoState:
    """Delete-and-return in one statement: a state is used once, whatever happens next."""
    async with auth.db.tenant(broker_id) as s:
        taken = await s.execute(delete(SsoState).where(SsoState.state == state).returning(SsoState))
        row = taken.scalar_one_or_none()
        await s.commit()
    if row is None:
        raise SsoFailed("Unknown, used or foreign state; start the login again.", "state_unknown")
    if row.created_at < datetime.now(UTC) - STATE_TTL:
        raise SsoFailed("The login took too long; start it again.", "state_expired")
    return row


async def _fetch_tokens(auth: AuthService, conn: SsoConnection, meta: dict[str, Any], row: SsoState,
                        code: str) -> tuple[dict[str, Any], Any]:
    client = _oauth_client(auth, conn, row.redirect_uri)
    methods = meta.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    if "client_secret_basic" not in methods and "client_secret_post" in methods:
        client.token_endpoint_auth_method = "client_secret_post"
    try:
        token = await client.fetch_token(meta["token_endpoint"], grant_type="authorization_code", code=code,
                                         code_verifier=row.code_verifier, redirect_uri=row.redirect_uri)
    except Exception as exc:
        await client.aclose()
        # Authlib raises OAuthError for an error response and its HTTP library's errors (httpx2, or httpx as
        # its fallback) for transport failures; none of them may become a 500.
        reason = f"token_error:{exc.error}" if isinstance(exc, OAuthError) else f"token_failed:{type(exc).__name__}"
        raise SsoFailed("The identity provider refused the code exchange.", reason) from exc
    return dict(token), client


async def verify_id_token(settings: Settings, meta: dict[str, Any], issuer: str, client_id: str, nonce: str,
                          id_token: str, now: int | None = None) -> dict[str, Any]:
    offered = meta.get("id_token_signing_alg_values_supported") or ["RS256"]  # OIDC's default is RS256
    algorithms = sorted(ID_TOKEN_ALGORITHMS.intersection(offered))
    if not algorithms:
        raise SsoFailed("The identity provider offers no acceptable ID token algorithm.", "no_algorithm")
    keys = await _key_set(settings, meta["jwks_uri"])
    try:
        try:
            decoded = jwt.decode(id_token, keys, algorithms=algorithms)
        except InvalidKeyIdError:  # the provider rotated its keys since we cached them
            decoded = jwt.decode(id_token, await _key_set(settings, meta["jwks_uri"], force=True),
                                 algorithms=algorithms)
    except (JoseError, ValueError) as exc:
        raise SsoFailed("The ID token's signature did not verify.", f"id_token_signature:{type(exc).__name__}") \
            from exc
    claims = decoded.claims
    registry = jwt.JWTClaimsRegistry(
        now=now, leeway=ID_TOKEN_LEEWAY,
        iss={"essential": True, "value": issuer}, aud={"essential": True, "value": client_id},
        sub={"essential": True}, exp={"essential": True}, iat={"essential": True},
        nonce={"essential": True, "value": nonce},
    )
    try:
        registry.validate(claims)
    except (JoseError, ValueError, TypeError) as exc:
        raise SsoFailed("The ID token's claims did not verify.", f"id_token_claims:{type(exc).__name__}") from exc
    aud = claims["aud"]
    if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != client_id:  # OIDC Core 3.1.3.7 (4, 5)
        raise SsoFailed("The ID token's claims did not verify.", "id_token_azp")
    if not isinstance(claims["sub"], str) or not 1 <= len(claims["sub"]) <= 255:
        raise SsoFailed("The ID token's claims did not verify.", "id_token_sub")
    return claims


async def _profile(client: Any, meta: dict[str, Any], claims: dict[str, Any]) -> dict[str, Any]:
    """Email and name: from the ID token, else from userinfo (whose sub must be the ID token's, OIDC Core 5.3.2)."""
    if claims.get("email") or not isinstance(meta.get("userinfo_endpoint"), str):
        return claims
    try:
        resp = await client.get(meta["userinfo_endpoint"])
        resp.raise_for_status()
        info = resp.json()
    except Exception as exc:  # see _fetch_tokens: the HTTP library is Authlib's choice
        raise SsoFailed("The identity provider's userinfo could not be read.",
                        f"userinfo_failed:{type(exc).__name__}") from exc
    if not isinstance(info, dict) or info.get("sub") != claims["sub"]:
        raise SsoFailed("The identity provider's userinfo is for another subject.", "userinfo_sub")
    return {**info, **claims}


def _placeholder_email(issuer: str, subject: str) -> str:
    # The reserved .invalid TLD (RFC 2606) never receives mail.
    return f"{hashlib.sha256(f'{issuer} {subject}'.encode()).hexdigest()[:32]}@sso.invalid"


async def _user(s: AsyncSession, broker_id: uuid.UUID, conn: SsoConnection, profile: dict[str, Any]) \
        -> tuple[User, bool]:
    stmt = select(User).where(User.sso_issuer == conn.issuer, User.sso_subject == profile["sub"])
    user = (await s.execute(stmt)).scalar_one_or_none()
    if user is not None:
        return user, False
    email = profile.get("email")
    if not isinstance(email, str) or len(email) > 320 or "@" not in email:
        email = _placeholder_email(conn.issuer, profile["sub"])
    if await repository.email_taken(s, email):
        raise SsoFailed("An account with this email already exists without single sign-on; an admin must resolve it.",
                        "email_conflict")
    name = profile.get("name")
    row = User(broker_id=broker_id, email=email, name=name[:200] if isinstance(name, str) else None,
               role=conn.default_role, sso_issuer=conn.issuer, sso_subject=profile["sub"])
    # A concurrent first login of the same person may win the insert: then that user is the one.
    user, created = await repository.insert_unless_exists(s, row, stmt)
    if user is None:
        raise SsoFailed("The account could not be provisioned.", "provision_conflict")
    return user, created


def sso_amr(claims: dict[str, Any]) -> list[str]:
    idp_amr = claims.get("amr")
    amr = {"sso"}
    if isinstance(idp_amr, list) and MFA_AMR.intersection(a for a in idp_amr if isinstance(a, str)):
        amr |= {"mfa", "otp"}
    return sorted(amr)


async def _audit_failure(auth: AuthService, broker_id: uuid.UUID, conn: HTTPConnection, reason: str) -> None:
    async with auth.db.tenant(broker_id) as s:
        await audit.record(s, broker_id=broker_id, action="auth.sso_failed", conn=conn, actor_type="anonymous",
                           details={"reason": reason})
        await s.commit()


async def callback(auth: AuthService, slug: str, code: str | None, state: str | None, error: str | None,
                   conn: HTTPConnection) -> dict[str, Any]:
    broker_id = await broker_id_by_slug(auth, slug)
    if broker_id is None:
        raise SsoError("Unknown, used or foreign state; start the login again.")
    try:
        return await _callback(auth, broker_id, code, state, error, conn)
    except SsoFailed as exc:
        await _audit_failure(auth, broker_id, conn, exc.reason)
        raise


async def _callback(auth: AuthService, broker_id: uuid.UUID, code: str | None, state: str | None, error: str | None,
                    conn: HTTPConnection) -> dict[str, Any]:
    if not state or len(state) > 200:
        raise SsoFailed("The callback has no valid state.", "state_missing")
    row = await _take_state(auth, broker_id, state)
    if error:
        raise SsoFailed("The identity provider refused the login.", f"provider_error:{error[:100]}")
    if not code or len(code) > 2048:
        raise SsoFailed("The callback has no code.", "code_missing")
    async with auth.db.tenant(broker_id) as s:
        sso = (await s.execute(select(SsoConnection))).scalar_one_or_none()
    if sso is None or not sso.enabled:
        raise SsoFailed("Single sign-on is not enabled for this broker.", "connection_disabled")
    meta = await discover(auth.settings, sso.issuer)
    token, client = await _fetch_tokens(auth, sso, meta, row, code)
    try:  # the client has sent a request already, so it is closed explicitly rather than entered
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise SsoFailed("The identity provider sent no ID token.", "id_token_missing")
        claims = await verify_id_token(auth.settings, meta, sso.issuer, sso.client_id, row.nonce, id_token)
        profile = await _profile(client, meta, claims)
    finally:
        await client.aclose()
    amr = sso_amr(claims)
    async with auth.db.tenant(broker_id) as s:
        user, created = await _user(s, broker_id, sso, profile)
        if user.status != "active":
            await s.rollback()
            raise Unauthorized("This account is disabled.")
        user.last_login_at = datetime.now(UTC)
        refresh_token, sid = await refresh.issue(s, auth.settings, auth.secrets.pepper, broker_id=broker_id,
                                                 user_id=user.id, amr=amr)
        await audit.record(s, broker_id=broker_id, action="auth.sso_login", conn=conn, actor_type="user",
                           actor_id=str(user.id), target_type="user", target_id=user.id,
                           details={"issuer": sso.issuer, "provisioned": created, "amr": amr})
        await s.commit()
        return token_pair(auth, user, refresh_token, amr, sid)
