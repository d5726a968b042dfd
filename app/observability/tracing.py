"""Tracing through FastAPI's built-in OpenTelemetry support (`FastAPI(telemetry=...)`, fastapi.telemetry).

Off unless configured: on when an OTLP endpoint is set by the standard variables (OTEL_EXPORTER_OTLP_ENDPOINT or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, http/protobuf) or FOREXRISK_TELEMETRY=true, and never with
OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none. When on:
- one SDK TracerProvider with the resource of OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES and a sampler:
  OTEL_TRACES_SAMPLER(_ARG) when set, else parent-based with DEFAULT_RATIO of new traces;
- FastAPI's auto_configure adds the OTLP exporter (a batch processor) to it from the OTEL_* variables;
- spans are HTTP server spans only: operation_spans=False (dependency, endpoint and serialization spans cost
  about 1 ms more per request, measured in bench/layers_bench.py), FastAPI's own OTel metrics and logs are off
  (Prometheus has the metrics, structlog the logs), and health probes and /metrics are not traced;
- every log line written inside a span carries its trace_id and span_id (add_trace_ids, app/logging.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from typing import Any

from fastapi.telemetry import TelemetryConfig
from opentelemetry import trace

DEFAULT_RATIO = 0.1  # of new traces (a caller's sampled traceparent is always followed)
UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def wanted(enabled: bool, environ: Mapping[str, str] = os.environ) -> bool:
    """Tracing on? `enabled` is FOREXRISK_TELEMETRY; otherwise an OTLP endpoint in the environment turns it on."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return enabled or bool(environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or
                           environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in UNTRACED_PATHS


_installed = False


def install_provider(environ: Mapping[str, str] = os.environ) -> None:
    """The process's TracerProvider, once (the API's OTel globals can be set only once per process)."""
    global _installed
    if _installed:
        return
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    resource = Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME") or "forexrisk-api"})
    if environ.get("OTEL_TRACES_SAMPLER"):
        provider = TracerProvider(resource=resource)  # the SDK reads OTEL_TRACES_SAMPLER(_ARG) itself
    else:
        provider = TracerProvider(resource=resource, sampler=ParentBased(TraceIdRatioBased(DEFAULT_RATIO)))
    trace.set_tracer_provider(provider)
    _installed = True


def telemetry_config(enabled: bool) -> TelemetryConfig:
    """The `telemetry=` of FastAPI(): tracing with the provider above when wanted, everything off otherwise."""
    on = wanted(enabled)
    if on:
        install_provider()
    return {"tracing": on, "metrics": False, "logs": False, "operation_spans": False, "auto_configure": on,
            "exclude": _untraced}


def name_span(method: str, route: str) -> None:
    """Name the current server span by its route template, for requests served before FastAPI's router
    (app.calculations.pipeline.CalculationDispatch), whose router would otherwise do it."""
    span = trace.get_current_span()
    if span.is_recording():
        span.update_name(f"{method} {route}")
        span.set_attribute("http.route", route)


def add_trace_ids(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: trace_id and span_id (W3C hex) of the current span, sampled or not."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict["trace_id"] = format(context.trace_id, "032x")
        event_dict["span_id"] = format(context.span_id, "016x")
    return event_dict
