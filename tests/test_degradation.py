"""Postgres stops mid-run: calculations keep answering, nothing recorded is lost (not even when the worker
crashes during the outage), stored-data reads answer 503 problems, /readyz counts what waits, and
recovery is automatic.

These tests run their own apps on their own data directories, so stopping that Postgres touches no
other test. Nothing here waits for a timer: the outage is a stopped postmaster, the recorder is
flushed explicitly, and every assertion is about a state that holds whenever the background flush runs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app import keeper
from app.auth import keys
from app.calculations.schemas import POSITION_SIZE_EXAMPLE
from app.config import Settings
from app.db import embedded
from app.db.bootstrap import ensure_postgres
from app.main import create_app
from tests.conftest import make_broker

CALC = "/api/v1/calculate/position-size"
ROOT = Path(__file__).resolve().parents[1]


def _settings(data_dir: Path) -> Settings:
    return Settings(environment="test", data_dir=data_dir, embedded_cleanup="stop", argon2_time_cost=1,
                    argon2_memory_kib=8192, key_cache_seconds=300)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="forexrisk-outage-"))
    path.chmod(0o755)  # as root, Postgres runs as its own user, which must reach the data
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _stop_postgres(data_dir: Path) -> None:
    embedded.stop(data_dir)
    assert not embedded.answers(data_dir)


def _restart_postgres(data_dir: Path) -> None:
    keeper.join(data_dir)  # a process joining (app.db.bootstrap.prepare) finds Postgres stopped and starts it
    ensure_postgres(data_dir)
    keeper.leave(data_dir)
    assert embedded.answers(data_dir)


def _journaled(data_dir: Path) -> str:
    """Everything the journals of the data directory hold."""
    return "".join(path.read_text() for path in (data_dir / "journal").glob("*.jsonl"))


def test_database_outage_degrades_and_recovers(data_dir: Path) -> None:
    with TestClient(create_app(_settings(data_dir)), raise_server_exceptions=False) as c:
        app: Any = c.app
        recorder = app.state.services.recorder
        broker = make_broker(c)
        before = c.post(CALC, json=POSITION_SIZE_EXAMPLE, headers=broker.auth)
        assert before.status_code == 200
        assert c.get("/api/v1/calculations", headers=broker.auth).status_code == 200  # stored (read flushes)
        assert c.get("/readyz").json()["checks"]["database"] == "ok"

        _stop_postgres(data_dir)

        during = c.post(CALC, json=POSITION_SIZE_EXAMPLE, headers=broker.auth)
        assert during.status_code == 200 and during.json()["lotSize"] == 0.66  # same numbers, from the cache
        unknown, _ = keys.generate("secret")
        r = c.post(CALC, json=POSITION_SIZE_EXAMPLE, headers={"Authorization": f"Bearer {unknown}"})
        assert r.status_code == 503 and r.headers["content-type"] == "application/problem+json"
        assert "Retry-After" in r.headers
        # Stored data cannot be read: a 503 problem with Retry-After, never a 500.
        for path in ("/api/v1/calculations", f"/api/v1/calculations/{before.json()['calculationId']}",
                     f"/api/v1/brokers/{broker.id}/api-keys"):
            stored = c.get(path, headers=broker.auth)
            assert stored.status_code == 503, (path, stored.status_code, stored.text)
            assert stored.headers["content-type"] == "application/problem+json" and "Retry-After" in stored.headers
            assert stored.json()["type"] == "/problems/service-unavailable"
        # The broker's feed lives in Postgres: with it down, a rate the feed would give comes from the next
        # provider of the chain (here the development snapshot), not a 503 of the whole service.
        quoted = c.post("/api/v1/calculate/pip-value", headers=broker.auth,
                        json={"accountCurrency": "USD", "currencyPair": "GBPJPY", "lots": 1, "price": 190.5})
        assert quoted.status_code == 200, quoted.text
        assert quoted.json()["rateSources"]["USDJPY"]["source"] == "snapshot"
        # Whatever the background flush is doing right now, the calculation is counted as waiting.
        ready = c.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "degraded"
        assert ready.json()["bufferedCalculations"] >= 1
        # It is in the journal on disk from the moment it answered; a flush during the outage leaves it there.
        assert during.json()["calculationId"] in _journaled(data_dir)
        c.portal.call(recorder.flush)
        assert recorder.down and recorder.waiting >= 1
        assert during.json()["calculationId"] in _journaled(data_dir)
        ready = c.get("/readyz").json()
        assert ready["bufferedCalculations"] >= 1 and ready["journaledCalculations"] >= 1
        # Calculations recorded while Postgres is down are journaled the same way.
        after = c.post(CALC, json=POSITION_SIZE_EXAMPLE, headers=broker.auth)
        assert after.json()["calculationId"] in _journaled(data_dir)
        c.portal.call(recorder.flush)  # still down: nothing is lost, nothing leaves the journals
        assert after.json()["calculationId"] in _journaled(data_dir) and recorder.waiting >= 2

        _restart_postgres(data_dir)  # the pool reconnects (pre-ping)

        assert c.get("/readyz").json()["status"] == "ok"
        listed = c.get("/api/v1/calculations", headers=broker.auth)  # the read stores the journal first
        assert listed.status_code == 200
        ids = {item["calculationId"] for item in listed.json()["items"]}
        assert {during.json()["calculationId"], after.json()["calculationId"]} <= ids  # nothing lost
        assert recorder.waiting == 0 and not recorder.down
        assert during.json()["calculationId"] not in _journaled(data_dir)  # stored, so its journal is gone
        assert c.get("/readyz").json()["bufferedCalculations"] == 0


CHILD = """
import json, sys, time
from pathlib import Path
from fastapi.testclient import TestClient
from app.calculations.schemas import POSITION_SIZE_EXAMPLE
from app.db import embedded
from app.main import create_app
from tests.conftest import make_broker
from tests.test_degradation import _settings

data_dir = Path(sys.argv[1])
c = TestClient(create_app(_settings(data_dir)), raise_server_exceptions=False)
c.__enter__()
broker = make_broker(c)
assert c.post("/api/v1/calculate/position-size", json=POSITION_SIZE_EXAMPLE, headers=broker.auth).status_code == 200
c.portal.call(c.app.state.services.recorder.flush)
embedded.stop(data_dir)  # the outage
ids = [c.post("/api/v1/calculate/position-size", json=POSITION_SIZE_EXAMPLE,
              headers=broker.auth).json()["calculationId"] for _ in range(5)]
c.portal.call(c.app.state.services.recorder.flush)  # they wait in the journal now
ids += [c.post("/api/v1/calculate/position-size", json=POSITION_SIZE_EXAMPLE,
               headers=broker.auth).json()["calculationId"] for _ in range(3)]  # recorded straight to it
print("RESULT " + json.dumps({"ids": ids, "key": broker.secret_key}), flush=True)
time.sleep(3600)  # killed here
"""


def test_calculations_waiting_for_postgres_survive_a_worker_crash(data_dir: Path) -> None:
    with subprocess.Popen([sys.executable, "-c", CHILD, str(data_dir)], cwd=ROOT, stdout=subprocess.PIPE,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, text=True) as proc:
        try:
            assert proc.stdout is not None
            lines = []
            for line in proc.stdout:  # the worker's log lines, then its result
                lines.append(line)
                if line.startswith("RESULT "):
                    break
            assert lines and lines[-1].startswith("RESULT "), "".join(lines)
            out = json.loads(lines[-1].removeprefix("RESULT "))
        finally:
            os.kill(proc.pid, signal.SIGKILL)  # the worker crashes with 8 calculations waiting for Postgres
    assert list((data_dir / "journal").glob("*.jsonl"))

    # The next worker on the data directory starts Postgres, adopts the dead worker's journal and stores it.
    with TestClient(create_app(_settings(data_dir)), raise_server_exceptions=False) as c:
        auth = {"Authorization": f"Bearer {out['key']}"}
        listed = c.get("/api/v1/calculations", params={"limit": 50}, headers=auth)
        assert listed.status_code == 200
        ids = {item["calculationId"] for item in listed.json()["items"]}
        assert set(out["ids"]) <= ids
        assert c.get("/readyz").json()["bufferedCalculations"] == 0
    assert not list((data_dir / "journal").glob("*.jsonl"))  # stored, then the journals are gone
