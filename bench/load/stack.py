"""Debian's postgresql and redis-server as private instances on loopback ports (root: Postgres runs as the
`postgres` system user), and the production environment of `forexrisk run` / `forexrisk worker` on them: the role
URLs only, generated secrets, no embedded engine. Used by tests/test_one_machine_production.py and the soak
(bench/load/soak.py), which also kills and restarts the servers."""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

START_TIMEOUT = 180  # start-up of servers on a shared box, not a measurement


class Unavailable(Exception):
    """A machine capability the stack needs is missing (the message names it)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def accepts(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), 1):
        return True


def postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if not found:
        raise Unavailable("Debian's postgresql is not installed (python3 dev.py test installs it as root)")
    if shutil.which("redis-server") is None:
        raise Unavailable("Debian's redis-server is not installed (python3 dev.py test installs it as root)")
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        raise Unavailable("needs root (runuser) to run Postgres as the postgres system user")
    return found[-1].parent


def wait_for(check: Callable[[], object], what: str, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            if check():
                return
        except (httpx.TransportError, OSError, subprocess.CalledProcessError):
            pass
        assert proc is None or proc.poll() is None, f"{what} exited"
        assert time.monotonic() < deadline, f"{what} did not start"
        time.sleep(0.2)


class Stack:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.bin_dir = postgres_bin()
        self.postgres: subprocess.Popen[bytes] | None = None
        self.redis: subprocess.Popen[bytes] | None = None
        self.pg_port, self.redis_port, self.api_port, self.metrics_port = (free_port() for _ in range(4))
        self.owner_password, self.app_password, self.platform_password = (secrets.token_hex(12) for _ in range(3))
        self.procs: list[subprocess.Popen[bytes]] = []

    def url(self, user: str, password: str) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.pg_port}/forexrisk"

    @property
    def owner_url(self) -> str:
        return self.url("postgres", self.owner_password)

    @property
    def role_env(self) -> dict[str, str]:
        return {"DATABASE_APP_URL": self.url("forexrisk_app", self.app_password),
                "DATABASE_PLATFORM_URL": self.url("forexrisk_platform", self.platform_password),
                "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0"}

    def start_postgres(self) -> None:
        bin_dir = self.bin_dir
        data = self.root / "pg"
        data.mkdir()
        shutil.chown(data, "postgres", "postgres")
        pwfile = self.root / "pw"
        pwfile.write_text(self.owner_password)
        shutil.chown(pwfile, "postgres", "postgres")
        as_pg = ["runuser", "-u", "postgres", "--"]
        subprocess.run([*as_pg, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--pwfile", str(pwfile),
                        "--auth-host=scram-sha-256", "--auth-local=peer", "-E", "UTF8"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.run_postgres()
        # The database exists before the owner migrates it (a managed Postgres has it created by its operator).
        for _ in range(100):
            done = subprocess.run([*as_pg, str(bin_dir.parent / "bin" / "psql"), "-h", str(data), "-p",
                                   str(self.pg_port), "-c", "create database forexrisk"], capture_output=True)
            if done.returncode == 0:
                return
            time.sleep(0.2)
        raise AssertionError(done.stderr.decode())

    def run_postgres(self) -> None:
        """Start (or restart, after kill()) the postmaster; return once it accepts connections."""
        self.postgres = subprocess.Popen(
            ["runuser", "-u", "postgres", "--", str(self.bin_dir / "postgres"), "-D", str(self.root / "pg"), "-p",
             str(self.pg_port), "-c", "listen_addresses=127.0.0.1", "-k", str(self.root / "pg")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(self.postgres)
        wait_for(lambda: accepts(self.pg_port), "postgres")

    def start_redis(self) -> None:
        """Start (or restart) redis-server; return once it accepts connections."""
        self.redis = subprocess.Popen(["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                                       "--save", "", "--appendonly", "no"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(self.redis)
        wait_for(lambda: accepts(self.redis_port), "redis")

    def kill_postgres(self) -> None:
        """An immediate shutdown, as a crash: no checkpoint, recovery at the next start."""
        assert self.postgres is not None
        subprocess.run(["runuser", "-u", "postgres", "--", str(self.bin_dir / "pg_ctl"), "-D",
                        str(self.root / "pg"), "stop", "-m", "immediate"], capture_output=True, check=False)
        self.postgres.wait(timeout=60)

    def kill_redis(self) -> None:
        assert self.redis is not None
        self.redis.kill()
        self.redis.wait(timeout=60)

    def production_env(self) -> dict[str, str]:
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FOREXRISK_", "DATABASE_", "OTEL_"))}
        env.pop("REDIS_URL", None)
        env.pop("CLICKHOUSE_URL", None)
        return {**env, **self.role_env, "FOREXRISK_ENVIRONMENT": "production", "FOREXRISK_LOG_JSON": "true",
                "FOREXRISK_DATA_DIR": str(self.root / "data"), "FOREXRISK_JOBS_IN_PROCESS": "false",
                "FOREXRISK_RATE_LIMIT_WORKERS": "2", "FOREXRISK_ANALYTICS_ENABLED": "false",
                "FOREXRISK_SECRET_PEPPER": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
                "FOREXRISK_ENCRYPTION_KEY": Fernet.generate_key().decode(), "FOREXRISK_JWT_PRIVATE_KEY_PEM": pem,
                "FOREXRISK_SESSION_SECRET": secrets.token_urlsafe(32), "FOREXRISK_CALC_POOL_WORKERS": "1"}

    def start(self) -> None:
        self.start_postgres()
        self.start_redis()

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
