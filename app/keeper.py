"""The keeper of a data directory's embedded engines: one Postgres and one Redis for every process on it.

Processes that use the embedded engines (`run` and each of its `--workers`, admin commands, benches,
tests) *join* the data directory; the first one starts a keeper, a small detached process that starts
Postgres and Redis, restarts Redis when it dies, and stops both once no process uses them any more.

Who uses the data directory is counted by the kernel, not by pid files: each user holds a shared
`flock` on `run/users.lock`, and the kernel drops it however the process ends (a return, Ctrl-C,
kill -9). The keeper polls for an exclusive lock on the same file; once it gets one, nobody is left,
and it stops the engines (fast shutdown) and exits. So a crash leaves nothing running, and there is
no pid list that a dead process could leave behind. Starting and stopping are serialised by
`run/control.lock`; `run/keeper.lock` is held by the live keeper; `run/engines.json` says where the
engines are. The keeper runs in its own session, so a Ctrl-C in a terminal reaches the app (which
leaves) and not the keeper (which then stops the engines in order). Redis is the keeper's child with
a parent-death signal: if the keeper itself is killed, Redis goes too; Postgres is then stopped by
the next keeper (a live postmaster of this directory is adopted, a stale postmaster.pid removed).
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
POLL_SECONDS = 0.1
START_TIMEOUT = 180.0

# This process's joins per data directory: (the open users.lock holding our shared lock, count).
_joined: dict[Path, tuple[int, int]] = {}


def run_dir(data_dir: Path) -> Path:
    path = (data_dir / "run").resolve()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def state(data_dir: Path) -> dict[str, Any]:
    try:
        found: dict[str, Any] = json.loads((run_dir(data_dir) / "engines.json").read_text())
        return found
    except (OSError, ValueError):
        return {}


def wait_until(done: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.02)


def open_lock(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def is_free(path: Path) -> bool:
    """Nobody holds a lock on path (we take and drop an exclusive one)."""
    fd = open_lock(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing drops the lock if we got it
    return True


class Control:
    """The data directory's control lock: joins, keeper starts and keeper shutdowns take turns."""

    def __init__(self, data_dir: Path) -> None:
        self.path = run_dir(data_dir) / "control.lock"
        self.fd = -1

    def __enter__(self) -> Control:
        self.fd = open_lock(self.path)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


def join(data_dir: Path, cleanup: str = "stop") -> dict[str, Any]:
    """Use the data directory's engines until leave() (or until this process ends, however it ends)."""
    data_dir = data_dir.resolve()
    if data_dir in _joined:
        fd, count = _joined[data_dir]
        _joined[data_dir] = (fd, count + 1)
        return state(data_dir)
    run = run_dir(data_dir)
    with Control(data_dir):
        users = open_lock(run / "users.lock")
        fcntl.flock(users, fcntl.LOCK_SH)
        _joined[data_dir] = (users, 1)
        try:
            if is_free(run / "keeper.lock"):
                _spawn_keeper(data_dir, cleanup)
        except BaseException:
            _joined.pop(data_dir)
            os.close(users)
            raise
    return state(data_dir)


def _spawn_keeper(data_dir: Path, cleanup: str) -> None:
    token = secrets.token_hex(8)
    (run_dir(data_dir) / "engines.json").unlink(missing_ok=True)
    log = run_dir(data_dir) / "keeper.log"
    with log.open("ab") as out:
        # The keeper detaches (fork + setsid) at once, so it is nobody's child: this call returns quickly.
        subprocess.run([sys.executable, "-m", "app.enginekeeper", str(data_dir), cleanup, token], cwd=ROOT,
                       stdin=subprocess.DEVNULL, stdout=out, stderr=out, check=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})

    def ready() -> bool:
        current = state(data_dir)
        if current.get("token") == token:
            return True
        if current.get("failed") == token:
            raise RuntimeError(f"the embedded engines did not start: {current.get('error')}; see {log}")
        return False

    wait_until(ready, START_TIMEOUT, f"the embedded engines under {data_dir} (see {log})")


def leave(data_dir: Path, wait: bool = True) -> None:
    """Stop using the engines. The last user (of every process) makes the keeper stop them; with `wait`
    this returns once they have stopped."""
    data_dir = data_dir.resolve()
    if data_dir not in _joined:
        return
    fd, count = _joined[data_dir]
    if count > 1:
        _joined[data_dir] = (fd, count - 1)
        return
    del _joined[data_dir]
    os.close(fd)
    if wait:
        run = run_dir(data_dir)

        def settled() -> bool:
            # The keeper is gone; or it is not stopping (it holds the control lock while it stops) and
            # somebody else uses the engines.
            if is_free(run / "keeper.lock"):
                return True
            return is_free(run / "control.lock") and not is_free(run / "users.lock")

        wait_until(settled, 120, "the embedded engines to stop")


def joined(data_dir: Path) -> bool:
    return data_dir.resolve() in _joined


# --- the keeper process ---------------------------------------------------------------------------


def write_state(data_dir: Path, content: dict[str, Any]) -> None:
    path = run_dir(data_dir) / "engines.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(content))
    tmp.replace(path)

