"""Heavy calculations run here, in a process pool sized to the cores, never on the event loop.

The cost model (app.calculations.cost) marks a request heavy before it runs; the pipeline then sends
the engine call here, so `/healthz` and plain position sizes keep answering while a 10,000-path Monte
Carlo runs. Each call has a CPU budget: the worker arms ITIMER_PROF (CPU time of that process, so a busy
machine does not trip it) and a call that exceeds it raises CpuBudgetExceeded inside the worker, which
frees the worker at once; the pipeline turns it into a problem. A worker that dies (OOM killer, a
crash in NumPy) breaks the pool: the call gets a 503 problem and the next call gets a fresh pool.

Workers are started with `spawn` (not fork): the server process holds threads, sockets and an event
loop that a forked child must not inherit. They start on the first heavy request, not at app start, so
an app that never sees one (and every test app) pays nothing.
"""

from __future__ import annotations

import asyncio
import importlib
import multiprocessing
import os
import signal
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import structlog

from app.errors import AppError, ServiceUnavailable

log = structlog.get_logger(__name__)


class CpuBudgetExceeded(AppError):
    """Raised inside a pool worker when a call used up its CPU budget; crosses the process boundary."""

    status = 422
    slug = "cpu-budget-exceeded"

    def __reduce__(self) -> tuple[Any, ...]:  # keep the detail when pickled back to the server
        return (CpuBudgetExceeded, (self.detail,))


def _on_budget(signum: int, frame: Any) -> None:
    raise CpuBudgetExceeded("The calculation used up its CPU budget and was stopped; ask for fewer paths, "
                            "observations or items.")


def _call(func: Callable[..., Any], budget_s: float, args: tuple[Any, ...]) -> Any:
    """Runs in the worker: the engine call under an armed CPU timer, always disarmed afterwards."""
    signal.signal(signal.SIGPROF, _on_budget)
    signal.setitimer(signal.ITIMER_PROF, budget_s)
    try:
        return func(*args)
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)


def _warm(modules: tuple[str, ...]) -> int:
    # Imports the engine in the worker once, so the first real call does not pay for it.
    for name in modules:
        importlib.import_module(name)
    return os.getpid()


class CalcPool:
    def __init__(self, workers: int | None = None, budget_s: float = 30.0, warm_modules: tuple[str, ...] = ()) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.budget_s = budget_s
        self.warm_modules = warm_modules  # what `warm()` imports in each worker (the app's engine modules)
        self._pool: ProcessPoolExecutor | None = None
        self.in_flight = 0  # calls submitted and not yet answered (tests wait on it; readiness shows it)

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    async def run(self, func: Callable[..., Any], *args: Any, budget_s: float | None = None) -> Any:
        pool = self._executor()
        loop = asyncio.get_running_loop()
        self.in_flight += 1
        try:
            return await loop.run_in_executor(pool, _call, func, budget_s or self.budget_s, args)
        except BrokenProcessPool as exc:
            log.error("calc_pool_broken", detail=str(exc))
            self._discard(pool)
            raise ServiceUnavailable("A calculation worker stopped unexpectedly; retry the request.") from None
        finally:
            self.in_flight -= 1

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        if self._pool is pool:
            self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    async def warm(self) -> None:
        """Start every worker now (benchmarks and servers that expect heavy traffic call this)."""
        pool = self._executor()
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(pool, _warm, self.warm_modules) for _ in range(self.workers)))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
