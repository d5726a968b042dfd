"""Which database errors mean "Postgres cannot be reached" (down, restarting, network) rather than "this
statement is wrong": the former are retried later or answered 503, the latter are bugs or bad data."""

from __future__ import annotations

import asyncpg
from sqlalchemy import exc as sa

_DRIVER_UNREACHABLE = (asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError,
                       asyncpg.InterfaceError)
_SA_UNREACHABLE = (sa.OperationalError, sa.InterfaceError, sa.DisconnectionError, sa.TimeoutError)
_UNREACHABLE = (OSError, TimeoutError, *_DRIVER_UNREACHABLE, *_SA_UNREACHABLE)


# SQLSTATE classes and codes of an unreachable server: 08 connection exception, 57P01-57P03 admin/crash shutdown
# and "cannot connect now" (starting up or in recovery after a crash), 53300 too many connections.
_UNREACHABLE_STATES = ("08", "57P01", "57P02", "57P03", "53300")


def database_unreachable(exc: BaseException) -> bool:
    if isinstance(exc, _UNREACHABLE):
        return True
    if isinstance(exc, sa.DBAPIError):
        if exc.connection_invalidated:
            return True
        # SQLAlchemy's asyncpg dialect wraps the driver's error in its own DBAPI Error (exc.orig), the driver's
        # exception being that one's cause: a server still in crash recovery arrives as
        # DBAPIError(Error("the database system is not yet accepting connections")) and was answered 500.
        seen: BaseException | None = exc.orig
        for _ in range(4):
            if seen is None:
                break
            if isinstance(seen, _DRIVER_UNREACHABLE):
                return True
            state = getattr(seen, "pgcode", None) or getattr(seen, "sqlstate", None)
            if isinstance(state, str) and state.startswith(_UNREACHABLE_STATES):
                return True
            seen = seen.__cause__ or seen.__context__
    return False
