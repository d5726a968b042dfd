"""The console script on the embedded database: `admin create-broker` beside a running server, and `run`."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from app.calculations.schemas import POSITION_SIZE_EXAMPLE
from app.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOREXRISK_") and k != "DATABASE_URL"}
    env["FOREXRISK_DATA_DIR"] = str(data_dir)
    return env


def test_create_broker_json_while_the_server_runs(client: TestClient, settings: Settings) -> None:
    # The session app serves on settings.data_dir; the CLI joins the same embedded Postgres.
    proc = subprocess.run([sys.executable, "-m", "app.cli", "admin", "create-broker", "--name", "Acme Forex",
                           "--tier", "standard", "--json", "--force"], cwd=ROOT, env=_env(settings.data_dir),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) >= {"brokerId", "slug", "secretKey", "publishableKey"}
    assert out["slug"].startswith("acme-forex")
    assert out["secretKey"].startswith("fxr_live_sk_") and out["publishableKey"].startswith("fxr_live_pk_")
    r = client.post("/api/v1/calculate/position-size", json=POSITION_SIZE_EXAMPLE,
                    headers={"Authorization": f"Bearer {out['secretKey']}"})
    assert r.status_code == 200 and r.json()["lotSize"] == 0.66


def test_create_broker_rejects_bad_input(settings: Settings) -> None:
    proc = subprocess.run([sys.executable, "-m", "app.cli", "admin", "create-broker", "--name", "X",
                           "--slug", "Not A Slug", "--json"], cwd=ROOT, env=_env(settings.data_dir),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "slug" in proc.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_run_creates_the_demo_broker_once_and_prints_a_working_request() -> None:
    port = _free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="forexrisk-cli-"))
    data_dir.chmod(0o755)
    outputs = []
    for _ in range(2):  # the second start finds the demo broker and prints the same keys
        with subprocess.Popen([sys.executable, "-m", "app.cli", "run", "--port", str(port)], cwd=ROOT,
                              env=_env(data_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
            assert proc.stdout is not None
            lines: list[str] = []
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                line = proc.stdout.readline()
                lines.append(line)
                if "Application startup complete" in line or proc.poll() is not None:
                    break
            text = "".join(lines)
            key = re.search(r"Authorization: Bearer (fxr_live_sk_\w+)", text)
            body = re.search(r"-d '(\{.*\})'", text)
            assert key and body, text
            r = httpx.post(f"http://127.0.0.1:{port}/api/v1/calculate/position-size", content=body.group(1),
                           headers={"Authorization": f"Bearer {key.group(1)}", "Content-Type": "application/json"},
                           timeout=10)
            assert r.status_code == 200, r.text
            assert r.json()["lotSize"] == 0.66
            # The demo's prices are the dated snapshot, and the output says so; its second example gives
            # neither an entry nor a rate and is answered from it.
            assert "dated snapshot" in text and "not live" in text, text
            bodies = re.findall(r"-d '(\{.*\})'", text)
            assert len(bodies) == 2, text
            r = httpx.post(f"http://127.0.0.1:{port}/api/v1/calculate/position-size", content=bodies[1],
                           headers={"Authorization": f"Bearer {key.group(1)}", "Content-Type": "application/json"},
                           timeout=10)
            assert r.status_code == 200, r.text
            md = r.json()["marketData"]
            assert md["snapshot"] and md["entryPrice"]["source"] == "snapshot" and "USDJPY" in md["fetched"]
            outputs.append(key.group(1))
            proc.terminate()
            proc.wait(timeout=30)
    shutil.rmtree(data_dir, ignore_errors=True)  # both servers have stopped their Postgres on exit
    assert outputs[0] == outputs[1]


def test_run_with_granian_serves_the_same_api_and_leaves_nothing_running() -> None:
    """`forexrisk run --server granian`: the README's latency choice serves the demo request, and on
    SIGTERM the server and the embedded engines it started are gone."""
    port = _free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="forexrisk-granian-"))
    data_dir.chmod(0o755)
    with subprocess.Popen([sys.executable, "-m", "app.cli", "run", "--server", "granian", "--port", str(port),
                           "--log-level", "warning"], cwd=ROOT, env=_env(data_dir), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        lines: list[str] = []
        while not any("-d '" in line for line in lines) and proc.poll() is None:
            lines.append(proc.stdout.readline())
        text = "".join(lines)
        key = re.search(r"Authorization: Bearer (fxr_live_sk_\w+)", text)
        body = re.search(r"-d '(\{.*\})'", text)
        assert key and body, text
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # granian starts serving once the app's lifespan has run
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        r = httpx.post(f"http://127.0.0.1:{port}/api/v1/calculate/position-size", content=body.group(1),
                       headers={"Authorization": f"Bearer {key.group(1)}", "Content-Type": "application/json"},
                       timeout=10)
        assert r.status_code == 200 and r.json()["lotSize"] == 0.66, r.text
        proc.terminate()
        assert proc.wait(timeout=60) is not None
    engines = subprocess.run(["pgrep", "-f", str(data_dir)], capture_output=True, text=True).stdout.split()
    deadline = time.monotonic() + 30
    while engines and time.monotonic() < deadline:  # the keeper stops Postgres and Redis once nobody uses them
        time.sleep(0.5)
        engines = subprocess.run(["pgrep", "-f", str(data_dir)], capture_output=True, text=True).stdout.split()
    assert engines == [], "left running: " + subprocess.run(["ps", "-o", "pid,cmd", "-p", ",".join(engines)],
                                                             capture_output=True, text=True).stdout
    shutil.rmtree(data_dir, ignore_errors=True)
