"""Tracing (app/observability/tracing.py): off by default; with an OTLP endpoint in the standard variables the real
server exports HTTP server spans named by route template (calculations too, though FastAPI's router never sees
them), follows the caller's traceparent, leaves health probes out, and every log line of a traced request carries
its trace id. The collector is a loopback HTTP server decoding the OTLP protobuf."""

from __future__ import annotations

import gzip
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from app.calculations.schemas import POSITION_SIZE_EXAMPLE
from app.config import Settings
from app.observability.tracing import telemetry_config, wanted
from tests.conftest import BrokerFixture

ROOT = Path(__file__).resolve().parents[1]


def test_off_unless_configured() -> None:
    assert not wanted(False, {})
    assert wanted(False, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert wanted(False, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"})
    assert wanted(True, {})
    assert not wanted(True, {"OTEL_SDK_DISABLED": "true"})
    assert not wanted(False, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"})
    off = telemetry_config(False) if not wanted(False) else None
    if off is not None:  # the test environment sets no OTLP endpoint: this is the default configuration
        assert off["tracing"] is False and off["metrics"] is False and off["logs"] is False


class Collector(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), CollectorHandler)
        self.spans: list[tuple[str, str, dict[str, object]]] = []  # (name, trace id, attributes)
        self.lock = threading.Lock()


class CollectorHandler(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest.FromString(body)
        with self.server.lock:
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        attrs = {a.key: a.value.string_value or a.value.int_value for a in span.attributes}
                        self.server.spans.append((span.name, span.trace_id.hex(), attrs))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_server_exports_route_named_spans_and_logs_their_trace_ids(client: TestClient, settings: Settings,
                                                                      calc_broker: BrokerFixture,
                                                                      broker_a: BrokerFixture) -> None:
    collector = Collector()
    thread = threading.Thread(target=collector.serve_forever, daemon=True)
    thread.start()
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FOREXRISK_DATA_DIR": str(settings.data_dir),
           "FOREXRISK_ENVIRONMENT": "test", "FOREXRISK_LOG_JSON": "true", "FOREXRISK_LOG_LEVEL": "info",
           "FOREXRISK_EMBEDDED_CLEANUP": settings.embedded_cleanup, "FOREXRISK_CALC_POOL_WORKERS": "1",
           "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.server_address[1]}",
           "OTEL_TRACES_SAMPLER": "parentbased_always_on", "OTEL_BSP_SCHEDULE_DELAY": "100",
           "OTEL_SERVICE_NAME": "forexrisk-test"}
    cmd = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "info"]
    calc_trace, login_trace = secrets.token_hex(16), secrets.token_hex(16)
    try:
        with subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
            try:
                with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                    deadline = time.monotonic() + 120  # start-up, not a measurement
                    while True:
                        try:
                            if http.get("/healthz").status_code == 200:
                                break
                        except httpx.TransportError:
                            pass
                        assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
                        time.sleep(0.2)
                    calc = http.post("/api/v1/calculate/position-size", json=POSITION_SIZE_EXAMPLE,
                                     headers={**calc_broker.auth, "traceparent": f"00-{calc_trace}-{'1' * 16}-01"})
                    assert calc.status_code == 200, calc.text
                    failed = http.post("/api/v1/auth/token", json={"broker": broker_a.slug, "email": "x@y.example",
                                                                   "password": "wrong password"},
                                       headers={"traceparent": f"00-{login_trace}-{'2' * 16}-01"})
                    assert failed.status_code == 401
                    assert http.get("/api/v1/instruments", headers=calc_broker.auth).status_code == 200
            finally:
                proc.send_signal(signal.SIGTERM)  # the lifespan's shutdown flushes the span processor
                output, _ = proc.communicate(timeout=60)
    finally:
        collector.shutdown()
        collector.server_close()
    spans = {name: (trace_id, attrs) for name, trace_id, attrs in collector.spans}
    assert spans["POST /api/v1/calculate/position-size"][0] == calc_trace, spans
    assert spans["POST /api/v1/calculate/position-size"][1]["http.route"] == "/api/v1/calculate/position-size"
    assert spans["POST /api/v1/auth/token"][0] == login_trace
    assert "GET /api/v1/instruments" in spans
    assert not any(name.startswith("GET /healthz") or attrs.get("url.path") == "/healthz"
                   for name, _, attrs in collector.spans)
    assert not any(name.startswith("fastapi.") for name, _, _ in collector.spans)  # operation_spans=False
    lines = [json.loads(line) for line in output.decode().splitlines() if line.startswith("{")]
    login_lines = [line for line in lines if line.get("event") == "auth_login_failed"]
    assert login_lines and all(line["trace_id"] == login_trace and len(line["span_id"]) == 16
                               for line in login_lines), login_lines
