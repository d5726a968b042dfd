"""What the browser tests share: Debian's Chromium, and an app served by uvicorn in a thread on a free loopback
port (tests/test_widget_browser.py, test_console_browser.py, test_console_billing_browser.py, test_docs.py)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


def find_chromium() -> str | None:
    # Debian's /usr/bin/chromium is a shell wrapper; Playwright talks to the binary behind it.
    for path in ("/usr/lib/chromium/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if path and os.access(path, os.X_OK):
            return path
    return None


CHROMIUM = find_chromium()


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


@dataclass(frozen=True)
class Served:
    url: str  # http://127.0.0.1:<port>
    loop: asyncio.AbstractEventLoop  # the server's: run the app's coroutines there (run_coroutine_threadsafe)


@contextlib.contextmanager
def served(app: Any) -> Iterator[Served]:
    """The app served by uvicorn (lifespan on) in a thread until the block ends."""
    import uvicorn

    sock = free_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws="none", lifespan="on"))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=lambda: loop.run_until_complete(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 60  # a hang guard, not a speed check
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API server did not start")
        time.sleep(0.02)
    try:
        yield Served(f"http://127.0.0.1:{sock.getsockname()[1]}", loop)
    finally:
        server.should_exit = True
        thread.join(30)
        loop.close()
        sock.close()


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium through Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield b
        finally:
            b.close()
