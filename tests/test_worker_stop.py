"""The in-process job worker always stops at shutdown (app/worker/runner.py WorkerTask.stop), even when a
library swallows the cancellation: Python 3.11's wait_for/timeout can lose a CancelledError that races with
the awaited result, and arq then polls on. The app's shutdown once waited for such a worker forever."""

from __future__ import annotations

import asyncio
from typing import Any

from app.worker.runner import WorkerTask


class SwallowingWorker:
    """Polls like arq's Worker.main; the first `swallow` cancellations are lost the way the race loses them."""

    def __init__(self, swallow: int) -> None:
        self.swallow = swallow
        self.allow_pick_jobs = True
        self.tasks: dict[str, asyncio.Task[Any]] = {}
        self.polls = 0

    async def main(self) -> None:
        while True:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                if self.swallow <= 0:
                    raise
                self.swallow -= 1  # lost: the loop goes on
            self.polls += 1


async def _closed(worker: Any) -> None:
    return None


def run_stop(swallow: int) -> SwallowingWorker:
    worker = SwallowingWorker(swallow)

    async def scenario() -> None:
        task = WorkerTask(lambda: worker, grace_seconds=0)  # type: ignore[arg-type,return-value]
        task.close = _closed  # type: ignore[method-assign]  # nothing to close: no Redis pool
        task.start()
        while worker.polls < 3:
            await asyncio.sleep(0.01)
        inner = task.task
        assert inner is not None
        # The bound of the test, not of the code under test; asyncio.wait does not cancel what it waits for.
        stopping = asyncio.ensure_future(task.stop())
        await asyncio.wait({stopping}, timeout=20)
        stopped = stopping.done()
        left_running = not inner.done()
        worker.swallow = 0  # a worker the code under test failed to stop ends with the test
        if left_running:
            inner.cancel()
        await asyncio.wait({stopping, inner})
        assert stopped and not left_running, "stop() returned without the worker having stopped, or never returned"

    asyncio.run(scenario())
    return worker


def test_a_worker_stops_on_the_first_cancellation() -> None:
    assert run_stop(0).swallow == 0


def test_a_swallowed_cancellation_is_repeated_until_the_worker_stops() -> None:
    worker = run_stop(2)
    assert worker.swallow == 0  # both lost cancellations happened, and stop() still returned
