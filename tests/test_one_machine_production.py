"""One-machine production (issue 20, point 3): Debian's `postgresql` and `redis-server` (installed by dev.py when
missing) started as private instances on loopback ports, the migration run as the owner (`forexrisk migrate`,
the Kubernetes Job's command), then `forexrisk run --workers 2` and `forexrisk worker --metrics-port` with the
role URLs only, as the production pods run: no owner URL, no embedded engine. Over HTTP: readiness, tenants kept
apart, one rate limit shared by both workers through Redis. Then the cross-tenant and rate-limit suites run
against the same servers (their session settings read DATABASE_URL and REDIS_URL from the environment).

Needs root (Postgres runs as the `postgres` system user) and the two Debian packages: the test skips naming
whichever is missing."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.calculations.schemas import POSITION_SIZE_EXAMPLE
from bench.load.stack import START_TIMEOUT, Stack, Unavailable, wait_for

ROOT = Path(__file__).resolve().parents[1]
FOREXRISK = Path(sys.executable).parent / "forexrisk"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    root = Path(tempfile.mkdtemp(prefix="forexrisk-prod-"))
    root.chmod(0o755)
    try:
        stack = Stack(root)
    except Unavailable as missing:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(str(missing))
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)


def forexrisk(args: list[str], env: dict[str, str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(FOREXRISK), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=START_TIMEOUT, **kwargs)  # type: ignore[call-overload]


def test_run_with_workers_on_debian_postgres_and_redis(stack: Stack) -> None:
    env = stack.production_env()
    # 1. The migration Job's command: the only process given the owner URL.
    migrate = forexrisk(["migrate"], {**env, "DATABASE_URL": stack.owner_url})
    assert migrate.returncode == 0 and migrate.stdout.startswith("migrated to "), migrate.stderr
    head = migrate.stdout.split()[-1]
    waited = forexrisk(["migrate", "--wait", "--timeout", "30"], env)
    assert waited.returncode == 0 and waited.stdout.strip() == f"schema at {head}", waited.stderr
    # 2. Brokers, provisioned with the role URLs only.
    brokers = []
    for tier in ("free", "free"):
        made = forexrisk(["admin", "create-broker", "--name", f"Prod {secrets.token_hex(4)}", "--tier", tier,
                          "--json"], env)
        assert made.returncode == 0, made.stderr
        brokers.append(json.loads(made.stdout))
    # 3. The API with two workers and the job worker, as the pods run them.
    api = subprocess.Popen([str(FOREXRISK), "run", "--workers", "2", "--port", str(stack.api_port)], cwd=ROOT,
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    worker = subprocess.Popen([str(FOREXRISK), "worker", "--metrics-port", str(stack.metrics_port),
                               "--metrics-host", "127.0.0.1"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{stack.api_port}", timeout=30) as http:
            wait_for(lambda: http.get("/readyz").json()["status"] == "ok", "forexrisk run", api)
            ready = http.get("/readyz").json()
            assert ready["checks"] == {"catalogue": "ok", "database": "ok", "redis": "ok"}, ready
            a, b = ({"Authorization": f"Bearer {x['secretKey']}"} for x in brokers)
            # Tenants apart: A's stored calculation is not B's to read, under forced RLS as the app role.
            calc = http.post("/api/v1/calculate/position-size", json=POSITION_SIZE_EXAMPLE, headers=a)
            assert calc.status_code == 200, calc.text
            calc_id = calc.json()["calculationId"]
            wait_for(lambda: http.get(f"/api/v1/calculations/{calc_id}", headers=a).status_code == 200,
                     "the stored calculation")
            assert http.get(f"/api/v1/calculations/{calc_id}", headers=b).status_code == 404
            listed = http.get("/api/v1/calculations", headers=b).json()["items"]
            assert listed == []  # B has stored nothing; A's calculation is not listed
            # One limit for both workers (Redis): the free tier's burst, then 429, whichever worker answers.
            # (a new connection per request: the kernel spreads them over both workers)
            statuses = [http.post("/api/v1/calculate/position-size", json=POSITION_SIZE_EXAMPLE,
                                  headers={**b, "Connection": "close"}).status_code for _ in range(60)]
            assert statuses.count(429) > 0 and set(statuses) == {200, 429}, statuses
            limited = http.post("/api/v1/calculate/position-size", json=POSITION_SIZE_EXAMPLE, headers=b)
            assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
            # A's bucket is untouched by B's.
            assert http.post("/api/v1/calculate/position-size", json=POSITION_SIZE_EXAMPLE,
                             headers=a).status_code == 200
            metrics = http.get("/metrics").text
            assert 'calculations_total{source="computed",type="position-size"}' in metrics
        wait_for(lambda: "job_queue_due_jobs" in httpx.get(f"http://127.0.0.1:{stack.metrics_port}/").text,
                 "the worker's metrics port", worker)
    finally:
        for proc in (api, worker):
            proc.send_signal(signal.SIGINT)
        outputs = [proc.communicate(timeout=60)[0].decode() for proc in (api, worker)]
    assert "Database: external Postgres" in outputs[0], outputs[0][-2000:]
    assert "embedded" not in outputs[0].split("Database:")[1].splitlines()[0]


def test_cross_tenant_and_rate_limit_suites_on_debian_postgres_and_redis(stack: Stack) -> None:
    """The two suites, unchanged, with the owner URL and Redis of the Debian servers (tests in test mode migrate
    and create brokers themselves, as the owner; the role passwords are the same as the servers above use)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FOREXRISK_", "DATABASE_"))}
    env.update({"DATABASE_URL": stack.owner_url, "REDIS_URL": stack.role_env["REDIS_URL"],
                "FOREXRISK_DB_APP_PASSWORD": stack.app_password,
                "FOREXRISK_DB_PLATFORM_PASSWORD": stack.platform_password})
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/test_cross_tenant.py", "tests/test_rate_limits.py"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1800)
    tail = done.stdout[-3000:]
    assert done.returncode == 0, tail
    assert " passed" in tail and " failed" not in tail and " skipped" not in tail, tail
