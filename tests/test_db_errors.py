"""Which database errors mean "Postgres cannot be reached" (app/db/errors.py): those are answered 503 and
retried, everything else is a bug or bad data. Built the way SQLAlchemy's asyncpg dialect builds them."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import exc as sa
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection, AsyncAdapt_asyncpg_dbapi

from app.db.errors import database_unreachable

DBAPI = AsyncAdapt_asyncpg_dbapi(asyncpg)


def as_sqlalchemy_raises(driver_error: Exception) -> sa.DBAPIError:
    """The driver's error as a statement or a connect sees it: wrapped by the dialect, then by SQLAlchemy."""
    try:
        AsyncAdapt_asyncpg_connection._handle_exception_no_connection(DBAPI, driver_error)
    except Exception as wrapped:  # the dialect's own DBAPI error, caused by the driver's
        out = sa.DBAPIError.instance(None, None, wrapped, DBAPI.Error)
        assert isinstance(out, sa.DBAPIError)
        return out
    raise AssertionError("the dialect did not raise")


@pytest.mark.parametrize("driver_error", [
    # Postgres restarting after a crash (seen in the soak as 500s before this was recognised).
    asyncpg.CannotConnectNowError("the database system is not yet accepting connections"),
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.TooManyConnectionsError("sorry, too many clients already"),
    asyncpg.ConnectionFailureError("connection failure"),
])
def test_an_unreachable_server_is_recognised_through_the_dialects_wrapping(driver_error: Exception) -> None:
    assert database_unreachable(as_sqlalchemy_raises(driver_error))


@pytest.mark.parametrize("driver_error", [
    asyncpg.UniqueViolationError("duplicate key value violates unique constraint"),
    asyncpg.InsufficientPrivilegeError("permission denied for table audit_log"),
    asyncpg.UndefinedColumnError("column does not exist"),
])
def test_a_wrong_statement_is_not_an_outage(driver_error: Exception) -> None:
    assert not database_unreachable(as_sqlalchemy_raises(driver_error))


def test_plain_errors() -> None:
    assert database_unreachable(ConnectionRefusedError(111, "Connection refused"))
    assert not database_unreachable(ValueError("bad"))
