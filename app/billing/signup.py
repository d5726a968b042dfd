"""Self-serve sign-up: `POST /api/v1/signup`, then the emailed link `POST|GET /api/v1/signup/verify`.

1. The sign-up makes a `pending` broker (no API keys) on the free tier with its first BROKER_ADMIN, and
   mails a signed, expiring link (itsdangerous, keyed by the session secret). A pending broker cannot log
   in and has no keys. The same sign-up sent again (a retry: same company, same email) mails the link
   again and answers the same; with an Idempotency-Key, a retry replays the first answer (no second mail);
   limits per client address and per email domain stop bulk sign-ups.
2. The link activates the broker and starts the 30-day trial (billing_trial_days). Then: log in
   (`POST /api/v1/auth/token` with the slug), enrol MFA (admin powers need it, as for every admin), create
   API keys, subscribe (`POST /api/v1/billing/checkout`).
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from typing import Any
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import func, select
from starlette.requests import HTTPConnection

from app.admin.brokers.schemas import BrokerCreate
from app.admin.brokers.service import create_broker, name_key
from app.audit import service as audit
from app.billing import abuse
from app.billing.schemas import SignupOut, SignupRequest, VerifiedOut, VerifyRequest
from app.billing.service import BillingService
from app.client_ip import client_ip
from app.errors import Conflict, InvalidField, NotFound
from app.idempotency.errors import IdempotencyKeyReused
from app.idempotency.service import parse_key
from app.jsonbody import StrictRoute
from app.models import Broker, User
from app.redisdb.hub import RedisUnavailable
from app.services import services

router = APIRouter(prefix="/api/v1/signup", tags=["signup"], route_class=StrictRoute)
SALT = "forexrisk-signup-verify"
NEXT_AFTER_VERIFY = [
    "Log in: POST /api/v1/auth/token with {broker: slug, email, password}.",
    "Enrol MFA (admin powers need it): POST /api/v1/auth/mfa/enrol, then /api/v1/auth/mfa/confirm, log in again "
    "with totpCode.",
    "Create API keys: POST /api/v1/brokers/{brokerId}/api-keys.",
    "Subscribe when ready: POST /api/v1/billing/checkout {tier}.",
]


def serializer(billing: BillingService) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(billing.auth.secrets.session_secret, salt=SALT)


def verification_link(billing: BillingService, broker_id: uuid.UUID, user_id: uuid.UUID) -> str:
    token = serializer(billing).dumps({"b": str(broker_id), "u": str(user_id)})
    return f"{billing.settings.public_base_url.rstrip('/')}/api/v1/signup/verify?token={token}"


async def _pending_retry(billing: BillingService, spec: SignupRequest) -> tuple[Broker, uuid.UUID] | None:
    """The pending broker this same sign-up made before (same name, same admin email), if any."""
    async with billing.db.platform() as session:
        same_name = func.lower(func.regexp_replace(func.btrim(Broker.name), r"\s+", " ", "g")) == name_key(
            spec.company_name)
        row = (await session.execute(
            select(Broker, User.id).join(User, User.broker_id == Broker.id)
            .where(same_name, Broker.status == "pending", func.lower(User.email) == spec.admin_email.lower())
        )).first()
    return (row[0], row[1]) if row is not None else None


async def signup(billing: BillingService, spec: SignupRequest, conn: HTTPConnection) -> dict[str, Any]:
    settings = billing.settings
    if not settings.signup_enabled:
        raise NotFound("Self-serve sign-up is not enabled on this deployment.")
    domain = spec.admin_email.rsplit("@", 1)[1].lower()
    svc = services(conn.app)
    await abuse.check(svc.redis, client_ip(conn.scope, svc.ratelimits.trusted_proxies), domain,
                      settings.signup_per_ip_per_hour, settings.signup_per_domain_per_day)
    try:
        out = await create_broker(billing.db, billing.auth, BrokerCreate(
            name=spec.company_name, tier="free", admin_email=spec.admin_email, admin_password=spec.password),
            conn=conn, status="pending", issue_keys=False, system_actor="signup")
        broker_id, slug, user_id = out["id"], out["slug"], out["adminUserId"]
    except Conflict:
        again = await _pending_retry(billing, spec)
        if again is None:
            raise
        broker, user_id = again
        broker_id, slug = broker.id, broker.slug
    link = verification_link(billing, broker_id, user_id)
    await billing.mailer.send(spec.admin_email, "Confirm your ForexRisk sign-up",
                              f"Welcome to ForexRisk.\n\nConfirm your email to start the "
                              f"{settings.billing_trial_days}-day free trial of {spec.company_name}:\n\n{link}\n\n"
                              f"The link works for {settings.signup_link_hours} hours. Your broker id (slug) for "
                              f"logging in is: {slug}\n")
    return {"brokerId": broker_id, "slug": slug, "adminEmail": spec.admin_email, "status": "pending_verification",
            "next": ["Open the link we emailed (or POST /api/v1/signup/verify {token}).", *NEXT_AFTER_VERIFY[:1]]}


async def verify(billing: BillingService, token: str, conn: HTTPConnection) -> dict[str, Any]:
    try:
        data = serializer(billing).loads(token, max_age=billing.settings.signup_link_hours * 3600)
        broker_id, user_id = uuid.UUID(data["b"]), uuid.UUID(data["u"])
    except SignatureExpired:
        raise InvalidField("token", "the link has expired: sign up again to get a new one", "expired") from None
    except (BadSignature, KeyError, TypeError, ValueError):
        raise InvalidField("token", "not a valid sign-up link", "invalid") from None
    async with billing.db.platform() as session:
        broker = await session.get(Broker, broker_id, with_for_update=True)
        if broker is None or broker.status not in ("pending", "active"):
            raise InvalidField("token", "this sign-up no longer exists", "invalid")
        if broker.status == "pending":
            broker.status = "active"
            broker.updated_at = billing.clock()
            await audit.record(session, broker_id=broker_id, action="broker.signup_verified", conn=conn,
                               actor_type="user", actor_id=str(user_id), target_type="broker", target_id=broker_id)
        account = await billing.open_account(session, broker_id, trial=True)
        await session.commit()
    billing.auth.forget_broker(broker_id)
    return {"brokerId": broker_id, "slug": broker.slug, "status": "active", "trialEndsAt": account.trial_ends_at,
            "next": NEXT_AFTER_VERIFY}


def _billing(request: Request) -> BillingService:
    found: BillingService = services(request.app).billing
    return found


IDEMPOTENCY_TTL_S = 24 * 3600


async def idempotent_signup(billing: BillingService, spec: SignupRequest, conn: HTTPConnection,
                            response: Response) -> dict[str, Any]:
    """`Idempotency-Key` on the sign-up. Nobody is logged in yet, so the shared middleware (which stores
    answers per credential in Postgres) passes it by: here the first answer is kept in Redis for 24 h under
    an HMAC of the key, with an HMAC of the body (the password is in it). The same key and body replay that
    answer (`Idempotent-Replayed: true`) without a second mail or a second count against the abuse limits;
    the key with another body is 422 idempotency-key-reused. Redis down: the sign-up runs (its own retry
    rule still answers the same broker)."""
    values = [v for k, v in conn.scope["headers"] if k == b"idempotency-key"]
    if not values:
        return await signup(billing, spec, conn)
    secret = billing.auth.secrets.session_secret.encode()
    slot = "signup:idem:" + hmac.new(secret, b"key:" + parse_key(values).encode(), hashlib.sha256).hexdigest()
    fingerprint = hmac.new(secret, b"body:" + orjson.dumps(spec.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS),
                           hashlib.sha256).hexdigest()
    hub = services(conn.app).redis
    try:
        stored = await hub.get(slot)
    except RedisUnavailable:
        stored = None
    if stored is not None:
        first = orjson.loads(stored)
        if first["fingerprint"] != fingerprint:
            raise IdempotencyKeyReused("This Idempotency-Key was used for another sign-up.")
        response.headers["Idempotent-Replayed"] = "true"
        answer: dict[str, Any] = first["answer"]
        return answer
    out = await signup(billing, spec, conn)
    try:
        await hub.set(slot, orjson.dumps({"fingerprint": fingerprint, "answer": out}, default=str), IDEMPOTENCY_TTL_S)
    except RedisUnavailable:
        pass
    return out


@router.post("", status_code=202, response_model=SignupOut,
             summary="Sign up a broker: a 30-day free trial once the admin's email is confirmed")
async def post_signup(body: SignupRequest, request: Request, response: Response) -> dict[str, Any]:
    return await idempotent_signup(_billing(request), body, request, response)


@router.post("/verify", response_model=VerifiedOut, summary="Confirm the sign-up email (the token from the link)")
async def post_verify(body: VerifyRequest, request: Request) -> dict[str, Any]:
    return await verify(_billing(request), body.token, request)


def wants_page(request: Request) -> bool:
    """A browser opening the emailed link (it asks for HTML first), not an API client (JSON or anything)."""
    accept = request.headers.get("accept", "")
    return accept.startswith("text/html") or ("text/html" in accept and "json" not in accept)


@router.get("/verify", response_model=VerifiedOut, summary="Confirm the sign-up email (the emailed link itself)",
            description="An API client gets the JSON answer. A browser (Accept: text/html) is sent on to the "
                        "console's sign-in page: `/admin/#/signin?verified={slug}`, or `?verify=expired|invalid`.",
            responses={303: {"description": "A browser: on to the console's sign-in page"}})
async def get_verify(request: Request, token: str = Query(min_length=10, max_length=2000)) -> Any:
    if not wants_page(request):
        return await verify(_billing(request), token, request)
    try:
        out = await verify(_billing(request), token, request)
    except InvalidField as exc:
        code = str(exc.errors[0].get("code", "invalid")) if exc.errors else "invalid"
        return RedirectResponse(f"/admin/#/signin?verify={quote(code)}", status_code=303)
    return RedirectResponse(f"/admin/#/signin?verified={quote(out['slug'])}", status_code=303)
