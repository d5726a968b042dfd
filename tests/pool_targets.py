"""Functions the process-pool tests send to a worker (module level: the pool pickles them by name)."""

from __future__ import annotations

import os


def spin() -> int:
    """Burns CPU until the pool's CPU budget stops it (never returns on its own within the test's budget)."""
    x = 0
    while True:
        x += 1


def square(n: int) -> int:
    return n * n


def die() -> None:
    os._exit(3)  # a worker killed mid-call (OOM killer, a crash in native code)
