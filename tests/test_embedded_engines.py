"""Every process on one data directory shares one embedded Postgres and one embedded Redis; nothing is
left running when they end (Ctrl-C or kill -9); a stale postmaster.pid does not strand Postgres; the
Postgres socket is private. Each test has its own data directory, and checks process states (which
pids exist, which sockets answer), never durations."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import psutil
import pytest
from fastapi.testclient import TestClient

from app import keeper
from app.calculations.schemas import POSITION_SIZE_EXAMPLE
from app.config import Settings
from app.db import embedded as pg
from app.main import create_app
from app.redisdb import embedded as redis
from tests.conftest import make_broker

ROOT = Path(__file__).resolve().parents[1]
CALC = "/api/v1/calculate/position-size"


def _settings(data_dir: Path) -> Settings:
    return Settings(environment="test", data_dir=data_dir, argon2_time_cost=1, argon2_memory_kib=8192)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="forexrisk-engines-"))
    path.chmod(0o755)  # as root, Postgres runs as its own user, which must reach the data
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _engine_processes(data_dir: Path) -> list[psutil.Process]:
    """Every live postgres, redis-server or keeper process serving data_dir."""
    found = []
    marker = str(data_dir.resolve())
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
            if marker in cmdline and proc.info["status"] != psutil.STATUS_ZOMBIE and proc.pid != os.getpid() \
                    and ("postgres" in cmdline or "redis" in cmdline or "app.enginekeeper" in cmdline):
                found.append(proc)
        except psutil.Error:
            continue
    redis_pid = redis.pid(data_dir)
    if redis_pid and redis_pid not in {p.pid for p in found} and psutil.pid_exists(redis_pid):
        try:
            if psutil.Process(redis_pid).status() != psutil.STATUS_ZOMBIE:
                found.append(psutil.Process(redis_pid))
        except psutil.Error:
            pass
    return found


def _wait_nothing_runs(data_dir: Path, pids: list[int]) -> None:
    def gone(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.Error:
            return True

    deadline = time.monotonic() + 60  # a bound for a slow machine; the check is on process states
    while not all(gone(p) for p in pids):
        assert time.monotonic() < deadline, f"still running: {[p for p in pids if not gone(p)]}"
        time.sleep(0.05)
    assert not (pg.pgdata_of(data_dir) / "postmaster.pid").exists()
    assert not pg.answers(data_dir) and not redis.answers(data_dir)


WORKER = """
import json, sys
from pathlib import Path
from fastapi.testclient import TestClient
from app import keeper
from app.calculations.schemas import POSITION_SIZE_EXAMPLE
from app.main import create_app
from tests.test_embedded_engines import _settings

data_dir = Path(sys.argv[1])
c = TestClient(create_app(_settings(data_dir)), raise_server_exceptions=False)
c.__enter__()
c.portal.call(c.app.state.services.invalidation.subscribed.wait)
print("READY " + json.dumps(keeper.state(data_dir)), flush=True)
for line in sys.stdin:  # one key per line: answer the status of a calculation with it
    r = c.post("/api/v1/calculate/position-size", json=POSITION_SIZE_EXAMPLE,
               headers={"Authorization": "Bearer " + line.strip()})
    print(f"STATUS {r.status_code}", flush=True)
"""


def _read_until(stream: IO[str], prefix: str) -> str:
    seen = []
    for line in stream:
        seen.append(line)
        if line.startswith(prefix):
            return line.removeprefix(prefix).strip()
    raise AssertionError("".join(seen))


def test_two_processes_share_one_redis_and_postgres_and_a_crash_leaves_nothing_running(data_dir: Path) -> None:
    with TestClient(create_app(_settings(data_dir)), raise_server_exceptions=False) as here, \
            subprocess.Popen([sys.executable, "-c", WORKER, str(data_dir)], cwd=ROOT, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             env={**os.environ, "PYTHONPATH": str(ROOT)}) as other:
        assert other.stdin is not None and other.stdout is not None
        there: dict[str, Any] = json.loads(_read_until(other.stdout, "READY "))
        mine = keeper.state(data_dir)
        # One keeper, one postmaster, one redis-server for both processes.
        assert (there["keeperPid"], there["postgresPid"], there["redisPid"]) == \
            (mine["keeperPid"], mine["postgresPid"], mine["redisPid"])
        assert [p.pid for p in _engine_processes(data_dir) if "redis" in " ".join(p.cmdline())] == [mine["redisPid"]]

        broker = make_broker(here)
        created = here.post(f"/api/v1/brokers/{broker.id}/api-keys", json={"kind": "secret", "name": "other"},
                            headers=broker.auth).json()

        def status_there() -> int:
            assert other.stdin is not None and other.stdout is not None
            other.stdin.write(created["key"] + "\n")
            other.stdin.flush()
            return int(_read_until(other.stdout, "STATUS "))

        assert status_there() == 200  # the other process has the key cached now (10 s)
        assert here.delete(f"/api/v1/brokers/{broker.id}/api-keys/{created['id']}",
                           headers=broker.auth).status_code == 200
        assert here.post(CALC, json=POSITION_SIZE_EXAMPLE,
                         headers={"Authorization": f"Bearer {created['key']}"}).status_code == 401
        # The revocation reaches the other process over the shared Redis: refused there too, not after 10 s.
        deadline = time.monotonic() + 5  # far inside the 10 s cache TTL
        while status_there() != 401:
            assert time.monotonic() < deadline, "the revocation did not reach the other process"
            time.sleep(0.02)

        engines = [p.pid for p in _engine_processes(data_dir)]
        assert len(engines) >= 3  # keeper, postmaster (and its backends), redis-server
    # This process has left; the other one is the last user. It crashes:
    assert psutil.pid_exists(mine["postgresPid"])
    other.kill()
    other.wait()
    _wait_nothing_runs(data_dir, engines)


def test_run_with_two_workers_shares_one_redis_and_ctrl_c_leaves_nothing_running(data_dir: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOREXRISK_") and k != "DATABASE_URL"}
    env.update(FOREXRISK_DATA_DIR=str(data_dir), FOREXRISK_DEMO_BROKER="false")
    with subprocess.Popen([sys.executable, "-m", "app.cli", "run", "--port", str(port), "--workers", "2"], cwd=ROOT,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          start_new_session=True) as proc:
        assert proc.stdout is not None
        started = 0
        lines = []
        while started < 2:
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
            started += "Application startup complete" in line
        state = keeper.state(data_dir)
        redis_servers = [p for p in psutil.process_iter(["name"]) if p.info["name"] == "redis-server"
                         and p.pid == state["redisPid"]]
        assert len(redis_servers) == 1
        # Both workers' connections reach that one server.
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10).json()["status"] == "ok"
        engines = [p.pid for p in _engine_processes(data_dir)]
        assert state["postgresPid"] in engines and state["redisPid"] in engines
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal: the whole foreground group
        assert proc.wait(timeout=120) is not None
        proc.stdout.read()
    _wait_nothing_runs(data_dir, engines)


def test_stale_postmaster_pid_is_recovered_and_the_socket_is_private() -> None:
    # A data directory whose path is too long for a socket inside it: the socket goes under the temp dir.
    base = Path(tempfile.mkdtemp(prefix="forexrisk-engines-"))
    base.chmod(0o755)
    data_dir = base / ("d" * 90)
    data_dir.mkdir(mode=0o755)
    try:
        keeper.join(data_dir)
        sockets = pg.socket_dir(data_dir)
        assert pg.answers(data_dir)
        assert sockets.stat().st_mode & 0o777 == 0o700
        assert (sockets / pg.SOCKET_NAME).stat().st_mode & 0o077 == 0
        system_python = shutil.which("python3", path="/usr/bin:/bin")
        if os.geteuid() == 0 and system_python:  # another local user (nobody) cannot even reach the socket
            probe = ("import socket, sys\ns = socket.socket(socket.AF_UNIX)\n"
                     "try:\n    s.connect(sys.argv[1])\nexcept PermissionError:\n    sys.exit(3)\nsys.exit(0)")
            denied = subprocess.run([system_python, "-c", probe, str(sockets / pg.SOCKET_NAME)], user=65534,
                                    group=65534, cwd="/", env={"PATH": os.environ.get("PATH", "")}, check=False)
            assert denied.returncode == 3
        postmaster_file = (pg.pgdata_of(data_dir) / "postmaster.pid").read_text()
        keeper.leave(data_dir)
        assert not pg.answers(data_dir)

        # The server was killed and its pid now belongs to an unrelated live process: Postgres itself
        # would refuse to start ("lock file already exists").
        with subprocess.Popen(["sleep", "600"]) as unrelated:
            stale = "\n".join([str(unrelated.pid), *postmaster_file.split("\n")[1:]])
            (pg.pgdata_of(data_dir) / "postmaster.pid").write_text(stale)
            try:
                keeper.join(data_dir)
                assert pg.answers(data_dir) and pg.postmaster_pid(data_dir) != unrelated.pid
                keeper.leave(data_dir)
            finally:
                unrelated.kill()
        assert not pg.answers(data_dir)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs a machine with 2 or more usable cores")
def test_engines_do_not_inherit_a_pinned_workers_core(data_dir: Path) -> None:
    """A worker pinned to one core (taskset, as bench.http_bench does) starts the keeper: Postgres and
    Redis must be free to run on every core, not compete with that worker for its own."""
    code = ("import sys, time; from pathlib import Path; from app import keeper; "
            "d = Path(sys.argv[1]); keeper.join(d); print('joined', flush=True); sys.stdin.readline(); keeper.leave(d)")
    with subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", code, str(data_dir)], cwd=ROOT,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "joined"
        engines = _engine_processes(data_dir)
        assert any("postgres" in " ".join(p.cmdline()) for p in engines)
        allowed = os.sched_getaffinity(0)
        for engine in engines:
            assert set(engine.cpu_affinity()) == allowed, (engine.cmdline(), engine.cpu_affinity())
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(timeout=60) == 0
