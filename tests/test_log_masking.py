"""No email, IP address, API key or bearer credential reaches the logs unmasked (app/logging.py).

The end-to-end test runs the real server (uvicorn with its access log, JSON logs) on the session's
data directory, sends requests carrying canary PII in the query string, the forwarded client address,
the Authorization header and the body, and scans everything the process wrote.
"""

from __future__ import annotations

import io
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import structlog
from fastapi.testclient import TestClient

from app.config import Settings
from app.logging import configure_logging, mask_text, mask_value
from tests.conftest import BrokerFixture

ROOT = Path(__file__).resolve().parents[1]
EMAIL = "canary.person+gdpr@example.org"
IPV4 = "203.0.113.77"
IPV6 = "2001:db8:1234:5678::42"


def test_mask_text_forms() -> None:
    key = "fxr_live_sk_abcdefghijkl_" + "A" * 38
    assert mask_text(f"to {EMAIL}, cc canary%40example.com") == "to [email], cc [email]"
    assert mask_text(f"{IPV4}:5555 and {IPV6} and [{IPV6}]:443") == "203.0.113.0:5555 and 2001:db8:1234:: and " \
                                                                     "[2001:db8:1234::]:443"
    assert mask_text("::ffff:198.51.100.9") == "198.51.100.0"
    assert mask_text(f"key={key}") == "key=fxr_live_sk_abcdefghijkl_[redacted]"
    assert mask_text("Authorization: Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln") == \
        "Authorization: Bearer [redacted]"
    assert mask_text("token eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln") == "token [jwt]"
    assert mask_text("fxr_rt_" + "a" * 32 + "_" + "b" * 43) == "fxr_rt_[redacted]"
    # What is not PII stays: times, timestamps, versions, ids.
    for keep in ("12:34:56", "2026-12-03T07:05:46.954121Z", "v1.2.3.4.5", "999.1.1.1", "request 9f86d081884c"):
        assert mask_text(keep) == keep
    assert mask_value({"password": "hunter2", "accessToken": "x", "api_key_id": "k1", "status_code": 401,
                       "items": [{"email": EMAIL}]}) == \
        {"password": "[redacted]", "accessToken": "[redacted]", "api_key_id": "k1", "status_code": 401,
         "items": [{"email": "[email]"}]}


def test_structlog_and_stdlib_records_are_masked(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", json=True)
    try:
        try:
            raise ValueError(f"duplicate key (broker_id, lower(email))=(1, {EMAIL}) from {IPV4}")
        except ValueError:
            structlog.get_logger("t").exception("failed", who=EMAIL, peer=IPV6, nested={"list": [IPV4]},
                                                authorization="Bearer abc")
    finally:
        configure_logging()  # the test session's own configuration again
    out = capsys.readouterr().out
    assert "failed" in out and "[email]" in out and "203.0.113.0" in out and "2001:db8:1234::" in out
    for canary in (EMAIL, IPV4, IPV6, "Bearer abc"):
        assert canary not in out

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("tests.stdlib")
    logger.addHandler(handler)
    try:
        # uvicorn's access log passes the client and path as arguments: masked, and still formatted.
        logger.warning('%s - "%s %s" %d', f"{IPV4}:5555", "GET", f"/x?e={EMAIL}", 200)
        try:
            raise RuntimeError(f"for {EMAIL}")
        except RuntimeError:
            logger.exception("with traceback")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert '203.0.113.0:5555 - "GET /x?e=[email]" 200' in text
    assert "RuntimeError: for [email]" in text
    assert EMAIL not in text and IPV4 not in text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_requests_carrying_pii_leave_none_in_the_server_output(client: TestClient, settings: Settings,
                                                               calc_broker: BrokerFixture,
                                                               broker_a: BrokerFixture) -> None:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FOREXRISK_DATA_DIR": str(settings.data_dir),
           "FOREXRISK_ENVIRONMENT": "test", "FOREXRISK_LOG_JSON": "true", "FOREXRISK_LOG_LEVEL": "info",
           "FOREXRISK_EMBEDDED_CLEANUP": settings.embedded_cleanup, "FOREXRISK_CALC_POOL_WORKERS": "1"}
    # uvicorn trusts X-Forwarded-For from 127.0.0.1 (its default): the forwarded address is the client.
    cmd = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "info", "--access-log"]
    base = f"http://127.0.0.1:{port}"
    with subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        try:
            with httpx.Client(base_url=base, timeout=30) as http:
                deadline = time.monotonic() + 120  # start-up, not a measurement: generous
                while True:
                    try:
                        if http.get("/healthz").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
                    time.sleep(0.2)
                key = calc_broker.secret_key
                listed = http.get("/api/v1/calculations", params={"owner": EMAIL, "key": key},
                                  headers={"Authorization": f"Bearer {key}", "X-Forwarded-For": IPV4})
                assert listed.status_code == 200, listed.text
                for slug, address in (("no-such-broker", IPV6), (broker_a.slug, IPV4)):
                    failed = http.post("/api/v1/auth/token", json={"broker": slug, "email": EMAIL,
                                                                   "password": "wrong password"},
                                       headers={"X-Forwarded-For": address})
                    assert failed.status_code == 401, failed.text
        finally:
            proc.send_signal(signal.SIGTERM)
            output, _ = proc.communicate(timeout=60)
    text = output.decode()
    # The lines are there (access log and our security log) ...
    assert "GET /api/v1/calculations?owner=[email]&key=" in text, text
    assert text.count("auth_login_failed") == 2, text
    assert "203.0.113.0" in text and "2001:db8:1234::" in text
    # ... and no canary in any form.
    secret_part = key.rsplit("_", 1)[1]
    for canary in (EMAIL, "canary.person", IPV4, IPV6, "2001:db8:1234:5678", secret_part):
        assert canary not in text, canary
