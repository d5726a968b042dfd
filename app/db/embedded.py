"""The embedded default: a real PostgreSQL (pgserver wheels from PyPI) under the data directory.

Several processes on the same data directory share one postmaster (pgserver reference-counts its
users), so `forexrisk admin create-broker` works while `forexrisk run` serves.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

_servers: dict[Path, Any] = {}


def start(data_dir: Path, cleanup: str = "stop") -> str:
    """Start (or join) the embedded server; return an asyncpg URL for its superuser, database postgres."""
    pgdata = (data_dir / "pg").resolve()
    if pgdata not in _servers:
        with warnings.catch_warnings():
            # platformdirs warns at pgserver import when XDG_RUNTIME_DIR is unset; its /tmp fallback is fine.
            warnings.simplefilter("ignore")
            from pgserver import postgres_server

            pgdata.parent.mkdir(parents=True, exist_ok=True)
            _servers[pgdata] = postgres_server.get_server(pgdata, cleanup_mode=cleanup)
    server = _servers[pgdata]
    info = server.get_postmaster_info()
    socket_dir = info.socket_dir
    if socket_dir is not None:
        return f"postgresql+asyncpg://postgres@/postgres?host={quote(str(socket_dir))}"
    return f"postgresql+asyncpg://postgres@127.0.0.1:{info.port}/postgres"
