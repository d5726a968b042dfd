"""Prometheus metrics: a pure-ASGI middleware for HTTP and the counters the platform layers report."""
