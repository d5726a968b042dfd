"""The owner takeover of the embedded ClickHouse, between real processes: an owner answers another
process's report over the socket; it is killed with SIGKILL (the kernel drops its flock); the other
process's next report finds no owner, takes the lock, opens the same chDB path and answers itself.

Each role runs in a process of its own: chDB opens one path per process, and the test process's own
app already holds one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

CHILD = textwrap.dedent("""
    import asyncio, json, sys, uuid
    from datetime import UTC, datetime, timedelta
    from pathlib import Path
    from app.analytics.queries import Window
    from app.analytics.service import Analytics
    from app.config import Settings

    BROKER = uuid.UUID(int=7)
    NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)

    async def owner(settings: Settings) -> None:
        analytics = Analytics(settings, None)  # no Postgres: it never ships here
        await analytics._open()
        assert analytics.clickhouse is not None
        # One calculation event, written by the owner: whoever answers later must read this path.
        await analytics.clickhouse.insert([[uuid.uuid4(), "calculations", NOW, BROKER, None, None, "calculation", "",
                                            "position-size", "EURUSD", "USD", 1.0, 200, 2.5, 1]], "takeover-test")
        print("RESULT owner", flush=True)
        await asyncio.sleep(3600)

    async def asker(settings: Settings) -> None:
        analytics = Analytics(settings, None)
        window = Window(NOW - timedelta(hours=1), NOW + timedelta(hours=1), "hour")
        for _ in range(2):
            body = await analytics.report("usage", BROKER, window)
            answer = {"direct": analytics.clickhouse is not None, "calculations": body["totals"]["calculations"]}
            print("RESULT", json.dumps(answer), flush=True)
            sys.stdin.readline()  # the test kills the owner, then lets this process ask again
        await analytics.stop()

    role, data_dir = sys.argv[1], Path(sys.argv[2])
    settings = Settings(data_dir=data_dir, clickhouse_url=None, analytics_enabled=True)
    asyncio.run(owner(settings) if role == "owner" else asker(settings))
""")


def spawn(role: str, data_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", CHILD, role, str(data_dir)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])


def result(stream: object) -> str:
    """The child's next answer line (its log lines go to stdout too)."""
    assert hasattr(stream, "readline")
    while True:
        line = stream.readline()
        assert line, "the child ended without answering"
        if line.startswith("RESULT "):
            return str(line.removeprefix("RESULT ").strip())


def test_another_process_takes_over_when_the_owner_dies(tmp_path: Path) -> None:
    owner = spawn("owner", tmp_path)
    asker: subprocess.Popen[str] | None = None
    try:
        assert result(owner.stdout) == "owner"
        asker = spawn("asker", tmp_path)
        assert asker.stdout is not None and asker.stdin is not None
        # While the owner lives, the other process cannot take the lock: the owner answers for it.
        assert json.loads(result(asker.stdout)) == {"direct": False, "calculations": 1}
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait()
        asker.stdin.write("again\n")
        asker.stdin.flush()
        # No owner answers any more: the asker took the lock, opened the same path, and answered itself.
        assert json.loads(result(asker.stdout)) == {"direct": True, "calculations": 1}
        asker.stdin.write("done\n")
        asker.stdin.flush()
        assert asker.wait(timeout=120) == 0
    finally:
        for process in (owner, asker):
            if process is not None:
                if process.poll() is None:
                    process.kill()
                    process.wait()
                for stream in (process.stdin, process.stdout):
                    if stream is not None:
                        stream.close()
