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
from app.calc.instruments import CATALOGUE
from app.calculations.history import router as history_router
from app.calculations.router import router as calculations_router
from app.calculations.routing import REQUEST_MODELS
from app.calculations.store import CalculationRecorder
from app.config import Settings, get_settings
from app.db.bootstrap import prepare
from app.db.engine import Database
from app.errors import PROBLEM_TYPES, install_error_handlers, problem
from app.health.router import router as health_router
from app.instruments.router import router as instruments_router
from app.logging import configure_logging
from app.middleware import RequestContextMiddleware
from app.risk.router import router as risk_router
from app.secrets import load_secrets
from app.widget.router import router as widget_router

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
        app.state.db, app.state.auth, app.state.recorder = db, auth, recorder
        recorder.start()
        try:
            yield
        finally:
            await recorder.stop()
            await db.dispose()

    app = FastAPI(
        title="ForexRisk API", version="0.1.0", description=DESCRIPTION, lifespan=lifespan,
        generate_unique_id_function=operation_id, docs_url="/docs", redoc_url=None,
    )
    app.state.settings = settings
    app.state.catalogue_size = len(CATALOGUE)
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
    app.include_router(risk_router)
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
        app.openapi_schema = schema
        return schema

    app.openapi = custom_openapi  # type: ignore[method-assign]
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    return app


app = create_app()
