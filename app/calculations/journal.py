"""The calculations' journal format: every recorded calculation, from the moment it is answered until
Postgres stores it (the file mechanism, locks and adoption are app.db.journal; the recorder is
app.calculations.store).

One line per calculation, written by the request before it answers, so its encoding is the request
path's cost. The request body is valid JSON (it passed validation) and the response is usually JSON
bytes already, so neither is encoded again as a JSON string (escaping and copying each byte, then
parsing it back at flush): the line is a small JSON header, a tab, then the input and the result
verbatim:

    ["<id>","<broker>","<user>"|null,"<key>"|null,"<kind>","<sha256>","<created_at>",units,latency,
     instrument,currency,risk,<input bytes>,<result bytes>]\\t<input><result>\\n

The first tab ends the header (JSON escapes control characters inside strings, so the header holds no
raw tab); its two lengths split the rest and reveal a line torn by a crash (lengths that do not add up).
A raw newline can only be whitespace between JSON tokens (inside a string it must be escaped, and
app.jsonbody refuses control characters anyway), so the recorder turns any into a space, keeping lines
whole and the JSON unchanged. A line without a tab is the previous format (one JSON array, input and
result as strings), still read so a journal left by the previous version is stored after an upgrade.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from app.db import journal

# (units, latency ms, instrument, account currency, risk %): the usage columns analytics and billing query
Usage = tuple[int, float | None, str | None, str | None, float | None]
NO_USAGE: Usage = (1, None, None, None, None)
# What the insert takes, as the journal holds it: (id, broker_id, user_id, api_key_id, kind, input json
# text, result json text, input sha256, created_at ISO 8601, usage). Ids and time stay text: asyncpg
# encodes a uuid from its text and Postgres casts the time, so reading a journal parses neither.
Row = tuple[str, str, str | None, str | None, str, str, str, str, str, Usage]


def _default(value: Any) -> str:
    return str(value)  # the UUID subclass asyncpg hands out, which orjson does not take as a uuid.UUID


def parts(calc_id: str, broker: Any, user: Any, key: Any, kind: str, digest: str, at: datetime | str,
          usage: Usage, stored: bytes, result: bytes) -> list[bytes]:
    """The journal line of one calculation, in pieces for one `writev` (the result is not copied).
    `stored` and `result` are JSON without raw newlines."""
    head = orjson.dumps([calc_id, broker, user, key, kind, digest, at, *usage, len(stored), len(result)],
                        default=_default)
    return [head, b"\t", stored, result, b"\n"]


def encode(row: Row) -> bytes:
    rid, broker, user, key, kind, stored, result, digest, at, usage = row
    return b"".join(parts(rid, broker, user, key, kind, digest, at, usage, stored.encode(), result.encode()))


def decode(line: bytes) -> Row:
    tab = line.find(b"\t")
    if tab < 0:  # the previous format: one JSON array
        rid, broker, user, key, kind, stored, result, digest, at, *rest = orjson.loads(line)
        # A line journaled before the usage columns existed has none: one unit, nothing else known.
        old: Usage = tuple(rest[0]) if rest else NO_USAGE
        return rid, broker, user, key, kind, stored, result, digest, at, old
    rid, broker, user, key, kind, digest, at, units, latency, pair, currency, risk, n_in, n_out = \
        orjson.loads(line[:tab])
    start = tab + 1
    if len(line) != start + n_in + n_out:
        raise ValueError("torn journal line")
    stored = line[start:start + n_in].decode("utf-8", "replace")
    result = line[start + n_in:].decode("utf-8", "replace")
    return rid, broker, user, key, kind, stored, result, digest, at, (units, latency, pair, currency, risk)


class Journal(journal.Journal[Row]):
    """The calculations' journal (the file mechanism is app.db.journal)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, encode, decode)
