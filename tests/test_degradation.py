"""Postgres stops mid-run: calculations keep answering, nothing recorded is lost, recovery is automatic.

This test runs its own app on its own embedded Postgres, so stopping that server touches no other test.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from fastapi.testclient import TestClient

from app.auth import keys
from app.calculations.schemas import POSITION_SIZE_EXAMPLE
from app.config import Settings
from app.db import embedded
from app.main import create_app
from tests.conftest import make_broker

CALC = "/api/v1/calculate/position-size"


def test_database_outage_degrades_and_recovers() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="forexrisk-outage-"))
    data_dir.chmod(0o755)
    settings = Settings(environment="test", data_dir=data_dir, embedded_cleanup="stop", argon2_time_cost=1,
                        argon2_memory_kib=8192, key_cache_seconds=60)
    pgdata = (data_dir / "pg").resolve()
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as c:
            broker = make_broker(c)
            assert c.post(CALC, json=POSITION_SIZE_EXAMPLE, headers=broker.auth).status_code == 200
            assert c.get("/readyz").json()["checks"]["database"] == "ok"

            embedded._servers.pop(pgdata).cleanup()  # stop the postmaster: the database is gone

            during = c.post(CALC, json=POSITION_SIZE_EXAMPLE, headers=broker.auth)
            assert during.status_code == 200 and during.json()["lotSize"] == 0.66  # same numbers, from the cache
            unknown, _ = keys.generate("secret")
            r = c.post(CALC, json=POSITION_SIZE_EXAMPLE, headers={"Authorization": f"Bearer {unknown}"})
            assert r.status_code == 503 and r.headers["content-type"] == "application/problem+json"
            assert "Retry-After" in r.headers
            ready = c.get("/readyz")
            assert ready.status_code == 200 and ready.json()["status"] == "degraded"
            assert ready.json()["bufferedCalculations"] >= 1

            embedded.start(data_dir)  # the database comes back; the pool reconnects (pre-ping)
            assert c.get("/readyz").json()["status"] == "ok"
            listed = c.get("/api/v1/calculations", headers=broker.auth)
            assert listed.status_code == 200
            ids = {item["calculationId"] for item in listed.json()["items"]}
            assert during.json()["calculationId"] in ids  # recorded during the outage, not lost
    finally:
        server = embedded._servers.pop(pgdata, None)
        if server is not None:
            server.cleanup()
        shutil.rmtree(data_dir, ignore_errors=True)
