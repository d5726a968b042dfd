"""Authentication: turn a request's credential into a Principal, fast and fail-closed.

Credentials: `Authorization: Bearer <key or access token>` or `X-API-Key: <key>`. A key is parsed and
its checksum verified before any lookup; the key record and the broker come from short-lived
in-process caches (loaded through the platform role, since the tenant is not known yet); the secret
is compared as an HMAC in constant time. A publishable key is accepted only from a page whose Origin
is on the broker's allow-list, and only grants stateless calculations. A widget session token (`fxw_`,
app/widget/session.py) stands for a publishable key whose page Origin was checked when it was issued.
"""

from __future__ import annotations

import asyncio
import hmac
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet
from sqlalchemy import exists, func, select
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import HTTPConnection

from app.auth import keys, widget_session
from app.auth.cache import BrokerRecord, KeyRecord, TtlCache
from app.auth.permissions import PUBLISHABLE_SCOPES, ROLE_PERMISSIONS, permissions_for_scopes
from app.auth.principal import Principal
from app.auth.revocation import Revocations
from app.auth.throttle import Policy, Throttle
from app.auth.tokens import LEEWAY_SECONDS, AccessClaims, InvalidToken, TokenSigner
from app.auth.widget_tokens import WidgetTokenSigner
from app.client_ip import client_ip, parse_networks
from app.config import Settings
from app.db.engine import Database
from app.errors import Forbidden, OriginNotAllowed, Unauthorized
from app.models import ApiKey, Broker, RefreshToken, User
from app.redisdb.hub import RedisHub
from app.secrets import AppSecrets


def broker_record(row: Broker) -> BrokerRecord:
    return BrokerRecord(id=row.id, slug=row.slug, name=row.name, tier=row.tier, status=row.status,
                        is_platform=row.is_platform, domains=tuple(row.domains or ()), config=dict(row.config or {}),
                        config_version=row.config_version)


class AuthService:
    def __init__(self, settings: Settings, secrets: AppSecrets, db: Database) -> None:
        self.settings = settings
        self.secrets = secrets
        self.db = db
        self.signer = TokenSigner(secrets.jwt_private_key_pem, settings.jwt_issuer, settings.access_token_minutes * 60)
        self.fernet = Fernet(secrets.encryption_key)
        self.widget_tokens = WidgetTokenSigner(secrets.session_secret, settings.jwt_issuer,
                                               settings.widget_session_seconds)
        self.hasher = PasswordHasher(time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib)
        # Verified against when the user does not exist, so "no such user" costs what "wrong password" costs.
        self.dummy_hash = self.hasher.hash(uuid.uuid4().hex)
        # Compared against when no key has the presented id, so "no such key" takes the wrong-secret path.
        self.dummy_key_hash = keys.hash_secret(secrets.pepper, uuid.uuid4().hex)
        self.keys: TtlCache[str, KeyRecord] = TtlCache(settings.key_cache_seconds)
        self.brokers: TtlCache[uuid.UUID, BrokerRecord] = TtlCache(settings.key_cache_seconds)
        # A key presented again while its cached row is the same object it was verified against needs no
        # second parse and HMAC (~5 % of a position size's CPU): raw key -> (parsed, that row object). A
        # reloaded, dropped or rotated row is a new object, so the next request verifies in full again.
        # Holding the raw keys is no wider exposure than the requests that carry them through this process.
        self.verified: dict[str, tuple[keys.ParsedKey, KeyRecord]] = {}
        # key row id -> (last used, ip); written in batches by the background writer, never per request
        self.key_usage: dict[uuid.UUID, tuple[datetime, str | None]] = {}
        # Set in the lifespan when Redis is there: tells every worker to drop a changed key or broker.
        self.announce: Callable[[str], None] | None = None
        self.subscribed: asyncio.Event | None = None
        # Ended sessions and disabled users (app.auth.revocation); `synced` once reloaded after a subscribe.
        self.revocations = Revocations(horizon_s=settings.access_token_minutes * 60 + LEEWAY_SECONDS + 5)
        self.synced = False
        self._sync_task: asyncio.Task[None] | None = None
        self._checked: dict[str, tuple[float, bool]] = {}  # sid or user -> (valid until, active); not live only
        self.revocation_check_seconds = 1.0
        self.trusted_proxies = parse_networks(settings.trusted_proxies)
        self.throttle = Throttle(
            Policy(settings.login_free_failures, settings.login_lockout_failures, settings.login_lockout_seconds),
            Policy(settings.login_ip_free_failures, settings.login_ip_lockout_failures, settings.login_lockout_seconds),
            window_seconds=settings.login_lockout_seconds,
            mfa=Policy(settings.mfa_max_failures, 3 * settings.mfa_max_failures, 86_400,
                       base_delay=settings.mfa_lockout_seconds, max_delay=86_400, window=86_400))

    def use_redis(self, hub: RedisHub, subscribed: asyncio.Event | None = None) -> None:
        """Called in the lifespan: the login throttle counts in Redis (shared by every worker); `subscribed`
        is set while this worker receives the invalidation channel (app.redisdb.invalidation)."""
        self.throttle.use(hub)
        self.subscribed = subscribed

    def client_ip(self, conn: HTTPConnection) -> str:
        return client_ip(conn.scope, self.trusted_proxies)

    # --- loaders (platform role: no tenant is known before authentication) -------------------------
    async def hash_password(self, password: str) -> str:
        # argon2 is deliberately slow (tens of ms) and releases the GIL: run it off the event loop.
        return await anyio.to_thread.run_sync(self.hasher.hash, password)

    async def verify_password(self, password_hash: str, password: str) -> bool:
        def check() -> bool:
            try:
                return self.hasher.verify(password_hash, password)
            except (VerificationError, InvalidHashError):
                return False

        return await anyio.to_thread.run_sync(check)

    async def _load_key(self, key_id: str) -> KeyRecord | None:
        async with self.db.platform() as s:
            row = (await s.execute(select(ApiKey).where(ApiKey.key_id == key_id))).scalar_one_or_none()
        if row is None:
            return None
        return KeyRecord(id=row.id, broker_id=row.broker_id, key_id=row.key_id, kind=row.kind, mode=row.mode,
                         scopes=tuple(row.scopes), secret_hash=row.secret_hash, status=row.status,
                         expires_at=row.expires_at)

    async def _load_broker(self, broker_id: uuid.UUID) -> BrokerRecord | None:
        async with self.db.platform() as s:
            row = await s.get(Broker, broker_id)
        return broker_record(row) if row is not None else None

    async def broker(self, broker_id: uuid.UUID) -> BrokerRecord | None:
        return await self.brokers.get(broker_id, self._load_broker)

    async def key_record(self, key_id: str) -> KeyRecord | None:
        return await self.keys.get(key_id, self._load_key)

    def forget_key(self, key_id: str) -> None:
        self.keys.drop(key_id)
        if self.announce is not None:
            self.announce(f"key:{key_id}")

    def forget_broker(self, broker_id: uuid.UUID) -> None:
        self.brokers.drop(broker_id)
        if self.announce is not None:
            self.announce(f"broker:{broker_id}")

    def invalidated(self, message: str) -> None:
        """Another worker (or this one) changed a key or broker, or revoked a session or user."""
        kind, _, ident = message.partition(":")
        if kind in ("sid", "user"):
            self.revocations.message(kind, ident)
        elif kind == "key":
            self.keys.drop(ident)
        elif kind == "broker":
            try:
                self.brokers.drop(uuid.UUID(ident))
            except ValueError:
                pass

    def clear_caches(self) -> None:
        """The invalidation channel was (re)subscribed: messages may have been missed meanwhile."""
        self.keys.clear()
        self.brokers.clear()
        self.synced = False
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._sync_task = loop.create_task(self._sync_revocations())

    # --- revocation (app.auth.revocation) ---------------------------------------------------------
    def revoke_session(self, sid: uuid.UUID) -> None:
        """A logged-out or revoked refresh family: its access tokens stop here now, elsewhere on the message."""
        self.revocations.revoke_session(str(sid))
        if self.announce is not None:
            self.announce(f"sid:{sid}")

    def revoke_user(self, user_id: uuid.UUID) -> None:
        """A disabled user: every access token issued to it before now stops."""
        now = time.time()
        self.revocations.revoke_user(str(user_id), now)
        if self.announce is not None:
            self.announce(f"user:{user_id}@{now!r}")

    def live(self) -> bool:
        """True while this worker receives every revocation message (subscribed, and reloaded since)."""
        return self.synced and self.subscribed is not None and self.subscribed.is_set()

    async def _sync_revocations(self) -> None:
        """Reload the revocations of the last token lifetime from Postgres (retried until it works)."""
        while True:
            since = datetime.now(UTC) - timedelta(seconds=self.revocations.horizon_s)
            try:
                async with self.db.platform() as s:
                    families = (await s.execute(
                        select(RefreshToken.family_id, func.max(RefreshToken.revoked_at))
                        .where(RefreshToken.revoked_at > since).group_by(RefreshToken.family_id))).all()
                    users = (await s.execute(select(User.id, User.updated_at).where(
                        User.status != "active", User.updated_at > since))).all()
            except (SQLAlchemyError, OSError):
                await asyncio.sleep(1.0)
                continue
            for family_id, revoked_at in families:
                if revoked_at is not None:
                    self.revocations.revoke_session(str(family_id), revoked_at.timestamp())
            for user_id, updated_at in users:
                self.revocations.revoke_user(str(user_id), updated_at.timestamp())
            self.revocations.prune()
            self.synced = True
            return

    async def _session_active(self, claims: AccessClaims) -> bool:
        """Postgres's word on a token's session, for a worker that may have missed revocation messages."""
        key = claims.sid or str(claims.sub)
        now = time.monotonic()
        hit = self._checked.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            async with self.db.tenant(claims.broker_id) as s:
                status = await s.scalar(select(User.status).where(User.id == claims.sub))
                revoked = claims.sid is not None and bool(await s.scalar(select(
                    exists().where(RefreshToken.family_id == uuid.UUID(claims.sid),
                                   RefreshToken.revoked_at.is_not(None)))))
        except (SQLAlchemyError, OSError, ValueError):
            return True  # Postgres is unreachable too: the signature stands, as a cached key's record does
        if len(self._checked) >= 50_000:
            self._checked.clear()
        active = status == "active" and not revoked
        self._checked[key] = (now + self.revocation_check_seconds, active)
        return active

    # --- the credential --------------------------------------------------------------------------
    @staticmethod
    def credential(conn: HTTPConnection) -> str | None:
        auth = conn.headers.get("authorization")
        if auth:
            scheme, _, value = auth.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise Unauthorized("Use `Authorization: Bearer <key or token>`.")
            return value.strip()
        key = conn.headers.get("x-api-key")
        return key.strip() if key else None

    async def authenticate(self, conn: HTTPConnection) -> Principal:
        cred = self.credential(conn)
        if not cred:
            raise Unauthorized("Send an API key or access token: `Authorization: Bearer <credential>`.")
        if cred.startswith(widget_session.PREFIX):  # the embeddable widget's iframe (app/widget/session.py)
            return await widget_session.authenticate(self, cred)
        if keys.looks_like_key(cred):
            return await self._from_key(cred, conn)
        return await self._from_token(cred)

    async def active_broker(self, broker_id: uuid.UUID) -> BrokerRecord:
        broker = await self.broker(broker_id)
        if broker is None or broker.status != "active":
            raise Unauthorized("The credential's broker is not active.")
        return broker

    async def verify_key(self, raw: str) -> tuple[KeyRecord, BrokerRecord]:
        """An active key's record and its active broker, or 401. Also the widget config's check."""
        known = self.verified.get(raw)
        if known is not None and await self.keys.get(known[0].key_id, self._load_key) is known[1]:
            record = known[1]
        else:
            record = (await self._verify_secret(raw))[1]
        if record.status != "active":
            raise Unauthorized("This API key has been revoked.")
        if record.expires_at is not None and record.expires_at <= datetime.now(UTC):
            raise Unauthorized("This API key has expired (rotated).")
        return record, await self.active_broker(record.broker_id)

    async def _verify_secret(self, raw: str) -> tuple[keys.ParsedKey, KeyRecord]:
        parsed = keys.parse(raw)
        if parsed is None:
            raise Unauthorized("Malformed API key (bad format or checksum).")
        # One path for an unknown id and a wrong secret: the lookup (cached, misses too), one HMAC of the
        # secret, one constant-time compare (against a dummy digest when no key has this id), one answer.
        record = await self.keys.get(parsed.key_id, self._load_key)
        digest = keys.hash_secret(self.secrets.pepper, parsed.secret)
        matches = hmac.compare_digest(record.secret_hash if record is not None else self.dummy_key_hash, digest)
        if record is None or not matches or record.kind != parsed.kind or record.mode != parsed.mode:
            raise Unauthorized("Unknown API key.")
        if len(self.verified) >= 10_000:
            self.verified.clear()  # bounded; a cleared entry costs one full verification
        self.verified[raw] = (parsed, record)
        return parsed, record

    def note_key_use(self, record: KeyRecord, conn: HTTPConnection) -> None:
        self.key_usage[record.id] = (datetime.now(UTC), conn.client.host if conn.client else None)

    async def _from_key(self, raw: str, conn: HTTPConnection) -> Principal:
        record, broker = await self.verify_key(raw)
        self.note_key_use(record, conn)
        if record.kind == "publishable":
            origin = conn.headers.get("origin")
            if not origin or origin.rstrip("/") not in broker.allowed_origins:
                raise OriginNotAllowed(f"Origin {origin or '(none)'} is not allowed for this publishable key.")
            return Principal(broker_id=record.broker_id, kind="publishable_key",
                             permissions=permissions_for_scopes(PUBLISHABLE_SCOPES), api_key_id=record.id,
                             scopes=PUBLISHABLE_SCOPES)
        return Principal(broker_id=record.broker_id, kind="secret_key",
                         permissions=permissions_for_scopes(record.scopes), api_key_id=record.id, scopes=record.scopes)

    async def _from_token(self, token: str) -> Principal:
        try:
            claims = self.signer.verify(token)
        except InvalidToken as exc:
            raise Unauthorized("Invalid or expired access token.") from exc
        if self.revocations.revoked(str(claims.sub), claims.sid, claims.iat) or \
                (not self.live() and not await self._session_active(claims)):
            raise Unauthorized("This session has ended (logged out, revoked, or the user was disabled); log in again.")
        await self.active_broker(claims.broker_id)
        perms = ROLE_PERMISSIONS.get(claims.role)
        if perms is None:
            raise Unauthorized("Invalid access token.")
        return Principal(broker_id=claims.broker_id, kind="user", permissions=perms, role=claims.role,
                         user_id=claims.sub, amr=claims.amr)


# Admin powers (everything a BROKER_USER lacks) need a second factor when a person uses them.
ADMIN_PERMISSIONS = ROLE_PERMISSIONS["SUPERADMIN"] - ROLE_PERMISSIONS["BROKER_USER"]


class MfaEnrolmentRequired(Forbidden):
    slug = "mfa-required"


def require_platform_mfa(principal: Principal) -> None:
    """A platform operator (SUPERADMIN) reaches every tenant: no route serves one without a second factor,
    not even a read. Only the MFA enrolment routes themselves are exempt (app.deps)."""
    if principal.kind == "user" and principal.is_superadmin and "otp" not in principal.amr:
        raise MfaEnrolmentRequired("A platform operator needs MFA for every route: enrol at /api/v1/auth/mfa/enrol, "
                                   "confirm, log in again with a code.")


def require_any(principal: Principal, *permissions: str) -> None:
    """`require` of the first of `permissions` the principal has (the first when it has none: its refusal)."""
    require(principal, next((p for p in permissions if principal.can(p)), permissions[0]))


def require(principal: Principal, permission: str) -> None:
    """The one permission check. API keys carry scopes; users carry a role and, for admin powers, MFA."""
    require_platform_mfa(principal)
    if not principal.can(permission):
        raise Forbidden(f"This credential lacks the permission {permission}.")
    if principal.kind == "user" and permission in ADMIN_PERMISSIONS and "otp" not in principal.amr:
        raise MfaEnrolmentRequired("Admin actions need MFA: enrol at /api/v1/auth/mfa/enrol, confirm, log in again.")
