"""A durable local journal of rows waiting for Postgres: the file mechanism, for any row type.

Why a local file and not a Redis stream: the embedded Redis keeps nothing on disk (no snapshots, by
design: it holds only re-creatable state), an external Redis may be down in the same outage, and a
worker must be able to park a row without any server answering. A file on the data directory needs
nothing but the disk the worker already runs on.

Each journal is one append-only file `<dir>/<pid>-<random>.jsonl`, under an exclusive `flock` while
its process lives. The kernel drops that lock however the process ends (return, Ctrl-C, kill -9), so
a file whose lock can be taken belongs to nobody: the next journal opened on the directory adopts it
(copies its rows into its own file, fsyncs, deletes it). Rows must be stored idempotently (`on
conflict do nothing`): a row stored twice (a crash between an insert and the truncation of the
journal) is then stored once. One line per row, as the row type's `encode` writes it.
Users: app.calculations.journal (calculations during a Postgres outage), app.analytics.outbox (every
usage event, from the moment it is acknowledged).
"""

from __future__ import annotations

import fcntl
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

import structlog

log = structlog.get_logger(__name__)
T = TypeVar("T")


def _read(fd: int, decode: Callable[[bytes], T]) -> list[T]:
    size = os.fstat(fd).st_size
    data = os.pread(fd, size, 0) if size else b""
    rows: list[T] = []
    for line in data.split(b"\n"):
        if not line:
            continue
        try:
            rows.append(decode(line))
        except (ValueError, TypeError):  # a line torn by a crash in the middle of a write
            log.error("journal_torn_line", bytes=len(line))
    return rows


class Journal(Generic[T]):
    def __init__(self, directory: Path, encode: Callable[[T], bytes], decode: Callable[[bytes], T]) -> None:
        self.directory = directory
        self.encode = encode
        self.decode = decode
        self.path = directory / f"{os.getpid()}-{uuid.uuid4().hex[:12]}.jsonl"
        self.fd = -1
        self.rows = 0  # rows in this journal, i.e. waiting for Postgres
        self._unsynced = False

    def open(self) -> int:
        """Create this recorder's journal and adopt every orphaned one; return the rows adopted."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        adopted = 0
        for other in sorted(self.directory.glob("*.jsonl")):
            if other == self.path:
                continue
            try:
                fd = os.open(other, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # adopted by another recorder meanwhile
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its recorder is alive
                if not os.path.exists(other):
                    continue  # adopted and deleted between our open and our lock
                rows = _read(fd, self.decode)
                if rows:
                    self.append(rows)
                    self.sync()
                other.unlink()
                adopted += len(rows)
            finally:
                os.close(fd)
        if adopted:
            log.warning("journal_adopted", directory=str(self.directory), rows=adopted)
        return adopted

    def append(self, rows: list[T]) -> None:
        """Park rows. A write reaches the page cache, so it survives the process (kill -9 included);
        `sync()` (once per flush tick) makes it survive the machine."""
        if rows:
            os.write(self.fd, b"".join(self.encode(r) for r in rows))
            self.rows += len(rows)
            self._unsynced = True

    def sync(self) -> None:
        if self._unsynced:
            os.fsync(self.fd)
            self._unsynced = False

    def read(self) -> list[T]:
        return _read(self.fd, self.decode)

    def clear(self) -> None:
        os.ftruncate(self.fd, 0)
        os.fsync(self.fd)
        self.rows = 0
        self._unsynced = False

    def close(self) -> None:
        """An empty journal is deleted; one still holding rows stays for the next start to adopt."""
        if self.fd < 0:
            return
        self.sync()
        if self.rows == 0:
            self.path.unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = -1


    def discard(self) -> None:
        """Delete this journal, rows and all: its rows are stored."""
        if self.fd < 0:
            return
        self.path.unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = -1
        self.rows = 0
