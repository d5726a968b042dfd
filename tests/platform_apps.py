"""More app instances on the session's data directory (same embedded Postgres and Redis): separate
workers of one deployment, or an app with its own settings (real rate limits, trusted proxies)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app


class FakeClock:
    """A controllable clock for the limiter (microseconds)."""

    def __init__(self, start_us: int = 1_800_000_000_000_000) -> None:
        self.now_us = start_us

    def __call__(self) -> int:
        return self.now_us

    def advance(self, seconds: float) -> None:
        self.now_us += round(seconds * 1_000_000)


@contextmanager
def app_on(settings: Settings, client: tuple[str, int] = ("testclient", 50000),
           **overrides: Any) -> Iterator[TestClient]:
    own = settings.model_copy(update=overrides)
    with TestClient(create_app(own), raise_server_exceptions=False, client=client) as c:
        yield c
