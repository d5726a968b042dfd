"""The keeper process itself (app.keeper explains the scheme): `python -m app.enginekeeper DATA_DIR CLEANUP TOKEN`.

Started by app.keeper.join() for the first process on a data directory; it starts the embedded Postgres
and Redis, restarts Redis when it dies, and stops both once no process holds the users lock. It sits
above app.db and app.redisdb (it runs their engines); they only use app.keeper's locks.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from app import keeper
from app.db import embedded as pg
from app.redisdb import embedded as redis


def widen_cpu_affinity() -> None:
    """Let the engines run on every core this process may use. The keeper serves every worker of the data
    directory but is started by whichever came first, and a worker pinned to one core (taskset, a CPU
    manager) would hand its pinning down: Postgres and Redis then compete with that worker for its core
    while the others idle (seen in bench.http_bench: Postgres took 18 % of the pinned server's core)."""
    if not hasattr(os, "sched_setaffinity"):
        return
    try:
        # The kernel intersects the mask with the cgroup's cpuset, so asking for every core is safe.
        os.sched_setaffinity(0, range(os.cpu_count() or 1))
    except OSError:
        pass  # not allowed to widen: keep the inherited set


def _keep(data_dir: Path, cleanup: str, token: str) -> None:
    run = keeper.run_dir(data_dir)
    keeper_fd = keeper.open_lock(run / "keeper.lock")
    fcntl.flock(keeper_fd, fcntl.LOCK_EX)
    try:
        pg_pid = pg.start(data_dir)
        server = redis.spawn(data_dir)
    except Exception as exc:
        keeper.write_state(data_dir, {"failed": token, "error": f"{type(exc).__name__}: {exc}"})
        raise
    info = {"token": token, "keeperPid": os.getpid(), "postgresPid": pg_pid, "redisPid": server.pid,
            "postgresUrl": pg.url(data_dir), "redisUrl": redis.url(data_dir)}
    keeper.write_state(data_dir, info)
    print(f"keeper {os.getpid()}: postgres {pg_pid}, redis {server.pid} under {data_dir}", flush=True)
    users = run / "users.lock"
    stop_requested: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stop_requested.append(signum))  # stop in order
    while True:
        time.sleep(keeper.POLL_SECONDS)
        if server.poll() is not None and not (run / "redis.hold").exists():
            print(f"keeper: redis-server {server.pid} exited ({server.returncode}); restarting", flush=True)
            server = redis.spawn(data_dir)
            info["redisPid"] = server.pid
            keeper.write_state(data_dir, info)
        pg_pid = pg.postmaster_pid(data_dir) or pg_pid
        if not stop_requested and not keeper.is_free(users):
            continue
        with keeper.Control(data_dir):
            users_fd = keeper.open_lock(users)
            try:
                fcntl.flock(users_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # somebody joined meanwhile
                if not stop_requested:
                    os.close(users_fd)
                    continue
            print("keeper: stopping the engines (" + ("SIGTERM" if stop_requested else "no process uses them")
                  + ")", flush=True)
            if server.poll() is None:
                server.terminate()
                try:
                    server.wait(30)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()
            pg.stop(data_dir, pg_pid)
            if cleanup == "delete":
                shutil.rmtree(pg.pgdata_of(data_dir), ignore_errors=True)
            (run / "engines.json").unlink(missing_ok=True)
            os.close(users_fd)
            os.close(keeper_fd)
            return


def main(argv: list[str]) -> int:
    data_dir, cleanup, token = Path(argv[0]), argv[1], argv[2]
    if os.fork():
        return 0  # the caller waits for this first process only; the keeper lives on detached
    os.setsid()
    widen_cpu_affinity()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    _keep(data_dir, cleanup, token)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
