"""Start and stop the uvicorn server under test (one worker, pinned to core 1), and read its CPU time."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.generators import pin

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Server:
    port: int
    pid: int
    command: list[str]

    def cpu_seconds(self) -> float:
        """utime + stime of the server process, from /proc (taskset execs, so pid is uvicorn itself)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_healthy(proc: subprocess.Popen[bytes], port: int, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server not healthy after {timeout:.0f}s:\n{log.read_text()[-4000:]}")


def provision(data_dir: Path) -> str:
    """A bench broker on the embedded Postgres under data_dir (the server joins the same one): its secret key."""
    import asyncio

    from app.admin.brokers.schemas import BrokerCreate
    from app.admin.provisioning import new_broker
    from app.config import Settings

    settings = Settings(data_dir=data_dir, demo_broker=False)
    out = asyncio.run(new_broker(settings, BrokerCreate(name="Bench", tier="enterprise")))
    return str(out["secretKey"])


@contextmanager
def running_server() -> Iterator[Server]:
    port = free_port()
    command = [*pin(1), sys.executable, "-m", "uvicorn", "bench.apps:app", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1", "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        Path(tmp).chmod(0o755)  # as root, pgserver runs Postgres as its own user, which must reach the data
        data_dir = Path(tmp) / "data"
        # The calculation API needs a key: the generators send it (BENCH_AUTHORIZATION) on every request.
        os.environ["BENCH_AUTHORIZATION"] = f"Bearer {provision(data_dir)}"
        env = {**os.environ, "FOREXRISK_DATA_DIR": str(data_dir), "FOREXRISK_DEMO_BROKER": "false"}
        log = Path(tmp) / "server.log"
        with log.open("wb") as out:
            # Output goes to a file, not a pipe: nobody reads a pipe during the run and a full one would block it.
            proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            _wait_healthy(proc, port, log)
            yield Server(port, proc.pid, command)
        finally:
            stop(proc, timeout=10)


def stop(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Terminate a server (its lifespan leaves the embedded engines), kill it if it does not exit."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
