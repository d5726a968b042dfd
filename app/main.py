"""ASGI entry point: `app.main:app`, built by create_app()."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.responses import Response

from app.admin.brokers.router import router as brokers_router
from app.admin.jobs.router import router as jobs_router
from app.admin.platform_events.router import router as platform_events_router
from app.admin.quotes.router import router as quotes_feed_router
from app.admin.sso.router import router as sso_admin_router
from app.admin.users.router import router as users_router
from app.admin.webhooks.router import router as webhooks_router
from app.alerts.router import router as alerts_router
from app.analytics.outbox import UsageOutbox
from app.analytics.router import router as analytics_router
from app.analytics.service import Analytics
from app.auth.service import AuthService
from app.billing.router import router as billing_router
from app.billing.service import start_billing
from app.billing.signup import router as signup_router
from app.calculations.cache import ResultCache
from app.calculations.history import router as history_router
from app.calculations.pipeline import CalculationDispatch
from app.calculations.pool import CalcPool
from app.calculations.quotes import router as quotes_router
from app.calculations.routes import ROUTES_BY_PATH, warm_up
from app.calculations.routes import router as calculations_router
from app.calculations.store import CalculationRecorder
from app.client_ip import parse_networks
from app.config import Settings, get_settings
from app.console.router import router as console_router
from app.db.bootstrap import prepare, release
from app.db.engine import Database
from app.errors import PROBLEM_TYPES, install_error_handlers, problem
from app.gcpolicy import serve_policy
from app.health.router import router as health_router
from app.idempotency.middleware import IdempotencyMiddleware
from app.instruments.router import router as instruments_router
from app.integrations.market_data.history.service import build_history
from app.integrations.market_data.service import MarketData, build_http_client
from app.integrations.platform_events.service import PlatformEvents
from app.integrations.webhooks.service import WebhookService
from app.integrations.webhooks.ssrf import TargetPolicy
from app.jobs.queue import JobQueue
from app.logging import configure_logging
from app.login.router import router as auth_router
from app.login.sso_router import router as sso_router
from app.middleware import RequestContextMiddleware
from app.observability.middleware import MetricsMiddleware
from app.observability.router import router as metrics_router
from app.observability.tracing import telemetry_config
from app.openapi import DESCRIPTION, operation_id
from app.openapi import install as install_openapi
from app.privacy.holders import AnalyticsHolder
from app.privacy.router import router as privacy_router
from app.privacy.service import PrivacyService
from app.ratelimit.gate import RateLimits
from app.ratelimit.limiter import Limiter
from app.ratelimit.tiers import TierLimit
from app.redisdb import embedded as embedded_redis
from app.redisdb.hub import RedisHub
from app.redisdb.invalidation import Invalidation
from app.reports.router import router as reports_router
from app.secrets import load_secrets
from app.services import Services
from app.storage.objects import build_storage
from app.widget.router import router as widget_router
from app.widget.service import WidgetService
from app.worker import runner as job_worker


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
        recorder = CalculationRecorder(db, auth.key_usage, settings.data_dir / "journal")
        # Redis (embedded unless REDIS_URL is set): rate-limit buckets, L2 result cache, invalidation.
        redis_url = settings.redis_url or embedded_redis.acquire(settings.data_dir, settings.embedded_cleanup)
        hub = RedisHub(redis_url, timeout=settings.redis_timeout_ms / 1000, retry_seconds=settings.redis_retry_seconds)
        invalidation = Invalidation(hub, auth.invalidated, auth.clear_caches)
        auth.announce = invalidation.publish
        auth.use_redis(hub, invalidation.subscribed)  # login throttle counters; session revocations
        limiter = Limiter(hub, local_divisor=settings.rate_limit_workers, prefix=settings.rate_limit_prefix)
        pre_auth = TierLimit("free", settings.pre_auth_per_minute, settings.pre_auth_burst)
        # Market data: one outbound httpx client for the quote vendors, closed at shutdown.
        vendor_http = build_http_client()
        analytics = Analytics(settings, db)
        jobs = JobQueue(redis_url, settings.jobs_queue_name)
        services = Services(
            settings=settings, db=db, auth=auth, recorder=recorder, redis=hub, invalidation=invalidation,
            limiter=limiter,
            ratelimits=RateLimits(auth, limiter, parse_networks(settings.trusted_proxies), pre_auth,
                                  settings.rate_limits_enabled, settings.widget_pages_per_ip,
                                  settings.widget_pages_per_broker),
            result_cache=ResultCache(hub, ttl_seconds=settings.cache_ttl_seconds,
                                     l1_entries=settings.cache_l1_entries),
            pool=CalcPool(settings.calc_pool_workers, settings.calc_cpu_budget_seconds,
                          warm_modules=("app.calculations.routes",)),
            widget=WidgetService(auth, db),
            market_data=MarketData.build(settings, db, hub, vendor_http),
            history=build_history(settings, db),
            billing=await start_billing(settings, db, auth),
            usage=UsageOutbox(db, settings.data_dir / "usage-journal"),
            analytics=analytics,
            jobs=jobs,
            # GDPR erasure reaches ClickHouse through the analytics store (when analytics are on at all).
            privacy=PrivacyService(db, auth, [AnalyticsHolder(analytics)] if settings.analytics_enabled else []),
            storage=build_storage(settings),
            platform_events=PlatformEvents(db, auth.fernet, settings.platform_events_secret_overlap_hours),
            webhooks=WebhookService(
                db, auth.fernet, TargetPolicy(https_only=settings.environment == "production",
                                              allow_loopback=settings.webhooks_loopback_enabled),
                timeout_seconds=settings.webhooks_timeout_seconds,
                response_max_bytes=settings.webhooks_response_max_bytes,
                overlap_hours=settings.webhooks_secret_overlap_hours, jobs=jobs),
        )
        app.state.services = services
        services.widget.on_load = services.usage.widget_loaded
        warm_up()
        recorder.start()
        services.usage.start()
        await services.analytics.start()  # opens ClickHouse in a worker thread; never on a request's path
        invalidation.start()
        # Background jobs run here unless a `forexrisk worker` deployment runs them (Settings.jobs_in_process).
        worker = job_worker.in_process(services) if settings.jobs_worker_in_process else None
        if worker is not None:
            worker.start()
        undo_gc_policy = serve_policy(settings.gc_gen0_threshold)  # last: freezes what start-up built
        try:
            yield
        finally:
            undo_gc_policy()
            if worker is not None:
                await worker.stop()  # first: its jobs use the clients closed below
            await services.jobs.close()
            await invalidation.stop()
            await services.result_cache.drain()
            await services.history.close()
            await services.webhooks.close()
            await services.billing.close()
            services.pool.close()
            await recorder.stop()
            await services.usage.stop()
            await services.analytics.stop()
            await vendor_http.aclose()
            await hub.close()
            await db.dispose()
            if settings.redis_url is None:
                embedded_redis.release(settings.data_dir)
            release(settings, urls)

    app = FastAPI(
        title="ForexRisk API", version="0.1.0", description=DESCRIPTION, lifespan=lifespan,
        generate_unique_id_function=operation_id, docs_url=None, redoc_url=None,
        telemetry=telemetry_config(settings.telemetry),  # tracing: off unless OTEL_* or FOREXRISK_TELEMETRY
    )
    install_error_handlers(app)
    app.include_router(health_router)
    app.include_router(instruments_router)
    app.include_router(calculations_router)
    app.include_router(history_router)
    app.include_router(auth_router)
    app.include_router(brokers_router)
    app.include_router(quotes_feed_router)
    app.include_router(quotes_router)
    app.include_router(users_router)
    app.include_router(analytics_router)
    app.include_router(privacy_router)
    app.include_router(reports_router)
    app.include_router(sso_router)
    app.include_router(sso_admin_router)
    app.include_router(metrics_router)
    app.include_router(widget_router)
    app.include_router(billing_router)
    app.include_router(signup_router)
    app.include_router(jobs_router)
    app.include_router(console_router)
    app.include_router(platform_events_router)
    app.include_router(alerts_router)
    app.include_router(webhooks_router)

    @app.get("/problems/{slug}", include_in_schema=False)
    async def problem_type(slug: str) -> Response:
        if slug not in PROBLEM_TYPES:
            return problem(None, 404, "not-found", f"No problem type '{slug}'.")
        title, meaning = PROBLEM_TYPES[slug]
        return Response(f'{{"type":"/problems/{slug}","title":"{title}","description":"{meaning}"}}',
                        media_type="application/json")

    install_openapi(app)
    # Calculations are served by their pipeline before FastAPI's router (innermost, so idempotency,
    # request ids, the body limit, rate-limit headers and metrics all apply to them).
    app.add_middleware(CalculationDispatch, routes=ROUTES_BY_PATH)
    app.add_middleware(IdempotencyMiddleware)  # runs inside RequestContextMiddleware
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware)  # outermost: it times everything, 413s included
    return app


app = create_app()
