"""ASGI entry point: `app.main:app`, built by create_app()."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.responses import Response

from app.admin.brokers.router import router as brokers_router
from app.admin.sso.router import router as sso_admin_router
from app.admin.users.router import router as users_router
from app.auth.router import router as auth_router
from app.auth.service import AuthService
from app.auth.sso_router import router as sso_router
from app.calc.flags import FLAG_CODES
from app.calculations.cache import ResultCache
from app.calculations.history import router as history_router
from app.calculations.pipeline import CalculationDispatch
from app.calculations.pool import CalcPool
from app.calculations.routes import REQUEST_MODELS, ROUTES_BY_PATH, warm_up
from app.calculations.routes import router as calculations_router
from app.calculations.store import CalculationRecorder
from app.config import Settings, get_settings
from app.db.bootstrap import prepare
from app.db.engine import Database
from app.errors import PROBLEM_TYPES, install_error_handlers, problem
from app.health.router import router as health_router
from app.idempotency.middleware import IdempotencyMiddleware
from app.idempotency.routes import applies as idempotency_applies
from app.instruments.router import router as instruments_router
from app.logging import configure_logging
from app.middleware import RequestContextMiddleware
from app.observability.middleware import MetricsMiddleware
from app.observability.router import router as metrics_router
from app.ratelimit.client_ip import parse_networks
from app.ratelimit.gate import RateLimits
from app.ratelimit.limiter import Limiter
from app.ratelimit.tiers import TierLimit
from app.redisdb import embedded as embedded_redis
from app.redisdb.hub import RedisHub
from app.redisdb.invalidation import Invalidation
from app.secrets import load_secrets
from app.services import Services
from app.widget.router import router as widget_router
from app.widget.service import WidgetService

DESCRIPTION = """
Risk calculations for retail forex/CFD trading: position size, pip value, margin, P&L, reward-to-risk,
Kelly, risk of ruin, for any account currency and instrument.

* JSON is camelCase. Every response names the conventions it used (`conventions`) and the rates it
  converted with (`ratesUsed`).
* Every error is `application/problem+json` (RFC 9457) with `errors[].field` naming the field at fault
  and `request_id`.
* Add `?explain=true` to a calculation to get its ordered steps with formulas, inputs and values.

Flag codes: """ + ", ".join(f"`{c}`" for c in FLAG_CODES)


def operation_id(route: APIRoute) -> str:
    tag = route.tags[0] if route.tags else "default"
    return f"{tag}-{route.name}"


IDEMPOTENCY_PARAM = {
    "name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string", "maxLength": 255},
    "description": "Optional. The same key with the same request within 24 h replays the first response "
                   "(`Idempotent-Replayed: true`); with a different request 422; while the first still runs 409.",
}
RATE_LIMIT_HEADERS = {name: {"schema": {"type": "string"}, "description": text} for name, text in (
    ("RateLimit-Policy", 'The tier\'s policy, e.g. `"free";q=40;w=120` (IETF draft).'),
    ("RateLimit", 'Current state, e.g. `"free";r=39;t=3`: remaining units and seconds until reset.'),
    ("RateLimit-Limit", "Bucket depth (burst)."),
    ("RateLimit-Remaining", "Units left now."),
    ("RateLimit-Reset", "Seconds until the bucket is full again, or until the next unit when none is left."),
)}


def document_platform_headers(schema: dict[str, Any]) -> None:
    """Add what the platform layer does to every API operation: rate-limit headers and the 429, and
    Idempotency-Key where the idempotency middleware honours it."""
    for path, operations in schema.get("paths", {}).items():
        if not path.startswith("/api/v1/"):
            continue
        for method, op in operations.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            op["responses"].setdefault("429", {
                "description": "Rate limit exceeded (problem+json) with `Retry-After`",
                "headers": {**RATE_LIMIT_HEADERS, "Retry-After": {"schema": {"type": "integer"}}}})
            for status, response in op["responses"].items():
                if status.startswith("2"):
                    response.setdefault("headers", {}).update(RATE_LIMIT_HEADERS)
            if idempotency_applies(method.upper(), path):
                op.setdefault("parameters", []).append(IDEMPOTENCY_PARAM)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Clients are built here, never at import: Postgres (embedded unless DATABASE_URL is set).
        secrets = load_secrets(settings)
        urls = await prepare(settings, secrets)
        db = Database.connect(urls, settings.db_pool_size)
        auth = AuthService(settings, secrets, db)
        recorder = CalculationRecorder(db, auth.key_usage)
        # Redis (embedded unless REDIS_URL is set): rate-limit buckets, L2 result cache, invalidation.
        redis_url = settings.redis_url or embedded_redis.acquire(settings.data_dir)
        hub = RedisHub(redis_url, timeout=settings.redis_timeout_ms / 1000, retry_seconds=settings.redis_retry_seconds)
        invalidation = Invalidation(hub, auth.invalidated, auth.clear_caches)
        auth.announce = invalidation.publish
        auth.use_redis(hub, invalidation.subscribed)  # login throttle counters; session revocations
        limiter = Limiter(hub, local_divisor=settings.rate_limit_workers, prefix=settings.rate_limit_prefix)
        pre_auth = TierLimit("free", settings.pre_auth_per_minute, settings.pre_auth_burst)
        services = Services(
            settings=settings, db=db, auth=auth, recorder=recorder, redis=hub, invalidation=invalidation,
            limiter=limiter,
            ratelimits=RateLimits(auth, limiter, parse_networks(settings.trusted_proxies), pre_auth,
                                  settings.rate_limits_enabled),
            result_cache=ResultCache(hub, ttl_seconds=settings.cache_ttl_seconds,
                                     min_compute_us=settings.cache_min_compute_us,
                                     l1_entries=settings.cache_l1_entries),
            pool=CalcPool(settings.calc_pool_workers, settings.calc_cpu_budget_seconds),
            widget=WidgetService(auth, db),
        )
        app.state.services = services
        warm_up()
        recorder.start()
        invalidation.start()
        try:
            yield
        finally:
            await invalidation.stop()
            await services.result_cache.drain()
            services.pool.close()
            await recorder.stop()
            await hub.close()
            await db.dispose()
            if settings.redis_url is None:
                embedded_redis.release(settings.data_dir)

    app = FastAPI(
        title="ForexRisk API", version="0.1.0", description=DESCRIPTION, lifespan=lifespan,
        generate_unique_id_function=operation_id, docs_url="/docs", redoc_url=None,
    )
    install_error_handlers(app)
    app.include_router(health_router)
    app.include_router(instruments_router)
    app.include_router(calculations_router)
    app.include_router(history_router)
    app.include_router(auth_router)
    app.include_router(brokers_router)
    app.include_router(users_router)
    app.include_router(sso_router)
    app.include_router(sso_admin_router)
    app.include_router(metrics_router)
    app.include_router(widget_router)

    @app.get("/problems/{slug}", include_in_schema=False)
    async def problem_type(slug: str) -> Response:
        if slug not in PROBLEM_TYPES:
            return problem(None, 404, "not-found", f"No problem type '{slug}'.")
        title, meaning = PROBLEM_TYPES[slug]
        return Response(f'{{"type":"/problems/{slug}","title":"{title}","description":"{meaning}"}}',
                        media_type="application/json")

    def custom_openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in REQUEST_MODELS:
            model_schema = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
            for name, sub in model_schema.pop("$defs", {}).items():
                components.setdefault(name, sub)
            components.setdefault(model.__name__, model_schema)
        document_platform_headers(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = custom_openapi  # type: ignore[method-assign]
    # Calculations are served by their pipeline before FastAPI's router (innermost, so idempotency,
    # request ids, the body limit, rate-limit headers and metrics all apply to them).
    app.add_middleware(CalculationDispatch, routes=ROUTES_BY_PATH)
    app.add_middleware(IdempotencyMiddleware)  # runs inside RequestContextMiddleware
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware)  # outermost: it times everything, 413s included
    return app


app = create_app()
