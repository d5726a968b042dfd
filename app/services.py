"""The typed service container: every long-lived client the app uses, built once in the lifespan
(app.main) and reached through `services(...)` — never loose attributes on `app.state`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the container names its members' types; it never builds them itself
    from app.analytics.outbox import UsageOutbox
    from app.analytics.service import Analytics
    from app.auth.service import AuthService
    from app.calculations.cache import ResultCache
    from app.calculations.pool import CalcPool
    from app.calculations.store import CalculationRecorder
    from app.config import Settings
    from app.db.engine import Database
    from app.integrations.market_data.history.service import HistoryService
    from app.integrations.market_data.service import MarketData
    from app.integrations.platform_events.service import PlatformEvents
    from app.integrations.webhooks.service import WebhookService
    from app.jobs.queue import JobQueue
    from app.privacy.service import PrivacyService
    from app.ratelimit.gate import RateLimits
    from app.ratelimit.limiter import Limiter
    from app.redisdb.hub import RedisHub
    from app.redisdb.invalidation import Invalidation
    from app.storage.objects import ObjectStorage
    from app.widget.service import WidgetService


@dataclass(slots=True)
class Services:
    settings: Settings
    db: Database
    auth: AuthService
    recorder: CalculationRecorder
    redis: RedisHub
    invalidation: Invalidation
    limiter: Limiter
    ratelimits: RateLimits
    result_cache: ResultCache
    pool: CalcPool
    widget: WidgetService
    market_data: MarketData
    history: HistoryService  # daily bars per symbol (app.integrations.market_data.history)
    usage: UsageOutbox  # usage events Postgres stores nowhere else (widget loads, failed calculations)
    analytics: Analytics  # ClickHouse: the flush from Postgres and the analytics reports
    jobs: JobQueue  # background jobs (arq): enqueue, status; run by app.worker
    privacy: PrivacyService  # GDPR export and erasure (app.privacy)
    storage: ObjectStorage  # generated files (reports): local directory or S3-compatible (app.storage)
    platform_events: PlatformEvents  # inbound broker platform events, account state (issue 17)
    webhooks: WebhookService  # outbound webhooks: endpoints, signed deliveries, SSRF-safe transport (issue 17)


def services(app: Any) -> Services:
    """The container of an app (for a request: `services(request.app)`; in ASGI: `services(scope["app"])`)."""
    found: Services = app.state.services
    return found
