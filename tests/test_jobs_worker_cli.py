"""`forexrisk worker`: the jobs in a process of their own, on the data directory's embedded engines."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
from fastapi.testclient import TestClient

from app.config import Settings
from app.jobs.queue import JobQueue
from tests.test_jobs import wait_for

ROOT = Path(__file__).resolve().parents[1]


def test_the_worker_process_runs_a_job_the_app_enqueued_and_stops_cleanly_on_sigterm(client: TestClient,
                                                                                      settings: Settings) -> None:
    # A queue of the test's own: only the worker process polls it (the app's in-process worker polls its own).
    queue_name = f"test-cli-worker:{uuid.uuid4().hex}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOREXRISK_") and k not in ("DATABASE_URL",
                                                                                               "REDIS_URL")}
    env |= {"FOREXRISK_DATA_DIR": str(settings.data_dir), "FOREXRISK_JOBS_QUEUE_NAME": queue_name,
            "FOREXRISK_MARKET_DATA_PROVIDERS": '["broker"]'}
    jobs: JobQueue = client.app.state.services.jobs  # type: ignore[attr-defined]
    queue = JobQueue(jobs.url, queue_name)
    with subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], cwd=ROOT, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            assert first.startswith("ForexRisk worker: queue"), first + proc.stdout.read()
            job_id = client.portal.call(lambda: queue.enqueue("refresh_history", ["AUDUSD"],
                                                              job_id=f"cli-{uuid.uuid4().hex}"))
            info = wait_for(client, job_id, queue=queue)
            assert info.state == "complete" and info.result["refreshed"]["AUDUSD"]["bars"] > 0, info
            family = psutil.Process(proc.pid).children(recursive=True)
            proc.send_signal(signal.SIGTERM)
            rest = proc.communicate(timeout=120)[0]
        finally:
            if proc.poll() is None:
                proc.kill()
            client.portal.call(queue.close)
    assert proc.returncode == 0, rest
    assert "stopping" in rest and "Traceback" not in rest, rest
    deadline = time.monotonic() + 30  # a hang guard
    while any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in family):
        assert time.monotonic() < deadline, [p.pid for p in family if p.is_running()]
        time.sleep(0.05)
    # The embedded engines stay: the session's app still uses them.
    assert client.get("/readyz").json()["status"] == "ok"


def test_production_runs_the_worker_as_its_own_deployment_on_the_api_redis() -> None:
    import yaml

    def deployment(name: str) -> dict[str, Any]:
        found: dict[str, Any] = yaml.safe_load((ROOT / "k8s" / "api" / name).read_text())
        return found

    api, worker = deployment("deployment.yaml"), deployment("worker-deployment.yaml")
    container = worker["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["/srv/.venv/bin/forexrisk", "worker"] and "ports" not in container
    env = {e["name"]: e for e in container["env"]}
    api_env = {e["name"]: e for e in api["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FOREXRISK_ENVIRONMENT"]["value"] == "production"  # so the API pods run no worker of their own
    assert not Settings(environment="production", secret_pepper="x", encryption_key="x", jwt_private_key_pem="x",
                        session_secret="x").jobs_worker_in_process
    assert env["REDIS_URL"] == api_env["REDIS_URL"]  # one queue for both
    assert env.keys() == api_env.keys()
