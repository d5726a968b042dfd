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
