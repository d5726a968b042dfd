"""Which database errors mean "Postgres cannot be reached" (down, restarting, network) rather than "this
statement is wrong": the former are retried later or answered 503, the latter are bugs or bad data."""

from __future__ import annotations

import asyncpg
from sqlalchemy import exc as sa

_DRIVER_UNREACHABLE = (asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError,
                       asyncpg.InterfaceError)
_SA_UNREACHABLE = (sa.OperationalError, sa.InterfaceError, sa.DisconnectionError, sa.TimeoutError)
_UNREACHABLE = (OSError, TimeoutError, *_DRIVER_UNREACHABLE, *_SA_UNREACHABLE)


def database_unreachable(exc: BaseException) -> bool:
    if isinstance(exc, _UNREACHABLE):
        return True
    if isinstance(exc, sa.DBAPIError):
        return bool(exc.connection_invalidated) or isinstance(exc.orig, _DRIVER_UNREACHABLE)
    return False
