"""The usage outbox loses nothing a process acknowledged: a real process journals a widget load, is
killed with SIGKILL, and the next outbox on the same directory stores the event in the real Postgres."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from app.analytics.outbox import UsageOutbox
from tests.conftest import BrokerFixture
from tests.helpers_auth import sql

CHILD = textwrap.dedent("""
    import asyncio, sys, uuid
    from pathlib import Path
    from app.analytics.outbox import UsageOutbox

    async def main() -> None:
        outbox = UsageOutbox(None, Path(sys.argv[1]), interval=3600)  # no database: it never gets to store
        outbox.start()
        outbox.widget_loaded(uuid.UUID(sys.argv[2]), None, "page")
        print("acked", flush=True)  # what the widget's HTTP answer would follow
        await asyncio.sleep(3600)

    asyncio.run(main())
""")


def widget_pages(client: TestClient, broker_id: uuid.UUID) -> int:
    return int(sql(client, "select count(*) from usage_events where broker_id = :b and event_type = 'widget_load' "
                           "and endpoint = 'page'", {"b": broker_id})[0][0])


def test_a_widget_load_acknowledged_before_a_kill_9_reaches_postgres(client: TestClient, broker_a: BrokerFixture,
                                                                     tmp_path: Path) -> None:
    journal_dir = tmp_path / "usage-journal"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(journal_dir), str(broker_a.id)],
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
    assert widget_pages(client, broker_a.id) == 0

    outbox = UsageOutbox(client.app.state.services.db, journal_dir)  # type: ignore[attr-defined]

    async def restart() -> None:
        outbox.open()  # adopts the dead process's journal
        await outbox.flush()
        await outbox.flush()  # a second pass stores nothing twice

    client.portal.call(restart)  # type: ignore[union-attr]
    assert widget_pages(client, broker_a.id) == 1
    rest: Any = [p for p in journal_dir.glob("*.jsonl") if p.stat().st_size]
    assert rest == []  # stored, so no journal holds it any more
    client.portal.call(outbox.stop)  # type: ignore[union-attr]
