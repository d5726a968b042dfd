"""A durable local journal of calculations waiting for Postgres.

Why a local file and not a Redis stream: the embedded Redis keeps nothing on disk (no snapshots, by
design: it holds only re-creatable state), an external Redis may be down in the same outage, and a
worker must be able to park a row without any server answering. A file on the data directory needs
nothing but the disk the worker already runs on.

Each recorder owns one append-only file `<dir>/<pid>-<random>.jsonl` and holds an exclusive `flock`
on it while it lives. The kernel drops that lock however the process ends (return, Ctrl-C, kill -9),
so a file whose lock can be taken belongs to nobody: the next recorder to start on the data
directory adopts it (copies its rows into its own journal, fsyncs, deletes it) and stores the rows
once Postgres answers. Rows are inserted with `on conflict (id) do nothing`, so a row stored twice
(a crash between an insert and the truncation of the journal) is stored once.

One line per row: a JSON array of the insert's parameters (ids as strings, the time as ISO 8601).
"""

from __future__ import annotations

import fcntl
import os
import uuid
from datetime import datetime
from pathlib import Path

import orjson
import structlog

log = structlog.get_logger(__name__)

# (units, latency ms, instrument, account currency, risk %): the usage columns analytics and billing query
Usage = tuple[int, float | None, str | None, str | None, float | None]
NO_USAGE: Usage = (1, None, None, None, None)
# (id, broker_id, user_id, api_key_id, kind, input json text, result json text, input sha256, created_at, usage)
Row = tuple[uuid.UUID, uuid.UUID, uuid.UUID | None, uuid.UUID | None, str, str, str, str, datetime, Usage]


def encode(row: Row) -> bytes:
    rid, broker, user, key, kind, stored, result, digest, at, usage = row
    return orjson.dumps([str(rid), str(broker), user and str(user), key and str(key), kind, stored, result,
                         digest, at.isoformat(), list(usage)]) + b"\n"


def decode(line: bytes) -> Row:
    rid, broker, user, key, kind, stored, result, digest, at, *rest = orjson.loads(line)
    # A line journaled before the usage columns existed has none: one unit, nothing else known.
    usage: Usage = tuple(rest[0]) if rest else NO_USAGE
    return (uuid.UUID(rid), uuid.UUID(broker), uuid.UUID(user) if user else None, uuid.UUID(key) if key else None,
            kind, stored, result, digest, datetime.fromisoformat(at), usage)


def _read(fd: int) -> list[Row]:
    size = os.fstat(fd).st_size
    data = os.pread(fd, size, 0) if size else b""
    rows = []
    for line in data.split(b"\n"):
        if not line:
            continue
        try:
            rows.append(decode(line))
        except (ValueError, TypeError):  # a line torn by a crash in the middle of a write
            log.error("calculation_journal_torn_line", bytes=len(line))
    return rows


class Journal:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
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
                rows = _read(fd)
                if rows:
                    self.append(rows)
                    self.sync()
                other.unlink()
                adopted += len(rows)
            finally:
                os.close(fd)
        if adopted:
            log.warning("calculation_journal_adopted", rows=adopted)
        return adopted

    def append(self, rows: list[Row]) -> None:
        """Park rows. A write reaches the page cache, so it survives the process (kill -9 included);
        `sync()` (once per flush tick) makes it survive the machine."""
        if rows:
            os.write(self.fd, b"".join(encode(r) for r in rows))
            self.rows += len(rows)
            self._unsynced = True

    def sync(self) -> None:
        if self._unsynced:
            os.fsync(self.fd)
            self._unsynced = False

    def read(self) -> list[Row]:
        return _read(self.fd)

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

