"""The calculation recorder loses nothing it answered: a real process records a calculation, is killed
with SIGKILL before its flush tick, and the next recorder on the same directory stores it exactly once in
the real Postgres. Plus the journal line format: verbatim JSON behind a header, torn lines, old lines."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import orjson
from fastapi.testclient import TestClient

from app.calculations import journal
from app.calculations.store import CalculationRecorder
from app.db.journal import _read
from tests.conftest import BrokerFixture
from tests.helpers_auth import sql

# Pretty-printed on purpose: its newlines must not split the journal line.
BODY = b'{\n  "accountBalance": 10000,\n  "note": "tab\\there, newline\\nthere"\n}'
RESULT = b'{"calculationId":"%s","lotSize":0.66}'
USAGE: journal.Usage = (3, 1.25, "EUR/USD", "USD", 1.0)

CHILD = textwrap.dedent("""
    import asyncio, sys, uuid
    from pathlib import Path
    from app.auth.principal import Principal
    from app.calculations.store import CalculationRecorder
    from tests.test_calculation_journal import BODY, RESULT, USAGE

    async def main() -> None:
        recorder = CalculationRecorder(None, {}, Path(sys.argv[1]), interval=3600)  # no database, no tick
        recorder.start()
        principal = Principal(uuid.UUID(sys.argv[2]), "secret_key", frozenset())
        calc_id = sys.argv[3]
        recorder.record(principal, "position-size", BODY, {"calculationId": calc_id}, RESULT % calc_id.encode(),
                        USAGE)
        print("acked", flush=True)  # what the HTTP answer would follow
        await asyncio.sleep(3600)

    asyncio.run(main())
""")


def stored(client: TestClient, calc_id: str) -> list[tuple[object, ...]]:
    return [tuple(r) for r in sql(client, "select broker_id, kind, input::text, result::text, input_hash, units, "
                                          "latency_ms, instrument, account_currency, risk_pct from calculations "
                                          "where id = :id", {"id": calc_id})]


def test_a_calculation_answered_before_a_kill_9_is_stored_once(client: TestClient, broker_a: BrokerFixture,
                                                              tmp_path: Path) -> None:
    journal_dir = tmp_path / "journal"
    calc_id = str(uuid.uuid4())
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(journal_dir), str(broker_a.id), calc_id],
                             stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "acked"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert len(list(journal_dir.glob("*.jsonl"))) == 1  # the dead process's journal, left behind
    assert stored(client, calc_id) == []

    recorder = CalculationRecorder(client.app.state.services.db, {}, journal_dir)  # type: ignore[attr-defined]

    async def restart() -> None:
        recorder.open()  # adopts the dead process's journal
        assert recorder.waiting == 1
        await recorder.flush()
        await recorder.flush()  # a second pass stores nothing twice

    client.portal.call(restart)  # type: ignore[union-attr]
    rows = stored(client, calc_id)
    assert len(rows) == 1
    broker, kind, body, result, digest, units, latency, pair, currency, risk = rows[0]
    assert (str(broker), kind, units, latency, pair, currency, risk) == (str(broker_a.id), "position-size",
                                                                         *USAGE)
    assert orjson.loads(str(body)) == orjson.loads(BODY)  # the same JSON (its newlines became spaces)
    assert result == (RESULT % calc_id.encode()).decode()
    assert digest == hashlib.sha256(BODY).hexdigest()  # of the body as sent
    assert recorder.waiting == 0
    assert [p for p in journal_dir.glob("*.jsonl") if p.stat().st_size] == []  # stored, so no journal holds it
    client.portal.call(recorder.stop)  # type: ignore[union-attr]
    assert list(journal_dir.glob("*.jsonl")) == []


def _row(calc_id: str) -> journal.Row:
    return (calc_id, str(uuid.uuid4()), None, str(uuid.uuid4()), "var", '{"a": [1, 2]}', '{"b":"\\t"}',
            "ab" * 32, "2026-12-03T10:00:00.123456+00:00", USAGE)


def test_a_journal_line_round_trips_and_a_torn_line_is_refused() -> None:
    row = _row(str(uuid.uuid4()))
    line = journal.encode(row)
    assert line.count(b"\n") == 1 and line.endswith(b"\n")
    assert b'\t{"a": [1, 2]}{"b":"\\t"}\n' in line  # input and result verbatim, not escaped into strings
    assert journal.decode(line[:-1]) == row
    torn = line[:-5]  # a crash in the middle of the write
    try:
        journal.decode(torn)
    except ValueError:
        pass
    else:
        raise AssertionError("a torn line was decoded")


def test_the_previous_line_format_is_still_read(tmp_path: Path) -> None:
    """A journal left by the previous version (one JSON array a line) is stored after an upgrade."""
    old = _row(str(uuid.uuid4()))
    rid, broker, user, key, kind, body, result, digest, at, usage = old
    line = orjson.dumps([rid, broker, user, key, kind, body, result, digest, at, list(usage)])
    older = orjson.dumps([rid, broker, user, key, kind, body, result, digest, at])  # before the usage columns
    new = _row(str(uuid.uuid4()))
    path = tmp_path / "j.jsonl"
    path.write_bytes(line + b"\n" + older + b"\n" + journal.encode(new) + journal.encode(new)[:-9])
    fd = os.open(path, os.O_RDONLY)
    try:
        rows = _read(fd, journal.decode)
    finally:
        os.close(fd)
    assert rows == [old, (*old[:9], journal.NO_USAGE), new]  # the torn last line is logged and skipped
