"""app.jobs.singleton: one holder per data directory and name, handed on when the holder ends, however."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.jobs.singleton import Singleton

ROOT = Path(__file__).resolve().parents[1]
HOLDER = """
import sys
from pathlib import Path
from app.jobs.singleton import Singleton
lock = Singleton(Path(sys.argv[1]), "duty")
assert lock.try_acquire()
print("held", flush=True)
sys.stdin.read()  # until killed
"""


@pytest.fixture
def data_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="forexrisk-singleton-") as path:
        yield Path(path)


def test_one_holder_per_name_even_within_a_process(data_dir: Path) -> None:
    first, second, other = Singleton(data_dir, "duty"), Singleton(data_dir, "duty"), Singleton(data_dir, "other")
    assert first.try_acquire() and first.held and first.try_acquire()  # taking it again is a no-op
    assert not second.try_acquire() and not second.held
    assert other.try_acquire()  # another duty is another lock
    first.release()
    assert second.try_acquire()
    second.release()
    other.release()
    with pytest.raises(ValueError):
        Singleton(data_dir, "../escape")


def test_a_waiting_process_takes_over_when_the_holder_is_killed(data_dir: Path) -> None:
    with subprocess.Popen([sys.executable, "-c", HOLDER, str(data_dir)], cwd=ROOT, text=True,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE) as holder:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"

        async def wait_for_it() -> bool:
            lock = Singleton(data_dir, "duty", poll_seconds=0.02)
            waiting = asyncio.create_task(lock.acquire())
            await asyncio.sleep(0.1)
            assert not waiting.done()  # the holder has it: we wait, without blocking the loop
            holder.send_signal(signal.SIGKILL)  # no clean-up of any kind: the kernel drops the flock
            await asyncio.wait_for(waiting, 60)  # a hang guard
            held = lock.held
            lock.release()
            async with Singleton(data_dir, "duty", poll_seconds=0.02) as again:
                assert again.held
            assert not again.held  # released on leaving the block
            return held

        assert asyncio.run(wait_for_it())
        holder.wait(30)
