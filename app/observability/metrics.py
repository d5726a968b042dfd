"""Every metric the app exposes, defined once (prometheus-client, the process's default registry).

Names follow Prometheus conventions; HTTP metrics are labelled by route template, never raw paths, so
ids in URLs cannot explode the label space.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter("http_requests_total", "HTTP requests answered", ["method", "route", "status"])
HTTP_DURATION = Histogram(
    "http_request_duration_seconds", "Time from request start to the last response byte", ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
RATELIMIT_DECISIONS = Counter("ratelimit_decisions_total", "Rate-limit decisions", ["policy", "result"])
RATELIMIT_FAIL_OPEN = Counter(
    "ratelimit_fail_open_total",
    "Decisions taken by this worker's local buckets because Redis was unreachable", ["policy"],
)
RATELIMIT_LEASES = Counter("ratelimit_redis_calls_total", "Token leases taken from Redis (one script call each)")
REDIS_ERRORS = Counter("redis_errors_total", "Redis calls that failed (timeouts, refused connections)", ["op"])
REDIS_UP = Gauge("redis_up", "1 when this worker last reached Redis, 0 while it is considered down")
CACHE_LOOKUPS = Counter("calc_cache_lookups_total", "Result cache lookups", ["level", "result"])
# Market data (app/integrations/market_data): vendor calls by outcome, quote cache lookups, breaker state.
MARKET_DATA_UPSTREAM = Counter("market_data_upstream_calls_total", "Vendor HTTP calls by provider and HTTP status "
                               "(or timeout / unreachable)", ["provider", "status"])
MARKET_DATA_CACHE = Counter("market_data_cache_lookups_total", "Quote cache lookups per symbol", ["level", "result"])
MARKET_DATA_BREAKER = Gauge("market_data_circuit_open", "1 while a provider's circuit breaker is open", ["provider"])
MARKET_DATA_QUOTE_AGE = Histogram(
    "market_data_quote_age_seconds", "Age of the oldest quote a lookup used from the provider (staleness of "
    "served prices; one observation per lookup and provider)",
    ["provider"], buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 3600, 86_400, 604_800))
MARKET_DATA_STALE = Counter("market_data_stale_quotes_total", "Quotes refused as older than their provider's "
                            "freshness limit", ["provider"])

# --- business metrics (README "Observability"): no broker label, per-broker usage lives in ClickHouse ---------
CALCULATIONS = Counter("calculations_total", "Calculations answered, by type (the route's kind) and how: computed "
                       "here, or a cache hit", ["type", "source"])
UNITS_CHARGED = Counter("calculation_units_charged_total", "Rate-limit units charged to callers for calculations "
                        "(the priced cost, RateLimit-Cost)", ["type"])
# Background jobs (app.worker), exported by the process that runs them (`forexrisk worker --metrics-port`).
JOB_WAIT = Histogram("job_queue_wait_seconds", "From when a job was due to when a worker started it", ["function"],
                     buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900))
JOB_DURATION = Histogram("job_duration_seconds", "One try of a job, start to end", ["function"],
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
JOB_RUNS = Counter("job_runs_total", "Tries of jobs by outcome: ok, retry (deferred by the backoff), "
                   "failed (given up), cancelled (stop or timeout)",
                   ["function", "outcome"])
WEBHOOK_DELIVERIES = Counter("webhook_deliveries_total", "Webhook delivery attempts by outcome (delivered, pending: "
                             "failed and rescheduled, exhausted, cancelled ...)", ["outcome"])
BUILD_INFO = Gauge("forexrisk_build_info", "Always 1; the version of the running code", ["version"])
JOB_QUEUE_DUE = Gauge("job_queue_due_jobs", "Jobs in the queue that are due, waiting or running (sampled by "
                      "each `forexrisk worker --metrics-port` process every few seconds)")
READY = Gauge("readiness_check_up", "1 when the dependency's check of the last /readyz passed (catalogue, database, "
              "redis), 0 when it failed", ["check"])


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("forexrisk")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


BUILD_INFO.labels(_version()).set(1)
