"""Queries of processes that do not own the embedded ClickHouse, answered by the process that does.

Why not a job (arq): any worker may take a job, and only one process on the data directory can run
this one; a queue would need a queue per owner and a poll in between. The owner instead listens on a
unix socket next to its lock (`data_dir/run/analytics.sock`, mode 0600 in a 0700 directory: only this
user reaches it), one JSON request per connection, one JSON answer. A process that finds no owner
listening (the owner exited or died: the kernel dropped its flock) tries to take the lock and become
the owner itself (app.analytics.service).

Why hand-written and not HTTP: the protocol is one line each way between processes of one app and one
user; asyncio's unix streams and orjson do it in a few lines, with nothing to configure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import structlog

log = structlog.get_logger(__name__)
MAX_REQUEST = 64 * 1024

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class OwnerUnreachable(RuntimeError):
    """No process answers on the owner's socket."""


class ForwardedError(RuntimeError):
    """The owner answered with an error."""


class OwnerServer:
    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self.handler = handler
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left by a dead owner: we hold the lock now, so it is ours to replace
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path), limit=MAX_REQUEST)
        finally:
            os.umask(old)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = orjson.loads(await reader.readline())
            try:
                answer: dict[str, Any] = {"ok": True, "result": await self.handler(request)}
            except Exception as exc:
                log.warning("analytics_forwarded_query_failed", error=f"{type(exc).__name__}: {exc}")
                answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            writer.write(orjson.dumps(answer) + b"\n")
            await writer.drain()
        except (ConnectionError, ValueError, asyncio.LimitOverrunError):
            pass  # the asker left or sent garbage: nobody to answer
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


async def ask_owner(path: Path, request: dict[str, Any], timeout: float) -> dict[str, Any]:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path), limit=1 << 26), timeout)
    except (OSError, TimeoutError) as exc:
        raise OwnerUnreachable(str(exc)) from exc
    try:
        writer.write(orjson.dumps(request) + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    except (OSError, TimeoutError) as exc:
        raise OwnerUnreachable(str(exc)) from exc
    finally:
        writer.close()
    if not line:
        raise OwnerUnreachable("the owner closed the connection")
    answer = orjson.loads(line)
    if not answer.get("ok"):
        raise ForwardedError(str(answer.get("error")))
    result: dict[str, Any] = answer["result"]
    return result
