"""User queries shared by admin creation, SSO provisioning and the token exchange."""

from __future__ import annotations

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import User


async def email_taken(session: AsyncSession, email: str) -> bool:
    """Case-insensitive, within the session's broker (RLS); uses the unique index on lower(email)."""
    found = await session.scalar(select(User.id).where(func.lower(User.email) == email.lower()).limit(1))
    return found is not None


async def insert_unless_exists(session: AsyncSession, row: User,
                               existing: Select[User]) -> tuple[User | None, bool]:
    """Insert `row`; if a concurrent request inserted the same identity first (unique violation), return
    that one instead: (user, created). (None, False) when the conflict was on something else."""
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        return (await session.execute(existing)).scalar_one_or_none(), False
    await session.refresh(row)
    return row, True
