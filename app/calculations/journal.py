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

import uuid
from datetime import datetime
from pathlib import Path

import orjson

from app.db import journal

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


class Journal(journal.Journal[Row]):
    """The calculations' journal (the file mechanism is app.db.journal)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, encode, decode)
