"""One process per data directory for a duty: `Singleton(data_dir, "analytics")`.

Every process on a data directory (each `run --workers N` worker, `forexrisk worker`, admin commands, tests)
may start the same duty; the one that holds the singleton does it, the others wait and take over when it
ends. The lock is the kernel's `flock` on `data_dir/run/singleton-<name>.lock` (app.keeper's scheme): it is
dropped however the holder ends, kill -9 included, so there is no lease to expire and no stale owner.

It is per data directory, i.e. per machine, which is what a duty bound to a local path needs (an embedded
database file only one process may open). Work that must run once across machines is a job instead: arq runs
each job id once however many workers there are.

    lock = Singleton(settings.data_dir, "analytics")
    if lock.try_acquire():          # or: `await lock.acquire()` to wait until it is ours
        ...                         # the duty; `lock.release()` (or the process ending) hands it on
    async with Singleton(settings.data_dir, "analytics"):  # wait, run, release
        ...
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
from pathlib import Path
from types import TracebackType

from app import keeper

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


class Singleton:
    def __init__(self, data_dir: Path, name: str, poll_seconds: float = 0.5) -> None:
        if not NAME.fullmatch(name):
            raise ValueError("a singleton name is 1 to 64 of a-z 0-9 _ - (it names a file)")
        self.path = keeper.run_dir(data_dir) / f"singleton-{name}.lock"
        self.poll_seconds = poll_seconds
        self.fd = -1

    @property
    def held(self) -> bool:
        return self.fd >= 0

    def try_acquire(self) -> bool:
        """Take it if nobody holds it (this process included: a second Singleton of the same name is
        refused too, as flock locks belong to the open file, not the process). Never blocks."""
        if self.held:
            return True
        fd = keeper.open_lock(self.path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    async def acquire(self) -> None:
        """Wait until it is ours. Polls (a blocking flock would block the event loop, and one in a thread
        could not be cancelled)."""
        while not self.try_acquire():
            await asyncio.sleep(self.poll_seconds)

    def release(self) -> None:
        if self.held:
            os.close(self.fd)  # closing the file drops the lock
            self.fd = -1

    async def __aenter__(self) -> Singleton:
        await self.acquire()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.release()
