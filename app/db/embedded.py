"""The embedded default: a real PostgreSQL (the pgserver wheel's binaries, from PyPI) under the data directory.

Every process on one data directory uses one postmaster, started and stopped by the data directory's
keeper (app.keeper): `run --workers N`, an admin command beside a running server, benches and tests
all join it, and the last one to leave (or die) stops it.

- The socket is private: it lives in a directory of mode 0700 owned by the user the postmaster runs
  as (`pgserver` when we are root, since Postgres refuses to run as root; ourselves otherwise), the
  socket itself is 0700 too (`unix_socket_permissions`), and nothing listens on TCP. Another local
  user cannot reach it, so the `trust` rule of initdb trusts only ourselves.
- A stale `postmaster.pid` (the server was killed, and its pid now belongs to an unrelated process,
  which makes Postgres refuse to start) is recognised and removed before starting.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from urllib.parse import quote

PORT = 5432  # only names the socket file (.s.PGSQL.5432): nothing listens on TCP
SOCKET_NAME = f".s.PGSQL.{PORT}"


def _pgserver() -> tuple[Path, str | None]:
    """The binaries' directory and the OS user the postmaster runs as (None: ourselves)."""
    with warnings.catch_warnings():
        # platformdirs warns at pgserver import when XDG_RUNTIME_DIR is unset; nothing of it is used here.
        warnings.simplefilter("ignore")
        from pgserver._commands import POSTGRES_BIN_PATH
    return POSTGRES_BIN_PATH, ("pgserver" if os.geteuid() == 0 else None)


def pgdata_of(data_dir: Path) -> Path:
    return (data_dir / "pg").resolve()


def socket_dir(data_dir: Path) -> Path:
    """data_dir/pgsock, or a directory under the temp dir named by a hash when that path is too long
    for a unix socket (~107 bytes)."""
    preferred = (data_dir / "pgsock").resolve()
    if len(str(preferred / SOCKET_NAME)) <= 100:
        return preferred
    digest = hashlib.sha256(str(preferred).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"forexrisk-pg-{digest}"


def url(data_dir: Path) -> str:
    """An asyncpg URL for the superuser, database postgres (port 5432, the default, names the socket)."""
    return f"postgresql+asyncpg://postgres@/postgres?host={quote(str(socket_dir(data_dir)))}"


def _run(binary: str, args: list[str], timeout: float = 120) -> None:
    bin_path, user = _pgserver()
    subprocess.run([str(bin_path / binary), *args], check=True, user=user, timeout=timeout,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _own(path: Path) -> None:
    """Give a directory to the user the postmaster runs as."""
    _, user = _pgserver()
    if user is not None:
        import pwd

        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _ensure_user() -> None:
    _, user = _pgserver()
    if user is not None:
        from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

        ensure_user_exists(user)
        bin_path, _ = _pgserver()
        ensure_prefix_permissions(bin_path)


def initdb(data_dir: Path) -> None:
    pgdata = pgdata_of(data_dir)
    if (pgdata / "PG_VERSION").exists():
        return
    _ensure_user()
    pgdata.mkdir(parents=True, exist_ok=True, mode=0o700)
    _own(pgdata)
    _run("initdb", ["-D", str(pgdata), "--auth=trust", "--auth-local=trust", "--encoding=utf8", "-U", "postgres"])


def postmaster_pid(data_dir: Path) -> int | None:
    """The pid of this data directory's running postmaster, or None. A postmaster.pid whose process is
    gone, or is not a postgres serving this directory (the pid was reused), is stale."""
    import psutil

    pgdata = pgdata_of(data_dir)
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE or proc.name() != "postgres":
            return None
        cmdline = proc.cmdline()
    except (OSError, ValueError, psutil.Error):
        return None
    return pid if str(pgdata) in cmdline else None


def _recover_stale(data_dir: Path) -> None:
    pgdata = pgdata_of(data_dir)
    lock = pgdata / "postmaster.pid"
    if lock.exists() and postmaster_pid(data_dir) is None:
        lock.unlink()  # Postgres would refuse to start while its pid names any live process
        (socket_dir(data_dir) / f"{SOCKET_NAME}.lock").unlink(missing_ok=True)


def answers(data_dir: Path) -> bool:
    return postmaster_pid(data_dir) is not None and (socket_dir(data_dir) / SOCKET_NAME).exists()


def start(data_dir: Path) -> int:
    """Start the postmaster if it is not running (callers hold the keeper's control lock); its pid."""
    running = postmaster_pid(data_dir)
    if running is not None:
        return running
    initdb(data_dir)
    _recover_stale(data_dir)
    pgdata = pgdata_of(data_dir)
    sockets = socket_dir(data_dir)
    sockets.mkdir(parents=True, exist_ok=True)
    sockets.chmod(0o700)
    _own(sockets)
    _run("pg_ctl", ["-D", str(pgdata), "-w", "-t", "60", "-l", str(pgdata / "log"),
                    "-o", f"-h '' -k {sockets} -p {PORT} -c unix_socket_permissions=0700", "start"])
    pid = postmaster_pid(data_dir)
    if pid is None:
        raise RuntimeError(f"the embedded Postgres did not start; see {pgdata / 'log'}")
    return pid


def stop(data_dir: Path, pid: int | None = None) -> None:
    """Fast shutdown (clients disconnected, no recovery needed on the next start). `pid`: the postmaster
    we know of, signalled directly when pg_ctl cannot be used (its data directory was deleted)."""
    import psutil

    pid = postmaster_pid(data_dir) or pid
    if pid is None:
        return
    try:
        _run("pg_ctl", ["-D", str(pgdata_of(data_dir)), "-w", "-t", "30", "-m", "fast", "stop"], timeout=60)
        return
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError):
        pass
    try:
        proc = psutil.Process(pid)
        if proc.name() != "postgres":
            return
        proc.send_signal(signal.SIGINT)  # the postmaster's fast shutdown
        deadline = time.monotonic() + 30
        while proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
            proc.kill()
    except psutil.Error:
        pass
